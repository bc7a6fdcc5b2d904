"""Runs from many threads sharing forward passes (diffusion.shared_sampler): each caller gets exactly what its
run alone gives (tokens and step records, seeds included), fewer passes than runs x steps, and a closed or
dropped run frees its slot."""
import gc
import threading
import time

import pytest
import torch

from llada_play import LladaForMaskedLM, SamplerConfig, config_from_preset
from llada_play.diffusion.sampling import Denoising, denoise
from llada_play.diffusion.shared_sampler import SharedRun, SharedSampler

MASK, VOCAB, EOS = 3, 40, 1


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = config_from_preset("tiny", vocab_size=VOCAB, mask_token_id=MASK, eos_token_id=EOS, pad_token_id=0)
    return LladaForMaskedLM(config).eval()


CONFIG = SamplerConfig(steps=16, gen_length=16, block_length=8, temperature=1.0, remasking="random")


def alone(model, prompt, config, constraints=None):
    run = denoise(model, torch.tensor([prompt]), config, constraints=constraints)
    records = [r.x_after.clone() for r in run]
    return run.output, records


def in_threads(sampler, jobs):
    """Start every job's run at once from its own thread; returns (output, records) per job."""
    results = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def work(i, prompt, config, constraints):
        barrier.wait()
        run = sampler.start(torch.tensor([prompt]), config, constraints)
        records = [r.x_after.clone() for r in run]
        results[i] = (run.output, records)

    threads = [threading.Thread(target=work, args=(i, *job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_each_caller_gets_its_run_alone_and_the_passes_are_shared(model):
    sampler = SharedSampler(model, slots=8)
    jobs = [([5 + i % 3, 9, 12], CONFIG.replace(seed=i), None) for i in range(8)]
    try:
        got = in_threads(sampler, jobs)
    finally:
        sampler.close()
    for (prompt, config, _), (output, records) in zip(jobs, got):
        want_output, want_records = alone(model, prompt, config)
        assert torch.equal(output, want_output)
        assert len(records) == len(want_records) and all(torch.equal(a, b) for a, b in zip(records, want_records))
    assert sampler.rows_stepped == 8 * 16
    assert sampler.passes < 8 * 16 / 2  # mostly shared (the threads arrive within a few passes of each other)


def test_settings_and_lengths_that_cannot_share_run_in_their_own_groups(model):
    sampler = SharedSampler(model, slots=4)
    jobs = [([5, 9], CONFIG.replace(seed=1), None), ([5, 9, 12, 7], CONFIG.replace(seed=2), None),
            ([6, 9], CONFIG.replace(seed=3, remasking="low_confidence", temperature=0.0), None),
            ([6, 9, 4], CONFIG.replace(seed=4, threshold=0.2, eos_early_exit=True), {3: 20, 12: 21})]
    try:
        got = in_threads(sampler, jobs)
    finally:
        sampler.close()
    for (prompt, config, pins), (output, records) in zip(jobs, got):
        want_output, want_records = alone(model, prompt, config, pins)
        assert torch.equal(output, want_output)
        assert all(torch.equal(a, b) for a, b in zip(records, want_records))


def test_records_are_those_of_a_run_of_one(model):
    sampler = SharedSampler(model)
    try:
        shared = list(sampler.start(torch.tensor([[5, 9, 12]]), CONFIG.replace(seed=7, topk=3)))
    finally:
        sampler.close()
    own = list(denoise(model, torch.tensor([[5, 9, 12]]), CONFIG.replace(seed=7, topk=3)))
    assert len(shared) == len(own)
    for a, b in zip(shared, own):
        assert (a.block, a.step, a.block_step, a.block_start, a.block_end) == \
               (b.block, b.step, b.block_step, b.block_start, b.block_end)
        for name in ("x_before", "x_after", "committed", "predicted", "topk_ids"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
        for name in ("confidence", "scores", "topk_probs"):
            assert torch.allclose(getattr(a, name), getattr(b, name), equal_nan=True, atol=1e-5), name


def wait_until(condition, timeout=10.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_a_closed_or_dropped_run_frees_its_slot(model):
    sampler = SharedSampler(model, slots=1)
    slow = CONFIG.replace(steps=16, seed=0)
    try:
        first = sampler.start(torch.tensor([[5, 9]]), slow)
        next(first)
        waiting = sampler.start(torch.tensor([[6, 9]]), slow)  # no free slot: waits
        first.close()
        assert len(list(waiting)) == 16  # it got the slot
        assert (first.output == MASK).any()  # abandoned: masked positions stay masked
        dropped = sampler.start(torch.tensor([[7, 9]]), slow)
        next(dropped)
        del dropped  # a caller that went away (a closed browser) without closing
        gc.collect()
        wait_until(lambda: sampler.active == 0)
        assert len(list(sampler.start(torch.tensor([[8, 9]]), slow))) == 16
    finally:
        sampler.close()


def test_errors_are_raised_in_the_caller_and_unshareable_runs_run_alone(model):
    sampler = SharedSampler(model)
    try:
        with pytest.raises(ValueError, match="outside the model's vocabulary"):
            sampler.start(torch.tensor([[5, 99]]), CONFIG)
        with pytest.raises(ValueError, match="constraint position 40"):
            sampler.start(torch.tensor([[5, 9]]), CONFIG, {40: 5})
        with pytest.raises(ValueError, match="slots must be"):
            SharedSampler(model, slots=0)
        cached = sampler.start(torch.tensor([[5, 9]]), CONFIG.replace(cache="prefix", seed=1))
        assert isinstance(cached, Denoising) and not isinstance(cached, SharedRun)
        assert sampler.active == 0
    finally:
        sampler.close()


def test_forward_passes_use_the_samplers_threads_and_leave_the_callers_alone(model):
    seen = []
    hook = model.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    threads = 1 if before > 1 else 2  # unlike the caller's
    sampler = SharedSampler(model, threads=threads)
    try:
        output, _ = in_threads(sampler, [([5, 9, 12], CONFIG.replace(seed=3), None)])[0]
        assert set(seen) == {threads} and torch.get_num_threads() == before  # torch's setting is per thread
        assert torch.equal(output, alone(model, [5, 9, 12], CONFIG.replace(seed=3))[0])
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            SharedSampler(model, threads=0)
    finally:
        hook.remove()
        sampler.close()


def love_hook(position: int, token: int):
    """A logits hook that puts all the mass on ``token`` at ``position`` (of the run's own canvas)."""
    def hook(context, logits):
        logits[:, position] = float("-inf")
        logits[:, position, token] = 0.0
    return hook


def test_logits_hooks_and_forbid_steer_shared_runs_as_they_steer_denoise(model):
    config = CONFIG.replace(seed=3)
    prompt = torch.tensor([[5, 9, 12]])
    free = denoise(model, prompt, config).finish()
    banned = int(free[0, 6])
    options = dict(logits_hooks=love_hook(4, 17), forbid={3: [banned]})
    expected = denoise(model, prompt, config, **options).finish()
    assert expected[0, 4] == 17 and expected[0, 6] != banned  # generation position 3 is canvas position 6
    sampler = SharedSampler(model, slots=4)
    try:
        others = [sampler.start(torch.tensor([[6, 9, 12]]), config.replace(seed=s)) for s in range(3)]
        steered = sampler.start(prompt, config, **options)
        assert torch.equal(steered.finish(), expected)
        for other in others:
            other.finish()
    finally:
        sampler.close()


def test_a_steerable_shared_run_is_steered_exactly_as_denoise(model):
    config = CONFIG.replace(seed=5)
    prompt = torch.tensor([[5, 9, 12]])

    def steer(run):
        steps = []
        for record in run:
            steps.append(record.x_after.clone())
            if record.step == 1:
                masked = (record.x_after[0] == MASK).nonzero().flatten()
                record.force(int(masked[-1]), 21)
                record.forbid(int(masked[0]), int(record.predicted[0, masked[0]]))
            if record.step == 9:
                record.stop()
        return run.output, steps

    expected = steer(denoise(model, prompt, config))
    sampler = SharedSampler(model, slots=4)
    try:
        busy = [sampler.start(torch.tensor([[7, 9, 12]]), config.replace(seed=s)) for s in range(2)]
        got = steer(sampler.start(prompt, config, steer=True))
        for run in busy:
            run.finish()
    finally:
        sampler.close()
    assert torch.equal(got[0], expected[0]) and len(got[1]) == len(expected[1]) == 10
    assert all(torch.equal(a, b) for a, b in zip(got[1], expected[1]))


def test_a_streaming_shared_run_refuses_steering_by_name(model):
    sampler = SharedSampler(model)
    try:
        run = sampler.start(torch.tensor([[5, 9]]), CONFIG.replace(seed=1))
        record = next(run)
        with pytest.raises(ValueError, match="steer=True"):
            record.force(10, 5)
        with pytest.raises(ValueError, match="steer=True"):
            record.stop()
        run.close()
    finally:
        sampler.close()
