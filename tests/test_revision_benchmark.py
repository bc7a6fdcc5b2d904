"""benchmarks/revision.py: its --quick run writes the JSON the results are read from, and it counts forward
passes per puzzle as the puzzle would take them alone."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("revision_benchmark", ROOT / "benchmarks" / "revision.py")
revision = importlib.util.module_from_spec(spec)
sys.modules.setdefault("revision_benchmark", revision)
spec.loader.exec_module(revision)

MASK = 9


def record(before: list[list[int]], edits=()):
    return SimpleNamespace(x_before=torch.tensor(before), block_start=0, block_end=len(before[0]), mask_id=MASK,
                           edits=list(edits), block=0)


def test_passes_count_each_row_as_if_alone():
    # (x_before of each step) row 0 is full after the first step, row 1 after the second; then the run's two edit
    # steps: row 0 edits nothing at the first (so alone it would stop there), row 1 edits and takes the second
    records = [record([[MASK, MASK], [MASK, MASK]]),
               record([[1, 2], [MASK, 3]]),
               record([[1, 2], [4, 3]], edits=[(1, 0, 4, 5, 0.95)]),
               record([[1, 2], [5, 3]])]
    assert revision.count_passes(records[:2], 2) == [1, 2]
    assert revision.count_passes(records, 2, edit_steps=2) == [2, 4]


def test_rates_and_paired_errors():
    p, se = revision.rate_with_se([[1, 0, 1, 1]])
    assert p == 0.75 and se == pytest.approx((0.75 * 0.25 / 4) ** 0.5)
    p, se = revision.rate_with_se([[1, 0, 1, 1], [1, 1, 0, 1]])  # two seeds of the same four puzzles
    assert p == 0.75 and se == pytest.approx((0.25 / 3) ** 0.5 / 2)  # puzzle means 1, .5, .5, 1: sd / sqrt(4)
    diff, se = revision.paired([[1, 1, 1, 0]], [[1, 0, 1, 0]])
    assert diff == 0.25 and se == pytest.approx(0.25)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("revision") / "revision.json"
    revision.main(["--quick", "--models", "shipped", "--json", str(out), "--png", ""])
    return json.loads(out.read_text())


def test_quick_json_structure(quick):
    assert quick["quick"] is True and quick["runs"][-1]["parts"] == ["sudoku:shipped", "text", "arithmetic"]
    run = quick["runs"][-1]
    assert {"command", "date", "machine", "wall_time_s"} <= set(run)
    sudoku = quick["sudoku"]
    assert sudoku["puzzles"] == 8 and sudoku["models"] == {"shipped": "data/puzzle/seed0/diffusion/final"}
    for row in sudoku["rows"]:
        assert {"key", "family", "name", "model", "options", "seeds", "n", "solved", "solved_se", "passes_mean",
                "passes_max", "solved_flags"} <= set(row)
        assert 0 <= row["solved"] <= 1 and row["solved_se"] >= 0
        assert len(row["solved_flags"]) == len(row["seeds"]) and all(len(f) == 8 for f in row["solved_flags"])
        assert row["seeds"] == ([0, 1] if "remask" in row["options"] else [0])
    assert {"solved_at_least": 0.93, "passes_at_most": 8}.items() <= sudoku["target"].items()
    rows = {r["name"]: r for r in sudoku["rows"]}
    assert rows["conf eta 0.2, 6 steps"]["paired"]["against"] == "shipped: 6 steps"
    text = quick["text"]
    assert len(text["prompts"]) == 2 and text["seeds"] == [0, 1]
    for row in text["rows"]:
        assert {"twin_nll", "twin_nll_se", "distinct3", "distinct3_se", "passes_mean"} <= set(row)
        assert row["twin_nll"] > 0 and 0 <= row["distinct3"] <= 1
    remask = next(r for r in text["rows"] if r["config"]["remask"] == "cap")
    assert remask["paired"]["against"] == "16 steps" and "se" in remask["paired"]["twin_nll"]
    arithmetic = {r["key"]: r for r in quick["arithmetic"]["rows"]}
    assert quick["arithmetic"]["prompts"] == 8 and "shipped: 8 steps" in arithmetic
    for row in arithmetic.values():
        assert len(row["right_flags"]) == row["n"] == 8 and row["accuracy"] == row["right_flags"].count("1") / 8
    edited = arithmetic["shipped: 8 steps + edit 0.9 (+2)"]
    assert [p["against"] for p in edited["paired"]] == ["shipped: 8 steps"]
    assert arithmetic["shipped: 8 steps"]["passes_max"] <= 8 and edited["passes_max"] <= 10


def test_quick_passes_are_counted_right(quick):
    rows = {r["name"]: r for r in quick["sudoku"]["rows"]}
    # a fixed schedule takes its steps, every one a pass (22 open cells, 22 or 6 steps; remasking keeps them)
    assert rows["22 steps"]["passes_mean"] == rows["22 steps"]["passes_max"] == 22
    assert rows["6 steps"]["passes_mean"] == 6 and rows["conf eta 0.2, 6 steps"]["passes_mean"] == 6
    # a commit rule takes fewer passes than one cell a step, and at least one
    for name in ("threshold 0.9", "EB 0.1"):
        assert 1 <= rows[name]["passes_mean"] < 22 and rows[name]["passes_max"] <= 22
    # editing adds one step after the last mask, then more only while edits go on (at most 2)
    assert 7 <= rows["edit 0.9, 6 steps +2"]["passes_mean"] <= rows["edit 0.9, 6 steps +2"]["passes_max"] <= 8
    for row in quick["text"]["rows"]:
        if row["config"]["entropy_bound"] is None:
            assert row["passes_mean"] == row["passes_min"] == row["passes_max"] == 16
        else:
            assert 2 <= row["passes_min"] <= row["passes_max"] <= 64  # two blocks, at least one pass each
