"""The in-context-learning task (its generator, its refusals), the scoring of both kinds of model on it, and a
tiny end-to-end run of the experiment (train, score, resume, the command line)."""
import json
import random
import subprocess
import sys

import pytest
import torch
from transformers import AutoTokenizer

from llada_play.diffusion.losses import autoregressive_log_likelihood, mc_log_likelihood
from llada_play.experiments.icl import (accuracy, copy_any_label, encode, generated_answers, label_id,
                                        ranked_answers, slot_log_probs)
from llada_play.experiments.icl_data import (FORMATS, HELD_OUT_KEYS, HOME, LABELS, LAYOUTS, SHOTS, TRAINING_KEYS,
                                             VARIANTS, FewShotTask, TrainingMix, check_fits, check_labels,
                                             draw_prompts, longest_prompt_tokens, prompt_tokens, training_texts)
from llada_play.experiments.icl_experiment import ICLConfig, point_key, points, run_icl_experiment
from llada_play.model.checkpoint import DEFAULT_MODEL_DIR
from llada_play.model.config import config_from_preset
from llada_play.model.modeling import LladaForMaskedLM
from llada_play.model.tokenizer import special_token_ids


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(DEFAULT_MODEL_DIR, local_files_only=True)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_answer_is_the_label_its_own_examples_give(variant, layout):
    for shots in SHOTS[1:]:
        for p in draw_prompts(FewShotTask(shots, variant=variant, layout=layout), 200, seed=3):
            assert len(p.examples) == shots and p.determined(), p
            assert p.answer in p.labels and all(v in p.labels for _, v in p.examples)
            assert len({k for k, _ in p.examples}) == min(shots, 4)  # every key shown gets an example
            mapping = {}
            for k, v in p.examples:  # one mapping per prompt: a key never gets two labels
                assert mapping.setdefault(k, v) == v
            if variant == "fresh":
                assert all(k in HELD_OUT_KEYS for k, _ in p.examples)
            elif variant == "agreeing":
                assert all(v == HOME[k] for k, v in p.examples)
            else:  # flipped: no real word gets its own colour, and the same word always the same other one
                assert all(v != HOME[k] for k, v in p.examples)


def test_mappings_are_fresh_in_every_prompt():
    """Across prompts the same key gets different labels: a mapping cannot be memorised."""
    seen: dict[str, set] = {}
    for p in draw_prompts(FewShotTask(8), 3000, seed=0):
        for k, v in p.examples:
            seen.setdefault(k, set()).add(v)
    repeated = [labels for labels in seen.values() if len(labels) > 1]
    assert len(repeated) > 100


def test_held_out_keys_are_never_trained_on():
    assert not set(HELD_OUT_KEYS) & set(TRAINING_KEYS) and not set(HOME) & set(TRAINING_KEYS + HELD_OUT_KEYS)
    texts = training_texts(TrainingMix(), 3000, seed=0)
    words = {line.split()[0].rstrip(":") for text in texts for line in text.splitlines()}
    assert not words & set(HELD_OUT_KEYS)
    assert words & set(HOME) and words & set(TRAINING_KEYS)


def test_zero_shots_is_chance():
    prompts = draw_prompts(FewShotTask(0), 3000, seed=1)
    assert all(not p.examples and p.before_answer() == p.format.format(key=p.key) for p in prompts)
    share = sum(p.answer == p.labels[0] for p in prompts) / len(prompts)
    assert abs(share - 1 / 3) < 0.04  # the answer is no label in particular: nothing but chance can find it
    assert copy_any_label(prompts) == pytest.approx(1 / 3)


def test_prompts_are_seeded():
    task = FewShotTask(4, format=None)
    assert draw_prompts(task, 50, seed=7) == draw_prompts(task, 50, seed=7)
    assert draw_prompts(task, 50, seed=7) != draw_prompts(task, 50, seed=8)
    assert {p.format for p in draw_prompts(task, 200, seed=7)} == set(FORMATS)  # the format varies
    assert {p.format for p in draw_prompts(FewShotTask(4, format="{key} ="), 50, seed=7)} == {"{key} ="}
    assert training_texts(TrainingMix(), 20, seed=1) == training_texts(TrainingMix(), 20, seed=1)


