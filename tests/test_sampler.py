import warnings

import pytest
import torch

from llada_play import generate, generate_autoregressive
from llada_play.diffusion.remasking import REMASKING, get_scorer, register_remasking
from llada_play.diffusion.update import classifier_free_guidance
from tests.conftest import TableModel, oracle_table

MASK, VOCAB, EOS = 3, 40, 1


def commit_order(model, prompt, **kw):
    """position -> step at which the sampler committed it."""
    order = {}

    def hook(record):
        for pos in record.committed[0].nonzero().flatten().tolist():
            order[pos] = record.step

    out = generate(model, prompt, mask_id=MASK, hooks=hook, **kw)
    return out, order


@pytest.mark.parametrize("remasking, threshold", [("low_confidence", None), ("random", None), ("margin", None),
                                                  ("entropy", None), ("low_confidence", 0.9)])
@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_a_model_that_knows_the_answer_is_recovered_by_every_strategy(remasking, threshold, temperature):
    target = [5, 6, 7, 8] + [int(t) for t in torch.randint(5, VOCAB, (16,), generator=torch.Generator().manual_seed(0))]
    model = TableModel(oracle_table(target, VOCAB), MASK)
    out = generate(model, torch.tensor([target[:4]]), steps=8, gen_length=16, block_length=8,
                   temperature=temperature, remasking=remasking, threshold=threshold, mask_id=MASK, seed=0)
    assert out[0].tolist() == target


def _table_with_confidences(probs_top1, probs_top2, prompt_length=2):
    """Position i (after the prompt) predicts token 10 with probs_top1[i], token 11 with probs_top2[i]."""
    n = prompt_length + len(probs_top1)
    table = torch.full((n, VOCAB), -30.0)
    for i, (p1, p2) in enumerate(zip(probs_top1, probs_top2)):
        rest = (1 - p1 - p2) / (VOCAB - 2)
        row = torch.full((VOCAB,), rest).log()
        row[10], row[11] = torch.tensor(p1).log(), torch.tensor(p2).log()
        table[prompt_length + i] = row
    return table


def test_strategies_pick_expected_positions_on_hand_built_logits():
    # low_confidence ranks by p1; margin by p1 - p2; entropy by concentration of the whole distribution
    p1 = [0.50, 0.60, 0.45, 0.90]
    p2 = [0.01, 0.39, 0.44, 0.05]
    table = _table_with_confidences(p1, p2)
    prompt = torch.tensor([[20, 21]])
    orders = {}
    for name in ("low_confidence", "margin", "entropy"):
        _, order = commit_order(TableModel(table, MASK), prompt, steps=4, gen_length=4, block_length=4,
                                remasking=name)
        orders[name] = [pos - 2 for pos, _ in sorted(order.items(), key=lambda kv: kv[1])]
    assert orders["low_confidence"] == [3, 1, 0, 2]
    assert orders["margin"] == [3, 0, 1, 2]  # margins .85 .49 .21 .01
    entropies = []
    for a, b in zip(p1, p2):
        rest = (1 - a - b) / (VOCAB - 2)
        entropies.append(-(a * torch.tensor(a).log() + b * torch.tensor(b).log()
                           + (VOCAB - 2) * rest * torch.tensor(rest).log()).item())
    assert orders["entropy"] == sorted(range(4), key=lambda i: entropies[i])


def test_random_strategy_depends_on_the_seed_only():
    table = _table_with_confidences([0.5] * 8, [0.1] * 8)
    prompt = torch.tensor([[20, 21]])
    runs = [commit_order(TableModel(table, MASK), prompt, steps=8, gen_length=8, block_length=8, remasking="random",
                         seed=s)[1] for s in (0, 0, 1, 2)]
    assert runs[0] == runs[1]
    assert len({tuple(sorted(r.items())) for r in runs}) >= 2


def test_blocks_fill_left_to_right_and_never_commit_beyond_the_current_block(tiny_model):
    prompt = torch.randint(10, 30, (1, 5))
    seen = []
    generate(tiny_model, prompt, steps=12, gen_length=24, block_length=8, hooks=lambda r: seen.append(r))
    assert len(seen) == 12
    for r in seen:
        committed = r.committed[0].nonzero().flatten()
        assert ((committed >= r.block_start) & (committed < r.block_end)).all()
        assert r.block == r.step // 4 and r.block_step == r.step % 4
        assert (r.x_after[0, r.block_end:] == tiny_model.config.mask_token_id).all()
        # each step commits the scheduled share: 8 tokens over 4 steps
        assert len(committed) == 2


