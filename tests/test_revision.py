"""Second thoughts (diffusion/revision.py in the step engine): token editing, ReMDM remasking, a hook sending a
token back; exact behaviour on hand-made logits, revisions in records and traces, never the prompt or pins."""
import pytest
import torch
from types import SimpleNamespace

from llada_play import SamplerConfig, TraceRecorder, denoise, generate
from llada_play.diffusion.batching import generate_many
from llada_play.diffusion.revision import remask_counts
from tests.conftest import TableModel

MASK, VOCAB = 5, 8


class ScriptedModel(torch.nn.Module):
    """Returns tables[i] (length, vocab) at its i-th forward pass (the last one from then on)."""

    def __init__(self, tables):
        super().__init__()
        self.tables = tables
        self.config = SimpleNamespace(mask_token_id=MASK, vocab_size=VOCAB)
        self.calls = 0

    def forward(self, input_ids, attention_mask=None):
        table = self.tables[min(self.calls, len(self.tables) - 1)]
        self.calls += 1
        return SimpleNamespace(logits=table[: input_ids.shape[1]].expand(input_ids.shape[0], -1, -1).clone())


def table(rows: dict[int, dict[int, float]], length: int = 4) -> torch.Tensor:
    """Log-probabilities: rows[position] = {token: probability} (the rest spread over no token)."""
    out = torch.full((length, VOCAB), -1e4)
    for pos, probs in rows.items():
        for token, p in probs.items():
            out[pos, token] = torch.tensor(p).log()
    return out


PROMPT = torch.tensor([[0, 1]])  # positions 0-1; the generation is positions 2-3
BOTH = {0: {1: 0.5, 2: 0.5}, 1: {1: 0.5, 2: 0.5}}  # the prompt's rows: never committed, never edited


@pytest.mark.parametrize("q, edited", [(0.85, True), (0.8, True), (0.75, False)])
def test_a_token_is_edited_exactly_when_its_new_probability_reaches_the_threshold(q, edited):
    first = table({**BOTH, 2: {3: 0.9, 4: 0.1}, 3: {4: 0.6, 3: 0.4}})  # step 0 commits 3 at position 2
    second = table({**BOTH, 2: {6: q, 3: 1 - q}, 3: {4: 0.6, 3: 0.4}})  # step 1: position 2 would rather be 6
    records = []
    out = generate(ScriptedModel([first, second]), PROMPT, steps=2, gen_length=2, block_length=2, mask_id=MASK,
                   edit_threshold=0.8, hooks=records.append)
    assert records[0].x_after[0, 2] == 3 and records[0].edits == []
    if edited:
        assert records[1].edits == [(0, 2, 3, 6, pytest.approx(q, abs=1e-5))]
        assert out[0].tolist() == [0, 1, 6, 4]
    else:
        assert records[1].edits == [] and out[0].tolist() == [0, 1, 3, 4]


def test_the_prompt_and_pinned_tokens_are_never_revised():
    sure = table({0: {7: 0.99, 1: 0.01}, 1: {7: 0.99, 1: 0.01}, 2: {6: 0.99, 3: 0.01}, 3: {6: 0.99, 3: 0.01}})
    model = ScriptedModel([sure])
    out = generate(model, PROMPT, steps=2, gen_length=2, block_length=2, mask_id=MASK, constraints={0: 3},
                   edit_threshold=0.5, edit_steps=3, remask="cap", remask_eta=1.0)
    assert out[0].tolist() == [0, 1, 3, 6]  # the prompt (0, 1) and the pin (3) kept against p = 0.99


