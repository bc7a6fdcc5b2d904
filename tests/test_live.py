import threading
import time

import pytest
import torch

from llada_play import SamplerConfig, generate
from llada_play.ui.live import GenerationDone, Stepper, stream

CONFIG = SamplerConfig(steps=8, gen_length=16, block_length=8)


def test_stream_yields_every_step_then_the_result_without_a_thread(tiny_model, char_tokenizer):
    prompt = torch.tensor([[12, 13]])
    threads = threading.active_count()
    items = []
    for item in stream(tiny_model, prompt, CONFIG, char_tokenizer):
        assert threading.active_count() == threads  # the run is iterated here, not in a background thread
        items.append(item)
    assert [i.step for i in items[:-1]] == list(range(8))
    done = items[-1]
    assert isinstance(done, GenerationDone)
    assert torch.equal(done.output, generate(tiny_model, prompt, **CONFIG.to_dict()))
    assert done.trace.final() == done.output[0].tolist()
    assert done.trace.sampler_config() == CONFIG


def test_stream_raises_the_samplers_error_before_the_first_step(tiny_model):
    with pytest.raises(ValueError, match="longer than the model's context"):
        next(stream(tiny_model, torch.tensor([[12]]), SamplerConfig(steps=8, gen_length=4096, block_length=4096)))


def test_stepper_pauses_shows_candidates_and_takes_a_hand_committed_token(tiny_model, char_tokenizer):
    mask = tiny_model.config.mask_token_id
    stepper = Stepper(tiny_model, torch.tensor([[12, 13]]), CONFIG.replace(topk=3), char_tokenizer)
    first = stepper.step()
    assert first.step == 0
    position = int((first.x_after[0] == mask).nonzero()[0])
    cands = stepper.candidates(position)
    assert len(cands) == 3 and cands[0][1] >= cands[1][1] >= cands[2][1]
    chosen = cands[2][0]  # not the model's favourite
    stepper.force(position, chosen)
    with pytest.raises(ValueError, match="already committed"):
        stepper.force(position, chosen)
    second = stepper.step()
    assert second.x_before[0, position] == chosen  # applied between the steps
    done = stepper.finish()
    assert done.output[0, position] == chosen and (done.output != mask).all()
    assert [0, position, chosen] in done.trace.steps[0].forced
    assert done.trace.final() == done.output[0].tolist()


def test_stepper_stop_ends_early(tiny_model):
    stepper = Stepper(tiny_model, torch.tensor([[12, 13]]), CONFIG)
    stepper.step()
    stepper.step()
    done = stepper.stop()
    assert (done.output == tiny_model.config.mask_token_id).sum() > 0
    assert len(done.trace.steps) == 2  # stopped while paused after the second step: no third step runs
    assert stepper.step() is done


def test_a_paused_run_costs_nothing_until_resumed_and_can_be_abandoned(tiny_model):
    calls = []
    handle = tiny_model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        stepper = Stepper(tiny_model, torch.tensor([[12]]), CONFIG)
        stepper.step()
        time.sleep(0.05)
        assert len(calls) == 1  # paused: nothing runs between steps
        stepper.step()
        assert len(calls) == 2
        del stepper  # abandoned: nothing left running, no thread to wait for
    finally:
        handle.remove()


def test_paced_frames_group_fast_steps_and_pass_every_item_through(monkeypatch):
    from llada_play.ui import live
    from llada_play.ui.live import GenerationDone, paced

    clock = iter([0.0, 0.01, 0.02, 0.15, 0.16, 0.40, 0.41])
    monkeypatch.setattr(live.time, "monotonic", lambda: next(clock))
    done = GenerationDone(None, None)
    frames = list(paced(iter([1, 2, 3, 4, 5, 6, done]), interval=0.1))
    # the first step at once; then whatever arrived within 0.1 s of the last frame; the end at once
    assert frames == [[1], [2, 3, 4], [5, 6], [done]]


def test_the_partial_text_shows_commits_and_a_placeholder_per_mask(char_tokenizer):
    from llada_play.model.text import decode_partial

    mask, eos = char_tokenizer.mask_token_id, char_tokenizer.eos_token_id
    ids = char_tokenizer("ab", add_special_tokens=False).input_ids
    x = torch.tensor(ids + char_tokenizer("Hi", add_special_tokens=False).input_ids + [mask, mask]
                     + char_tokenizer("yo", add_special_tokens=False).input_ids + [eos, mask])
    assert decode_partial(char_tokenizer, x, 2, mask) == "Hi__yo"
