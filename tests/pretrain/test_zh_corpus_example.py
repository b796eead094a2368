"""examples/zh: the Chinese corpus reads training splits only, de-duplicates, and its spec validates."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from lmkernel.spec import load_spec

ZH = Path(__file__).resolve().parents[2] / "examples" / "zh"


def _corpus_module():
    spec = importlib.util.spec_from_file_location("zh_corpus", ZH / "corpus.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fake_shared(root: Path) -> Path:
    """One or two rows per source in each set's own format, plus dev/test files that must never be read."""
    def write(rel: str, text: str) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    write("chnsenticorp/train.tsv", "label\ttext_a\n1\t房间很干净\n0\t服务太差\n")
    write("chnsenticorp/dev.tsv", "qid\tlabel\ttext_a\n0\t1\tDEV不应出现\n")
    finfe = "bbt_fincuge_finfe/FinCUGE_Publish/finfe"
    write(f"{finfe}/train_list.json", json.dumps([["大盘今天涨了", 2], ["房间很干净", 1]], ensure_ascii=False))
    write(f"{finfe}/eval_list.json", json.dumps([["EVAL不应出现", 0]], ensure_ascii=False))
    write("coldataset/COLDataset/train.csv", "\ufeff,split,topic,label,TEXT\n1,train,race,0,说得有道理\n")
    write("coldataset/COLDataset/test.csv",
          ",split,topic,label,fine-grained-label,TEXT\n1,test,race,0,0,TEST不应出现\n")
    write("afqmc/afqmc_public/train.json", json.dumps({"sentence1": "花呗怎么还款", "sentence2": "借呗还款",
                                                      "label": "0"}, ensure_ascii=False) + "\n")
    write("afqmc/afqmc_public/dev.json", json.dumps({"sentence1": "DEV问句", "sentence2": "DEV问句二",
                                                    "label": "1"}, ensure_ascii=False) + "\n")
    write("cnsd_stsb_zh/cnsd-sts-train.txt", "a-1||一架飞机要起飞了。||一架飞机正在起飞。||5\nbad line\n")
    write("cnsd_stsb_zh/cnsd-sts-dev.txt", "d-1||DEV句子||DEV句子二||3\n")
    write("resume_ner_zh/train.bio", "高 B-NAME\n勇 I-NAME\n， O\n男 O\n\n中 B-CONT\n国 I-CONT\n")
    write("resume_ner_zh/test.bio", "T B-NAME\n")
    return root


def test_corpus_reads_every_training_split_once(tmp_path):
    texts, counts = _corpus_module().build(_fake_shared(tmp_path / "shared"), seed=1)
    assert counts == {"chnsenticorp": 2, "finfe": 1, "cold": 1, "afqmc": 2, "stsb_zh": 2, "resume": 2}
    assert sorted(texts) == sorted(["房间很干净", "服务太差", "大盘今天涨了", "说得有道理", "花呗怎么还款", "借呗还款",
                                    "一架飞机要起飞了。", "一架飞机正在起飞。", "高勇，男", "中国"])
    assert not any(word in t for t in texts for word in ("DEV", "EVAL", "TEST", "T"))


def test_corpus_order_is_seeded(tmp_path):
    shared = _fake_shared(tmp_path / "shared")
    mod = _corpus_module()
    assert mod.build(shared, seed=3)[0] == mod.build(shared, seed=3)[0]


def test_the_pretraining_spec_validates():
    spec = load_spec(ZH / "minilm-zh.yaml")
    assert spec.task.objective == "mlm" and spec.task.whole_word_mask and spec.tokenizer.extend
    assert spec.data.train == (ZH / "data" / "corpus.jsonl").resolve()
