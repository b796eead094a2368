"""Checksums and plausibility tests that turn a digit pattern into personal data (or not).

A regex finds candidates; these decide. A number that fails its checksum is not a card, an ID or an
IBAN, which is what keeps order numbers, prices and product codes out of the findings.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress

# PRC resident ID: weights and check characters of ISO 7064 MOD 11-2 (GB 11643-1999)
_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_CHECK = "10X98765432"
# the first two digits: province-level division codes (GB/T 2260), plus 71/81/82 (Taiwan, Hong Kong, Macao)
_CN_PROVINCES = frozenset("11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 "
                          "61 62 63 64 65 71 81 82 83 91".split())

# IBAN length per country (ISO 13616 registry); a country not listed is not an IBAN
_IBAN_LENGTHS = {c[:2]: int(c[2:]) for c in (
    "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DK18 DO28 EE20 EG29 "
    "ES24 FI18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HR21 HU28 IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 "
    "LB28 LC32 LI21 LT20 LU20 LV21 MC27 MD24 ME22 MK19 MR27 MT31 MU30 NL18 NO15 PK24 PL28 PS29 PT25 QA29 "
    "RO24 RS22 SA24 SC31 SE24 SI19 SK24 SM27 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20").split()}


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number carries."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def cn_id_ok(value: str, today: _dt.date | None = None) -> bool:
    """An 18-character PRC resident ID: a province code, a real birth date not in the future (and not
    before 1900), and the MOD 11-2 check character."""
    if len(value) != 18 or not value[:17].isdigit() or value[17] not in "0123456789Xx":
        return False
    if value[:2] not in _CN_PROVINCES:
        return False
    try:
        born = _dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    if not _dt.date(1900, 1, 1) <= born <= (today or _dt.date.today()):
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _CN_WEIGHTS))
    return _CN_CHECK[total % 11] == value[17].upper()


def iban_ok(value: str) -> bool:
    """An IBAN (spaces removed): its country's length and the ISO 7064 mod-97 check."""
    value = value.replace(" ", "").upper()
    if len(value) < 15 or not value.isalnum() or _IBAN_LENGTHS.get(value[:2]) != len(value):
        return False
    if not value[2:4].isdigit():
        return False
    moved = value[4:] + value[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def ip_ok(value: str) -> bool:
    """A valid IPv4 or IPv6 address (the standard library parses it)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
