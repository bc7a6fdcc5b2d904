"""LLaDA's own call style: generate(model, input_ids, attention_mask, steps=..., ...) with its end-of-text
switches, get_log_likelihood's estimator through mc_log_likelihood, and prompt ids outside the vocabulary."""
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from llada_play import generate, mc_log_likelihood
from llada_play.diffusion.masking import stratified_mask_counts
from tests.conftest import TableModel

MASK, EOS, EOT, VOCAB = 15, 1, 2, 16


def table(rows: list[dict[int, float]], length: int) -> torch.Tensor:
    """Logits (length, VOCAB): 0 everywhere, then the given {token: logit} per generated position."""
    logits = torch.zeros(length, VOCAB)
    for i, row in enumerate(rows):
        for token, value in row.items():
            logits[length - len(rows) + i, token] = value
    return logits


def commit_order(records) -> list[int]:
    return [int(r.committed[0].nonzero().flatten()[0]) - r.prompt_length for r in records]


def test_llada_s_positional_call_with_attention_mask_works_unchanged():
    model = TableModel(table([{5: 9.0}, {6: 8.0}, {7: 7.0}, {8: 6.0}], 6), MASK)
    model.config.eos_token_id = EOS
    prompt, mask = torch.tensor([[3, 4]]), torch.ones(1, 2, dtype=torch.long)
    # LLaDA's README: generate(model, input_ids, attention_mask, steps=128, gen_length=128, block_length=32, ...)
    out = generate(model, prompt, mask, steps=4, gen_length=4, block_length=4, temperature=0., cfg_scale=0.,
                   remasking="low_confidence", mask_id=MASK, logits_eos_inf=False, confidence_eos_eot_inf=False)
    assert out[0].tolist() == [3, 4, 5, 6, 7, 8]
    assert torch.equal(out, generate(model, prompt, attention_mask=mask, steps=4, gen_length=4, block_length=4))


def test_logits_eos_inf_never_generates_end_of_text():
    # the second position is surest of end-of-text; its runner-up is token 9
    model = TableModel(table([{5: 3.0}, {EOS: 12.0, 9: 2.0}, {7: 4.0}], 5), MASK)
    model.config.eos_token_id = EOS
    plain = generate(model, torch.tensor([[3, 4]]), None, 3, 3, 3, mask_id=MASK)
    assert plain[0, 2:].tolist() == [5, EOS, 7]
    out = generate(model, torch.tensor([[3, 4]]), None, 3, 3, 3, mask_id=MASK, logits_eos_inf=True)
    assert out[0, 2:].tolist() == [5, 9, 7]


def test_confidence_eos_eot_inf_commits_end_of_text_and_turn_last():
    # end-of-turn and end-of-text are the surest predictions; without the switch they are committed first
    model = TableModel(table([{5: 3.0}, {EOT: 12.0}, {7: 4.0}, {EOS: 11.0}], 6), MASK)
    model.config.eos_token_id, model.config.eot_token_id = EOS, EOT
    prompt = torch.tensor([[3, 4]])
    plain, switched = [], []
    generate(model, prompt, None, 4, 4, 4, mask_id=MASK, hooks=plain.append)
    out = generate(model, prompt, None, 4, 4, 4, mask_id=MASK, confidence_eos_eot_inf=True, hooks=switched.append)
    assert commit_order(plain) == [1, 3, 2, 0]
    assert commit_order(switched)[:2] == [2, 0]  # the text first, by confidence
    assert sorted(commit_order(switched)[2:]) == [1, 3]
    assert out[0, 2:].tolist() == [5, EOT, 7, EOS]  # the tokens themselves are unchanged


def test_prompt_ids_outside_the_vocabulary_are_named():
    model = TableModel(table([{5: 3.0}], 4), MASK)
    with pytest.raises(ValueError, match=r"prompt token id 16 at row 0, position 2 is outside the model's "
                                         r"vocabulary \[0, 16\)"):
        generate(model, torch.tensor([[3, 4, 16]]), None, 1, 1, 1, mask_id=MASK)
    with pytest.raises(ValueError, match=r"prompt token id -1 at row 1, position 0"):
        generate(model, torch.tensor([[3, 4], [-1, 4]]), None, 1, 1, 1, mask_id=MASK)
    from llada_play.diffusion.batching import generate_many

    with pytest.raises(ValueError, match=r"prompt 1 token id 20 at position 1 is outside the model's vocabulary"):
        generate_many(model, [[3, 4], [5, 20, 6]], steps=1, gen_length=1, block_length=1, mask_id=MASK)


def test_stratified_counts_follow_llada_s_formula():
    # LLaDA: round(linspace(k, k + (b - 1) * L / b, b)), wrapped into [1, L]
    assert stratified_mask_counts(3, 10, 4).tolist() == [3, 6, 8, 10]
    assert stratified_mask_counts(10, 10, 4).tolist() == [10, 2, 5, 8]
    counts = stratified_mask_counts(2, 5, 5)
    assert sorted(counts.tolist()) == [1, 2, 3, 4, 5]  # one batch covers every count once


class ConstantModel(nn.Module):
    """The same distribution at every position whatever the input, equally sure of tokens 5, 6 and 7: each
    masked answer token costs the same, so every draw of the estimator gives the exact value."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(mask_token_id=MASK, vocab_size=VOCAB)
        self.logits = torch.zeros(VOCAB)
        self.logits[[0, 9]] = torch.tensor([2.0, -1.0])

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.logits.expand(*input_ids.shape, VOCAB).clone())


@pytest.mark.parametrize("stratified", [False, True])
@pytest.mark.parametrize("cfg_scale", [0.0, 1.0])
def test_the_likelihood_bound_weights_each_masked_token_by_length_over_count(stratified, cfg_scale):
    model = ConstantModel()
    prompt, answer = torch.tensor([3, 4]), torch.tensor([5, 6, 7])
    exact = float(torch.log_softmax(model.logits, -1)[answer].sum())
    got = mc_log_likelihood(model, prompt, answer, MASK, num_samples=32, batch_size=8,
                            generator=torch.Generator().manual_seed(0), cfg_scale=cfg_scale, stratified=stratified)
    assert got == pytest.approx(exact, rel=1e-5)
