"""Fast decoding: the block KV cache (exact where it should be), threshold decoding with it, early exit on
end-of-text blocks and finished rows leaving the batch."""

import pytest
import torch

from llada_play import LladaForMaskedLM, config_from_preset, generate
from llada_play.model.adapters import as_denoiser, supports_block_cache
from llada_play.model.kv_cache import BlockKVCache
from tests.conftest import PerRowModel, TableModel, oracle_table

MASK, VOCAB, EOS = 3, 40, 1


def small_model(layers: int = 2, causal: bool = False, seed: int = 0) -> LladaForMaskedLM:
    torch.manual_seed(seed)
    config = config_from_preset("tiny", vocab_size=VOCAB, mask_token_id=MASK, eos_token_id=EOS, pad_token_id=0,
                                num_hidden_layers=layers, causal=causal)
    model = LladaForMaskedLM(config).eval()
    with torch.no_grad():  # sharper predictions than the initialisation, so that greedy choices are not ties
        model.lm_head.weight.mul_(20)
    return model


PROMPT = torch.tensor([[5, 9, 12, 7, 30]])
KW = dict(steps=12, gen_length=24, block_length=8)


def run(model, prompt=PROMPT, **kw):
    records = []
    out = generate(model, prompt, hooks=records.append, **{**KW, **kw})
    return out, records


def test_windowed_pass_matches_the_full_pass_when_nothing_changed():
    model = small_model(layers=2)
    ids = torch.randint(4, VOCAB, (2, 20))
    mask = torch.ones(2, 20, dtype=torch.long)
    mask[1, :3] = 0  # left padding on the second row
    with torch.no_grad():
        cache = BlockKVCache(2)
        full = model(ids, attention_mask=mask, block_cache=cache).logits
        assert torch.allclose(full, model(ids, attention_mask=mask).logits, atol=1e-5)
        for window in [(8, 14), (8, 20)]:
            part = model(ids[:, window[0]:window[1]], attention_mask=mask, block_cache=cache, window=window).logits
            assert torch.allclose(part, full[:, window[0]:window[1]], atol=1e-4)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_cache_refreshed_every_step_gives_the_uncached_tokens(cache, temperature):
    model = small_model(layers=2)
    base, base_records = run(model, temperature=temperature, seed=3)
    out, records = run(model, temperature=temperature, seed=3, cache=cache, cache_refresh_every=1)
    assert torch.equal(out, base)
    assert len(records) == len(base_records)
    for a, b in zip(records, base_records):
        assert torch.equal(a.committed, b.committed)
        assert torch.allclose(a.confidence.nan_to_num(-1), b.confidence.nan_to_num(-1), atol=1e-5)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_one_layer_cache_is_exact(cache):
    # first-layer keys/values depend only on the token and its position, and cached positions do not change
    # while a block is denoised: the approximation is exact
    model = small_model(layers=1)
    assert torch.equal(run(model, cache=cache)[0], run(model)[0])


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_causal_model_cache_is_exact(cache):
    # causal attention: earlier positions never see later ones, so the cached prefix cannot go stale
    model = small_model(layers=2, causal=True)
    assert torch.equal(run(model, cache=cache)[0], run(model)[0])


def test_cache_with_padded_batch_and_cfg_refreshed_every_step_matches_uncached():
    model = small_model(layers=2)
    prompt = torch.tensor([[0, 0, 9, 12, 7], [5, 9, 12, 7, 30]])
    mask = (prompt != 0).long()
    for extra in (dict(), dict(cfg_scale=1.5)):
        base = generate(model, prompt, attention_mask=mask, **KW, **extra)
        cached = generate(model, prompt, attention_mask=mask, cache="dual", cache_refresh_every=1, **KW, **extra)
        assert torch.equal(cached, base)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_hooks_fire_once_per_step_with_the_cache(cache):
    model = small_model(layers=2)
    out, records = run(model, cache=cache)
    assert (out != MASK).all()
    assert [r.step for r in records] == list(range(12))  # 12 steps, as without the cache
    assert [r.block for r in records] == [b for b in range(3) for _ in range(4)]
    assert sum(int(r.committed.sum()) for r in records) == 24
    for r in records:  # predictions and confidences cover every masked position, also outside the window
        masked = r.x_before == MASK
        assert (r.predicted[masked] >= 0).all() and not r.confidence[masked].isnan().any()


@pytest.mark.parametrize("cache", [None, "dual"])
def test_threshold_commits_at_least_one_and_none_below_threshold_unless_forced(cache):
    model = small_model(layers=2)
    out, records = run(model, cache=cache, threshold=0.5)
    assert (out != MASK).all()
    for r in records:
        n = int(r.committed.sum())
        assert n >= 1
        if n > 1:  # more than the one forced commit: every one of them reached the threshold
            assert (r.confidence[r.committed] >= 0.5).all()


