import pytest
import torch
from torch import nn

from lmkernel.training.dropout import CheapMaskDropout, use_cheap_dropout


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keeps_the_right_share_and_the_expectation(p):
    torch.manual_seed(0)
    x = torch.ones(1_000_000)
    y = CheapMaskDropout(p)(x)
    kept = (y != 0).float().mean().item()
    assert kept == pytest.approx(1 - p, abs=0.002)
    assert y.mean().item() == pytest.approx(1.0, abs=0.005)
    values = torch.unique(y).tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / (1 - p), rel=1e-4)


def test_masks_are_independent_of_position():
    torch.manual_seed(0)
    y = CheapMaskDropout(0.5)(torch.ones(4, 250_000))
    for col in range(4):  # each 16-bit slice of the random words must be as random as the others
        assert (y[:, col::4] != 0).float().mean().item() == pytest.approx(0.5, abs=0.005)


def test_seeded_repeatable_and_gradient_is_the_mask():
    x = torch.randn(64, 32, requires_grad=True)
    torch.manual_seed(3)
    a = CheapMaskDropout(0.1)(x)
    torch.manual_seed(3)
    b = CheapMaskDropout(0.1)(x)
    assert torch.equal(a, b)
    a.sum().backward()
    assert torch.allclose(x.grad, (a.detach() != 0).float() / (round(0.9 * 65536) / 65536))


def test_eval_mode_zero_p_and_inplace():
    x = torch.randn(10, 10)
    d = CheapMaskDropout(0.3)
    d.eval()
    assert d(x) is x
    assert CheapMaskDropout(0.0)(x) is x
    torch.manual_seed(0)
    z = x.clone()
    out = CheapMaskDropout(0.5, inplace=True)(z)
    assert out.data_ptr() == z.data_ptr() and (z == 0).any()
    assert torch.count_nonzero(CheapMaskDropout(1.0)(x)) == 0


def test_switches_plain_dropout_modules_only():
    class Mine(nn.Dropout):
        pass

    m = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2), nn.Sequential(nn.Dropout(0.1)), Mine(0.3))
    assert use_cheap_dropout(m) == 2
    assert isinstance(m[1], CheapMaskDropout) and m[1].p == 0.2 and type(m[3]) is Mine
    assert m[2][0].p == 0.1
