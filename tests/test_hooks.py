import io
import re
from contextlib import redirect_stdout

import pytest
import torch
from transformers import TextDiffusionStreamer

from llada_play import SamplerConfig, StreamerHook, Trace, TraceRecorder, forbid_tokens_hook, generate


def run(model, hooks=None, **kw):
    args = dict(steps=8, gen_length=16, block_length=8)
    args.update(kw)
    return generate(model, torch.tensor([[12, 13, 14]]), hooks=hooks, **args)


def test_hooks_fire_once_per_step_with_consistent_content(tiny_model):
    records = []
    mask = tiny_model.config.mask_token_id
    out = run(tiny_model, records.append, topk=4)
    assert [r.step for r in records] == list(range(8))
    for r in records:
        changed = r.x_before != r.x_after
        assert torch.equal(changed, r.committed)
        assert (r.x_before[r.committed] == mask).all()
        # committed tokens are the predictions reported for those positions
        assert torch.equal(r.x_after[r.committed], r.predicted[r.committed])
        masked = r.x_before == mask
        assert (r.predicted[masked] >= 0).all() and (r.predicted[~masked] == -1).all()
        assert torch.isfinite(r.confidence[masked]).all() and r.confidence[~masked].isnan().all()
        assert ((r.confidence[masked] > 0) & (r.confidence[masked] <= 1)).all()
        # scores only at the current block's candidates
        in_block = torch.zeros_like(masked)
        in_block[:, r.block_start:r.block_end] = True
        assert torch.isfinite(r.scores[masked & in_block]).all() and r.scores[~(masked & in_block)].isnan().all()
        assert r.topk_ids.shape[-1] == 4
        top = r.topk_probs[masked]
        assert (top[:, :-1] >= top[:, 1:]).all()
    assert torch.equal(records[-1].x_after, out)


def test_a_hook_can_stop_the_run(tiny_model):
    mask = tiny_model.config.mask_token_id
    calls = []

    def stop_after_three(record):
        calls.append(record.step)
        if record.step == 2:
            record.stop()

    out = run(tiny_model, stop_after_three)
    assert calls == [0, 1, 2]
    assert (out == mask).sum() == 16 - 6


def test_a_hook_can_force_and_forbid_tokens(tiny_model):
    mask = tiny_model.config.mask_token_id
    free = run(tiny_model)
    banned = int(free[0, 5])  # a token the model produced at position 5 unsteered

    def steer(record):
        if record.step == 0:
            record.force(10, 40)
            record.forbid(5, banned)

    recorder = TraceRecorder()
    out = run(tiny_model, [steer, recorder])
    assert out[0, 10] == 40 and out[0, 5] != banned and (out != mask).all()
    trace = recorder.trace()
    assert trace.steps[0].forced == [[0, 10, 40]]
    assert trace.final() == out[0].tolist()
    # a forced token counts towards the block: no step re-commits it
    assert sum(len(s.commits) for s in trace.steps) == 15


def test_forcing_a_committed_position_is_an_error(tiny_model):
    def prompt_position(record):
        record.force(1, 20)

    with pytest.raises(ValueError, match="position 1: outside the generation"):
        run(tiny_model, prompt_position)

    def committed_position(record):
        position = int(record.committed[0].nonzero()[0])
        record.force(position, 20)

    with pytest.raises(ValueError, match="already committed"):
        run(tiny_model, committed_position)


def test_logits_hook_edits_the_logits(tiny_model):
    free = run(tiny_model)
    common = int(free[0, 3:].mode().values)
    out = run(tiny_model, logits_hooks=forbid_tokens_hook([common]))
    assert (out[0, 3:] != common).all()
    contexts = []
    run(tiny_model, logits_hooks=lambda ctx, logits: contexts.append((ctx.step, ctx.block)))
    assert contexts == [(i, i // 4) for i in range(8)]


def test_trace_round_trips_through_json_and_replays(tiny_model, char_tokenizer, tmp_path):
    config = SamplerConfig(steps=8, gen_length=16, block_length=8, temperature=0.5, seed=3, topk=2)
    recorder = TraceRecorder(char_tokenizer, config=config)
    out = run(tiny_model, recorder, **config.to_dict())
    trace = recorder.trace()
    path = tmp_path / "trace.json"
    trace.to_json(path)
    loaded = Trace.from_json(path)
    assert loaded == trace
    states = loaded.states()
    assert len(states) == 9 and states[-1] == out[0].tolist()
    assert states[0][:3] == [12, 13, 14] and states[0][3:] == [tiny_model.config.mask_token_id] * 16
    when = loaded.commit_step()
    assert sorted(when) == list(range(3, 19))
    assert all(loaded.tokens[str(t)] == char_tokenizer.decode([t]) for t in out[0].tolist())
    assert all(len(step.predictions) == sum(1 for v in states[i] if v == loaded.mask_id)
               for i, step in enumerate(loaded.steps))
    assert loaded.steps[0].topk and loaded.sampler_config() == config


def test_recorder_without_steps_explains():
    with pytest.raises(ValueError, match="nothing was recorded"):
        TraceRecorder().trace()


class FakeStreamer:
    def __init__(self):
        self.events = []

    def put(self, value):
        self.events.append(("put", value.tolist()))

    def put_draft(self, value):
        self.events.append(("draft", value.tolist()))

    def end(self):
        self.events.append(("end",))


def test_streamer_adapter_sends_drafts_and_confirmed_blocks(tiny_model):
    streamer = FakeStreamer()
    hook = StreamerHook(streamer, tiny_model.config.mask_token_id)
    out = run(tiny_model, hook)
    hook.end()
    kinds = [e[0] for e in streamer.events]
    assert kinds[0] == "put" and streamer.events[0][1] == [12, 13, 14]
    assert kinds.count("put") == 3 and kinds[-1] == "end"  # prompt, then two finished blocks
    confirmed = [t for e in streamer.events[1:] if e[0] == "put" for t in e[1]]
    assert confirmed == out[0, 3:].tolist()
    assert kinds.count("draft") == 6  # the steps that did not finish a block


def test_text_diffusion_streamer_prints_the_generation(tiny_model, char_tokenizer):
    streamer = TextDiffusionStreamer(char_tokenizer)
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        hook = StreamerHook(streamer, tiny_model.config.mask_token_id)
        out = run(tiny_model, hook)
        hook.end()
    # drafts are printed after a saved cursor and erased by restoring it; drop them as a terminal would
    shown = re.sub(r"\x1b7.*?\x1b8\x1b\[J", "", buffer.getvalue(), flags=re.S)
    assert "\x1b[33m" in buffer.getvalue()  # at least one draft was shown
    assert shown == char_tokenizer.decode(out[0].tolist()) + "\n"
