"""PII rule tier: checksums, number plans, context words, Chinese text, overlap resolution, redaction."""

from __future__ import annotations

import datetime as dt

import pytest

from lmkernel.trust.checks import cn_id_ok, iban_ok, ip_ok, luhn_ok
from lmkernel.trust.guard import Guard
from lmkernel.trust.guardspec import GuardSpec
from lmkernel.trust.pii import Match, detect, resolve


def found(text: str) -> list[tuple[str, str]]:
    return [(m.type, text[m.start:m.end]) for m in detect(text)]


def test_luhn_edges():
    assert luhn_ok("4111111111111111") and luhn_ok("378282246310005") and luhn_ok("6212345678901232")
    assert not luhn_ok("4111111111111112") and not luhn_ok("4111 1111") and not luhn_ok("")


def test_cn_id_checksum_date_and_province():
    assert cn_id_ok("11010519491231002X") and cn_id_ok("11010519491231002x")
    assert not cn_id_ok("110105194912310021")  # wrong check character
    assert not cn_id_ok("990105194912310026")  # no province 99
    assert not cn_id_ok("110105194902300027")  # 30 February
    assert not cn_id_ok("110105203001010010", today=dt.date(2026, 1, 1))  # born in the future
    assert not cn_id_ok("1101051949123100")


def test_iban_and_ip():
    assert iban_ok("GB82WEST12345698765432") and iban_ok("DE89 3704 0044 0532 0130 00")
    assert not iban_ok("GB82WEST12345698765433") and not iban_ok("GB82WEST1234569876543")  # check, length
    assert not iban_ok("ZZ82WEST12345698765432")
    assert ip_ok("192.168.0.1") and ip_ok("2001:db8::1") and not ip_ok("256.1.1.1")


@pytest.mark.parametrize("text,want", [
    ("write to anna.lee+news@mail.example.co.uk today", [("email", "anna.lee+news@mail.example.co.uk")]),
    ("call (415) 555-2671 or +1-415-555-2671x12", [("phone", "(415) 555-2671"), ("phone", "+1-415-555-2671x12")]),
    ("London office: +44 20 7946 0958.", [("phone", "+44 20 7946 0958")]),
    ("我的手机号是13812345678，有事联系", [("phone", "13812345678")]),
    ("请拨打 +86 138-1234-5678 或 (010) 6552 9988", [("phone", "+86 138-1234-5678"), ("phone", "(010) 6552 9988")]),
    ("身份证号11010519491231002X已登记", [("cn_id", "11010519491231002X")]),
    ("pay to 4111 1111 1111 1111 now", [("bank_card", "4111 1111 1111 1111")]),
    ("银行卡6212-3456-7890-1232", [("bank_card", "6212-3456-7890-1232")]),
    ("IBAN DE89 3704 0044 0532 0130 00 please", [("iban", "DE89 3704 0044 0532 0130 00")]),
    ("from 10.0.0.12 and 2001:db8:85a3::8a2e:370:7334", [("ip", "10.0.0.12"), ("ip", "2001:db8:85a3::8a2e:370:7334")]),
    ("tel: 4155552671", [("phone", "4155552671")]),
])
def test_detects(text, want):
    assert found(text) == want


@pytest.mark.parametrize("text", [
    "Order #4111111111111111 shipped on 2024-03-05",  # Luhn-valid, but an order number
    "订单号 13812345678 已发货", "SKU 415-555-2671 costs $1,299.99", "price 1,234,567.89 USD on 12/05/2024",
    "card 4111 1111 1111 1112", "ID 110105194912310021", "version 1.2.3.4 released", "meet at 12:30:45",
    "GB82WEST12345698765433", "4155552671 units were sold", "批号 20240315001 的产品", "型号 ABC-1234-5678",
    "Revenue rose 12.5% to 3,456,789 in Q3 2024", "2024年3月5日下午3点", "room 1203, building 7",
])
def test_hard_negatives_are_not_findings(text):
    assert found(text) == []


def test_overlap_higher_score_then_longer_wins():
    ms = [Match("bank_card", 0, 18, 0.9, "x"), Match("cn_id", 0, 18, 1.0, "x"), Match("phone", 2, 8, 1.0, "x")]
    assert [m.type for m in resolve(ms)] == ["cn_id"]
    assert [m.type for m in resolve([Match("a", 0, 4, .5, ""), Match("b", 0, 9, .5, "")])] == ["b"]


def test_redaction_keeps_the_rest_and_offsets_point_into_the_original():
    text = "邮箱 li.wei@example.cn，手机 139 0000 1234。"
    r = Guard.build(GuardSpec()).check([text])[0]
    assert r.redacted == "邮箱 [EMAIL]，手机 [PHONE]。"
    assert [(f.type, text[f.start:f.end], f.action) for f in r.findings] == [
        ("email", "li.wei@example.cn", "redact"), ("phone", "139 0000 1234", "redact")]
    assert not r.refused and r.to_json()["findings"][0]["start"] == 3


def test_placeholder_types_action_and_min_score():
    spec = GuardSpec.model_validate({"pii": {"placeholder": "<{type}>", "types": ["email"], "action": "flag"}})
    r = Guard.build(spec).check(["a@b.io 13812345678"])[0]
    assert [f.type for f in r.findings] == ["email"] and r.redacted == "a@b.io 13812345678"
    spec = GuardSpec.model_validate({"pii": {"placeholder": "<{type}>"}})
    assert Guard.build(spec).check(["a@b.io"])[0].redacted == "<email>"
    strict = GuardSpec.model_validate({"pii": {"min_score": 0.7}})
    assert Guard.build(strict).check(["tel: 4155552671"])[0].findings == []  # context-only phones score 0.6
    assert GuardSpec.model_validate({"pii": {"action": "refuse"}}) and \
        Guard.build(GuardSpec.model_validate({"pii": {"action": "refuse"}})).check(["a@b.io"])[0].refused


def test_names_come_from_the_ner_run():
    class FakeNer:
        card, labels = {"task": "ner"}, ["O", "B-PER", "I-PER"]

        def predict(self, texts):
            return [{"text": t, "entities": [{"type": "PER", "text": "张伟", "start": 0, "end": 2, "score": 0.97},
                                             {"type": "LOC", "text": "北京", "start": 3, "end": 5, "score": 0.9}]}
                    for t in texts]

    spec = GuardSpec.model_validate({"pii": {"names_model": "some-run"}})
    guard = Guard.build(spec, loader=lambda ref, task, key: FakeNer())
    r = guard.check(["张伟在北京，电话13812345678"])[0]
    assert [(f.type, f.start, f.end) for f in r.findings] == [("person", 0, 2), ("phone", 8, 19)]
    assert r.redacted == "[PERSON]在北京，电话[PHONE]"


def test_the_audit_logs_redaction_is_the_pii_guards(tmp_path):
    import json

    from lmkernel.trust.audit import AuditLog
    from lmkernel.trust.guard import redact_pii

    assert redact_pii("身份证11010519491231002X，卡 4111 1111 1111 1111") == "身份证[CN_ID]，卡 [BANK_CARD]"
    log = AuditLog(tmp_path / "audit.jsonl", redact=redact_pii, fsync="never")
    log.append("prediction", {"text": "mail a@b.io from 10.0.0.1"})
    log.close()
    line = json.loads((tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert "mail [EMAIL] from [IP]" in json.dumps(line) and "a@b.io" not in json.dumps(line)
