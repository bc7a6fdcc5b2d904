"""Sudoku: generation, exact solving, validation, the token encoding, and a tiny end-to-end training run."""
import dataclasses
import json
import random
from pathlib import Path

import pytest
import torch

from llada_play.experiments.puzzle import (PuzzleConfig, decode_grids, encode_puzzles, pinned_givens,
                                           puzzle_tokenizer, run_puzzle_experiment, score, solve_with_autoregressive,
                                           solve_with_diffusion, solver_config, Solved)
from llada_play.experiments.sudoku import (Puzzle, check_grid, check_puzzle, grid_text, make_puzzle, make_puzzles,
                                           parse_grid, solve, solve_by_singles, units)
from tests.recorded import recorded_here

SOLVED_4 = "1234341221434321"
QUICK = dict(size=4, givens=6, train_puzzles=40, test_puzzles=8, preset="tiny", steps=12, batch_size=8, seeds=[0, 1],
             warmup=2)
# (seed, kind, final training loss, scores) of a QUICK run, as the code before the twin skeleton
# (experiments/twins.py) recorded them: the same seeds must give the same numbers.
RECORDED_QUICK = [
    (0, "diffusion", 2.990948438644409,
     {"solved": 0.0, "cell_accuracy": 0.3, "n": 8, "cells_before_first_mistake": 0.625, "forced_commits": 0.7875}),
    (0, "autoregressive", 1.550048589706421,
     {"solved": 0.0, "cell_accuracy": 0.2125, "n": 8, "cells_before_first_mistake": 0.0, "forced_commits": 0.6375}),
    (1, "diffusion", 1.5938494205474854,
     {"solved": 0.0, "cell_accuracy": 0.3125, "n": 8, "cells_before_first_mistake": 0.625, "forced_commits": 0.8625}),
    (1, "autoregressive", 1.5354084968566895,
     {"solved": 0.0, "cell_accuracy": 0.2375, "n": 8, "cells_before_first_mistake": 0.25, "forced_commits": 0.7}),
]


def valid(grid, size):
    return all(sorted(grid[c] for c in unit) == list(range(1, size + 1)) for unit in units(size))


@pytest.mark.parametrize("size, givens", [(4, 6), (6, 14), (9, 34)])
def test_generated_puzzles_have_one_solution_found_by_singles(size, givens):
    puzzles = make_puzzles(5, size, givens, seed=3)
    assert len({p.text for p in puzzles}) == 5
    for p in puzzles:
        assert valid(p.solution, size)
        assert all(g in (0, s) for g, s in zip(p.givens, p.solution))  # givens are the solution's digits
        assert size * size - p.blanks >= givens
        assert solve(p.givens, size) == [p.solution]  # unique
        assert solve_by_singles(p.givens, size) == p.solution
    assert [p.text for p in make_puzzles(5, size, givens, seed=3)] == [p.text for p in puzzles]  # seeded


def test_units_of_a_six_by_six_grid_have_two_by_three_boxes():
    boxes = units(6)[12:]
    assert boxes[0] == [0, 1, 2, 6, 7, 8] and boxes[1] == [3, 4, 5, 9, 10, 11] and len(boxes) == 6


def test_the_solver_finds_every_solution_up_to_the_limit():
    empty = tuple([0] * 16)
    assert len(solve(empty, 4, limit=1000)) == 288  # the number of 4x4 Sudoku grids
    grid = parse_grid(SOLVED_4)
    assert solve(grid, 4) == [grid]


def test_singles_alone_do_not_solve_a_puzzle_that_needs_a_guess():
    rng = random.Random(0)
    hard = make_puzzle(9, 22, rng, singles_only=False)
    assert solve(hard.givens, 9) == [hard.solution]
    easy = make_puzzle(9, 22, random.Random(0), singles_only=True)
    assert solve_by_singles(easy.givens, 9) == easy.solution
    assert easy.blanks <= hard.blanks  # the singles-only knob keeps more givens when it must