def test_layouts_hold_the_same_lines():
    before, after = (draw_prompts(FewShotTask(4, layout=lay, format="{key} ->"), 1, seed=2)[0] for lay in LAYOUTS)
    assert before.text().endswith(f"{before.key} -> {before.answer}") and before.after_answer() == ""
    assert after.text().startswith(f"{after.key} -> {after.answer}\n") and after.before_answer() == f"{after.key} ->"
    assert sorted(after.text().splitlines()) == sorted([*(f"{k} -> {v}" for k, v in after.examples),
                                                       f"{after.key} -> {after.answer}"])


@pytest.mark.parametrize("settings, message", [
    (dict(shots=-1), "shots must be a whole number"),
    (dict(shots=2.5), "shots must be a whole number"),
    (dict(labels_per_prompt=1), "labels_per_prompt must be between 2 and 6"),
    (dict(labels_per_prompt=7), "labels_per_prompt must be between 2 and 6"),
    (dict(keys_per_prompt=0), "keys_per_prompt must be >= 1"),
    (dict(variant="sideways"), "variant must be one of"),
    (dict(layout="middle"), "layout must be one of"),
    (dict(format="{key} ~"), "format must be one of"),
    (dict(variant="flipped", keys_per_prompt=20, labels_per_prompt=2), "at most 8 real words"),
])
def test_bad_settings_are_refused_by_name(settings, message):
    with pytest.raises(ValueError, match=message):
        FewShotTask(**settings)


def test_shots_that_do_not_fit_the_context_are_refused(tokenizer):
    check_fits(tokenizer, 16, 160)
    with pytest.raises(ValueError, match=r"40 examples may need \d+ tokens, more than the context of 160; at most 16"):
        check_fits(tokenizer, 40, 160)
    for shots in (1, 8, 16):  # the bound holds for every prompt drawn
        bound = longest_prompt_tokens(tokenizer, shots)
        assert all(prompt_tokens(tokenizer, p) <= bound for p in draw_prompts(FewShotTask(shots), 300, seed=0))
    with pytest.raises(ValueError, match="max_shots must be at least 16"):
        ICLConfig(max_shots=8)
    with pytest.raises(ValueError, match="fixed_ratio"):
        ICLConfig(fixed_ratio=float("nan"))


def test_labels_are_one_token(tokenizer):
    check_labels(tokenizer)
    assert len({label_id(tokenizer, label) for label in LABELS}) == len(LABELS)


def _tiny(tokenizer, causal: bool) -> LladaForMaskedLM:
    torch.manual_seed(0)
    return LladaForMaskedLM(config_from_preset("tiny", causal=causal, **special_token_ids(tokenizer))).eval()


def test_ranking_scores_are_the_likelihoods(tokenizer):
    """The diffusion model's slot score is its Monte-Carlo bound, exact for a one-token label; the twin's is its
    exact log-probability; a batch of prompts of different lengths gives each one's own scores."""
    prompts = draw_prompts(FewShotTask(4), 5, seed=4) + draw_prompts(FewShotTask(1), 3, seed=4)
    diffusion, twin = _tiny(tokenizer, False), _tiny(tokenizer, True)
    slots_d, slots_t = (slot_log_probs(m, tokenizer, prompts, batch_size=3) for m in (diffusion, twin))
    for i, p in enumerate(prompts):
        before, _ = encode(tokenizer, p)
        answer = torch.tensor([label_id(tokenizer, p.answer)])
        bound = mc_log_likelihood(diffusion, torch.tensor(before), answer, diffusion.config.mask_token_id, 4, 4)
        assert slots_d[i, answer].item() == pytest.approx(bound, abs=1e-4)
        exact = autoregressive_log_likelihood(twin, torch.tensor(before), answer)
        assert slots_t[i, answer].item() == pytest.approx(exact, abs=1e-4)
    for model in (diffusion, twin):
        answers = ranked_answers(model, tokenizer, prompts)
        assert all(a in p.labels for a, p in zip(answers, prompts))
    joint = ranked_answers(twin, tokenizer, draw_prompts(FewShotTask(4, layout="after"), 6, seed=4), joint=True)
    assert len(joint) == 6
    with pytest.raises(ValueError, match="joint scoring is for the causal twin"):
        ranked_answers(diffusion, tokenizer, prompts, joint=True)


def test_generation_in_place_keeps_what_follows(tokenizer):
    """In the after layout the diffusion model fills the slot alone: batched answers equal one-by-one ones."""
    prompts = draw_prompts(FewShotTask(4, layout="after"), 5, seed=5) + draw_prompts(FewShotTask(2, layout="after"),
                                                                                    3, seed=5)
    for causal in (False, True):
        model = _tiny(tokenizer, causal)
        together = generated_answers(model, tokenizer, prompts, batch_size=8)
        alone = [generated_answers(model, tokenizer, [p])[0] for p in prompts]
        assert together == alone


