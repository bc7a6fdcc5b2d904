"""The fixed-15% vs uniform-t experiment (notebook 05 and its recorded budgets): the verdict follows the numbers,
and a recorded budget is the JSON that the notebook reads back."""
import json

import pytest

from llada_play.experiments import masking_ratio as mr
from tests.recorded import recorded_here

# The numbers of `--steps 2 --seeds 2` as the code before the twin skeleton (experiments/twins.py) recorded them:
# the same seeds must give the same numbers.
RECORDED_2_STEPS = {
    "loss_by_ratio": {
        mr.FIXED: {"0.05": 8.260384716171602, "0.15": 8.239789165713923, "0.3": 8.234566806787704,
                   "0.5": 8.235910018421903, "0.7": 8.243418514125219, "0.85": 8.246961344090138,
                   "1.0": 8.250509023666382},
        mr.UNIFORM: {"0.05": 8.292269723379293, "0.15": 8.253742596385925, "0.3": 8.228865994751908,
                     "0.5": 8.216804198618453, "0.7": 8.218272541039486, "0.85": 8.219637163352376,
                     "1.0": 8.22199273109436}},
    "nelbo": {mr.FIXED: 8.242673930564044, mr.UNIFORM: 8.232149909708287},
    "written": {mr.FIXED: {"nll": [12.87615156173706, 0.06070280075073242], "distinct": [0.9296875, 0.0078125]},
                mr.UNIFORM: {"nll": [12.954776287078857, 0.06206941604614258], "distinct": [0.9375, 0.03125]}},
}


def result(steps, fixed_nll, uniform_nll, se=0.1, nelbo_fixed=5.8, nelbo_uniform=5.9):
    written = {mr.FIXED: {"nll": [fixed_nll, se], "distinct": [0.5, 0.1]},
               mr.UNIFORM: {"nll": [uniform_nll, se], "distinct": [0.5, 0.1]}}
    return {"steps": steps, "tokens_per_model": steps * 2048, "nelbo": {mr.FIXED: nelbo_fixed, mr.UNIFORM: nelbo_uniform},
            "written": written}


def test_the_verdict_needs_two_standard_errors_and_names_the_lower_bound():
    inside = result(1000, 5.85, 5.65)  # 0.20 apart, 2 SE of the difference = 0.28
    assert not mr.uniform_writes_better(inside)
    lines = mr.conclusion(inside)
    assert "no difference shown" in lines[0] and f"lower NELBO: {mr.FIXED}" in lines[0]
    assert lines[1] == "uniform-t does not write better at this budget"
    beyond = result(4000, 6.2, 5.6, nelbo_uniform=5.5)
    assert mr.uniform_writes_better(beyond) and mr.conclusion(beyond)[1] == "uniform-t writes better here"
    assert f"lower NELBO: {mr.UNIFORM}" in mr.conclusion(beyond)[0]
    assert not mr.uniform_writes_better(result(4000, 5.6, 6.2))  # separated, the other way


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory):
    """`--steps 2 --seeds 2` run once: (its folder, its recorded budget)."""
    tmp_path = tmp_path_factory.mktemp("budget")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)  # the models go to the config's default folder, runs/masking_ratio, from here
        mr.main(["--steps", "2", "--seeds", "2", "--out", str(tmp_path / "budget-2.json")])
    return tmp_path, mr.recorded_results(tmp_path)


def test_a_recorded_budget_is_written_and_read_back(budget_run):
    tmp_path, recorded = budget_run
    out = tmp_path / "budget-2.json"
    assert [r["steps"] for r in recorded] == [2] and recorded[0] == json.loads(out.read_text())
    r = recorded[0]
    assert set(r["nelbo"]) == set(r["written"]) == {mr.FIXED, mr.UNIFORM} and r["seeds"] == 2
    assert [float(t) for t in r["loss_by_ratio"][mr.FIXED]] == mr.RATIOS
    assert all(0 < v < 20 for v in r["nelbo"].values()) and r["wall_minutes"] >= 0
    assert len(mr.conclusion(r)) == 2
    # the skeleton's results file beside the models, each named relative to it; a resume keeps both models
    results = json.loads((tmp_path / "runs" / "masking_ratio" / "results.json").read_text())
    assert [run["model_dir"] for run in results["runs"]] == ["seed0/fixed-15-bert-style/final",
                                                             "seed0/t-u-0-1-llada/final"]
    assert all((tmp_path / "runs" / "masking_ratio" / run["model_dir"] / "config.json").exists()
               for run in results["runs"])
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        again = mr.run_masking_ratio_experiment(mr.MaskingRatioConfig(**results["config"]), resume=True,
                                                train_hooks=lambda *step: pytest.fail("a finished model was retrained"))
    assert again["runs"] == results["runs"] and again["nelbo"] == r["nelbo"]


@recorded_here
def test_a_recorded_budget_has_the_numbers_recorded_before_the_twin_skeleton(budget_run):
    r = budget_run[1][0]
    for key, expected in RECORDED_2_STEPS.items():
        for name in (mr.FIXED, mr.UNIFORM):
            got, want = r[key][name], expected[name]
            if key == "written":  # {"nll": [mean, se], "distinct": [mean, se]}
                got, want = {k: tuple(v) for k, v in got.items()}, {k: tuple(v) for k, v in want.items()}
                assert set(got) == set(want) and all(got[k] == pytest.approx(want[k], rel=1e-6) for k in want)
            else:
                assert got == pytest.approx(want, rel=1e-6), (key, name)


def test_the_config_holds_the_flags_and_their_defaults(tmp_path, monkeypatch):
    config = mr.MaskingRatioConfig(steps=5)
    assert (config.seeds, config.out, config.output_dir, config.progress) == (12, None, "runs/masking_ratio", True)
    assert config.corpus_path().resolve() == mr.RESULTS_DIR.parent / "shakespeare"
    monkeypatch.chdir(tmp_path)  # the default corpus is the project's, wherever the command runs
    assert config.corpus_path() == mr.RESULTS_DIR.parent / "shakespeare"
    with pytest.raises(ValueError, match="seeds >= 2"):
        mr.MaskingRatioConfig(steps=5, seeds=1)


def test_the_notebooks_pair_and_comparison_give_the_numbers_of_the_command_line(budget_run):
    """Notebook 05's path (train_pair, then compare) trains through the same skeleton as `--steps 2 --seeds 2`:
    the same numbers, to the last digit."""
    from transformers import AutoTokenizer

    from llada_play.model.checkpoint import DEFAULT_AR_MODEL_DIR, DEFAULT_MODEL_DIR, load_model

    tokenizer = AutoTokenizer.from_pretrained(DEFAULT_MODEL_DIR)
    train_tokens, val, _ = mr.corpus_windows(tokenizer, mr.RESULTS_DIR.parent / "shakespeare")
    steps = {name: [] for name in mr.OBJECTIVES}
    models = mr.train_pair(tokenizer, train_tokens, 2, on_step=lambda name, record: steps[name].append(record.step))
    assert steps == {mr.FIXED: [1, 2], mr.UNIFORM: [1, 2]} and list(models) == [mr.FIXED, mr.UNIFORM]
    result = mr.compare(models, val, load_model(DEFAULT_AR_MODEL_DIR)[0], tokenizer.eos_token_id, range(2), 2)
    budget = budget_run[1][0]
    assert result["nelbo"] == budget["nelbo"]
    for name in models:
        assert list(result["written"][name]["nll"]) == budget["written"][name]["nll"]