def test_text_round_trip_and_bad_grids_are_refused_clearly():
    puzzle = make_puzzles(1, 6, 14, seed=0)[0]
    assert parse_grid(puzzle.text) == puzzle.givens and grid_text(puzzle.givens) == puzzle.text
    assert parse_grid("12.. 34..\n..12 ..43".replace("..", "00")) == (1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 1, 2, 0, 0, 4, 3)
    with pytest.raises(ValueError, match="16, 36 or 81 cells"):
        parse_grid("123")
    with pytest.raises(ValueError, match=r"cell 2 \(row 1, column 2\) is '7'"):
        parse_grid("17" + "_" * 14)
    with pytest.raises(ValueError, match="appears twice in row 1"):
        check_puzzle("11" + "_" * 14)
    with pytest.raises(ValueError, match="appears twice in box 1"):
        check_grid(parse_grid("1___" + "_1__" + "_" * 8), 4)
    with pytest.raises(ValueError, match="no solution"):
        # box 1 holds 1 and 2, so row 2 needs 3 and 4 in its first two cells, but its 3 is elsewhere
        check_puzzle("12__" + "__3_" + "____" + "____")
    with pytest.raises(ValueError, match="more than one solution"):
        check_puzzle("_" * 16)
    with pytest.raises(ValueError, match="grid size must be one of"):
        make_puzzle(5, 10, random.Random(0))


def test_encoding_round_trip_and_pins():
    tokenizer = puzzle_tokenizer(6)
    puzzles = make_puzzles(3, 6, 14, seed=1)
    prompts, solutions = encode_puzzles(tokenizer, puzzles)
    assert prompts.shape == solutions.shape == (3, 36)
    assert decode_grids(tokenizer, solutions) == [p.solution for p in puzzles]
    assert decode_grids(tokenizer, prompts) == [p.givens for p in puzzles]
    pins = pinned_givens(tokenizer, puzzles)
    assert ((pins >= 0) == (prompts != tokenizer.convert_tokens_to_ids("_"))).all()
    assert torch.equal(pins[pins >= 0], solutions[pins >= 0])


class Oracle(torch.nn.Module):
    """Knows every solution: puts all its mass on the right digit at every answer position, surest on the
    cells of lowest index (so that easy-first and left-to-right orders differ only in ties)."""

    def __init__(self, tokenizer, puzzles, causal=False):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.tokenizer, self.causal = tokenizer, causal
        self.answers = {tuple(p.tolist()): s for p, s in zip(*encode_puzzles(tokenizer, puzzles))}
        from types import SimpleNamespace
        self.config = SimpleNamespace(mask_token_id=tokenizer.mask_token_id, vocab_size=len(tokenizer),
                                      eos_token_id=tokenizer.eos_token_id, causal=causal)

    def forward(self, ids, attention_mask=None, *args, **kwargs):
        cells = len(next(iter(self.answers)))
        logits = torch.zeros(*ids.shape, len(self.tokenizer))
        for row in range(ids.shape[0]):
            solution = self.answers[tuple(ids[row, :cells].tolist())]
            for pos in range(cells, 2 * cells):
                at = pos - 1 if self.causal else pos  # a causal model's position i predicts token i + 1
                if at < ids.shape[1]:
                    logits[row, at, solution[pos - cells]] = 20.0 - 0.1 * (pos - cells)
        return logits


def test_an_oracle_solves_every_puzzle_with_either_sampler():
    tokenizer = puzzle_tokenizer(4)
    puzzles = make_puzzles(6, 4, 6, seed=2)
    diffusion = solve_with_diffusion(Oracle(tokenizer, puzzles), tokenizer, puzzles, solver_config(4), batch_size=4)
    result = score(puzzles, diffusion)
    assert result["solved"] == 1.0 and result["cell_accuracy"] == 1.0
    assert result["cells_before_first_mistake"] == sum(p.blanks for p in puzzles) / len(puzzles)
    # one empty cell per step, and the givens were pinned before the first step (never committed by a step)
    assert all(sorted(steps.values()) == list(range(p.blanks)) for steps, p in zip(diffusion.commit_steps, puzzles))
    assert all(set(steps) == {c for c, v in enumerate(p.givens) if v == 0}
               for steps, p in zip(diffusion.commit_steps, puzzles))
    twin = solve_with_autoregressive(Oracle(tokenizer, puzzles, causal=True), tokenizer, puzzles)
    assert score(puzzles, twin)["solved"] == 1.0


