"""Continuous batching (batching.generate_many): the same tokens as each prompt alone at temperature 0, slots
refilled as soon as a row finishes, clear errors."""

import pytest
import torch

from llada_play import LladaForMaskedLM, SamplerConfig, config_from_preset, generate
from llada_play.diffusion.batching import generate_many
from tests.conftest import PerRowModel

MASK, VOCAB, EOS = 3, 40, 1


def small_model(seed: int = 0) -> LladaForMaskedLM:
    torch.manual_seed(seed)
    config = config_from_preset("tiny", vocab_size=VOCAB, mask_token_id=MASK, eos_token_id=EOS, pad_token_id=0)
    model = LladaForMaskedLM(config).eval()
    with torch.no_grad():  # sharp predictions, so that greedy choices are not near ties
        model.lm_head.weight.mul_(20)
    return model


def alone(model, prompts, **kw):
    return [generate(model, torch.tensor([p]), **kw)[0] for p in prompts]


KW = dict(steps=12, gen_length=24, block_length=8)


@pytest.mark.parametrize("extra", [dict(), dict(threshold=0.3), dict(remasking="margin"), dict(cfg_scale=1.0),
                                   dict(threshold=0.3, eos_early_exit=True)])
def test_same_tokens_as_each_prompt_alone(extra):
    model = small_model()
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(4, VOCAB, (5,), generator=g).tolist() for _ in range(5)]
    out = generate_many(model, prompts, batch_size=2, **KW, **extra)
    for got, want in zip(out, alone(model, prompts, **KW, **extra)):
        assert torch.equal(got, want)


def test_prompts_of_different_lengths_come_back_unpadded_and_as_alone():
    model = small_model()
    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(4, VOCAB, (n,), generator=g).tolist() for n in (3, 7, 1, 5, 6)]
    out = generate_many(model, prompts, batch_size=3, threshold=0.3, **KW)
    assert [len(o) for o in out] == [len(p) + 24 for p in prompts]
    for got, want, p in zip(out, alone(model, prompts, threshold=0.3, **KW), prompts):
        assert got[:len(p)].tolist() == p
        assert torch.equal(got, want)


def test_a_finished_row_hands_its_slot_to_the_next_prompt():
    model = PerRowModel()
    prompts = [[7, 6], [5, 6], [5, 6], [5, 6], [7, 6]]  # the 5-rows end after one block of 4 steps
    out = generate_many(model, prompts, batch_size=2, steps=12, gen_length=12, block_length=4,
                        eos_early_exit=True)
    assert [o[2:].tolist() for o in out] == [[11] * 12, [EOS] * 12, [EOS] * 12, [EOS] * 12, [11] * 12]
    # slot 0: prompt 0 for 12 steps; slot 1: prompts 1, 2, 3 (4 steps each), then prompt 4 from step 12 on:
    # both slots stay busy until the queue is empty, then prompt 4 finishes alone
    assert model.batch_sizes == [2] * 12 + [1] * 12
    fixed = PerRowModel()
    for start in range(0, 5, 2):
        generate(fixed, torch.tensor(prompts[start:start + 2]), steps=12, gen_length=12, block_length=4,
                 eos_early_exit=True)
    # fixed batches [0, 1], [2, 3], [4]: 12 + 4 + 12 passes for the same rows' work as 24 refilled passes
    assert len(fixed.batch_sizes) == 28 and sum(fixed.batch_sizes) == sum(model.batch_sizes)


def test_sampling_at_a_temperature_is_seeded():
    model = small_model()
    prompts = [[5, 9, 12], [7, 30, 8], [6, 6, 6]]
    a = generate_many(model, prompts, batch_size=2, temperature=1.0, seed=4, **KW)
    b = generate_many(model, prompts, batch_size=2, temperature=1.0, seed=4, **KW)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert all((o != MASK).all() for o in a)


def test_errors_are_clear():
    model = small_model()
    with pytest.raises(ValueError, match="does not take the block KV cache"):
        generate_many(model, [[5, 6]], cache="dual", **KW)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        generate_many(model, [[5, 6]], batch_size=0, **KW)
    with pytest.raises(ValueError, match="prompt 1 must be a sequence of token ids"):
        generate_many(model, [[5, 6], [[5, 6], [7, 8]]], **KW)
    with pytest.raises(ValueError, match="must be divisible by block_length"):
        generate_many(model, [[5, 6]], steps=12, gen_length=24, block_length=7)
    assert generate_many(model, [], **KW) == []


def test_logits_hooks_and_forbid_apply_to_every_prompt_as_alone():
    model = small_model()
    prompts = [[5, 9], [6, 9, 12], [7]]

    def hook(context, logits):
        logits[:, context.block_start, 17] = 1e4  # every block opens with token 17

    options = dict(logits_hooks=hook, forbid=[11, 12])
    out = generate_many(model, prompts, batch_size=2, **KW, **options)
    for prompt, row in zip(prompts, out):
        alone = generate(model, torch.tensor([prompt]), **KW, **options)[0]
        assert torch.equal(row, alone)
        generation = row[len(prompt):]
        assert (generation[::KW["block_length"]] == 17).all() and not torch.isin(generation, torch.tensor([11, 12])).any()


def test_a_config_and_options_together_are_refused():
    with pytest.raises(ValueError, match="not both"):
        generate_many(small_model(), [[5, 6]], config=SamplerConfig(**KW), temperature=1.0)
