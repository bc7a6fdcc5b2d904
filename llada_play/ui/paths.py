"""Where the app finds the project's shipped data and where its runs go by default."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository: data/ and runs/ sit beside the package
RUNS_DIR = ROOT / "runs"
TASK_FILE = ROOT / "data" / "sft" / "arithmetic_test.jsonl"
SFT_TRAIN_FILE = ROOT / "data" / "sft" / "arithmetic_train.jsonl"
RECORDED_REVERSAL = ROOT / "data" / "reversal" / "results"
PUZZLE_RESULTS = ROOT / "data" / "puzzle" / "results.json"
REVISION_RESULTS = ROOT / "data" / "revision" / "revision.json"
ICL_RESULTS = ROOT / "data" / "icl" / "results.json"
