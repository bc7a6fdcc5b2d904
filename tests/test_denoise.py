"""The sampler as an iterator: one SamplerConfig, steps yielded one at a time, paused, steered, abandoned."""
import dataclasses
import json

import pytest
import torch

from llada_play import SamplerConfig, denoise, generate
from llada_play.diffusion.batching import generate_many

PROMPT = torch.tensor([[12, 13, 14]])
CONFIG = SamplerConfig(steps=8, gen_length=16, block_length=8)


def test_iterating_to_the_end_is_generate(tiny_model):
    run = denoise(tiny_model, PROMPT, CONFIG)
    records = list(run)
    assert [r.step for r in records] == list(range(8))
    assert [r.block for r in records] == [0] * 4 + [1] * 4
    assert torch.equal(run.output, generate(tiny_model, PROMPT, **CONFIG.to_dict()))
    # every record's canvas is the state after its step, and the steps commit exactly the generation
    assert torch.equal(records[-1].x_after, run.output)
    assert sum(int(r.committed.sum()) for r in records) == CONFIG.gen_length


def test_a_paused_run_resumes_where_it_stopped(tiny_model):
    sampled = CONFIG.replace(temperature=0.8, seed=5, remasking="random")
    run = denoise(tiny_model, PROMPT, sampled)
    first = [next(run) for _ in range(3)]
    snapshot = run.output.clone()
    assert torch.equal(first[-1].x_after, snapshot)
    assert torch.equal(run.output, snapshot)  # nothing moves while paused
    assert torch.equal(run.finish(), generate(tiny_model, PROMPT, **sampled.to_dict()))


def test_steering_through_the_yielded_record(tiny_model):
    mask = tiny_model.config.mask_token_id
    free = denoise(tiny_model, PROMPT, CONFIG).finish()
    run = denoise(tiny_model, PROMPT, CONFIG)
    record = next(run)
    position = int((record.x_after[0] == mask).nonzero()[-1])  # still masked, in the second block
    token = int(free[0, position]) + 1
    record.force(position, token)
    second = next(run)
    assert second.x_before[0, position] == token  # applied before the next step
    forbidden_at = int((second.x_after[0, 3:11] == mask).nonzero()[0]) + 3
    model_choice = int(free[0, forbidden_at])
    second.forbid(forbidden_at, model_choice)
    out = run.finish()
    assert out[0, position] == token and out[0, forbidden_at] != model_choice


def test_stop_and_abandon_leave_the_rest_masked(tiny_model):
    mask = tiny_model.config.mask_token_id
    run = denoise(tiny_model, PROMPT, CONFIG)
    next(run).stop()
    assert list(run) == []  # the stop takes effect when the next step is asked for
    assert int((run.output == mask).sum()) == CONFIG.gen_length - 2
    abandoned = denoise(tiny_model, PROMPT, CONFIG)
    next(abandoned)
    abandoned.close()
    assert list(abandoned) == [] and int((abandoned.output == mask).sum()) == CONFIG.gen_length - 2


def test_without_observers_records_are_light_and_the_canvas_is_live(tiny_model):
    run = denoise(tiny_model, PROMPT, CONFIG, observe=False)
    record = next(run)
    assert record.predicted is None and record.x_before is None and record.x_after is run.output
    assert torch.equal(run.finish(), generate(tiny_model, PROMPT, **CONFIG.to_dict()))


def test_errors_come_before_the_first_step(tiny_model):
    with pytest.raises(ValueError, match="divisible by the number of blocks"):
        SamplerConfig(steps=3, gen_length=16, block_length=8)
    with pytest.raises(ValueError, match="longer than the model's context"):
        denoise(tiny_model, PROMPT, CONFIG.replace(gen_length=4096, block_length=4096, steps=8))
    with pytest.raises(ValueError, match="needs a non-empty prompt"):
        denoise(tiny_model, torch.zeros(1, 0, dtype=torch.long), CONFIG.replace(cfg_scale=1.0))


def test_config_round_trips_through_json_and_refuses_unknown_names():
    config = SamplerConfig(steps=16, gen_length=32, block_length=8, temperature=0.5, remasking="margin",
                           threshold=0.8, eos_token_ids=[2, 3], eos_last=True, cache="dual", seed=7)
    assert config.eos_token_ids == (2, 3)
    assert SamplerConfig.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["eos_token_ids"] == [2, 3]
    with pytest.raises(ValueError, match="unknown sampler option.*gen_len"):
        SamplerConfig.from_dict({"gen_len": 8})
    with pytest.raises(ValueError, match="unknown remasking strategy 'threshold'"):
        SamplerConfig(remasking="threshold")  # one name per option: threshold decoding is threshold=...
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.steps = 4
    assert config.describe().startswith("steps=16, gen_length=32, block_length=8, temperature=0.5")


def test_steps_beyond_the_tokens_are_clamped_with_a_warning():
    with pytest.warns(UserWarning, match="exceeds the 16 tokens"):
        config = SamplerConfig(steps=32, gen_length=16, block_length=16)
    assert config.steps == 16


def test_generate_many_takes_the_same_config(tiny_model):
    prompts = [[12, 13, 14], [15, 16], [12]]
    config = CONFIG.replace(eos_last=True, eos_token_ids=[3])
    batched = generate_many(tiny_model, prompts, 2, config)
    for prompt, row in zip(prompts, batched):
        assert row.tolist() == generate(tiny_model, torch.tensor([prompt]), **config.to_dict())[0].tolist()


def test_constraints_per_row_as_a_tensor(tiny_model):
    prompt = torch.tensor([[12, 13, 14], [15, 16, 17]])
    pins = torch.full((2, 16), -1)
    pins[0, 0], pins[1, 5] = 20, 21
    out = denoise(tiny_model, prompt, CONFIG, constraints=pins).finish()
    assert out[0, 3] == 20 and out[1, 8] == 21
    free = generate(tiny_model, prompt, **CONFIG.to_dict())
    assert out[1, 3] != 20 or free[1, 3] == 20  # row 0's pin is not applied to row 1
    with pytest.raises(ValueError, match=r"constraints tensor shape \(2, 8\) differs"):
        denoise(tiny_model, prompt, CONFIG, constraints=torch.full((2, 8), -1))


@pytest.mark.parametrize("options", [dict(), dict(temperature=1.0, seed=3), dict(cache="dual", seed=1),
                                     dict(remask="cap", remask_eta=0.3, seed=2)])
def test_a_forked_run_goes_on_as_the_original_would_and_on_its_own(tiny_model, options):
    config = CONFIG.replace(**options)
    whole = denoise(tiny_model, PROMPT, config).finish()
    run = denoise(tiny_model, PROMPT, config)
    for _ in range(3):
        record = next(run)
    fork = run.fork()
    assert torch.equal(fork.finish(), whole)  # untouched, the fork is the rest of the same run
    assert torch.equal(run.finish(), whole)  # and finishing it left the original alone
    run = denoise(tiny_model, PROMPT, config)
    record = next(run)
    fork = run.fork()
    masked = int((record.x_after[0] == tiny_model.config.mask_token_id).nonzero()[0])
    next(fork)  # the fork's own record: steering the original's does not reach it
    record.force(masked, 7)
    out = run.finish()
    assert out[0, masked] == 7 and not torch.equal(fork.finish(), out)