def test_fixed_seed_gives_identical_output(tiny_model):
    prompt = torch.randint(10, 30, (2, 6))
    kw = dict(steps=8, gen_length=16, block_length=8, temperature=1.0)
    a = generate(tiny_model, prompt, seed=123, **kw)
    b = generate(tiny_model, prompt, seed=123, **kw)
    assert torch.equal(a, b)
    others = [generate(tiny_model, prompt, seed=s, **kw) for s in range(3)]
    assert any(not torch.equal(a, o) for o in others)


def test_hooks_do_not_change_the_output(tiny_model):
    from llada_play import TraceRecorder
    prompt = torch.randint(10, 30, (1, 6))
    kw = dict(steps=8, gen_length=16, block_length=8, temperature=0.8, remasking="random")
    plain = generate(tiny_model, prompt, seed=5, **kw)
    recorded = generate(tiny_model, prompt, seed=5, hooks=TraceRecorder(), topk=3, **kw)
    assert torch.equal(plain, recorded)


def test_cfg_zero_is_the_conditional_model_and_cfg_uses_a_masked_prompt():
    cond, uncond = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    assert torch.equal(classifier_free_guidance(cond, uncond, 0.0), cond)
    torch.testing.assert_close(classifier_free_guidance(cond, uncond, 1.0), 2 * cond - uncond)
    table = oracle_table([20, 21, 10, 11, 12, 13], VOCAB)
    model = TableModel(table, MASK)
    generate(model, torch.tensor([[20, 21]]), steps=4, gen_length=4, block_length=4, cfg_scale=1.5, mask_id=MASK)
    first = model.calls[0]
    assert first.shape[0] == 2  # conditional and unconditional rows in one pass
    assert first[0, :2].tolist() == [20, 21] and first[1, :2].tolist() == [MASK, MASK]


def test_cfg_with_attention_mask_and_batch(tiny_model):
    # the published sampler crashes here (the mask is not duplicated for the unconditional pass)
    pad = tiny_model.config.pad_token_id
    prompt = torch.tensor([[pad, pad, 12, 13], [14, 15, 16, 17]])
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    model = tiny_model.double()  # padded and unpadded logits then agree far below any confidence gap
    out = generate(model, prompt, steps=4, gen_length=8, block_length=4, cfg_scale=2.0, attention_mask=mask)
    # each row is what its prompt gives alone: the padding is invisible to both the guided and unguided pass
    alone = [generate(model, p[None], steps=4, gen_length=8, block_length=4, cfg_scale=2.0)[0]
             for p in (prompt[0, 2:], prompt[1])]
    assert out[0, 2:].tolist() == alone[0].tolist() and out[1].tolist() == alone[1].tolist()
    unguided = generate(model, prompt[1:], steps=4, gen_length=8, block_length=4)
    assert not torch.equal(out[1:], unguided)  # and the guidance did change the text


def test_left_padded_batch_matches_single_prompts(tiny_model):
    model = tiny_model.double()
    pad = model.config.pad_token_id
    a, b = torch.tensor([12, 13, 14, 15, 16]), torch.tensor([20, 21])
    kw = dict(steps=8, gen_length=8, block_length=4)
    batch = torch.stack([a, torch.cat([torch.full((3,), pad), b])])
    mask = torch.tensor([[1] * 5, [0, 0, 0, 1, 1]])
    out = generate(model, batch, attention_mask=mask, **kw)
    assert torch.equal(out[0], generate(model, a, **kw)[0])
    assert torch.equal(out[1, 3:], generate(model, b, **kw)[0])


