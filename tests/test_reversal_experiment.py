"""The reversal-curse runner end to end on a tiny model, its CLI, its data options and its views."""
import dataclasses
import json
from pathlib import Path

import pytest

from llada_play.cli import main
from llada_play.experiments.reversal_data import facts_from_files, make_dataset, make_facts, write_dataset
from llada_play.experiments.reversal_experiment import (ReversalConfig, conclusions, read_results, results_figure,
                                            results_markdown, run_reversal_experiment, summarise,
                                            training_sentences)
from tests.recorded import recorded_here

TINY = dict(people_per_subset=5, steps=6, preset="tiny", seeds=[0, 1], eval_rows=5, mc_samples=4, batch_size=4,
            seq_len=32, warmup=2)
# (seed, kind, final training loss, scores) of the TINY run, as the code before the twin skeleton
# (experiments/twins.py) recorded them: the same seeds must give the same numbers.
RECORDED_TINY = [
    (0, "diffusion", 5.027624130249023, {
        "generation": {"p2d_forward": 0.0, "p2d_reverse": 0.0, "d2p_forward": 0.0, "d2p_reverse": 0.0, "both_forward": 0.0},
        "ranking": {"p2d_forward": 0.6, "p2d_reverse": 0.6, "d2p_forward": 0.2, "d2p_reverse": 0.2, "both_forward": 0.0},
        "infilling": {"p2d": 0.0}, "infilling_ranking": {"p2d": 0.2}}),
    (0, "autoregressive", 7.702376842498779, {
        "generation": {"p2d_forward": 0.0, "p2d_reverse": 0.0, "d2p_forward": 0.0, "d2p_reverse": 0.0, "both_forward": 0.0},
        "ranking": {"p2d_forward": 0.4, "p2d_reverse": 0.2, "d2p_forward": 0.2, "d2p_reverse": 0.0, "both_forward": 0.4},
        "infilling": {"p2d": None}, "infilling_ranking": {"p2d": 0.2}}),
    (1, "diffusion", 9.268267631530762, {
        "generation": {"p2d_forward": 0.0, "p2d_reverse": 0.0, "d2p_forward": 0.0, "d2p_reverse": 0.0, "both_forward": 0.0},
        "ranking": {"p2d_forward": 0.6, "p2d_reverse": 0.2, "d2p_forward": 0.0, "d2p_reverse": 0.0, "both_forward": 0.2},
        "infilling": {"p2d": 0.0}, "infilling_ranking": {"p2d": 0.2}}),
    (1, "autoregressive", 7.849498748779297, {
        "generation": {"p2d_forward": 0.0, "p2d_reverse": 0.0, "d2p_forward": 0.0, "d2p_reverse": 0.0, "both_forward": 0.0},
        "ranking": {"p2d_forward": 0.4, "p2d_reverse": 0.2, "d2p_forward": 0.0, "d2p_reverse": 0.0, "both_forward": 0.2},
        "infilling": {"p2d": None}, "infilling_ranking": {"p2d": 0.2}}),
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, dict]:
    """(output folder, results) of the TINY run, trained once for the tests below."""
    out = tmp_path_factory.mktemp("reversal") / "runs"
    return out, run_reversal_experiment(ReversalConfig(output_dir=str(out), progress=False, **TINY))


def test_facts_are_recovered_from_published_files():
    files = make_dataset(people_per_subset=6, test_templates=3)
    truth = {f.name: f.description for f in make_facts(6)}
    for subset in ("p2d", "d2p"):
        facts = facts_from_files(files, subset)
        assert len(facts) == 6
        assert all(truth[f.name] == f.description and f.subset == subset for f in facts)


def test_training_sentences_are_every_train_row_once():
    files = make_dataset(people_per_subset=4, train_templates=5, test_templates=2)
    sentences = training_sentences(files, seed=3)
    assert len(sentences) == sum(len(v) for k, v in files.items() if k.endswith("_train"))
    assert sentences == training_sentences(files, seed=3) != training_sentences(files, seed=4)
    tests = {r["prompt"] for k, v in files.items() if k.endswith("_test") for r in v}
    assert not any(s.startswith(p + " ") for s in sentences for p in tests)  # held-out templates stay out


