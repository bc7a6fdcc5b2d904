import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from llada_play.diffusion.losses import (autoregressive_log_likelihood, autoregressive_loss, mc_log_likelihood,
                               pretrain_loss, sft_loss)
from llada_play.diffusion.masking import forward_process, mask_exactly, mask_probability, num_transfer_tokens, tokens_to_commit

MASK = 3
VOCAB = 50


class Uniform(nn.Module):
    """Uniform predictions: cross-entropy is log(V) at every position. Remembers what it was shown."""

    def forward(self, ids, attention_mask=None):
        self.seen = ids.clone()
        return SimpleNamespace(logits=torch.zeros(*ids.shape, VOCAB, requires_grad=True))


def test_forward_process_masks_at_the_drawn_ratio():
    ids = torch.randint(10, 40, (4000, 64))
    g = torch.Generator().manual_seed(0)
    noisy, masked, p_mask = forward_process(ids, MASK, eps=1e-3, generator=g)
    assert torch.equal(noisy[masked], torch.full_like(noisy[masked], MASK))
    assert torch.equal(noisy[~masked], ids[~masked])
    # one ratio per sequence, uniform on [eps, 1]
    assert (p_mask == p_mask[:, :1]).all()
    t = p_mask[:, 0]
    assert t.min() >= 1e-3 and t.max() <= 1
    assert abs(t.mean().item() - 0.5) < 0.02 and abs(t.var().item() - 1 / 12) < 0.01
    # realised per-sequence fraction follows p_mask
    fraction = masked.float().mean(1)
    assert (fraction - t).abs().mean() < 0.06
    assert abs(fraction.mean().item() - t.mean().item()) < 0.005


def test_mask_probability_formula():
    t = torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(mask_probability(t, eps=0.1), torch.tensor([0.1, 0.55, 1.0]))


def test_mask_exactly_masks_the_requested_count_inside_maskable():
    ids = torch.randint(10, 40, (6, 20))
    maskable = torch.zeros_like(ids, dtype=torch.bool)
    maskable[:, 5:] = True
    n = torch.tensor([1, 3, 5, 15, 15, 7])
    noisy, masked = mask_exactly(ids, n, MASK, maskable=maskable, generator=torch.Generator().manual_seed(0))
    assert torch.equal(masked.sum(1), n)
    assert not masked[:, :5].any()
    assert (noisy[masked] == MASK).all()


def test_pretrain_loss_weighting_matches_hand_computation():
    ids = torch.randint(10, 40, (8, 32))
    model = Uniform()
    out = pretrain_loss(model, ids, MASK, eps=1e-3, random_length_prob=0.0, generator=torch.Generator().manual_seed(7))
    _, masked, p_mask = forward_process(ids, MASK, eps=1e-3, generator=torch.Generator().manual_seed(7))
    expected = (math.log(VOCAB) / p_mask[masked]).sum() / ids.numel()
    torch.testing.assert_close(out.loss, expected)
    assert out.num_masked == int(masked.sum())
    assert torch.equal(model.seen == MASK, masked)


def test_pretrain_loss_is_unbiased_for_the_token_loss():
    # E[sum over masked of CE / p_mask] / n = CE: the 1/p_mask weight undoes the masking rate.
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(10, 40, (512, 64))
    losses = [pretrain_loss(Uniform(), ids, MASK, random_length_prob=0.0, generator=g).loss.item() for _ in range(8)]
    assert abs(sum(losses) / len(losses) / math.log(VOCAB) - 1) < 0.05


def test_fixed_mask_ratio_masks_every_sequence_at_that_ratio():
    ids = torch.randint(10, 40, (256, 64))
    model = Uniform()
    out = pretrain_loss(model, ids, MASK, random_length_prob=0.0, fixed_mask_ratio=0.15,
                        generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.p_mask, torch.full((256,), 0.15))
    fraction = (model.seen == MASK).float().mean().item()
    assert abs(fraction - 0.15) < 0.01
    # the same weighting: an unbiased estimate of the token loss
    assert abs(out.loss.item() / math.log(VOCAB) - 1) < 0.08