def test_threshold_decoding_commits_confident_tokens_and_at_least_one(tiny_model):
    table = _table_with_confidences([0.95, 0.3, 0.97, 0.5, 0.2, 0.99, 0.4, 0.91], [0.01] * 8)
    records = []
    out = generate(TableModel(table, MASK), torch.tensor([[20, 21]]), steps=8, gen_length=8, block_length=8,
                   threshold=0.9, mask_id=MASK, hooks=records.append)
    assert (out != MASK).all()
    first = records[0].committed[0].nonzero().flatten().tolist()
    assert sorted(first) == [2, 4, 7, 9]  # the four tokens above 0.9, at once
    for r in records:
        conf = r.confidence[0][r.committed[0]]
        assert r.committed.sum() >= 1
        assert (conf >= 0.9).all() or r.committed.sum() == 1
    assert len(records) == 5  # one step for the confident four, then one forced token per step


def test_eos_last_works_at_positive_temperature():
    # the model is most sure about end-of-text at the end of the block; eos_last must still commit it last
    target = [20, 21, 10, 11, 12, 13, EOS, EOS, EOS, EOS]
    table = oracle_table(target, VOCAB, strength=8.0)
    table[6:, EOS] = 30.0
    _, order = commit_order(TableModel(table, MASK), torch.tensor([[20, 21]]), steps=8, gen_length=8,
                            block_length=8, temperature=1.0, seed=0)
    assert min(order[p] for p in range(6, 10)) < max(order[p] for p in range(2, 6))  # eos first without the option
    for seed in range(3):
        out, order = commit_order(TableModel(table, MASK), torch.tensor([[20, 21]]), steps=8, gen_length=8,
                                  block_length=8, temperature=1.0, seed=seed, eos_last=True, eos_token_ids=[EOS])
        eos_positions = [p for p in range(2, 10) if out[0, p] == EOS]
        other = [p for p in range(2, 10) if out[0, p] != EOS]
        assert eos_positions and min(order[p] for p in eos_positions) > max(order[p] for p in other)


def test_forbid_eos_keeps_end_of_text_out():
    table = oracle_table([20, 21] + [EOS] * 8, VOCAB, strength=30.0)
    out = generate(TableModel(table, MASK), torch.tensor([[20, 21]]), steps=4, gen_length=8, block_length=4,
                   mask_id=MASK, forbid_eos=True, eos_token_ids=[EOS], temperature=0.5, seed=0)
    assert (out[0, 2:] != EOS).all() and (out != MASK).all()


def test_constraints_pin_tokens(tiny_model):
    prompt = torch.randint(10, 30, (1, 4))
    seen = []
    out = generate(tiny_model, prompt, steps=8, gen_length=8, block_length=8, constraints={0: 33, 5: 34},
                   hooks=seen.append)
    assert out[0, 4] == 33 and out[0, 9] == 34
    assert sum(int(r.committed.sum()) for r in seen) == 6  # the pinned positions are never re-committed
    assert all(not r.committed[0, 4] and not r.committed[0, 9] for r in seen)


def test_unconditional_generation_from_an_empty_prompt():
    target = [20, 21, 10, 11, 12, 13, 14, 15]
    model = TableModel(oracle_table(target, VOCAB), MASK)
    out = generate(model, torch.zeros(1, 0, dtype=torch.long), steps=4, gen_length=8, block_length=8, mask_id=MASK)
    assert out[0].tolist() == target
    assert model.calls[0].tolist() == [[MASK] * 8]  # the first step starts from a canvas of masks only


def test_custom_strategy_can_be_registered():
    @register_remasking("leftmost")
    def leftmost(logits, tokens, generator=None):
        return -torch.arange(len(tokens), dtype=torch.float)

    try:
        table = _table_with_confidences([0.1, 0.2, 0.9, 0.95], [0.01] * 4)
        _, order = commit_order(TableModel(table, MASK), torch.tensor([[20, 21]]), steps=4, gen_length=4,
                                block_length=4, remasking="leftmost")
        assert [order[p] for p in range(2, 6)] == [0, 1, 2, 3]
        assert get_scorer("leftmost") is leftmost
    finally:
        REMASKING.pop("leftmost")


def test_steps_above_tokens_are_clamped_with_a_warning(tiny_model):
    seen = []
    with pytest.warns(UserWarning, match="exceeds the 8 tokens"):
        generate(tiny_model, torch.tensor([[12]]), steps=16, gen_length=8, block_length=8, hooks=seen.append)
    assert len(seen) == 8