def test_score_counts_cells_before_the_first_mistake():
    puzzle = Puzzle(4, parse_grid("12__" + "34__" + "2143" + "4321"), parse_grid(SOLVED_4))
    grid = list(puzzle.solution)
    grid[3] = 3  # the wrong digit in the cell committed second
    steps = {2: 0, 3: 1, 6: 2, 7: 3}
    result = score([puzzle], Solved([tuple(grid)], [steps]))
    # every commit was forced by a single on the grid before it (cells 2, 3, 6, 7 each have one candidate left)
    assert result == {"solved": 0.0, "cell_accuracy": 0.75, "n": 1, "cells_before_first_mistake": 1.0,
                      "forced_commits": 1.0}
    guessed = Puzzle(4, parse_grid("1___" + "_" * 12), parse_grid(SOLVED_4))  # not unique: for the count only
    first = {c: 0 for c in range(1, 16)}  # all at once at step 0: only cells forced on the bare grid count
    assert score([guessed], Solved([puzzle.solution], [first]))["forced_commits"] == 0.0


def test_a_tiny_run_trains_both_kinds_saves_and_scores(tmp_path):
    config = PuzzleConfig(output_dir=str(tmp_path), size=4, givens=6, train_puzzles=40, test_puzzles=8,
                          preset="tiny", steps=3, batch_size=8, seeds=[0], warmup=1)
    results = run_puzzle_experiment(config)
    assert [(r["model"], r["seed"]) for r in results["runs"]] == [("diffusion", 0), ("autoregressive", 0)]
    for run in results["runs"]:
        assert 0 <= run["scores"]["cell_accuracy"] <= 1 and run["scores"]["n"] == 8
        assert (tmp_path / "seed0" / run["model"] / "final" / "config.json").exists()
    assert PuzzleConfig.from_dict(results["config"]) == config


def _assert_recorded_numbers(results: dict) -> None:
    assert [(r["seed"], r["model"]) for r in results["runs"]] == [(s, k) for s, k, _, _ in RECORDED_QUICK]
    for run, (seed, kind, loss, scores) in zip(results["runs"], RECORDED_QUICK):
        assert run["final_train_loss"] == pytest.approx(loss, rel=1e-6), (seed, kind)
        assert run["scores"] == pytest.approx(scores, rel=1e-6, abs=1e-9), (seed, kind)
        assert run["model_dir"] == f"seed{seed}/{kind}/final"  # relative to results.json: no machine path


@recorded_here
def test_a_quick_run_gives_the_numbers_recorded_before_the_twin_skeleton(tmp_path):
    results = run_puzzle_experiment(PuzzleConfig(output_dir=str(tmp_path), progress=False, **QUICK))
    _assert_recorded_numbers(results)
    assert json.loads((tmp_path / "results.json").read_text()) == json.loads(json.dumps(results))


def _numbers(results: dict) -> list:
    return [(r["seed"], r["model"], r["final_train_loss"], r["scores"], r["model_dir"]) for r in results["runs"]]


def test_a_quick_run_gives_the_same_numbers_twice_and_writes_them(tmp_path):
    first = run_puzzle_experiment(PuzzleConfig(output_dir=str(tmp_path / "a"), progress=False, **QUICK))
    second = run_puzzle_experiment(PuzzleConfig(output_dir=str(tmp_path / "b"), progress=False, **QUICK))
    assert _numbers(first) == _numbers(second)
    assert [(s, k) for s, k, *_ in _numbers(first)] == [(s, k) for s, k, _, _ in RECORDED_QUICK]
    assert all(run["model_dir"] == f"seed{run['seed']}/{run['model']}/final" for run in first["runs"])
    assert json.loads((tmp_path / "a" / "results.json").read_text()) == json.loads(json.dumps(first))


class Stop(Exception):
    """Stands for the job being killed."""


