"""Per-sequence held-out metrics: the Monte-Carlo NELBO, the exact autoregressive NLL and their error bars."""
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from llada_play.diffusion.losses import autoregressive_log_likelihood
from llada_play.training.evaluation import (autoregressive_eval, autoregressive_nll_per_sequence,
                                            mean_and_standard_error, nelbo_per_sequence)

MASK = 3
VOCAB = 50


class Uniform(nn.Module):
    """Uniform predictions (every token costs log V); remembers every input it was shown."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # a device to read
        self.seen = []

    def forward(self, ids, attention_mask=None):
        self.seen.append(ids.clone())
        return SimpleNamespace(logits=torch.zeros(*ids.shape, VOCAB))


def test_nelbo_of_a_uniform_model_is_log_v_and_never_masks_the_context():
    ids = torch.randint(10, 40, (64, 32))
    model = Uniform()
    nelbo = nelbo_per_sequence(model, ids, MASK, samples=8, context=4, batch_size=24, seed=0)
    assert nelbo.shape == (64,)
    # each draw is an unbiased estimate of log V per scored token: the 1/p_mask weight undoes the masking rate
    assert abs(nelbo.mean().item() / math.log(VOCAB) - 1) < 0.05
    seen = torch.cat(model.seen)
    assert seen.shape == (64 * 8, 32)
    assert torch.equal(seen[:, :4], ids.repeat_interleave(8, dim=0)[:, :4])
    assert (seen[:, 4:] == MASK).any()
    # reproducible from its seed, and the draws differ between rows
    again = nelbo_per_sequence(Uniform(), ids, MASK, samples=8, context=4, batch_size=24, seed=0)
    torch.testing.assert_close(nelbo, again)
    assert nelbo.std() > 0
    with pytest.raises(ValueError, match="at least one"):
        nelbo_per_sequence(model, ids, MASK, context=32)


def test_autoregressive_nll_per_sequence_is_the_exact_likelihood():
    from llada_play import LladaForMaskedLM, config_from_preset
    torch.manual_seed(0)
    model = LladaForMaskedLM(config_from_preset("tiny", vocab_size=60, mask_token_id=2, causal=True)).eval()
    ids = torch.randint(5, 60, (6, 12))
    nll = autoregressive_nll_per_sequence(model, ids, batch_size=4)
    for row in range(6):
        exact = -autoregressive_log_likelihood(model, ids[row, :1], ids[row, 1:]) / 11
        assert nll[row].item() == pytest.approx(exact, rel=1e-4)
    batches = [{"input_ids": ids[:3]}, {"input_ids": ids[3:]}]
    assert nll.mean().item() == pytest.approx(autoregressive_eval(model, batches)["nll_per_token"], rel=1e-4)


def test_mean_and_standard_error():
    mean, se = mean_and_standard_error([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert se == pytest.approx(math.sqrt(5 / 3) / 2)
    with pytest.raises(ValueError, match="at least two"):
        mean_and_standard_error([1.0])


def test_nelbo_from_a_loss_curve_integrates_it_over_t():
    from llada_play.training.evaluation import nelbo_from_loss_curve

    ratios = [0.05, 0.15, 0.3, 0.5, 0.7, 0.85, 1.0]
    assert nelbo_from_loss_curve({t: 3.0 for t in ratios}) == pytest.approx(3.0)
    # CE(t) = t: flat 0.05 below the first ratio (0.0025), trapezoids exact for a line above it (0.49875)
    assert nelbo_from_loss_curve({t: t for t in ratios}) == pytest.approx(0.50125)
    with pytest.raises(ValueError, match="end at 1.0"):
        nelbo_from_loss_curve({0.1: 1.0, 0.5: 2.0})