def test_a_full_block_takes_edit_steps_while_they_edit():
    first = table({**BOTH, 2: {3: 0.9, 4: 0.1}, 3: {4: 0.8, 3: 0.2}})
    editing = table({**BOTH, 2: {6: 0.95, 3: 0.05}, 3: {4: 0.8, 3: 0.2}})
    settled = table({**BOTH, 2: {6: 0.95, 3: 0.05}, 3: {4: 0.9, 3: 0.1}})
    records = []
    generate(ScriptedModel([first, first, editing, settled]), PROMPT, steps=2, gen_length=2, block_length=2,
             mask_id=MASK, edit_threshold=0.9, edit_steps=5, hooks=records.append)
    # steps 0-1 fill the block; step 2 edits 3 -> 6 in the full block; step 3 edits nothing: the block ends
    assert [len(r.edits) for r in records] == [0, 0, 1, 0]
    records = []
    generate(ScriptedModel([first, first, editing, settled]), PROMPT, steps=2, gen_length=2, block_length=2,
             mask_id=MASK, edit_threshold=0.9, hooks=records.append)
    assert len(records) == 2  # no edit steps: the block ends with its last mask


def uniform_table(length: int) -> torch.Tensor:
    """Every position sure of a different token, so that commits and refills are easy to follow."""
    out = torch.full((length, VOCAB), -1e4)
    for pos in range(length):
        out[pos, pos % 4] = 0.0
    return out


@pytest.mark.parametrize("schedule, eta", [("cap", 0.5), ("rescale", 0.5), ("conf", 0.3), ("loop", 0.5)])
def test_remasking_follows_its_counts_and_ends_with_no_mask(schedule, eta):
    config = SamplerConfig(steps=8, gen_length=16, block_length=8, remask=schedule, remask_eta=eta, seed=3)
    model = TableModel(uniform_table(18), MASK)
    run = denoise(model, PROMPT, config)
    records = list(run)
    assert (run.output != MASK).all() and len(records) == 8
    decoded = 0
    for record in records:
        if record.block_step == 0:
            decoded = 0
        masked = config.block_length - decoded
        counts, least = remask_counts(config.replace(remask_eta=1e-9), record.block_step, torch.tensor([decoded]),
                                      torch.tensor([masked]))
        share = counts - least  # the schedule's own share (at eta ~0 nothing is sent back but loop's one)
        back = len(record.remasked)
        # the schedule's progress is kept: commits = share + what goes back, and no more than can be refilled
        assert int(record.committed.sum()) == int(share) + back
        assert back <= (min(decoded, masked - int(share)) if schedule != "loop" else min(decoded, masked))
        assert all(record.x_after[0, pos] == MASK and record.x_before[0, pos] == old for _, pos, old in record.remasked)
        decoded += int(record.committed.sum()) - back
    assert sum(len(r.remasked) for r in records) > 0  # it did send tokens back
    trace = TraceRecorder()
    for record in records:
        trace(record)
    assert trace.trace().final() == run.output[0].tolist()  # the trace replays the revisions


def test_remask_counts_follow_the_documented_formula():
    config = SamplerConfig(steps=4, gen_length=8, block_length=8, remask="cap", remask_eta=0.5)
    counts, back = remask_counts(config, 1, torch.tensor([2, 4]), torch.tensor([6, 4]))  # eta D whole: exact
    # share ceil(6 / 3) = 2, r = min(round(0.5 * 2), 6 - 2) = 1; share ceil(4 / 3) = 2, r = min(2, 2) = 2
    assert counts.tolist() == [3, 4] and back.tolist() == [1, 2]
    last_counts, last_back = remask_counts(config, 3, torch.tensor([6]), torch.tensor([2]))
    assert last_back.tolist() == [0] and last_counts.tolist() == [2]  # nothing sent back at the last step
    # a fractional eta D is rounded at random with the right mean: eta 0.1 of 5 tokens, 0.5 a step
    small = config.replace(remask_eta=0.1)
    draws = remask_counts(small, 0, torch.full((4000,), 5), torch.full((4000,), 100), torch.Generator().manual_seed(0))[1]
    assert set(draws.tolist()) == {0, 1} and abs(draws.float().mean().item() - 0.5) < 0.03