def test_a_stopped_run_resumes_where_it_stopped_with_the_same_numbers(tmp_path, monkeypatch):
    """The twin skeleton's resume: a kind already scored is kept, one trained but not scored is scored from its
    saved model, and one stopped in training continues from its last checkpoint; the numbers are those of a
    run straight through, to the last digit."""
    from llada_play.experiments import puzzle

    straight = run_puzzle_experiment(PuzzleConfig(output_dir=str(tmp_path / "straight"), progress=False, **QUICK))
    config = PuzzleConfig(output_dir=str(tmp_path / "stopped"), progress=False, **QUICK)
    scoring, scored = puzzle.evaluate, []

    def stop_scoring_the_third(*args, **kwargs):
        scored.append(args[0])
        if len(scored) == 3:
            raise Stop
        return scoring(*args, **kwargs)

    monkeypatch.setattr(puzzle, "evaluate", stop_scoring_the_third)
    with pytest.raises(Stop):  # seed 1's diffusion model: trained and saved, then stopped while scoring
        run_puzzle_experiment(config)
    monkeypatch.setattr(puzzle, "evaluate", scoring)
    trained = []

    def stop_in_training(kind, seed, record):  # seed 1's twin: checkpoints every 3 steps, stopped after step 7
        trained.append((kind, seed, record.step))
        if (kind, seed, record.step) == ("autoregressive", 1, 7):
            raise Stop

    with pytest.raises(Stop):
        run_puzzle_experiment(config, resume=True, train_hooks=stop_in_training)
    assert {(k, s) for k, s, _ in trained} == {("autoregressive", 1)}  # seed 1's diffusion model was not retrained
    trained.clear()
    results = run_puzzle_experiment(config, resume=True,
                                    train_hooks=lambda kind, seed, record: trained.append((kind, seed, record.step)))
    assert trained == [("autoregressive", 1, step) for step in range(7, 13)]  # on from its checkpoint at step 6
    assert _numbers(results) == _numbers(straight)
    with pytest.raises(ValueError, match=r"started with other settings \(steps\)"):
        run_puzzle_experiment(dataclasses.replace(config, steps=13), resume=True)


def test_the_config_speaks_the_run_registry_names_and_reads_older_results():
    config = PuzzleConfig(out_dir="elsewhere")  # the former name of output_dir
    assert config.output_dir == config.out_dir == "elsewhere" and config.progress is True
    swept = dataclasses.replace(config, output_dir="sweep/0", progress=False)
    assert (swept.output_dir, swept.progress) == ("sweep/0", False)
    shipped = json.loads((Path(__file__).resolve().parent.parent / "data" / "puzzle" / "results.json").read_text())
    assert "out_dir" in shipped["config"] and PuzzleConfig.from_dict(shipped["config"]).steps == 3000


