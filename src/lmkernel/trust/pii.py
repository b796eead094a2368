"""Personal data in English and Chinese text: candidates by pattern, kept only when they check out.

Structured entities (e-mail, phone, PRC ID, bank card, IBAN, IP) are found by regular expressions
and then validated (checksums, dates, number plans) and weighed by the words just before them, the
way Presidio's recognizers use context words: "order", "SKU", "订单号" before a number make it an
order number, "tel", "call", "手机" before a bare digit run make it a phone. Overlapping candidates
are resolved as Presidio does: the higher score wins, then the longer span. Person names need an
NER run (``names``), whose ``PER`` entities become ``person`` findings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .checks import cn_id_ok, iban_ok, ip_ok, luhn_ok

PII_TYPES: tuple[str, ...] = ("email", "phone", "cn_id", "bank_card", "iban", "ip", "person")

_L = r"(?<![0-9A-Za-z])(?<!\d[.,])"  # no digit/letter (or a decimal point after a digit) just before
_R = r"(?![0-9A-Za-z@]|[.,]\d)"  # ... and none just after
_EXT = r"(?:\s?(?:x|ext\.?)\s?\d{1,6})?"

PATTERNS: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?@"
                        r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])"),
    "cn_mobile": re.compile(_L + r"(?:(?:\+|00)86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}" + _R),
    "cn_landline": re.compile(_L + r"(?:\(0\d{2,3}\)[ -]?|0\d{2,3}[ -])\d{3,4}[ -]?\d{4}" + _R),
    "intl_phone": re.compile(r"(?<![\w+])(?:\+|00)[1-9]\d*(?:[ .-]?\(\d+\)[ .-]?\d+|[ .-]\d+)*" + _EXT + _R),
    "us_phone": re.compile(_L + r"(?:1[ .-])?(?:\(\d{3}\)[ .-]?|\d{3}[.-]|\d{3} )\d{3}[ .-]\d{4}" + _EXT + _R),
    "bare_phone": re.compile(_L + r"0?\d{9,11}" + _R),
    "cn_id": re.compile(_L + r"\d{17}[\dXx]" + _R),
    "bank_card": re.compile(_L + r"(?:[2-6]\d{3}|1800|2131)([ -]?)\d{1,6}(?:\1\d{1,6}){1,3}" + _R),  # one separator
    "iban": re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])"),
    "ipv4": re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d]|\.\d)"),
    "ipv6": re.compile(r"(?<![0-9A-Fa-f:])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:)[0-9A-Fa-f:]{2,39}(?:%\w+)?"
                       r"(?![0-9A-Za-z:])"),
}

# words in the few characters before a number that say what it is
_WINDOW = 28
_NEGATIVE = re.compile(r"(?i)(?:\b(?:order|invoice|tracking|sku|model|part|serial|ref(?:erence)?|item|product|"
                       r"batch|lot|ticket|case|isbn|version|ver|v|no|nr|id|code|po)\b|#|订单|单号|编号|货号|型号|"
                       r"序列号|批号|批次|快递|运单|发票|工单|版本|票号|商品|产品|代码|编码|条码)[^\n]{0,8}$")
_PHONE_CONTEXT = re.compile(r"(?i)(?:\b(?:(?:my|your|his|her|our|their) (?:phone |mobile |cell )?number|"
                            r"phone|tel|call|mobile|cell|fax|whatsapp|text me|reach|contact|dial"
                            r")|电话|手机|致电|联系|拨打|来电|热线|座机|传真|号码)[^\n]{0,20}$")
_CARD_CONTEXT = re.compile(r"(?i)(?:\b(?:card|visa|mastercard|amex|maestro|debit|credit|paid with|pay with)\b|卡|"
                           r"付款|支付)[^\n]{0,16}$")
_CARD_AFTER = re.compile(r"(?i)^[^\n]{0,12}?(?:\b(?:expires?|exp|valid thru|cvv)\b|有效期)")
_PHONE_AFTER = re.compile(r"(?i)^[^\n]{0,16}?(?:\b(?:number|phone|line|tel)\b|电话|号码|手机)")


@dataclass(frozen=True)
class Match:
    """A validated span: type, character offsets (end exclusive), confidence, which recognizer."""

    type: str
    start: int
    end: int
    score: float
    detail: str


def _before(text: str, start: int) -> str:
    return text[max(0, start - _WINDOW):start]


def _digits(s: str) -> str:
    return "".join(ch for ch in s if ch.isdigit())


def _phone(text: str, m: re.Match[str], kind: str) -> float | None:
    """A phone score for a phone-shaped candidate, or None when it is something else."""
    before = _before(text, m.start())
    phone_ctx = bool(_PHONE_CONTEXT.search(before) or _PHONE_AFTER.search(text[m.end():m.end() + 24]))
    negative = bool(_NEGATIVE.search(before)) and not phone_ctx
    digits = _digits(m.group().split("x")[0].split("ext")[0])
    if negative:
        return None
    if kind == "intl_phone":
        return 0.9 if 8 <= len(digits) - m.group().startswith("00") * 2 <= 15 else None
    if kind == "cn_mobile":
        return 0.9
    if kind == "cn_landline":
        return 0.75 if 10 <= len(digits) <= 12 else None
    if kind == "us_phone":
        return 0.75 if len(digits) in (10, 11) else None
    return 0.6 if phone_ctx else None  # a bare digit run is a phone only when the words before say so


def _bank_card(text: str, m: re.Match[str]) -> float | None:
    raw = m.group()
    digits = _digits(raw)
    seps = {ch for ch in raw if not ch.isdigit()}
    card_ctx = bool(_CARD_CONTEXT.search(_before(text, m.start())) or _CARD_AFTER.search(text[m.end():m.end() + 24]))
    if not (12 if seps or card_ctx else 13) <= len(digits) <= 19 or not luhn_ok(digits):
        return None  # 12 digits (Maestro) only when written in groups or called a card
    if len(seps) > 1:
        return None
    if seps and len(raw.split(seps.pop())) < 3:  # a card written in groups has at least three of them
        return None
    if _NEGATIVE.search(_before(text, m.start())):
        return None
    return 0.9


def _ipv4(text: str, m: re.Match[str]) -> float | None:
    if not ip_ok(m.group()) or _NEGATIVE.search(_before(text, m.start())):
        return None
    return 0.85


def _ipv6(text: str, m: re.Match[str]) -> float | None:
    value = m.group()
    groups = [g for g in value.split("%")[0].split(":") if g]
    if not ip_ok(value.split("%")[0]) or ("::" not in value and len(groups) != 8):
        return None
    if "::" in value and (len(groups) < 2 and value not in ("::1",)):  # "a::" in a text is rarely an address
        return None
    return 0.85


def _candidates(text: str) -> Iterable[Match]:
    """Every validated match of every recognizer (overlaps included)."""
    for m in PATTERNS["email"].finditer(text):
        yield Match("email", m.start(), m.end(), 1.0, "email")
    for kind in ("intl_phone", "cn_mobile", "cn_landline", "us_phone", "bare_phone"):
        for m in PATTERNS[kind].finditer(text):
            score = _phone(text, m, kind)
            if score is not None:
                yield Match("phone", m.start(), m.end(), score, kind)
    for m in PATTERNS["cn_id"].finditer(text):
        if cn_id_ok(m.group()):
            yield Match("cn_id", m.start(), m.end(), 1.0, "cn_id")
    for m in PATTERNS["bank_card"].finditer(text):
        score = _bank_card(text, m)
        if score is not None:
            yield Match("bank_card", m.start(), m.end(), score, "luhn")
    for m in PATTERNS["iban"].finditer(text):
        if iban_ok(m.group()):
            yield Match("iban", m.start(), m.end(), 1.0, "iban")
    for kind, check in (("ipv4", _ipv4), ("ipv6", _ipv6)):
        for m in PATTERNS[kind].finditer(text):
            score = check(text, m)
            if score is not None:
                yield Match("ip", m.start(), m.end(), score, kind)


def resolve(matches: Iterable[Match]) -> list[Match]:
    """Non-overlapping spans in text order: the higher score wins an overlap, then the longer span."""
    kept: list[Match] = []
    for cand in sorted(matches, key=lambda x: (-x.score, -(x.end - x.start), x.start)):
        if all(cand.end <= k.start or cand.start >= k.end for k in kept):
            kept.append(cand)
    return sorted(kept, key=lambda x: x.start)


NameFinder = Callable[[list[str]], list[list[Match]]]


def detect(text: str, types: Iterable[str] = PII_TYPES, min_score: float = 0.0,
           names: list[Match] | None = None) -> list[Match]:
    """The personal data in ``text``: validated, non-overlapping, of the wanted ``types``. ``names``
    are the person spans an NER run found (the caller runs it, batched over many texts)."""
    wanted = set(types)
    found = [c for c in _candidates(text) if c.type in wanted and c.score >= min_score]
    if names and "person" in wanted:
        found += [n for n in names if n.score >= min_score]
    return resolve(found)


def ner_names(model) -> NameFinder:
    """A name finder over an NER run (``lmkernel.load(run)``): its ``PER``/``PERSON`` entities."""

    def find(texts: list[str]) -> list[list[Match]]:
        rows = model.predict(texts) if texts else []
        out = []
        for row in rows:
            out.append([Match("person", int(e["start"]), int(e["end"]), float(e.get("score", 1.0)), "ner")
                        for e in row.get("entities", []) if str(e.get("type", "")).upper() in ("PER", "PERSON",
                                                                                              "NAME")])
        return out

    return find
