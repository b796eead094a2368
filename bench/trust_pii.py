"""PII guard: recall per type, false positives on hard negatives, latency; against a plain-regex detector.

    nice -n 5 .venv/bin/python bench/trust_pii.py [--n 2400] [--negatives 600] [--seed 0]
        [--names-en runs/pii-ner-en] [--names-zh runs/pii-ner-zh]     (runs from bench/trust_pii_ner.py)

The set is generated with ``faker`` (a dev dependency; locales en_US, en_GB, de_DE, fr_FR, nl_NL, es_ES,
it_IT and zh_CN): English and Chinese sentences, each holding one or two of e-mail, phone (US formats with
extensions, +44, Chinese mobiles with +86 and spaces/dashes, Chinese landlines), PRC ID (faker's checksummed
ones), bank card (Luhn-valid, plain/spaced/dashed, UnionPay 62), IBAN (checksummed, plain or in groups of
four), IPv4/IPv6 and person names; plus hard negatives (company, product and place names, order, invoice,
tracking and product numbers, prices, dates, times, versions, postcodes, stock codes).

A gold span counts as found when a finding of the same type covers it (what redaction needs). The baseline is
the usual regexes (e-mail, phone, card, IP, 18-digit ID, IBAN shape) without checksums or context, run on the
same texts; the ratio lines compare the false-positive rate on negatives and the precision.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

STRUCTURED = ("email", "phone", "cn_id", "bank_card", "iban", "ip")

EN = {
    "email": ["Please email {x} for the details.", "Contact: {x}", "{x} wrote to us yesterday.",
              "Send the signed form to {x} by Friday."],
    "phone": ["Call me at {x} tomorrow.", "My number is {x}.", "You can reach the office on {x} after 9am.",
              "Phone: {x}", "{x} is the number on the form."],
    "cn_id": ["His PRC ID number is {x}.", "ID: {x}", "The applicant's resident ID {x} was verified."],
    "bank_card": ["Charge it to my card {x}, please.", "Card number: {x}", "{x} expires next month.",
                  "I paid with {x} at the store."],
    "iban": ["Wire the money to IBAN {x}.", "Account {x} belongs to the supplier.", "Beneficiary: {x}"],
    "ip": ["The login came from {x}.", "Server address: {x}", "Block {x} on the firewall."],
    "person": ["{x} joined the company in 2019.", "I met {x} at the conference.", "Yesterday {x} called the bank.",
               "The report was written by {x}."],
}
ZH = {
    "email": ["我的邮箱是{x}，请查收。", "请发邮件到{x}联系我们。", "邮箱：{x}"],
    "phone": ["请拨打{x}联系客服。", "我的手机号是{x}。", "电话：{x}", "有问题打{x}找我。", "{x}是他的号码。"],
    "cn_id": ["身份证号：{x}", "他的身份证号码是{x}，请核对。", "申请人{x}已通过审核。"],
    "bank_card": ["请把钱转到卡号{x}。", "银行卡{x}已绑定。", "我的工资卡是{x}。"],
    "iban": ["请汇款至国际账户{x}。", "收款账号：{x}"],
    "ip": ["登录地址来自{x}。", "服务器IP为{x}。"],
    "person": ["{x}今天来公司面试。", "联系人：{x}", "经理{x}批准了这个项目。", "我昨天见到了{x}。"],
}
CN_AREAS = ["010", "021", "022", "023", "020", "0755", "0571", "025", "027", "028", "029", "0512"]


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    from lmkernel.trust.checks import luhn_ok

    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


def grouped(digits: str, rng: random.Random) -> str:
    sep = rng.choice(["", "", " ", "-"])
    return sep.join(digits[i:i + 4] for i in range(0, len(digits), 4)) if sep else digits


def make_value(kind: str, zh: bool, fk: dict, rng: random.Random) -> str:
    en, cn = fk["en_US"], fk["zh_CN"]
    if kind == "email":
        return (cn if zh else en).email()
    if kind == "phone":
        if not zh:
            return en.phone_number() if rng.random() < 0.8 else fk["en_GB"].phone_number()
        if rng.random() < 0.25:
            area = rng.choice(CN_AREAS)
            number = "".join(rng.choice("0123456789") for _ in range(8 if len(area) == 3 else 7))
            return rng.choice([f"{area}-{number}", f"({area}) {number[:-4]} {number[-4:]}", f"{area} {number}"])
        m = cn.phone_number()
        return rng.choice([m, m, f"{m[:3]} {m[3:7]} {m[7:]}", f"{m[:3]}-{m[3:7]}-{m[7:]}", f"+86 {m}",
                           f"+86-{m[:3]}-{m[3:7]}-{m[7:]}"])
    if kind == "cn_id":
        return cn.ssn()
    if kind == "bank_card":
        digits = luhn_complete("62", rng.choice([16, 19]), rng) if zh and rng.random() < 0.5 \
            else en.credit_card_number()
        return grouped(digits, rng)
    if kind == "iban":
        value = fk[rng.choice(["en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT"])].iban()
        return " ".join(value[i:i + 4] for i in range(0, len(value), 4)) if rng.random() < 0.4 else value
    if kind == "ip":
        return rng.choice([en.ipv4(), en.ipv4_private(), en.ipv6()])
    return (cn if zh else en).name()


def make_pii(n: int, fk: dict, rng: random.Random) -> list[tuple[str, list[tuple[str, int, int]], str]]:
    """(text, gold spans, language) for n sentences; one in five holds two entities."""
    kinds = list(EN)
    out = []
    for i in range(n):
        zh = i % 2 == 1
        table = ZH if zh else EN
        parts, gold = [], []
        for _ in range(2 if rng.random() < 0.2 else 1):
            kind = kinds[rng.randrange(len(kinds))]
            template = rng.choice(table[kind])
            value = make_value(kind, zh, fk, rng)
            if zh and parts and parts[-1][-1] not in "。！？":
                parts[-1] += "；"  # a sentence ending in its value: keep it apart from the next one
            offset = sum(map(len, parts)) + len(parts) * (0 if zh else 1)
            at = template.index("{x}")
            gold.append((kind, offset + at, offset + at + len(value)))
            parts.append(template.replace("{x}", value))
        out.append((("" if zh else " ").join(parts), gold, "zh" if zh else "en"))
    return out


def make_negatives(n: int, fk: dict, rng: random.Random) -> list[str]:
    en, cn = fk["en_US"], fk["zh_CN"]

    def d(k: int) -> str:
        return "".join(rng.choice("0123456789") for _ in range(k))

    makers = [
        lambda: f"Order #{d(rng.choice([8, 10, 12, 16]))} shipped to {en.city()} on {en.date()}.",
        lambda: f"Invoice INV-{rng.randint(2019, 2026)}-{d(5)} totals ${rng.randint(10, 99999):,}.{d(2)}.",
        lambda: f"{en.company()} sells the Model {en.lexify('???').upper()}-{d(4)} for ${rng.randint(99, 4999)}.99.",
        lambda: f"Tracking number {d(rng.choice([12, 15, 20]))} left {en.city()} at {en.time()}.",
        lambda: f"Our office moved to {en.street_address()}, {en.city()} {en.postcode()}.",
        lambda: f"Revenue rose {rng.randint(1, 60)}.{d(1)}% to {rng.randint(1, 999):,},{d(3)},{d(3)} in "
                f"Q{rng.randint(1, 4)} {rng.randint(2015, 2026)}.",
        lambda: f"SKU {d(3)}-{d(3)}-{d(4)} is out of stock at {en.company()}.",
        lambda: f"Version {rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 50)}.{rng.randint(0, 999)} "
                f"was released on {en.date()}.",
        lambda: f"The meeting is on {en.date()} at {en.time()} in room {d(4)}.",
        lambda: f"ISBN 978-{d(1)}-{d(2)}-{d(6)}-{d(1)} is {en.catch_phrase().lower()}.",
        lambda: f"Flight {en.lexify('??').upper()}{d(4)} to {en.city()} departs at {en.time()[:5]}.",
        lambda: f"Serial no. {d(16)} belongs to a {en.color_name().lower()} printer.",
        lambda: f"{en.city()} has a population of {rng.randint(10000, 9999999):,} people.",
        lambda: f"订单号{d(rng.choice([12, 16, 18]))}已于{cn.date()}发货。",
        lambda: f"{cn.company()}成立于{rng.randint(1980, 2024)}年，总部位于{cn.city()}。",
        lambda: f"这款{cn.word()}手机售价¥{rng.randint(999, 9999)}.00，{cn.date()}上市。",
        lambda: f"{cn.date()}下午{rng.randint(1, 5)}点在{cn.city()}开会。",
        lambda: f"快递单号SF{d(12)}，商品编码{d(13)}。",
        lambda: f"股票代码{rng.choice(['600519', '000001', '300750'])}今日上涨{rng.randint(1, 9)}.{d(2)}%。",
        lambda: f"邮编{d(6)}，地址{cn.address()}。",
        lambda: f"型号{en.lexify('??').upper()}-{d(4)}-{d(4)}的产品已停产。",
        lambda: f"发票号码{d(8)}，金额{rng.randint(100, 99999)}元。",
        lambda: f"{cn.city()}常住人口{rng.randint(100, 3000)}万，面积{rng.randint(1000, 20000)}平方公里。",
        lambda: f"批次{d(11)}的产品已召回。",
    ]
    return [rng.choice(makers)() for _ in range(n)]


BASELINE = {  # the patterns of the commonregex package (log scrubbers' usual choice), plus Chinese mobiles and IDs
    "email": re.compile(r"(?i)[a-z0-9!#$%&'*+/=?^_`{|.}~-]+@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+"
                        r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"),
    "cn_id": re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)"),
    "phone": re.compile(r"(?<![\d-])(?:\+?\d{1,3}[-.\s*]?)?(?:\(?\d{3}\)?[-.\s*]?)?\d{3}[-.\s*]?\d{4}(?![\d-])"
                        r"|(?<![\d-])(?:\(\+?\d{2}\)|\+?\d{2})\s*\d{2}\s*\d{3}\s*\d{4}(?![\d-])"
                        r"|(?<!\d)1[3-9]\d{9}(?!\d)"),
    "bank_card": re.compile(r"(?<!\d)(?:(?:\d{4}[- ]?){3}\d{4}|\d{15,16})(?!\d)"),
    "iban": re.compile(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}"),
    "ip": re.compile(r"(?<!\d)(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}"
                     r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)(?!\d)|(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}"),
}


def baseline(text: str) -> list[tuple[str, int, int]]:
    from lmkernel.trust.pii import Match, resolve

    found = [Match(t, m.start(), m.end(), 1.0, "re") for t, p in BASELINE.items() for m in p.finditer(text)]
    return [(m.type, m.start, m.end) for m in resolve(found)]


def evaluate(detect, pii_set, negatives) -> dict:
    """Recall per type, precision over all findings, false-positive rate on negatives, latency per text."""
    totals: dict[str, int] = {}
    hits: dict[str, int] = {}
    tp = fp = 0
    times = []
    for text, gold, _ in pii_set:
        start = time.perf_counter()
        pred = detect(text)
        times.append(time.perf_counter() - start)
        for kind, a, b in gold:
            totals[kind] = totals.get(kind, 0) + 1
            hits[kind] = hits.get(kind, 0) + any(t == kind and s <= a and e >= b for t, s, e in pred)
        for t, s, e in pred:
            ok = any(t == kind and s < b and e > a for kind, a, b in gold)
            tp, fp = tp + ok, fp + (not ok)
    flagged = []
    for text in negatives:
        start = time.perf_counter()
        pred = detect(text)
        times.append(time.perf_counter() - start)
        if pred:
            flagged.append((text, pred))
            fp += len(pred)
    ms = sorted(t * 1000 for t in times)
    return {"recall": {k: hits[k] / totals[k] for k in sorted(totals)}, "counts": totals,
            "precision": tp / max(1, tp + fp), "fp_rate": len(flagged) / len(negatives), "flagged": flagged,
            "p50_ms": statistics.median(ms), "p95_ms": ms[int(0.95 * (len(ms) - 1))]}


def lmkernel_detector(names_model: str | None = None):
    from lmkernel.trust.guard import Guard
    from lmkernel.trust.guardspec import GuardSpec

    spec = GuardSpec.model_validate({"pii": {"names_model": names_model} if names_model else {}})
    guard = Guard.build(spec)

    def detect(text: str) -> list[tuple[str, int, int]]:
        return [(f.type, f.start, f.end) for f in guard.check([text])[0].findings if f.start is not None]

    return detect


def report(name: str, r: dict, types) -> None:
    recall = "  ".join(f"{k} {r['recall'].get(k, 0):.3f}" for k in types if k in r["counts"])
    print(f"{name:10} recall: {recall}")
    print(f"{name:10} precision {r['precision']:.3f}  FP rate on negatives {r['fp_rate']:.2%}  "
          f"p50 {r['p50_ms']:.3f} ms  p95 {r['p95_ms']:.3f} ms per text")


def main() -> None:
    import torch
    from faker import Faker

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2400, help="PII sentences (half English, half Chinese)")
    p.add_argument("--negatives", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--names-en", help="an English NER run (PER) for name recall")
    p.add_argument("--names-zh", help="a Chinese NER run (NAME) for name recall")
    p.add_argument("--show-misses", type=int, default=5)
    args = p.parse_args()
    Faker.seed(args.seed)
    rng = random.Random(args.seed)
    fk = {loc: Faker(loc) for loc in ("en_US", "en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT", "zh_CN")}
    pii_set = make_pii(args.n, fk, rng)
    negatives = make_negatives(args.negatives, fk, rng)
    print(f"torch.backends.cpu.get_cpu_capability(): {torch.backends.cpu.get_cpu_capability()}")
    print(f"set: {len(pii_set)} PII sentences ({sum(len(g) for _, g, _ in pii_set)} entities), "
          f"{len(negatives)} hard negatives, seed {args.seed}")
    structured = [(t, [g for g in gold if g[0] != "person"], lang) for t, gold, lang in pii_set]
    ours = evaluate(lmkernel_detector(), structured, negatives)
    base = evaluate(baseline, structured, negatives)
    report("lmkernel", ours, STRUCTURED)
    report("baseline", base, STRUCTURED)
    fp = (f"{base['fp_rate'] / ours['fp_rate']:.1f}x" if ours["fp_rate"] else
          f"lmkernel none, baseline {len(base['flagged'])} of {len(negatives)} negatives")
    print(f"ratio: FP rate on negatives baseline/lmkernel {fp}; precision lmkernel/baseline "
          f"{ours['precision'] / base['precision']:.2f}x; p95 latency lmkernel/baseline "
          f"{ours['p95_ms'] / base['p95_ms']:.2f}x")
    for text, pred in ours["flagged"][:args.show_misses]:
        print(f"  lmkernel false positive: {text!r} -> {pred}")
    for text, gold, _ in structured:
        got = lmkernel_detector.__dict__.setdefault("d", lmkernel_detector())(text)
        missed = [g for g in gold if not any(t == g[0] and s <= g[1] and e >= g[2] for t, s, e in got)]
        if missed and args.show_misses > 0:
            args.show_misses -= 1
            print(f"  lmkernel miss: {text!r} -> {[(k, text[a:b]) for k, a, b in missed]}")
    for lang, run in (("en", args.names_en), ("zh", args.names_zh)):
        if not run:
            print(f"names ({lang}): no NER run given (--names-{lang}); name recall not measured")
            continue
        subset = [(t, [g for g in gold if g[0] == "person"], x) for t, gold, x in pii_set if x == lang]
        subset = [s for s in subset if s[1]]
        r = evaluate(lmkernel_detector(run), subset, [n for n in negatives if (lang == "zh") == _han(n)])
        print(f"names ({lang}, {run}): recall {r['recall'].get('person', 0):.3f} on {len(subset)} sentences; "
              f"FP rate on {lang} negatives (all types, NER included) {r['fp_rate']:.2%}; "
              f"p50 {r['p50_ms']:.1f} ms p95 {r['p95_ms']:.1f} ms per text")


def _han(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


if __name__ == "__main__":
    main()