@pytest.mark.parametrize("kwargs,message", [
    (dict(gen_length=10, block_length=4), r"gen_length \(10\) must be divisible by block_length \(4\)"),
    (dict(gen_length=16, block_length=4, steps=6), r"steps \(6\) must be divisible by the number of blocks"),
    (dict(remasking="best_guess"), r"unknown remasking strategy 'best_guess'"),
    (dict(threshold=0.0), r"threshold must be in \(0, 1\], got 0.0"),
    (dict(threshold=1.5), r"threshold must be in \(0, 1\], got 1.5"),
    (dict(mask_id=10_000), r"mask id 10000 is missing from the model's vocabulary"),
    (dict(gen_length=400, block_length=400, steps=4), r"longer than the model's context of 256"),
    (dict(temperature=-1.0), r"temperature must be >= 0"),
    (dict(steps=0), r"steps must be a positive integer"),
    (dict(constraints={99: 5}), r"constraint position 99 is outside"),
    (dict(temperature=float("nan")), r"temperature must be a finite number, got nan"),
    (dict(cfg_scale=float("inf")), r"cfg_scale must be a finite number, got inf"),
    (dict(top_k=5), r"top_k/top_p .* need temperature > 0"),
    (dict(temperature=1.0, top_k=0), r"top_k must be a positive integer or None"),
    (dict(temperature=1.0, top_p=1.5), r"top_p must be in \(0, 1\]"),
    (dict(entropy_bound=-0.1), r"entropy_bound must be >= 0"),
    (dict(entropy_bound=0.5, threshold=0.9), r"two commit rules: choose one"),
])
def test_bad_parameters_raise_clear_errors(tiny_model, kwargs, message):
    args = dict(steps=8, gen_length=8, block_length=8)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        generate(tiny_model, torch.tensor([[12, 13]]), **args)


def test_empty_prompt_with_cfg_and_missing_prompt(tiny_model):
    with pytest.raises(ValueError, match="needs a non-empty prompt"):
        generate(tiny_model, torch.zeros(1, 0, dtype=torch.long), steps=4, gen_length=4, block_length=4, cfg_scale=1.0)
    with pytest.raises(ValueError, match="prompt is required"):
        generate(tiny_model, None)


def test_missing_mask_id_for_a_model_without_one():
    class Bare(torch.nn.Module):
        def forward(self, ids):
            return torch.zeros(*ids.shape, 5)

    with pytest.raises(ValueError, match="no mask id"):
        generate(Bare(), torch.tensor([[1, 2]]), steps=2, gen_length=2, block_length=2)
    with pytest.raises(ValueError, match="mask id 7 is missing"):
        generate(Bare(), torch.tensor([[1, 2]]), steps=2, gen_length=2, block_length=2, mask_id=7)
    # a bare module returning a logits tensor works as a denoiser: all-equal logits give the first token that is
    # not the mask (greedy ties go to the lowest id)
    out = generate(Bare(), torch.tensor([[1, 2]]), steps=2, gen_length=2, block_length=2, mask_id=0)
    assert out.tolist() == [[1, 2, 1, 1]]