def test_accuracy_and_its_standard_error():
    prompts = draw_prompts(FewShotTask(2), 4, seed=0)
    result = accuracy([prompts[0].answer, "nothing", prompts[2].answer, prompts[3].answer], prompts)
    assert result == {"accuracy": 0.75, "se": pytest.approx((0.75 * 0.25 / 4) ** 0.5), "n": 4}
    with pytest.raises(ValueError, match="one answer per prompt"):
        accuracy(["red"], prompts)


def test_a_tiny_run_trains_scores_and_resumes(tmp_path):
    config = ICLConfig.quick(output_dir=str(tmp_path / "icl"))
    results = run_icl_experiment(config)
    assert {r["model"] for r in results["runs"]} == {"diffusion", "autoregressive", "diffusion, fixed t"}
    for run in results["runs"]:
        for layout, variant, shots in points(config):
            point = run["scores"][point_key(layout, variant, shots)]
            assert set(point) == ({"generation", "ranking", "joint"} if run["model"] == "autoregressive"
                                  and layout == "after" else {"generation", "ranking"})
            assert all(len(m["correct"]) == m["n"] == config.eval_prompts for m in point.values())
        assert [p["step"] for p in run["by_step"]] == [1, 30, 60]
        assert all(0 <= p["fresh"] <= 1 and 0 <= p["flipped"] <= 1 for p in run["by_step"])
    assert results["chance"] == pytest.approx(1 / 3)
    assert set(results["copy_any_label"]) == {point_key(*p) for p in points(config)}
    again = run_icl_experiment(config, resume=True)  # everything scored is kept as it is
    assert [r["scores"] for r in again["runs"]] == [r["scores"] for r in results["runs"]]
    assert again["wall_time_s"] < results["wall_time_s"] / 2
    assert json.loads((tmp_path / "icl" / "results.json").read_text())["summary"] == again["summary"]


def test_the_command_line_refuses_bad_settings_in_one_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "llada_play.experiments.icl_experiment", "--quick",
                          "--labels-per-prompt", "9", "--output-dir", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == ["error: labels_per_prompt must be between 2 and 6 (the labels there "
                                               "are: red, green, white, black, gold, silver), got 9"]
    assert not any(tmp_path.iterdir())


def test_training_windows_start_at_a_document(tokenizer):
    from llada_play.training.data import DocumentBatches

    texts = training_texts(TrainingMix(), 300, seed=0)
    batches = DocumentBatches.from_texts(tokenizer, texts, 160, 8)
    firsts = {tuple(tokenizer(t, add_special_tokens=False).input_ids[:3]) for t in texts}
    windows = batches.next_batch(torch.Generator().manual_seed(0))["input_ids"]
    assert windows.shape == (8, 160)
    assert all(tuple(w[:3].tolist()) in firsts for w in windows)  # each begins a document, not mid-way
    again = batches.next_batch(torch.Generator().manual_seed(0))["input_ids"]
    assert torch.equal(windows, again)  # the same order for both kinds: the same generator seed


def test_someones_own_examples_are_read_back_into_a_prompt():
    """Lines of any separator give the pairs and the first line's format; the answer is the label the examples
    give the key, none where they give none or disagree; a line that is not an example is refused by number."""
    from llada_play.experiments.icl_data import own_prompt, parse_examples

    pairs, fmt = parse_examples("dakul: red\n\nmipo -> gold\nsuvet = green\nzak is white\nab->cd\n")
    assert pairs == [("dakul", "red"), ("mipo", "gold"), ("suvet", "green"), ("zak", "white"), ("ab", "cd")]
    assert fmt == "{key}:"
    drawn = draw_prompts(FewShotTask(8), 1, 3)[0]
    read, read_format = parse_examples("\n".join(drawn.line(k, v) for k, v in drawn.examples))
    again = own_prompt(read, drawn.key, format=read_format)
    assert read_format == drawn.format and again.before_answer() == drawn.before_answer()
    assert again.answer == drawn.answer
    assert own_prompt(pairs, "nobody").answer == ""  # not in the examples
    assert own_prompt([("a", "red"), ("a", "gold")], "a").answer == ""  # the examples disagree
    assert own_prompt([("a", "red")], "a").labels == LABELS  # one label shown: ranked among all
    with pytest.raises(ValueError, match=r"line 2 \('mipo gold'\) is not an example"):
        parse_examples("dakul -> red\nmipo gold")
    with pytest.raises(ValueError, match="ask for one key"):
        own_prompt(pairs, "two words")