def test_a_hook_sends_a_token_back_and_the_sampler_fills_it_again():
    model = TableModel(uniform_table(10), MASK)
    config = SamplerConfig(steps=8, gen_length=8, block_length=8)
    run = denoise(model, PROMPT, config)
    first = next(run)
    position = int(first.committed[0].nonzero()[0])
    first.remask(position)
    second = next(run)
    assert second.x_before[0, position] == MASK
    rest = [first, second, *run]
    assert (run.output != MASK).all() and len(rest) == 8
    with pytest.raises(ValueError, match="outside the generation"):
        run2 = denoise(model, PROMPT, config)
        next(run2).remask(0)
        next(run2)
    recorder = TraceRecorder()
    out = generate(model, PROMPT, steps=8, gen_length=8, block_length=8, mask_id=MASK,
                   hooks=[lambda r: r.remask(2) if r.step == 0 else None, recorder])
    trace = recorder.trace()
    assert trace.steps[0].commits[0][1] == 2 and trace.steps[0].unmasked_by_hook == [[0, 2]]  # ties: first first
    assert trace.states()[1][2] == MASK and trace.final() == out[0].tolist()
    assert trace.revisions() == {}  # the sampler itself revised nothing


def test_a_pinned_or_finished_block_token_cannot_be_sent_back():
    model = TableModel(uniform_table(10), MASK)
    run = denoise(model, PROMPT, SamplerConfig(steps=8, gen_length=8, block_length=4), constraints={1: 2})
    record = next(run)
    record.remask(3)
    with pytest.raises(ValueError, match="a pinned token"):
        next(run)
    run = denoise(model, PROMPT, SamplerConfig(steps=4, gen_length=8, block_length=4))
    records = [next(run), next(run)]  # the first block is done
    records[-1].remask(2)
    with pytest.raises(ValueError, match="its block is done"):
        next(run)


def test_revision_is_the_same_in_every_driver():
    """Editing is deterministic at temperature 0: every driver gives each prompt what it gets alone. Remasking
    draws at random (its rounding, its choice): the shared sampler's runs keep their own seeded generators, so
    they too get exactly their run alone; generate_many's prompts share one generator, as at temperature > 0."""
    from llada_play.diffusion.shared_sampler import SharedSampler
    from tests.test_batching import small_model

    model = small_model()
    editing = SamplerConfig(steps=8, gen_length=8, block_length=4, edit_threshold=0.6, edit_steps=2)
    remasking = editing.replace(remask="conf", remask_eta=0.5, seed=4)
    prompts = [[5, 9], [6, 9, 12], [7]]
    alone = {c: [denoise(model, torch.tensor([p]), c).finish()[0] for p in prompts] for c in (editing, remasking)}
    assert all(torch.equal(a, b) for a, b in zip(alone[editing], generate_many(model, prompts, 2, editing)))
    batched = generate_many(model, prompts, 2, remasking)
    mask = model.config.mask_token_id
    assert all((row[len(p):] != mask).all() and len(row) == len(p) + 8 for row, p in zip(batched, prompts))
    sampler = SharedSampler(model)
    try:
        for config in (editing, remasking):
            runs = [sampler.start(torch.tensor([p]), config) for p in prompts]
            assert all(torch.equal(a, run.finish()[0]) for a, run in zip(alone[config], runs))
    finally:
        sampler.close()


def test_edits_asked_of_a_model_not_trained_to_edit_warn_once_clearly():
    import warnings
    from tests.test_batching import small_model

    model = small_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        denoise(model, torch.tensor([[5, 9]]), SamplerConfig(steps=4, gen_length=4, block_length=4))
        assert not caught
        denoise(model, torch.tensor([[5, 9]]), SamplerConfig(steps=4, gen_length=4, block_length=4,
                                                              edit_threshold=0.9))
    assert len(caught) == 1 and "was not trained to edit" in str(caught[0].message)
    model.config.token_editing = 0.1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        denoise(model, torch.tensor([[5, 9]]), SamplerConfig(steps=4, gen_length=4, block_length=4,
                                                              edit_threshold=0.9))
    assert not caught


