import pytest
import torch

from llada_play import generate
from llada_play.ui.live import GenerationDone, Stepper, iterate_generation


def test_iterate_generation_yields_every_step_then_the_result(tiny_model, char_tokenizer):
    prompt = torch.tensor([[12, 13]])
    items = list(iterate_generation(tiny_model, prompt, char_tokenizer, steps=8, gen_length=16, block_length=8))
    assert [i.step for i in items[:-1]] == list(range(8))
    done = items[-1]
    assert isinstance(done, GenerationDone)
    assert torch.equal(done.output, generate(tiny_model, prompt, steps=8, gen_length=16, block_length=8))
    assert done.trace.final() == done.output[0].tolist()


def test_iterate_generation_raises_the_samplers_error(tiny_model):
    with pytest.raises(ValueError, match="divisible"):
        list(iterate_generation(tiny_model, torch.tensor([[12]]), steps=3, gen_length=16, block_length=8))


def test_stepper_pauses_shows_candidates_and_takes_a_hand_committed_token(tiny_model, char_tokenizer):
    mask = tiny_model.config.mask_token_id
    stepper = Stepper(tiny_model, torch.tensor([[12, 13]]), char_tokenizer, topk=3, steps=8, gen_length=16,
                      block_length=8)
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
    stepper = Stepper(tiny_model, torch.tensor([[12, 13]]), steps=8, gen_length=16, block_length=8)
    stepper.step()
    stepper.step()
    done = stepper.stop()
    assert (done.output == tiny_model.config.mask_token_id).sum() > 0
    assert len(done.trace.steps) == 2  # stopped while paused after the second step: no third step runs


def test_an_abandoned_paused_run_ends_by_itself(tiny_model):
    from llada_play.ui.live import StepGate
    gate = StepGate(auto=False, idle_timeout=0.05)
    items = list(iterate_generation(tiny_model, torch.tensor([[12]]), gate=gate, steps=8, gen_length=8,
                                    block_length=8))
    assert len(items) == 2 and isinstance(items[-1], GenerationDone)  # one step, then it gave up waiting