def test_autoregressive_generate(char_tokenizer):
    from llada_play import LladaForMaskedLM, config_from_preset
    from llada_play.model.tokenizer import special_token_ids
    model = LladaForMaskedLM(config_from_preset("tiny", causal=True, **special_token_ids(char_tokenizer))).eval()
    prompt = torch.tensor([[12, 13, 14]])
    out = generate_autoregressive(model, prompt, max_new_tokens=6)
    assert out.shape == (1, 9) and torch.equal(out[:, :3], prompt)
    # greedy decoding is the argmax of the next-token logits, step after step
    x = prompt
    for _ in range(6):
        x = torch.cat([x, model(x).logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, x)
    # a row that emitted an end-of-text id keeps repeating it; the run ends when every row has
    first, third = int(x[0, 3]), int(x[0, 5])
    two = torch.cat([prompt, prompt])
    two[1, 2] = 15  # a second row that goes its own way
    stopped = generate_autoregressive(model, two, max_new_tokens=6, eos_token_ids=[first, third])
    free = generate_autoregressive(model, two, max_new_tokens=6)
    assert stopped[0, 3:].tolist() == [first] * (stopped.shape[1] - 3)
    row_end = next((i for i in range(3, 9) if int(free[1, i]) in (first, third)), None)
    length = 9 if row_end is None else row_end + 1  # the first row ends at once, the second where it emits one
    assert stopped.shape[1] == length and stopped[1].tolist() == free[1, :length].tolist()
    with pytest.raises(ValueError, match="non-empty prompt"):
        generate_autoregressive(model, torch.zeros(1, 0, dtype=torch.long))


def test_a_transformers_masked_lm_works_as_a_denoiser():
    from transformers import BertConfig, BertForMaskedLM
    torch.manual_seed(0)
    bert = BertForMaskedLM(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=64, max_position_embeddings=64)).eval()
    records = []
    out = generate(bert, torch.tensor([[5, 6, 7]]), steps=4, gen_length=8, block_length=4, mask_id=4,
                   hooks=records.append)
    assert len(records) == 4
    # LLaDA's algorithm written out on BERT's logits: two blocks, two steps each, the two most confident
    # predictions of the block committed per step
    x = torch.tensor([[5, 6, 7] + [4] * 8])
    with torch.no_grad():
        for start in (3, 7):
            for _ in range(2):
                logits = bert(x).logits[0].float()
                logits[:, 4] = float("-inf")  # never the mask token itself
                confidence, token = logits.softmax(-1).max(-1)
                masked = [i for i in range(start, start + 4) if x[0, i] == 4]
                for i in sorted(masked, key=lambda i: -float(confidence[i]))[:2]:
                    x[0, i] = token[i]
    assert torch.equal(out, x)
    with pytest.raises(ValueError, match="longer than the model's context of 64"):
        generate(bert, torch.tensor([[5, 6, 7]]), steps=4, gen_length=64, block_length=64, mask_id=4)


def two_token_table(probabilities, prompt_length=2, vocab=6, mask=5):
    """Logits (prompt + generation, vocab): at generation position i, token 1 with probability p_i, token 2
    with 1 - p_i, nothing else."""
    table = torch.full((prompt_length + len(probabilities), vocab), -1e4)
    for i, p in enumerate(probabilities):
        table[prompt_length + i, 1], table[prompt_length + i, 2] = torch.tensor([p, 1 - p]).log()
    return TableModel(table, mask)


def binary_entropy(p: float) -> float:
    return float(-(p * torch.tensor(p).log() + (1 - p) * torch.tensor(1 - p).log()))


@pytest.mark.parametrize("bound", [0.0, 0.05, 0.3, 0.6, 1.0, 5.0])
def test_the_entropy_bound_commits_the_longest_run_its_entropies_allow(bound):
    probabilities = [0.99, 0.95, 0.8, 0.7, 0.6]  # committed in this order by low_confidence
    entropies = [binary_entropy(p) for p in probabilities]
    expected = max(k for k in range(1, 6) if sum(entropies[:k]) - max(entropies[:k]) <= bound)
    model = two_token_table(probabilities)
    counts = []
    generate(model, torch.tensor([[0, 0]]), steps=5, gen_length=5, block_length=5, mask_id=5,
             entropy_bound=bound, hooks=lambda r: counts.append(int(r.committed.sum())))
    assert counts[0] == expected
    assert sum(counts) == 5 and (bound > 0 or counts == [1] * 5)


def test_top_k_and_top_p_sample_only_from_their_set():
    model = two_token_table([0.6, 0.9, 0.55, 0.97])
    kw = dict(steps=4, gen_length=4, block_length=4, mask_id=5, temperature=1.0)
    greedy = generate(model, torch.tensor([[0, 0]]), steps=4, gen_length=4, block_length=4, mask_id=5)
    seen = set()
    for seed in range(40):
        assert torch.equal(generate(model, torch.tensor([[0, 0]]), top_k=1, seed=seed, **kw), greedy)
        assert torch.equal(generate(model, torch.tensor([[0, 0]]), top_p=0.5, seed=seed, **kw), greedy)
        out = generate(model, torch.tensor([[0, 0]]), top_p=0.95, seed=seed, **kw)[0, 2:]
        assert out[3] == 1  # p = 0.97 alone reaches 0.95: its nucleus is one token
        seen.update(out[:3].tolist())
    assert seen == {1, 2}  # the other positions' nuclei hold both tokens, and both are drawn
