"""Token editing in training (LLaDA 2.1's token-to-token stream): visible tokens corrupted and restored."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from llada_play import LladaForMaskedLM, config_from_preset
from llada_play.diffusion.losses import (corrupt_visible, padding_positions, pretrain_loss, replacement_tokens,
                                         sft_loss)
from llada_play.diffusion.masking import forward_process
from llada_play.experiments.puzzle import PuzzleConfig, puzzle_training, puzzle_tokenizer
from llada_play.model.checkpoint import load_model, save_model
from llada_play.model.config import LladaConfig
from llada_play.model.tokenizer import special_token_ids
from llada_play.training.data import PackedBatches, SFTBatches
from llada_play.training.trainer import TrainConfig, edit_tokens_for, train

MASK = 3
VOCAB = 50
TEXT = "HAMLET:\nTo be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer.\n" * 40


class Uniform(nn.Module):
    """Uniform predictions (cross-entropy log V everywhere); remembers what it was shown."""

    config = SimpleNamespace(vocab_size=VOCAB)

    def forward(self, ids, attention_mask=None):
        self.seen = ids.clone()
        return SimpleNamespace(logits=torch.zeros(*ids.shape, VOCAB, requires_grad=True))


def tiny(tokenizer):
    torch.manual_seed(0)
    return LladaForMaskedLM(config_from_preset("tiny", **special_token_ids(tokenizer)))


def packed(tokenizer, seq_len=32, batch_size=16):
    return PackedBatches(torch.tensor(tokenizer(TEXT).input_ids), seq_len, batch_size)


# ---- the corruption -----------------------------------------------------------------------------------

def test_corruption_touches_only_editable_positions_at_the_requested_share():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 40, (2000, 64), generator=g)
    editable = torch.rand(2000, 64, generator=g) < 0.6
    tokens = replacement_tokens(VOCAB, [0, 1, 2, MASK])
    noisy, corrupted = corrupt_visible(ids, ids.clone(), editable, 0.2, tokens, g)
    assert not corrupted[~editable].any()
    assert torch.equal(noisy[~corrupted], ids[~corrupted])
    assert (noisy[corrupted] != ids[corrupted]).all()  # a corrupted token is always wrong
    assert torch.isin(noisy[corrupted], tokens).all()
    assert not torch.isin(noisy[corrupted], torch.tensor([0, 1, 2, MASK])).any()
    share = corrupted.sum().item() / editable.sum().item()
    assert abs(share - 0.2) < 0.005
    # the replacement is uniform over the other ordinary ids
    counts = torch.bincount(noisy[corrupted], minlength=VOCAB)[4:].float()
    assert counts.min() > 0.8 * counts.mean() and counts.max() < 1.2 * counts.mean()


def test_a_token_outside_the_replacements_is_replaced_by_any_of_them():
    ids = torch.full((1, 5000), 1)  # end-of-text: not a replacement token, but may be corrupted in pre-training
    tokens = torch.tensor([7, 8, 9])
    noisy, corrupted = corrupt_visible(ids, ids, torch.ones_like(ids, dtype=torch.bool), 0.5, tokens,
                                       torch.Generator().manual_seed(1))
    assert set(noisy[corrupted].tolist()) == {7, 8, 9}


def test_replacement_tokens_exclude_special_ids_and_need_two():
    assert replacement_tokens(6, [0, 2, None]).tolist() == [1, 3, 4, 5]
    with pytest.raises(ValueError, match="at least two"):
        replacement_tokens(3, [0, 1])


def test_edit_tokens_of_a_model_leave_out_every_special_token():
    tokenizer = puzzle_tokenizer(6)
    model = LladaForMaskedLM(config_from_preset("tiny", **special_token_ids(tokenizer)))
    tokens = edit_tokens_for(model, tokenizer.mask_token_id, tokenizer)
    assert tokenizer.convert_ids_to_tokens(tokens.tolist()) == list("123456_")


def test_pretrain_corrupts_only_visible_tokens_and_adds_their_cross_entropy():
    ids = torch.randint(10, 40, (64, 48), generator=torch.Generator().manual_seed(0))
    model = Uniform()
    out = pretrain_loss(model, ids, MASK, random_length_prob=0.0, generator=torch.Generator().manual_seed(3),
                        edit_ratio=0.25)
    seen = model.seen
    masked = seen == MASK
    changed = ~masked & (seen != ids)
    assert out.num_corrupted == int(changed.sum()) > 0
    assert abs(changed.sum().item() / (~masked).sum().item() - 0.25) < 0.03
    # the masked term as before plus one log V per visible position, over batch * length
    masked_term = (masked.float() / out.p_mask[:, None]).sum() * torch.log(torch.tensor(float(VOCAB)))
    visible_term = (~masked).sum() * torch.log(torch.tensor(float(VOCAB)))
    assert out.loss.item() == pytest.approx(((masked_term + visible_term) / ids.numel()).item(), rel=1e-5)


def test_sft_never_corrupts_the_prompt_or_the_padding():
    eos = 1
    ids = torch.randint(10, 40, (500, 20), generator=torch.Generator().manual_seed(0))
    prompt_lengths = torch.randint(2, 8, (500,), generator=torch.Generator().manual_seed(1))
    answer_ends = prompt_lengths + torch.randint(2, 8, (500,), generator=torch.Generator().manual_seed(2))
    positions = torch.arange(20)[None]
    ids[positions >= answer_ends[:, None]] = eos  # the answer's end-of-text, then padding
    model = Uniform()
    out = sft_loss(model, ids, prompt_lengths, MASK, generator=torch.Generator().manual_seed(4), edit_ratio=0.3,
                   pad_id=eos)
    corrupted = (model.seen != MASK) & (model.seen != ids)
    assert not corrupted[positions < prompt_lengths[:, None]].any()
    assert not corrupted[positions > answer_ends[:, None]].any()  # padding: after the first end-of-text
    first_eos = positions == answer_ends[:, None]
    assert corrupted[first_eos].any()  # the answer's own end-of-text is text and may be corrupted
    assert out.num_corrupted == int(corrupted.sum())
    editable = (positions >= prompt_lengths[:, None]) & (positions <= answer_ends[:, None]) & (model.seen != MASK)
    assert abs(corrupted.sum().item() / editable.sum().item() - 0.3) < 0.03


def test_padding_is_the_trailing_run_but_its_first_token():
    ids = torch.tensor([[5, 1, 6, 1, 1, 1], [5, 6, 7, 8, 9, 1], [5, 6, 7, 8, 9, 4]])
    assert padding_positions(ids, 1).tolist() == [[False, False, False, False, True, True], [False] * 6, [False] * 6]
    assert not padding_positions(ids, None).any()


# ---- edit_ratio 0 is the loss as it was ----------------------------------------------------------------

def _llada_pretrain_loss(model, ids, generator):
    """The pre-training loss as written before token editing (random_length_prob=0)."""
    noisy, masked, p_mask = forward_process(ids, MASK, eps=1e-3, generator=generator)
    logits = model(noisy).logits
    token_loss = F.cross_entropy(logits[masked].float(), ids[masked], reduction="none") / p_mask[masked]
    return token_loss.sum() / ids.numel()


def _llada_sft_loss(model, ids, prompt_lengths, generator):
    b, n = ids.shape
    response = torch.arange(n)[None] >= prompt_lengths[:, None]
    response_length = response.sum(1, keepdim=True).expand(b, n)
    noisy, masked, p_mask = forward_process(ids, MASK, eps=1e-3, maskable=response, generator=generator)
    logits = model(noisy).logits
    token_loss = F.cross_entropy(logits[masked].float(), ids[masked], reduction="none") / p_mask[masked]
    return (token_loss / response_length[masked]).sum() / b


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, VOCAB)

    def forward(self, ids, attention_mask=None):
        return SimpleNamespace(logits=self.embed(ids))


def test_edit_ratio_zero_is_bit_identical_and_draws_nothing_more():
    ids = torch.randint(10, 40, (8, 24), generator=torch.Generator().manual_seed(0))
    model = Linear()
    ours, theirs = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    new = pretrain_loss(model, ids, MASK, random_length_prob=0.0, generator=ours, edit_ratio=0.0)
    old = _llada_pretrain_loss(model, ids, theirs)
    assert torch.equal(new.loss, old) and new.num_corrupted == 0
    assert torch.equal(ours.get_state(), theirs.get_state())
    lengths = torch.tensor([3, 5, 7, 2, 9, 4, 6, 8])
    new = sft_loss(model, ids, lengths, MASK, generator=ours, edit_ratio=0.0, pad_id=1)
    old = _llada_sft_loss(model, ids, lengths, theirs)
    assert torch.equal(new.loss, old)
    assert torch.equal(ours.get_state(), theirs.get_state())


def test_shards_see_the_whole_batch_noise_and_average_to_the_whole_loss():
    ids = torch.randint(10, 40, (8, 24), generator=torch.Generator().manual_seed(0))
    model = Linear()
    whole = pretrain_loss(model, ids, MASK, random_length_prob=0.0, generator=torch.Generator().manual_seed(2),
                          edit_ratio=0.2, edit_tokens=torch.arange(4, VOCAB))
    halves = [pretrain_loss(model, ids, MASK, random_length_prob=0.0, generator=torch.Generator().manual_seed(2),
                            rows=rows, edit_ratio=0.2, edit_tokens=torch.arange(4, VOCAB))
              for rows in (slice(0, 4), slice(4, 8))]
    assert (halves[0].loss + halves[1].loss).item() / 2 == pytest.approx(whole.loss.item(), rel=1e-6)
    assert halves[0].num_corrupted + halves[1].num_corrupted == whole.num_corrupted
    lengths = torch.tensor([3, 5, 7, 2, 9, 4, 6, 8])
    whole = sft_loss(model, ids, lengths, MASK, generator=torch.Generator().manual_seed(2), edit_ratio=0.2,
                     edit_tokens=torch.arange(4, VOCAB))
    halves = [sft_loss(model, ids, lengths, MASK, generator=torch.Generator().manual_seed(2), rows=rows,
                       edit_ratio=0.2, edit_tokens=torch.arange(4, VOCAB)) for rows in (slice(0, 4), slice(4, 8))]
    assert (halves[0].loss + halves[1].loss).item() / 2 == pytest.approx(whole.loss.item(), rel=1e-6)


def test_bad_edit_ratios_are_refused():
    with pytest.raises(ValueError, match="edit_ratio"):
        TrainConfig(edit_ratio=1.0)
    with pytest.raises(ValueError, match="autoregressive"):
        TrainConfig(objective="autoregressive", edit_ratio=0.1)
    with pytest.raises(ValueError, match="edit_ratio"):
        pretrain_loss(Uniform(), torch.zeros(2, 4, dtype=torch.long), MASK, edit_ratio=-0.1)


# ---- the model's config and the trainer ---------------------------------------------------------------

def test_token_editing_is_saved_and_loaded(char_tokenizer, tmp_path):
    assert LladaConfig().token_editing == 0.0
    model = tiny(char_tokenizer)
    config = TrainConfig(output_dir=str(tmp_path / "run"), max_steps=2, warmup_steps=1, progress=False,
                         edit_ratio=0.15)
    train(model, packed(char_tokenizer, batch_size=4), config, tokenizer=char_tokenizer)
    assert model.config.token_editing == 0.15
    loaded, _ = load_model(save_model(model, char_tokenizer, tmp_path / "final"))
    assert loaded.config.token_editing == 0.15
    plain, _ = load_model(save_model(tiny(char_tokenizer), char_tokenizer, tmp_path / "plain"))
    assert getattr(plain.config, "token_editing", 0) == 0.0


def test_resume_is_exact_with_token_editing(char_tokenizer, tmp_path):
    def run(out, stop_at=None, resume=False):
        def hook(record):
            if record.step == stop_at:
                record.stop()
        config = TrainConfig(output_dir=str(out), max_steps=8, warmup_steps=2, save_every=100, progress=False,
                             precision="fp32", edit_ratio=0.2)
        train(tiny(char_tokenizer), packed(char_tokenizer, batch_size=4), config, tokenizer=char_tokenizer,
              hooks=hook, resume=resume)

    run(tmp_path / "straight")
    run(tmp_path / "stopped", stop_at=3)
    run(tmp_path / "stopped", resume=True)
    a = load_file(tmp_path / "straight" / "checkpoints" / "step-0000008" / "model.safetensors")
    b = load_file(tmp_path / "stopped" / "checkpoints" / "step-0000008" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = TrainConfig(output_dir=str(tmp_path / "stopped"), max_steps=8, warmup_steps=2, progress=False)
    with pytest.raises(ValueError, match="edit_ratio=0.2"):
        train(tiny(char_tokenizer), packed(char_tokenizer, batch_size=4), other, resume=True)


def test_puzzle_edit_ratio_reaches_the_diffusion_model_only():
    config = PuzzleConfig(train_puzzles=20, test_puzzles=5, steps=10, edit_ratio=0.1)
    tokenizer = puzzle_tokenizer(config.size)
    from llada_play.experiments.puzzle import datasets

    train_set, _ = datasets(config)
    assert puzzle_training("diffusion", config, tokenizer, train_set, 0)[1].edit_ratio == 0.1
    assert puzzle_training("autoregressive", config, tokenizer, train_set, 0)[1].edit_ratio == 0.0
    assert PuzzleConfig.from_dict({"steps": 10}).edit_ratio == 0.0  # results written before the option


# ---- what it buys: a model that restores corrupted tokens ----------------------------------------------

@torch.no_grad()
def restoration(model, tokenizer, ratio=0.1):
    """(share of corrupted positions whose argmax is the original, share of clean visible positions whose
    argmax is the token shown) on fully visible windows with ``ratio`` of the tokens corrupted."""
    model.eval()
    batch = packed(tokenizer, batch_size=64).fixed_batches(1, seed=99)[0]["input_ids"]
    g = torch.Generator().manual_seed(7)
    tokens = edit_tokens_for(model, tokenizer.mask_token_id, tokenizer)
    noisy, corrupted = corrupt_visible(batch, batch, torch.ones_like(batch, dtype=torch.bool), ratio, tokens, g)
    guess = model(noisy).logits.argmax(-1)
    return ((guess == batch)[corrupted].float().mean().item(), (guess == batch)[~corrupted].float().mean().item())


def test_a_model_trained_to_edit_restores_corrupted_tokens(char_tokenizer, tmp_path):
    scores = {}
    for ratio in (0.0, 0.1):
        model = tiny(char_tokenizer)
        config = TrainConfig(output_dir=str(tmp_path / str(ratio)), max_steps=300, warmup_steps=20, lr=3e-3,
                             save_every=1000, progress=False, precision="fp32", edit_ratio=ratio)
        train(model, packed(char_tokenizer), config, tokenizer=char_tokenizer)
        scores[ratio] = restoration(model, char_tokenizer)
    (plain_fixed, _), (edit_fixed, edit_kept) = scores[0.0], scores[0.1]
    # measured on the 2-core machine: 0.72 of the corrupted tokens restored against 0.21 without editing
    assert edit_fixed > 0.6 and edit_fixed > plain_fixed + 0.4, scores
    assert edit_kept > 0.97, scores  # and it leaves the right tokens alone


def test_the_shipped_models_say_whether_they_were_trained_to_edit():
    from llada_play.model.checkpoint import SHIPPED_MODELS
    from transformers import AutoConfig

    editing = ["Sudoku 6x6, diffusion that edits (seed 0)", "Arithmetic that edits (SFT of the default, edit ratio 0.1)"]
    for name, path in SHIPPED_MODELS.items():
        config = AutoConfig.from_pretrained(path, local_files_only=True) if (path / "config.json").exists() else None
        if config is None or config.model_type != "llada_play":
            continue
        assert (getattr(config, "token_editing", 0) > 0) == (name in editing), name
    for name in editing:
        if name in SHIPPED_MODELS:
            assert AutoConfig.from_pretrained(SHIPPED_MODELS[name], local_files_only=True).token_editing == 0.1