def test_tiny_run_writes_a_well_formed_result_file(tiny_run):
    out, results = tiny_run
    on_disk = read_results(out / "results.json")
    assert on_disk == json.loads(json.dumps(results))
    # the file names each model relative to itself (no machine path); the results returned and read open them
    as_written = json.loads((out / "results.json").read_text())["runs"]
    assert [r["model_dir"] for r in as_written] == [f"seed{r['seed']}/{r['model']}/final" for r in results["runs"]]
    assert [r["model_dir"] for r in results["runs"]] == [str(out / r["model_dir"]) for r in as_written]
    assert len(results["runs"]) == 4 and {r["model"] for r in results["runs"]} == {"diffusion", "autoregressive"}
    assert results["tokens_per_model"] == 6 * 4 * 32
    for run in results["runs"]:
        assert set(run["scores"]) == {"generation", "ranking", "infilling", "infilling_ranking"}
        assert set(run["scores"]["generation"]) == {"p2d_forward", "p2d_reverse", "d2p_forward", "d2p_reverse",
                                                    "both_forward"}
        for metric, values in run["scores"].items():
            for v in values.values():
                assert v is None or 0.0 <= v <= 1.0
        assert (run["scores"]["infilling"]["p2d"] is None) == (run["model"] == "autoregressive")
        assert (out / f"seed{run['seed']}" / run["model"] / "final" / "config.json").exists()
    summary = results["summary"]["diffusion"]["ranking/p2d_reverse"]
    values = [r["scores"]["ranking"]["p2d_reverse"] for r in results["runs"] if r["model"] == "diffusion"]
    assert summary["values"] == values and summary["mean"] == pytest.approx(sum(values) / 2)
    assert "infilling/p2d" not in results["summary"]["autoregressive"]
    table = results_markdown(results)
    assert "ranking/p2d_reverse" in table and "diffusion" in table
    fig = results_figure(results)
    assert [t.name for t in fig.data] == ["diffusion", "autoregressive"]


def _same_numbers(got, expected, where: str = "") -> None:
    """Every number of ``got`` equals ``expected``'s (to float rounding), key for key."""
    if isinstance(expected, dict):
        assert set(got) == set(expected), where
        for key in expected:
            _same_numbers(got[key], expected[key], f"{where}/{key}")
    else:
        assert got == (expected if expected is None else pytest.approx(expected, rel=1e-6, abs=1e-9)), where


@recorded_here
def test_the_tiny_run_gives_the_numbers_recorded_before_the_twin_skeleton(tiny_run):
    _, results = tiny_run
    assert [(r["seed"], r["model"]) for r in results["runs"]] == [(s, k) for s, k, _, _ in RECORDED_TINY]
    for run, (seed, kind, loss, scores) in zip(results["runs"], RECORDED_TINY):
        assert run["final_train_loss"] == pytest.approx(loss, rel=1e-6), (seed, kind)
        _same_numbers(run["scores"], scores, f"seed {seed} {kind}")


def test_the_config_speaks_the_run_registry_names_and_still_takes_out_dir(tiny_run):
    out, results = tiny_run
    config = ReversalConfig.from_dict(results["config"])
    assert config.output_dir == str(out) and results["config"]["progress"] is False
    assert ReversalConfig().progress is True and ReversalConfig().output_dir == "runs/reversal"
    old = ReversalConfig(out_dir="elsewhere")  # the former name: built with it and read by it
    assert old.output_dir == old.out_dir == "elsewhere"
    moved = dataclasses.replace(old, output_dir="sweep/1", progress=False)  # what a sweep does to a config
    assert (moved.output_dir, moved.progress, moved.steps) == ("sweep/1", False, old.steps)
    assert ReversalConfig.quick(out_dir="q").output_dir == "q"
    assert ReversalConfig.from_dict({"out_dir": "runs/reversal-long", "steps": 7}).output_dir == "runs/reversal-long"
    assert "out_dir" not in dataclasses.asdict(old)


def test_cli_runs_on_data_in_the_published_layout(tmp_path, capsys):
    data = tmp_path / "data"
    write_dataset(data, people_per_subset=5, train_templates=4, test_templates=2)
    out = tmp_path / "results.json"
    code = main(["reversal", "--out", str(out), "--data", str(data), "--preset", "tiny", "--steps", "3",
                 "--seeds", "0", "--models", "diffusion", "--eval-rows", "3", "--no-progress"])
    assert code == 0
    results = read_results(out)
    assert results["config"]["data_dir"] == str(data)
    assert results["data"]["p2d_prompts_train"] == 5 * 4
    assert [r["model"] for r in results["runs"]] == ["diffusion"]
    # the copy beside --out finds the models under the run's folder
    assert all(Path(r["model_dir"], "config.json").exists() for r in results["runs"])
    assert "generation/p2d_reverse" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--init", "nowhere"], "invalid choice"),
    (["--seeds", "a,b"], "comma-separated integers"),
    (["--models", "diffusion,rnn"], "models must be"),
    (["--steps", "0"], "steps must be >= 1"),
])
def test_bad_options_give_one_clear_line(tmp_path, capsys, argv, message):
    try:
        code = main(["reversal", "--out", str(tmp_path / "r.json"), "--no-progress", *argv])
    except SystemExit as exit_:  # argparse refuses choices and types itself
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_bad_results_file_is_named(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"runs": []}')
    with pytest.raises(ValueError, match="not a reversal results file"):
        read_results(path)
    path.write_text("{")
    with pytest.raises(ValueError, match="cannot read reversal results"):
        read_results(path)


