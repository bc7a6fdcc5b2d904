from types import SimpleNamespace

import torch
from torch import nn

from llada_play.experiments.compare import SamplerSetting, accuracy_by_setting, compare_settings, fast_decoding_settings


def test_settings_side_by_side(tiny_model, char_tokenizer):
    prompt = torch.tensor([char_tokenizer("To be").input_ids])
    settings = [SamplerSetting("confidence", dict(steps=8, gen_length=16, block_length=8)),
                SamplerSetting("threshold", dict(steps=8, gen_length=16, block_length=8, threshold=0.01)),
                SamplerSetting("cfg", dict(steps=4, gen_length=16, block_length=8, cfg_scale=1.0))]
    results = compare_settings(tiny_model, char_tokenizer, prompt, settings, seed=1)
    assert [r.name for r in results] == ["confidence", "threshold", "cfg"]
    assert results[0].steps == 8 and results[0].forward_passes == 8
    assert results[1].steps <= 8  # a low threshold commits many tokens per step
    assert results[2].forward_passes == 2 * results[2].steps == 8
    again = compare_settings(tiny_model, char_tokenizer, prompt, settings[:1], seed=1)
    assert again[0].text == results[0].text


class AnswerOracle(nn.Module):
    """Sure of one answer per prompt, whatever is on the canvas: at the ``gen_length`` positions after the
    prompt it puts the answer's tokens first, then end-of-text. ``answers[i]`` belongs to ``conversations[i]``."""

    def __init__(self, tokenizer, conversations, answers: list[str], gen_length: int):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # answer_accuracy finds the device from the parameters
        self.config = SimpleNamespace(mask_token_id=tokenizer.mask_token_id, vocab_size=len(tokenizer),
                                      eos_token_id=tokenizer.eos_token_id)
        self.pad_id, self.gen_length = tokenizer.pad_token_id, gen_length
        self.answers = {}
        for conv, answer in zip(conversations, answers):
            prompt = tokenizer.apply_chat_template(conv[:-1], add_generation_prompt=True, tokenize=False)
            ids = tokenizer(answer, add_special_tokens=False).input_ids
            assert len(ids) < gen_length  # room for the end-of-text that ends the answer
            key = tuple(tokenizer(prompt, add_special_tokens=False).input_ids)
            self.answers[key] = ids + [tokenizer.eos_token_id] * (gen_length - len(ids))

    def forward(self, input_ids, attention_mask=None):
        logits = torch.zeros(*input_ids.shape, self.config.vocab_size)
        for row, ids in enumerate(input_ids):
            prompt = tuple(t for t in ids[:-self.gen_length].tolist() if t != self.pad_id)  # without left padding
            answer = torch.tensor(self.answers[prompt])
            logits[row, torch.arange(input_ids.shape[1] - self.gen_length, input_ids.shape[1]), answer] = 30.0
        return SimpleNamespace(logits=logits)


def test_accuracy_by_setting(char_tokenizer):
    convs = [[{"role": "user", "content": f"{a}+{a}"}, {"role": "assistant", "content": str(2 * a)}]
             for a in (3, 7, 12, 45, 250)]
    truth = [c[-1]["content"] for c in convs]
    settings = [SamplerSetting("a", dict(steps=4, gen_length=4, block_length=4)),
                SamplerSetting("b", dict(steps=2, gen_length=4, block_length=4))]
    oracle = AnswerOracle(char_tokenizer, convs, truth, gen_length=4)
    rows = accuracy_by_setting(oracle, char_tokenizer, convs, settings, batch_size=2, return_answers=True)
    assert [r["forward_passes"] for r in rows] == [4, 2]
    assert [(r["accuracy"], r["well_formed"], r["n"]) for r in rows] == [(1.0, 1.0, 5), (1.0, 1.0, 5)]
    assert all(r["answers"] == truth for r in rows)
    # every prompt answered with the next prompt's answer: well formed, and all wrong
    anti_oracle = AnswerOracle(char_tokenizer, convs, truth[1:] + truth[:1], gen_length=4)
    rows = accuracy_by_setting(anti_oracle, char_tokenizer, convs, settings, batch_size=2)
    assert [(r["accuracy"], r["well_formed"], r["n"]) for r in rows] == [(0.0, 1.0, 5), (0.0, 1.0, 5)]


def test_fast_decoding_ladder_counts_windowed_passes(tiny_model, char_tokenizer):
    convs = [[{"role": "user", "content": f"{a}+{a}"}, {"role": "assistant", "content": str(2 * a)}] for a in range(5)]
    settings = fast_decoding_settings(steps=8, gen_length=8, block_length=4, threshold=0.5)
    rows = {r["setting"]: r for r in accuracy_by_setting(tiny_model, char_tokenizer, convs, settings, batch_size=5,
                                                         return_answers=True)}
    assert rows["baseline"]["forward_passes"] == 8 and rows["baseline"]["windowed_passes"] == 0
    # one full pass opens each of the two blocks; the other three steps of a block are windowed
    assert rows["cache dual"]["forward_passes"] == 8 and rows["cache dual"]["windowed_passes"] == 6
    fast = rows["threshold 0.5 + cache dual + early exit"]
    assert fast["forward_passes"] <= 8 and fast["windowed_passes"] < fast["forward_passes"]
    assert all(r["tokens_per_s"] > 0 and len(r["answers"]) == 5 for r in rows.values())


def test_compare_settings_reports_windowed_passes(tiny_model, char_tokenizer):
    prompt = torch.tensor([char_tokenizer("To be").input_ids])
    settings = [SamplerSetting("plain", dict(steps=8, gen_length=16, block_length=8)),
                SamplerSetting("dual", dict(steps=8, gen_length=16, block_length=8, cache="dual"))]
    plain, dual = compare_settings(tiny_model, char_tokenizer, prompt, settings)
    assert (plain.forward_passes, plain.windowed_passes) == (8, 0)
    assert (dual.forward_passes, dual.windowed_passes) == (8, 6)


def test_refilled_batches_give_the_fixed_batches_answers(tiny_model, char_tokenizer):
    # prompts of different lengths, so that left padding differs between the two ways of batching
    convs = [[{"role": "user", "content": f"{a}+{a * 7}"}, {"role": "assistant", "content": str(8 * a)}]
             for a in (1, 23, 456, 7, 89, 1234, 5)]
    base = dict(steps=8, gen_length=8, block_length=4, threshold=0.5, eos_early_exit=True)
    fixed, refilled = accuracy_by_setting(tiny_model, char_tokenizer, convs,
                                          [SamplerSetting("fixed", base),
                                           SamplerSetting("refill", base, refill=True)],
                                          batch_size=3, return_answers=True)
    assert refilled["answers"] == fixed["answers"] and refilled["accuracy"] == fixed["accuracy"]
    assert refilled["n"] == 7 and refilled["forward_passes"] <= fixed["forward_passes"]
