"""Adversarial (FGM, PGD, FreeLB) and regularised (label smoothing, R-Drop) objectives on a tiny BERT."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmkernel.adversarialspec import AdversarialSpec
from lmkernel.tasks import get_task
from lmkernel.training.adversarial import Adversarial
from lmkernel.training.objective import Step, plain
from lmkernel.training.regularize import RegularizedTask, regularized

TEXTS = ["the film was great", "the hotel was awful and boring", "服务很好", "the book was poor"]


@pytest.fixture()
def setup(tiny_bert):
    """(model in eval mode, so forwards are deterministic; a batch of 4 with padding; the task)."""
    from transformers import AutoTokenizer

    task = get_task("classification", None)
    torch.manual_seed(0)
    model = task.build_model(tiny_bert, ["negative", "positive"])
    model.eval()
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
             "labels": torch.tensor([1, 0, 1, 0])}
    return model, batch, task


def _step(model, batch, task, global_step=1):
    return Step(model, task, batch, lambda loss: loss.backward(), global_step, lambda: model)


def _grads(model, objective, batch, task, global_step=1):
    model.zero_grad(set_to_none=True)
    out = objective(_step(model, batch, task, global_step))
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _count_forwards(model):
    calls = []
    handle = model.get_input_embeddings().register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


def _loss_at(model, batch, delta):
    """The classification loss with ``delta`` added to the word embeddings (the reference computation)."""
    emb = model.get_input_embeddings()(batch["input_ids"]) + delta
    return model(inputs_embeds=emb, attention_mask=batch["attention_mask"], labels=batch["labels"]).loss


def _unit(g, mask):
    g = g * mask[..., None]
    return g / g.flatten(1).norm(dim=1)[:, None, None]


def _reference_fgm(model, batch, eps):
    """FGM by hand (Miyato et al.): clean gradient, r = eps * g / ||g|| per example, clean + adversarial loss."""
    model.zero_grad(set_to_none=True)
    emb = model.get_input_embeddings()(batch["input_ids"])
    probe = torch.zeros_like(emb, requires_grad=True)
    loss = model(inputs_embeds=emb + probe, attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    loss.backward()
    r = eps * _unit(probe.grad, batch["attention_mask"].float())
    _loss_at(model, batch, r.detach()).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, r


def test_fgm_adds_the_gradient_at_the_worst_case_perturbation(setup):
    model, batch, task = setup
    expected, r = _reference_fgm(model, batch, eps=0.5)
    assert torch.allclose(r.flatten(1).norm(dim=1), torch.full((4,), 0.5), atol=1e-5)
    fgm = Adversarial(plain, AdversarialSpec(method="fgm", epsilon=0.5))
    out, got = _grads(model, fgm, batch, task)
    _, clean = _grads(model, plain, batch, task)
    assert got.keys() == expected.keys()
    for name in expected:
        assert torch.allclose(got[name], expected[name], atol=1e-5), name
    assert any(not torch.allclose(got[n], clean[n], atol=1e-4) for n in clean)  # it did change the gradient
    assert _loss_at(model, batch, r) > out.loss  # r is an ascent direction of the loss
    assert fgm.stats["adversarial batches"] == 1


def test_pgd_with_one_step_is_fgm_of_step_alpha(setup):
    model, batch, task = setup
    _, fgm = _grads(model, Adversarial(plain, AdversarialSpec(method="fgm", epsilon=0.2)), batch, task)
    _, pgd = _grads(model, Adversarial(plain, AdversarialSpec(method="pgd", alpha=0.2, epsilon=5.0, steps=1)),
                    batch, task)
    for name in fgm:
        assert torch.allclose(fgm[name], pgd[name], atol=1e-5), name


def test_pgd_ascends_k_steps_and_trains_once(setup, monkeypatch):
    model, batch, task = setup
    calls, handle = _count_forwards(model)
    trained = []
    original = Adversarial._train_pass
    monkeypatch.setattr(Adversarial, "_train_pass", lambda self, step, scale=1.0: trained.append(
        step.unwrap().get_input_embeddings()) or original(self, step, scale))
    pgd = Adversarial(plain, AdversarialSpec(method="pgd", alpha=0.3, epsilon=0.5, steps=3))
    try:
        _, got = _grads(model, pgd, batch, task)
    finally:
        handle.remove()
    assert len(calls) == 1 + 3  # clean pass, two ascent-only passes, one training pass
    assert len(trained) == 1  # the ascent passes add no weight gradients
    assert all(torch.isfinite(g).all() for g in got.values())


def test_pgd_projection_keeps_the_perturbation_within_epsilon():
    from lmkernel.training.adversarial import _project

    d = torch.randn(3, 5, 4) * 10
    out = _project(d, 0.7)
    assert torch.allclose(out.flatten(1).norm(dim=1), torch.full((3,), 0.7), atol=1e-5)
    small = torch.randn(2, 2, 2) * 1e-3
    assert torch.equal(_project(small, 0.7), small)  # inside the ball: untouched


def test_freelb_averages_k_perturbed_passes(setup):
    model, batch, task = setup
    calls, handle = _count_forwards(model)
    freelb = Adversarial(plain, AdversarialSpec(method="freelb", alpha=1e-7, epsilon=1.0, steps=3))
    try:
        _, got = _grads(model, freelb, batch, task)
    finally:
        handle.remove()
    _, clean = _grads(model, plain, batch, task)
    assert len(calls) == 3  # K passes, no separate clean pass
    for name in clean:  # negligible perturbations: the average of K passes is the clean gradient
        assert torch.allclose(got[name], clean[name], atol=1e-4), name
    _, big = _grads(model, Adversarial(plain, AdversarialSpec(method="freelb", alpha=0.5, steps=3)), batch, task)
    assert any(not torch.allclose(big[n], clean[n], atol=1e-4) for n in clean)


@pytest.mark.parametrize("method", ["fgm", "pgd", "freelb"])
def test_warmup_steps_train_on_clean_inputs_only(setup, method):
    model, batch, task = setup
    objective = Adversarial(plain, AdversarialSpec(method=method, warmup_steps=5))
    calls, handle = _count_forwards(model)
    _, warm = _grads(model, objective, batch, task, global_step=5)
    handle.remove()
    _, clean = _grads(model, plain, batch, task)
    assert len(calls) == 1 and objective.stats["adversarial batches"] == 0
    for name in clean:
        assert torch.equal(warm[name], clean[name])
    _, after = _grads(model, objective, batch, task, global_step=6)
    assert objective.stats["adversarial batches"] == 1
    assert any(not torch.allclose(after[n], clean[n], atol=1e-4) for n in clean)


@pytest.mark.parametrize("method", ["fgm", "pgd", "freelb"])
def test_a_non_finite_perturbed_loss_is_skipped_and_counted(setup, method):
    model, batch, task = setup
    huge = AdversarialSpec(method=method, epsilon=1e39, alpha=1e39, steps=2)  # overflows float32: NaN losses
    objective = Adversarial(plain, huge)
    out, got = _grads(model, objective, batch, task)
    _, clean = _grads(model, plain, batch, task)
    assert torch.isfinite(out.loss)
    assert objective.stats["adversarial passes skipped (non-finite loss)"] == 1
    for name in clean:  # only the clean gradient was kept
        assert torch.allclose(got[name], clean[name], atol=1e-6), name


def test_label_smoothing_loss_equals_torchs(setup):
    model, batch, task = setup
    with torch.no_grad():
        model.classifier.weight.mul_(300)  # confident logits, where smoothing matters
    out = RegularizedTask(task, 0.1, None).forward(model, batch)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.allclose(out.loss, F.cross_entropy(logits, batch["labels"], label_smoothing=0.1), atol=1e-6)
    assert not torch.allclose(out.loss, F.cross_entropy(logits, batch["labels"]), atol=1e-4)


def test_label_smoothing_on_ner_skips_ignored_tokens(tiny_bert):
    ner = get_task("ner", None)
    torch.manual_seed(0)
    model = ner.build_model(tiny_bert, ["O", "B-X", "I-X"]).eval()
    ids = torch.tensor([[2, 10, 11, 12, 3], [2, 13, 3, 0, 0]])
    labels = torch.tensor([[-100, 0, 1, 2, -100], [-100, 1, -100, -100, -100]])
    batch = {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": labels}
    out = RegularizedTask(ner, 0.2, None).forward(model, batch)
    logits = model(input_ids=ids, attention_mask=batch["attention_mask"]).logits
    want = F.cross_entropy(logits.reshape(-1, 3), labels.reshape(-1), ignore_index=-100, label_smoothing=0.2)
    assert torch.allclose(out.loss, want, atol=1e-6)


def test_rdrop_kl_term_is_zero_without_dropout_and_positive_with_it(setup):
    model, batch, task = setup
    with torch.no_grad():
        model.classifier.weight.mul_(300)  # confident logits, so dropout moves the distributions visibly
    reg = RegularizedTask(task, 0.0, 4.0)
    plain_loss = model(**batch).loss
    assert torch.allclose(reg.forward(model, batch).loss, plain_loss, atol=1e-5)  # eval mode: copies agree
    model.train()
    torch.manual_seed(1)
    with_dropout = reg.forward(model, batch).loss
    torch.manual_seed(1)
    ce_only = RegularizedTask(task, 0.0, 1e-12).forward(model, batch).loss
    assert with_dropout > ce_only + 1e-3  # same dropout draws: the difference is the KL term


def test_symmetric_kl_matches_its_definition():
    from lmkernel.training.regularize import symmetric_kl

    a, b = torch.randn(3, 4), torch.randn(3, 4)
    p, q = a.softmax(-1), b.softmax(-1)
    want = ((p * (p / q).log()).sum(-1) + (q * (q / p).log()).sum(-1)).mean() / 2
    assert torch.allclose(symmetric_kl(a, b, torch.zeros(3, dtype=torch.long)), want, atol=1e-6)
    assert float(symmetric_kl(a, a, torch.zeros(3, dtype=torch.long))) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("method", ["fgm", "pgd", "freelb"])
def test_objectives_run_under_bf16_autocast(setup, method):
    model, batch, task = setup
    model.train()
    objective = Adversarial(regularized(plain, 0.1, 1.0), AdversarialSpec(method=method, steps=2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, got = _grads(model, objective, batch, task)
    assert torch.isfinite(out.loss) and got
    assert all(torch.isfinite(g).all() for g in got.values())
    assert objective.stats["adversarial passes skipped (non-finite loss)"] == 0


@pytest.mark.parametrize("method", ["fgm", "pgd", "freelb"])
def test_ner_trains_with_each_method_and_regularisers(tiny_bert, method):
    ner = get_task("ner", None)
    torch.manual_seed(0)
    model = ner.build_model(tiny_bert, ["O", "B-X", "I-X"]).train()
    ids = torch.tensor([[2, 10, 11, 12, 3], [2, 13, 3, 0, 0]])
    batch = {"input_ids": ids, "attention_mask": (ids != 0).long(),
             "labels": torch.tensor([[-100, 0, 1, 2, -100], [-100, 1, -100, -100, -100]])}
    objective = Adversarial(regularized(plain, 0.1, 1.0), AdversarialSpec(method=method, epsilon=0.1, alpha=0.05))
    out, got = _grads(model, objective, batch, ner)
    assert torch.isfinite(out.loss) and out.logits.shape == (2, 5, 3)  # R-Drop's doubled batch is split again
    assert got and all(torch.isfinite(g).all() for g in got.values())
    assert objective.stats == {"adversarial batches": 1, "adversarial passes skipped (non-finite loss)": 0}