def test_a_forced_token_outside_the_window_refreshes_the_cache():
    model = small_model(layers=1)

    def force_late(record):
        if record.step == 1:
            for pos in range(8, 24):  # the whole suffix after the first block, cached as masks
                record.force(PROMPT.shape[1] + pos, 17)

    base_records, cached_records = [], []
    base = generate(model, PROMPT, hooks=[force_late, base_records.append], **KW)
    assert base[0, PROMPT.shape[1] + 20] == 17
    cached = generate(model, PROMPT, hooks=[force_late, cached_records.append], cache="dual", **KW)
    assert torch.equal(cached, base)
    for a, b in zip(cached_records, base_records):  # the steps after the forcing saw the forced tokens
        block = slice(a.block_start, a.block_end)  # (after the block, dual shows the last full pass's guesses)
        assert torch.allclose(a.confidence[:, block].nan_to_num(-1), b.confidence[:, block].nan_to_num(-1),
                              atol=1e-5)


def test_early_exit_fills_the_rest_after_an_end_of_text_block():
    # block 1: an answer and end-of-text; block 2: all end-of-text; block 3 would hold other tokens
    target = [5, 6, EOS, EOS] + [EOS] * 4 + [7, 8, 9, 10]
    model = TableModel(oracle_table([20, 21] + target, VOCAB), MASK)
    prompt = torch.tensor([[20, 21]])
    plain = generate(model, prompt, steps=12, gen_length=12, block_length=4, mask_id=MASK)
    assert plain[0, 2:].tolist() == target
    calls = len(model.calls)
    records = []
    out = generate(model, prompt, steps=12, gen_length=12, block_length=4, mask_id=MASK, eos_token_ids=[EOS],
                   eos_early_exit=True, hooks=records.append)
    assert out[0, 2:].tolist() == [5, 6, EOS, EOS] + [EOS] * 8
    assert len(model.calls) - calls == 8 and len(records) == 8  # block 3's four steps were skipped
    assert records[-1].committed[0, 10:].all()  # the fill is recorded as committed at the last step


def test_finished_rows_leave_the_batch():
    model = PerRowModel()
    out = generate(model, torch.tensor([[5, 6], [7, 6]]), steps=12, gen_length=12, block_length=4,
                   eos_early_exit=True)
    assert out[0, 2:].tolist() == [EOS] * 12 and out[1, 2:].tolist() == [11] * 12
    assert model.batch_sizes == [2] * 4 + [1] * 8  # the ended row stops costing compute after its first block


def test_cache_errors_are_clear():
    from transformers import BertConfig, BertForMaskedLM
    bert = BertForMaskedLM(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=64, max_position_embeddings=64)).eval()
    with pytest.raises(ValueError, match="needs a model whose forward takes a block cache"):
        generate(bert, torch.tensor([[5, 6, 7]]), steps=4, gen_length=8, block_length=4, mask_id=4, cache="dual")
    model = small_model()
    with pytest.raises(ValueError, match="cache must be one of"):
        generate(model, PROMPT, cache="suffix", **KW)
    with pytest.raises(ValueError, match="cache_refresh_every must be a positive integer"):
        generate(model, PROMPT, cache="dual", cache_refresh_every=0, **KW)
    with pytest.raises(ValueError, match="cache must be one of"):
        generate(model, PROMPT, cache="none", **KW)  # one name per option: no cache is None


@pytest.mark.parametrize("model_type, family", [("Dream", "dream"), ("llada", "llada"), (None, "module")])
def test_other_families_refuse_the_cache_naming_the_family(model_type, family):
    model = TableModel(oracle_table(list(range(4, 16)), VOCAB), MASK)
    model.config.model_type = model_type
    assert not supports_block_cache(model) and as_denoiser(model).family.name == family
    with pytest.raises(ValueError, match=f"needs a model whose forward takes a block cache.*family '{family}'"):
        generate(model, torch.tensor([[5, 6]]), steps=4, gen_length=8, block_length=4, cache="prefix")
    assert model.calls == []  # refused before any forward pass


def test_the_cache_goes_through_the_adapter():
    model = small_model(layers=2)
    denoiser = as_denoiser(model)
    assert supports_block_cache(model) and supports_block_cache(denoiser)
    calls = []
    model.register_forward_pre_hook(lambda module, args, kwargs: calls.append(kwargs.get("window")),
                                    with_kwargs=True)
    # a Denoiser is accepted as the model, and its cached passes reach LladaForMaskedLM with the window
    out = generate(denoiser, PROMPT, cache="dual", **KW)
    assert torch.equal(out, generate(model, PROMPT, cache="dual", **KW))
    start = PROMPT.shape[1]
    assert calls[:4] == [None, (start, start + 8), (start, start + 8), (start, start + 8)]
    ids = torch.randint(4, VOCAB, (1, 20))
    with torch.no_grad():
        cache = denoiser.new_block_cache()
        full = denoiser(ids, block_cache=cache)
        assert torch.allclose(denoiser(ids, block_cache=cache, window=(8, 14)), full[:, 8:14], atol=1e-4)