def test_a_paired_comparison_counts_the_prompts_where_the_two_disagree():
    from llada_play.experiments.paired import paired_comparison, sign_test_p

    result = paired_comparison("1110001", "1000000")
    assert (result["a_only"], result["b_only"], result["n"]) == (3, 0, 7)
    assert result["difference"] == pytest.approx(3 / 7) and result["p"] == pytest.approx(2 * 0.5 ** 3)
    assert sign_test_p(0, 0) == 1.0 and sign_test_p(5, 5) == 1.0
    assert sign_test_p(600, 500) == pytest.approx(0.00282, abs=2e-5)  # scipy.stats.binomtest(600, 1100)
    same = paired_comparison("1010", "1010")
    assert same["difference"] == 0 and same["se"] == 0 and same["p"] == 1.0
    with pytest.raises(ValueError, match="the same prompts"):
        paired_comparison("101", "10")


def _synthetic_results(rules: dict) -> dict:
    """A results dict of two seeds whose answers follow ``rules``: kind -> function(layout, variant, shots, i)
    -> right or not, for prompt i of 300."""
    from llada_play.experiments.icl_experiment import ICLConfig, points

    config = ICLConfig(eval_prompts=300)
    runs = []
    for seed in (0, 1):
        for kind, rule in rules.items():
            scores = {}
            for layout, variant, shots in points(config):
                bits = "".join("1" if rule(layout, variant, shots, i + seed) else "0" for i in range(300))
                method = {"accuracy": bits.count("1") / 300, "correct": bits, "n": 300, "se": 0.0}
                scores[point_key(layout, variant, shots)] = {"ranking": method, "generation": method,
                                                             **({"joint": method} if kind == "autoregressive" else {})}
            runs.append({"seed": seed, "model": kind, "scores": scores, "by_step": [
                {"step": s, "fresh": f, "flipped": 0.3} for s, f in ((1, 0.33), (250, 0.6), (500, 0.7))]
                if kind == "autoregressive" else [{"step": s, "fresh": 0.33, "flipped": 0.3} for s in (1, 250, 500)]})
    return {"config": {"eval_prompts": 300, "fixed_ratio": 0.8}, "runs": runs, "chance": 1 / 3,
            "copy_any_label": {point_key(*p): 0.5 for p in points(config)}}


def test_the_conclusions_follow_the_answers():
    """A twin right on every prompt with examples and a third of those without, a diffusion model right on a
    third everywhere: the twin learns from the examples (beyond copying), the diffusion model does not, and
    the twin is ahead; the flipped prompts and the curve are read the same way."""
    from llada_play.experiments.icl_report import conclusions, first_step_above, pooled

    guess = lambda layout, variant, shots, i: i % 3 == 0  # noqa: E731 - right on a third
    reader = lambda layout, variant, shots, i: layout == "before" and shots > 0 or i % 3 == 0  # noqa: E731
    results = _synthetic_results({"diffusion": guess, "autoregressive": reader})
    assert pooled(results, "autoregressive", "before/fresh/16")["accuracy"] == 1.0
    lines = conclusions(results)
    assert any(line.startswith("autoregressive twin: 100.0% ± 0.0% at 16 shots (seeds: 100%, 100%)") and "it learns from the examples; and beyond "
               "copying any shown label (50.0%)" in line for line in lines), lines
    assert any(line.startswith("diffusion: ") and "does not learn from the examples" in line for line in lines)
    assert any("Diffusion against the twin at 16 shots: -66.7%" in line and "the twin ahead" in line for line in lines)
    assert any(line.startswith("autoregressive twin, flipped") and "the examples, not the prior, decide" in line
               for line in lines)
    assert any(line.startswith("autoregressive twin, examples after") and "not above chance" in line
               for line in lines)
    assert first_step_above(results, "autoregressive", 1) == 250 and first_step_above(results, "diffusion", 0) is None


def test_an_answer_followed_by_the_end_of_text_is_the_label(tokenizer):
    """A model that ends the document after its answer (as after a 16-example question, the most a training
    document holds) has answered: special tokens are no part of the word."""
    from llada_play.experiments.icl import answer_of

    ids = tokenizer(" white", add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    assert answer_of(tokenizer, ids) == "white"
    assert answer_of(tokenizer, tokenizer("\n dakul", add_special_tokens=False).input_ids) == "dakul"
