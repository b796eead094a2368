"""examples/zh/embedding-zh.yaml validates and starts from the pretrain run; stsb_pairs.py writes scored pairs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from lmkernel.spec import load_spec

ZH = Path(__file__).resolve().parents[2] / "examples" / "zh"


def test_the_chinese_embedding_spec_validates_and_starts_from_the_pretrain_run():
    spec = load_spec(ZH / "embedding-zh.yaml")
    assert spec.task.type == "embedding" and spec.train.metric == "spearman"
    assert Path(spec.model.name) == (ZH.parents[1] / "runs" / "minilm-zh" / "model").resolve()
    assert Path(spec.model.name).parent == load_spec(ZH / "minilm-zh.yaml").output.dir  # the run minilm-zh makes
    assert spec.data.train == (ZH / "data" / "stsb-train.jsonl").resolve()


def test_stsb_pairs_writes_the_rows_the_embedding_task_reads(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("zh_stsb_pairs", ZH / "stsb_pairs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    shared = tmp_path / "shared" / "cnsd_stsb_zh"
    shared.mkdir(parents=True)
    (shared / "cnsd-sts-train.txt").write_text("a-1||一架飞机要起飞了。||一架飞机正在起飞。||5\nbad line\n",
                                               encoding="utf-8")
    (shared / "cnsd-sts-dev.txt").write_text("d-1||一个人在弹吉他。||一个男人在弹吉他。||4\n", encoding="utf-8")
    out = tmp_path / "data"
    monkeypatch.setattr("sys.argv", ["stsb_pairs.py", "--shared", str(tmp_path / "shared"), "--out", str(out)])
    mod.main()
    train = [json.loads(line) for line in (out / "stsb-train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert train == [{"sentence1": "一架飞机要起飞了。", "sentence2": "一架飞机正在起飞。", "score": 5.0}]
    assert len((out / "stsb-dev.jsonl").read_text(encoding="utf-8").splitlines()) == 1
    from lmkernel.tasks.embedding import Options
    from lmkernel.tasks.embedding_data import detect_layout

    assert detect_layout(list(train[0]), Options(), out / "stsb-train.jsonl").format == "scored"  # CoSENT