@pytest.mark.parametrize("options, message", [
    (dict(remask="sometimes", remask_eta=0.5), "unknown remask schedule 'sometimes'"),
    (dict(remask="cap"), r"remask_eta must be in \(0, 1\]"),
    (dict(remask="cap", remask_eta=1.5), r"remask_eta must be in \(0, 1\]"),
    (dict(remask="cap", remask_eta=0.5, threshold=0.9), "needs the fixed schedule"),
    (dict(remask="loop", remask_eta=0.5, remask_window=(0.8, 0.2)), "remask_window must be"),
    (dict(edit_threshold=0.0), r"edit_threshold must be in \(0, 1\]"),
    (dict(edit_steps=2), "set edit_threshold too"),
    (dict(remask="loop", remask_eta=0.5, steps=2), "the loop phase needs at least 3 steps"),
    (dict(remask="cap", remask_eta=float("nan")), "remask_eta must be a finite number"),
])
def test_bad_revision_settings_are_refused_by_name(options, message):
    with pytest.raises(ValueError, match=message):
        SamplerConfig(**{**dict(steps=8, gen_length=8, block_length=8), **options})


class SureAndUnsure(torch.nn.Module):
    """Rows whose first token is 6 are sure of token 4 everywhere; other rows barely prefer it."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(mask_token_id=MASK, vocab_size=40)

    def forward(self, input_ids, attention_mask=None):
        logits = torch.zeros(*input_ids.shape, 40)
        logits[..., 4] = torch.where(input_ids[:, :1] == 6, 30.0, 1.0)
        return SimpleNamespace(logits=logits)


def test_rows_the_model_skipped_are_never_edited():
    """A row with nothing left to denoise leaves the forward pass (its logits are zeros); an edit threshold
    below 1 / vocabulary must not read those zeros as a confident prediction."""
    options = dict(steps=4, gen_length=4, block_length=4, mask_id=MASK, threshold=0.9, edit_threshold=0.01)
    batch = generate(SureAndUnsure(), torch.tensor([[6, 1], [7, 1]]), **options)  # row 0 is done after step 0
    assert batch[0, 2:].tolist() == [4] * 4 and batch[1, 2:].tolist() == [4] * 4


@pytest.mark.parametrize("steps", [3, 4, 8])
def test_the_loop_phase_never_lands_on_a_blocks_first_or_last_step(steps):
    from llada_play.diffusion.revision import loop_steps

    config = SamplerConfig(steps=steps, gen_length=8, block_length=8, remask="loop", remask_eta=0.5, seed=1)
    loop = loop_steps(config)
    assert len(loop) >= 1 and min(loop) >= 1 and max(loop) < steps - 1
    run = denoise(TableModel(uniform_table(10), MASK), PROMPT, config)
    records = list(run)
    assert (run.output != MASK).all() and sum(len(r.remasked) for r in records) > 0  # it did loop


def test_a_row_skipped_for_a_while_is_still_edited_once_its_block_is_full():
    """A row left out of a pass keeps what may be revised: when the full block takes its edit steps, the row's
    tokens are edited like the others'."""
    class Changing(SureAndUnsure):
        def forward(self, input_ids, attention_mask=None):
            out = super().forward(input_ids, attention_mask)
            if not (input_ids == MASK).any():  # the block is full: every row now prefers token 9
                out.logits[..., 9] = 40.0
            return out

    options = dict(steps=4, gen_length=4, block_length=4, mask_id=MASK, threshold=0.9, edit_threshold=0.5,
                   edit_steps=1)
    out = generate(Changing(), torch.tensor([[6, 1], [7, 1]]), **options)  # row 0 is skipped after step 0
    assert out[0, 2:].tolist() == [9] * 4 and out[1, 2:].tolist() == [9] * 4