def test_the_command_line_runs_a_puzzle_experiment(tmp_path, capsys):
    from llada_play.cli import main

    code = main(["puzzle", "--out", str(tmp_path), "--size", "4", "--givens", "6", "--train-puzzles", "20",
                 "--test-puzzles", "4", "--preset", "tiny", "--steps", "2", "--batch-size", "4", "--seeds", "0",
                 "--models", "diffusion", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("| model | solved |") and "| diffusion |" in out
    assert (tmp_path / "results.json").exists()
    with pytest.raises(SystemExit) as refused:
        main(["puzzle", "--out", str(tmp_path), "--size", "5"])
    assert refused.value.code == 2  # argparse refuses the size, naming the choices


def test_replay_frames_follow_the_sampler_step_by_step():
    import math

    from llada_play.experiments.puzzle_replay import commit_order, solve_live, twin_attempt

    tokenizer = puzzle_tokenizer(4)
    puzzle = make_puzzles(1, 4, 6, seed=2)[0]
    attempt = solve_live(Oracle(tokenizer, [puzzle]), tokenizer, puzzle)
    first, last = attempt.frames[0], attempt.frames[-1]
    assert first.step == 0 and first.values == puzzle.givens and first.new == ()
    assert all(math.isnan(first.confidence[c]) == bool(v) for c, v in enumerate(puzzle.givens))
    assert [f.step for f in attempt.frames] == list(range(puzzle.blanks + 1))
    assert all(len(f.new) == 1 for f in attempt.frames[1:]) and last.values == puzzle.solution
    open_cells = [c for c, v in enumerate(puzzle.givens) if v == 0]
    assert attempt.order == open_cells  # the oracle is surest of the lowest cell index
    # after the first step: the guesses are the oracle's digits in every cell still open, nowhere else
    one = attempt.frames[1]
    assert all((one.guesses[c] == puzzle.solution[c]) == (one.values[c] == 0) for c in range(16))
    assert all(one.confidence[c] > 0.99 for c in open_cells)
    assert attempt.wrong == [] and attempt.summary() == f"solved in {puzzle.blanks} steps"
    assert commit_order(attempt.frames[:3]) == {open_cells[0]: 1, open_cells[1]: 2}
    twin = twin_attempt(Oracle(tokenizer, [puzzle], causal=True), tokenizer, puzzle)
    assert twin.order == open_cells and twin.grid == puzzle.solution and len(twin.frames) == puzzle.blanks + 1


def test_replay_counts_the_cells_before_the_first_mistake_and_refuses_a_foreign_size():
    from llada_play.experiments.puzzle_replay import solve_live

    tokenizer = puzzle_tokenizer(4)
    puzzle = make_puzzles(1, 4, 6, seed=2)[0]
    open_cells = [c for c, v in enumerate(puzzle.givens) if v == 0]
    oracle = Oracle(tokenizer, [puzzle])
    key = next(iter(oracle.answers))
    wrong = oracle.answers[key].clone()
    third = open_cells[2]
    wrong[third] = tokenizer.convert_tokens_to_ids(str(puzzle.solution[third] % 4 + 1))  # a wrong digit
    oracle.answers[key] = wrong
    attempt = solve_live(oracle, tokenizer, puzzle)
    assert attempt.wrong == [third] and attempt.cells_before_first_mistake == 2
    assert attempt.summary() == (f"1 wrong cell after {puzzle.blanks} steps; the first mistake was its commit "
                                 f"number 3 of {puzzle.blanks}")
    with pytest.raises(ValueError, match="trained on 4x4 puzzles; the puzzle is 6x6"):
        solve_live(oracle, tokenizer, make_puzzles(1, 6, 14, seed=0)[0])


def test_the_decoding_study_scores_every_decoding_of_a_tiny_run(tmp_path):
    from llada_play.experiments.puzzle import held_out, load_pair
    from llada_play.experiments.puzzle_decoding import STUDY, Decoding, decoding_study, study_figure, study_markdown

    config = PuzzleConfig(output_dir=str(tmp_path / "run"), size=4, givens=6, train_puzzles=30, test_puzzles=6,
                          preset="tiny", steps=2, batch_size=8, seeds=[0, 1], warmup=1)
    run_puzzle_experiment(config)
    moved = tmp_path / "moved"
    (tmp_path / "run").rename(moved)  # model directories are relative: the folder can move
    assert set(load_pair(moved / "results.json", seed=1)) == {"diffusion", "autoregressive"}
    assert [p.text for p in held_out(config, 2)] == [p.text for p in held_out(config)[:2]]  # a prefix of the stream
    decodings = [Decoding("easy"), Decoding("thr", threshold=0.5), Decoding("3 steps", steps=3),
                 Decoding("twin", twin=True)]
    study = decoding_study(moved / "results.json", held_out(config), decodings)
    rows = study["rows"]
    assert [r["decoding"]["name"] for r in rows] == ["easy", "thr", "3 steps", "twin"]
    assert all(r["seeds"] == [0, 1] and r["n"] == 6 and len(r["solved"]["values"]) == 2 for r in rows)
    assert rows[0]["steps"]["mean"] == sum(p.blanks for p in held_out(config)) / 6  # one open cell a step
    assert rows[2]["steps"]["mean"] <= 3 and rows[1]["steps"]["mean"] <= rows[0]["steps"]["mean"]
    assert "cells_before_first_mistake" in rows[3] and 0 <= rows[3]["forced_commits"]["mean"] <= 1
    assert study_markdown(study).count("\n") == 1 + len(rows)
    assert len(study_figure(study).data[0].x) == len(rows)
    assert any(d.twin for d in STUDY) and {d.strategy for d in STUDY} >= {"low_confidence", "margin", "entropy",
                                                                            "random", "left_to_right"}


def test_an_attempt_counts_its_forced_commits_like_the_score():
    from llada_play.experiments.puzzle_replay import solve_live

    tokenizer = puzzle_tokenizer(4)
    puzzles = make_puzzles(3, 4, 6, seed=4)
    oracle = Oracle(tokenizer, puzzles)
    scored = score(puzzles, solve_with_diffusion(oracle, tokenizer, puzzles, solver_config(4)))
    counts = [solve_live(oracle, tokenizer, p).forced_commits() for p in puzzles]
    assert scored["forced_commits"] == sum(f for f, _ in counts) / sum(n for _, n in counts)
    assert all(n == p.blanks for (_, n), p in zip(counts, puzzles))


def test_the_app_opens_on_the_first_held_out_puzzle_where_the_shipped_pair_disagree():
    from llada_play.experiments.puzzle import PuzzleConfig, held_out
    from llada_play.experiments.puzzle_replay import solve_live, twin_attempt
    from llada_play.model.checkpoint import SHIPPED_MODELS, load_model
    from llada_play.ui.tabs.puzzle import DIFFUSION_NAME, FIRST_HELD_OUT, TWIN_NAME, first_puzzle, shipped_results

    results = shipped_results()
    test = held_out(PuzzleConfig.from_dict(results["config"]), FIRST_HELD_OUT + 1)  # the run's first test puzzles
    diffusion, twin = load_model(SHIPPED_MODELS[DIFFUSION_NAME]), load_model(SHIPPED_MODELS[TWIN_NAME])
    differ = [bool(solve_live(*diffusion, p).wrong) != bool(twin_attempt(*twin, p).wrong) for p in test]
    assert differ.index(True) == FIRST_HELD_OUT
    assert parse_grid(first_puzzle(results)[0]) == test[FIRST_HELD_OUT].givens


def test_second_thoughts_rule_finds_a_puzzle_failed_without_edits_and_repaired_with_them():
    """first_repaired's rule, checked by hand on the shipped held-out set: every puzzle before the one it picks
    is solved at the fast threshold alone or not repaired with edits; on the one it picks, the edit recorded in
    the frames is the change of the grid (a wrong digit becomes the solution's) and it is what the summary says."""
    from llada_play.experiments.puzzle import PuzzleConfig, held_out
    from llada_play.experiments.puzzle_replay import fast_config, first_repaired, solve_live
    from llada_play.model.checkpoint import SHIPPED_MODELS, load_model
    from llada_play.ui.tabs.puzzle import EDITING_NAME, shipped_results

    test = held_out(PuzzleConfig.from_dict(shipped_results()["config"]), 20)
    model, tokenizer = load_model(SHIPPED_MODELS[EDITING_NAME])
    found = first_repaired(model, tokenizer, test)
    assert found.baseline.wrong and not found.revised.wrong and found.revised.repairs
    assert not found.baseline.revisions  # without edits nothing is ever changed
    for puzzle in test[:found.index]:
        fails = bool(solve_live(model, tokenizer, puzzle, fast_config(6, False)).wrong)
        revised = solve_live(model, tokenizer, puzzle, fast_config(6, True))
        assert not (fails and not revised.wrong and revised.repairs)
    frames = found.revised.frames
    for step, cell, old, new, p in found.revised.revisions:
        before, after = frames[step - 1], frames[step]
        assert (before.values[cell], after.values[cell]) == (old, new) and after.confidence[cell] == p >= 0.9
    step, cell, old, new, _ = found.revised.repairs[0]
    assert old != test[found.index].solution[cell] == new
    assert f"{len(found.revised.repairs)} of them a repair" in found.revised.summary()
    with pytest.raises(ValueError, match="none of the first 1 puzzles"):  # a puzzle the model solves anyway
        first_repaired(model, tokenizer, [p for p in test if not solve_live(model, tokenizer, p,
                                                                            fast_config(6, False)).wrong][:1])


def test_seeds_trained_as_separate_jobs_are_gathered_by_a_run_over_all_of_them(tmp_path):
    """One job per seed in one folder (one per core), then a resumed run over every seed: it trains nothing and
    gives the numbers of one run of both seeds; other changed settings are still refused."""
    both = PuzzleConfig(output_dir=str(tmp_path / "both"), progress=False, **QUICK)
    straight = run_puzzle_experiment(both)
    split = dataclasses.replace(both, output_dir=str(tmp_path / "split"))
    for seed in both.seeds:
        run_puzzle_experiment(dataclasses.replace(split, seeds=[seed]), resume=True)
    trained = []
    gathered = run_puzzle_experiment(split, resume=True, train_hooks=lambda *step: trained.append(step))
    assert trained == [] and _numbers(gathered) == _numbers(straight)
    with pytest.raises(ValueError, match=r"started with other settings \(steps\)"):
        run_puzzle_experiment(dataclasses.replace(split, steps=13), resume=True)