def _result(scores: dict[str, dict[str, list[float]]], eval_rows: int = 100) -> dict:
    """A results dict with the given per-seed values (model kind -> metric -> values)."""
    runs = [{"model": kind, "seed": seed, "scores": {}} for kind in scores for seed in range(2)]
    for run in runs:
        for metric, values in scores[run["model"]].items():
            family, key = metric.split("/")
            run["scores"].setdefault(family, {})[key] = values[run["seed"]]
    return {"config": {"distractors": 4, "seeds": [0, 1], "eval_rows": eval_rows}, "runs": runs,
            "summary": summarise(runs)}


def test_conclusions_are_decided_by_the_numbers():
    curse = {"generation/p2d_forward": [0.8, 0.76], "ranking/p2d_forward": [1.0, 0.98],
             "generation/p2d_reverse": [0.0, 0.0], "ranking/p2d_reverse": [0.22, 0.18]}
    breaks = {"generation/p2d_forward": [0.3, 0.3], "ranking/p2d_forward": [0.72, 0.70],
              "generation/p2d_reverse": [0.0, 0.02], "ranking/p2d_reverse": [0.66, 0.62]}
    at_chance = {"generation/p2d_forward": [0.0, 0.0], "ranking/p2d_forward": [0.2, 0.24],
                 "generation/p2d_reverse": [0.0, 0.0], "ranking/p2d_reverse": [0.2, 0.2]}
    lines = conclusions(_result({"diffusion": breaks, "autoregressive": curse}))
    assert lines[-2:] == ["=> the autoregressive model learnt the facts as stated and shows the reversal curse.",
                          "=> the diffusion model learnt the facts as stated and ranks the true answer of a "
                          "reversed question above chance (64%, chance 20%) but writes only 1% of them."]
    assert lines[0].startswith("diffusion: trained direction ranking 71%, generation 30% -> learnt; reversed "
                               "ranking 64%")
    assert "at chance in the trained direction" in conclusions(_result({"diffusion": at_chance}))[-1]
    # a spread as wide as the gap to chance is no evidence: 0.1 and 0.7 average 0.4 but std 0.42
    noisy = {**at_chance, "ranking/p2d_reverse": [0.1, 0.7]}
    assert "at or below chance" in conclusions(_result({"diffusion": noisy}))[0]
    # 50% twice: above chance over 100 rows a seed, but over 3 rows a seed it could be luck (a guess is right 1
    # time in 5)
    half = breaks | {"ranking/p2d_reverse": [0.5, 0.5]}
    assert "-> above chance" in conclusions(_result({"diffusion": half}, eval_rows=100))[0]
    assert "-> at or below chance" in conclusions(_result({"diffusion": half}, eval_rows=3))[0]
    # the curse broken by the autoregressive model would be said, not hidden
    # ... in the metric that shows it: ranking a reversed answer is not writing it
    assert conclusions(_result({"autoregressive": breaks}))[-1].endswith(
        "but writes only 1% of them: the curse holds for writing, not for ranking.")
    writes = breaks | {"generation/p2d_reverse": [0.3, 0.2]}
    assert conclusions(_result({"autoregressive": writes}))[-1].endswith(
        "(64%, chance 20%) and writes 25% of them: no reversal curse here.")
    # data without name-first questions (e.g. a directory holding only d2p files): no verdict, no error
    assert conclusions(_result({"diffusion": {"ranking/d2p_reverse": [0.5, 0.5]}})) == []


def test_models_shipped_beside_a_result_are_found_from_anywhere(tmp_path, monkeypatch):
    shipped = tmp_path / "results"
    (shipped / "long-models" / "seed0" / "diffusion").mkdir(parents=True)
    result = {"config": {}, "summary": {}, "runs": [
        {"model": "diffusion", "seed": 0, "model_dir": "long-models/seed0/diffusion"},  # beside the file
        {"model": "autoregressive", "seed": 0, "model_dir": "runs/x/seed0/autoregressive/final"},  # as written
        {"model": "diffusion", "seed": 1, "model_dir": None}]}  # not kept
    (shipped / "r.json").write_text(json.dumps(result))
    monkeypatch.chdir(tmp_path)
    runs = read_results(shipped / "r.json")["runs"]
    assert runs[0]["model_dir"] == str(shipped / "long-models" / "seed0" / "diffusion")
    assert runs[1]["model_dir"] == "runs/x/seed0/autoregressive/final"  # relative to where the run ran
    assert runs[2]["model_dir"] is None


def test_the_shipped_long_result_finds_its_models():
    """long.json's first seed ships its two models beside it; they load as the kinds the result says."""
    from pathlib import Path

    from llada_play.model.checkpoint import load_model

    shipped = Path(__file__).resolve().parent.parent / "data" / "reversal" / "results" / "long.json"
    results = read_results(shipped)
    first = [r for r in results["runs"] if r["seed"] == results["config"]["seeds"][0]]
    assert sorted(r["model"] for r in first) == ["autoregressive", "diffusion"]
    for run in first:
        model, tokenizer = load_model(run["model_dir"])
        assert bool(getattr(model.config, "causal", False)) == (run["model"] == "autoregressive")
        assert sum(p.numel() for p in model.parameters()) == results["parameters"]