def test_random_length_cut():
    ids = torch.randint(10, 40, (2, 64))
    model = Uniform()
    lengths = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        pretrain_loss(model, ids, MASK, random_length_prob=1.0, generator=g)
        lengths.add(model.seen.shape[1])
    assert len(lengths) > 5 and max(lengths) <= 64 and min(lengths) >= 1
    pretrain_loss(model, ids, MASK, random_length_prob=0.0)
    assert model.seen.shape[1] == 64


def test_sft_loss_never_masks_the_prompt_and_divides_by_response_length():
    ids = torch.randint(10, 40, (4, 24))
    prompt_lengths = torch.tensor([3, 10, 20, 5])
    model = Uniform()
    out = sft_loss(model, ids, prompt_lengths, MASK, generator=torch.Generator().manual_seed(3))
    for row, p in enumerate(prompt_lengths.tolist()):
        assert torch.equal(model.seen[row, :p], ids[row, :p])
    _, masked, p_mask = forward_process(ids, MASK, maskable=torch.arange(24)[None] >= prompt_lengths[:, None],
                                        generator=torch.Generator().manual_seed(3))
    response = (24 - prompt_lengths)[:, None].expand(4, 24)
    expected = (math.log(VOCAB) / p_mask[masked] / response[masked]).sum() / 4
    torch.testing.assert_close(out.loss, expected)
    assert out.num_tokens == int((24 - prompt_lengths).sum())


def test_sft_loss_rejects_rows_without_response():
    with pytest.raises(ValueError, match="no response"):
        sft_loss(Uniform(), torch.randint(10, 40, (2, 8)), torch.tensor([3, 8]), MASK)


def test_mc_likelihood_is_exact_for_a_uniform_model():
    # every masked token costs log V and the L/l weight makes each sample -L log V exactly
    prompt, answer = torch.randint(10, 40, (5,)), torch.randint(10, 40, (7,))
    ll = mc_log_likelihood(Uniform(), prompt, answer, MASK, num_samples=32, batch_size=8)
    assert ll == pytest.approx(-7 * math.log(VOCAB), rel=1e-5)
    with pytest.raises(ValueError, match="divisible"):
        mc_log_likelihood(Uniform(), prompt, answer, MASK, num_samples=10, batch_size=4)


def test_mc_likelihood_prefers_the_answer_a_model_knows(tiny_model):
    from tests.conftest import TableModel, oracle_table
    target = [10, 11, 12, 13, 14, 15]
    model = TableModel(oracle_table(target, VOCAB, strength=5.0), MASK)
    right = mc_log_likelihood(model, torch.tensor(target[:3]), torch.tensor(target[3:]), MASK, 16, 8)
    wrong = mc_log_likelihood(model, torch.tensor(target[:3]), torch.tensor([20, 21, 22]), MASK, 16, 8)
    assert right > wrong


def test_autoregressive_loss_and_likelihood_agree(char_tokenizer):
    from llada_play import LladaForMaskedLM, config_from_preset
    torch.manual_seed(0)
    model = LladaForMaskedLM(config_from_preset("tiny", vocab_size=60, mask_token_id=2, causal=True)).eval()
    seq = torch.randint(5, 60, (1, 10))
    loss = autoregressive_loss(model, seq).loss
    ll = autoregressive_log_likelihood(model, seq[0, :1], seq[0, 1:])
    assert ll == pytest.approx(-loss.item() * 9, rel=1e-4)
    with pytest.raises(ValueError, match="at least one prompt token"):
        autoregressive_log_likelihood(model, seq[0, :0], seq[0])


def test_schedule_splits_evenly_with_remainder_first():
    assert num_transfer_tokens(torch.tensor([10]), 4).tolist() == [[3, 3, 2, 2]]
    assert num_transfer_tokens(torch.tensor([8, 3]), 4).tolist() == [[2, 2, 2, 2], [1, 1, 1, 0]]


@pytest.mark.parametrize("count,steps", [(10, 4), (32, 32), (32, 5), (7, 7), (3, 5), (100, 9)])
def test_dynamic_share_reproduces_the_static_schedule(count, steps):
    static = num_transfer_tokens(torch.tensor([count]), steps)[0].tolist()
    left, dynamic = torch.tensor([count]), []
    for s in range(steps):
        k = int(tokens_to_commit(left, steps - s)[0])
        dynamic.append(k)
        left = left - k
    # the static schedule may end in zero-token steps, which the sampler skips
    assert dynamic == static
    assert sum(dynamic) == count
