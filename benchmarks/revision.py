"""Second thoughts measured: what ReMDM remasking, token editing and EB-sampler's entropy-bounded commit rule buy,
counted in forward passes (issue 25, item 3).

    python benchmarks/revision.py [--quick] [--puzzles 500] [--skip-text] [--json data/revision/revision.json]
                                  [--png benchmarks/revision.png]

**Sudoku.** The shipped diffusion model (``data/puzzle/seed0/diffusion/final``) on the held-out puzzles of the
shipped run (``puzzle.held_out`` of its config: data seed + 1), one block over the 36 cells, givens pinned, greedy
(temperature 0). Each setting's solve rate is scored by ``puzzle.score``; settings with randomness (every ReMDM
schedule: the tokens sent back are drawn at random, their count rounded at random) run once per sampler seed
(0 and 1), the others once. The editing model (``data/puzzle/editing/seed0/diffusion/final``), when it is on
disk, runs the editing settings and its own baselines.

*Forward passes* are counted per puzzle as if it were solved alone: one pass for every step at which its block
still had a mask, plus the token-editing steps it would take after its last mask (the first always, then each
one after a step that edited it, up to ``edit_steps``). In a batch the lockstep run goes on until the slowest
puzzle is done, but the engine computes only rows with masks left (and rows of a run still editing), and a
puzzle left waiting is not changed, so this count is what the puzzle costs. CFG is off: one pass per step.

*Errors*: the solve rate's standard error is binomial, sqrt(p (1 - p) / n), for a setting run once; for a
setting run with two sampler seeds it is the standard deviation over puzzles of each puzzle's mean outcome over
the seeds, / sqrt(puzzles) (the seeds share the puzzles, so they are not 1,000 independent trials). Where two
settings ran on the same puzzles, ``paired`` gives the mean per-puzzle difference and its standard error.

**Text.** The shipped text model (``load_model()``) continues 20 speaker headings drawn as
``benchmarks/default_settings.py`` draws them (``draw_prompts``), 64 tokens in two blocks of 32 at temperature
1 (the app's ``INTERACTIVE``), four sampler seeds, at 16, 32 and 64 steps, with and without ReMDM remasking, and
under EB-sampler at a few bounds (it chooses its own step count). Each generation, cut at end-of-text, is scored
by the shipped autoregressive twin (nats per generated token given the prompt, ``default_settings.ar_nll``) and
by its share of distinct word 3-grams (``default_settings.distinct``). Means ± SE are over the 20 prompts (each
prompt's mean over its seeds); a paired difference is taken per prompt and seed against the setting without
revision at the same step count (EB: at the nearest step count), averaged per prompt, ± SE over prompts.

**Arithmetic.** The shipped arithmetic model (``llada_play/arithmetic_model``) and its editing twin
(``data/sft/editing/final``: the same SFT with ``edit_ratio`` 0.1) answer the 200 held-out sums of
``data/sft/arithmetic_test.jsonl`` greedily (``evaluation.SHORT_ANSWERS``: 8 tokens, one block), at 8 and 2 steps
and a 0.9 threshold, each with and without token editing (edit threshold 0.9, up to 2 edit steps). Exact match
as ``evaluation.answer_accuracy`` scores it, binomial SE; paired differences per prompt against the same model
without edits and, for the editing twin, against the shipped model at the same setting.

``--quick``: 8 puzzles, a handful of settings, 2 text prompts x 2 seeds at 16 steps, 8 sums at 2 settings (the
smoke test of ``tests/test_revision_benchmark.py``).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from llada_play.diffusion.sampler_config import INTERACTIVE, SamplerConfig
from llada_play.diffusion.sampling import denoise
from llada_play.experiments.puzzle import (PuzzleConfig, Solved, decode_grids, encode_puzzles, held_out, pinned_givens,
                                           score, solver_config)
from llada_play.experiments.reversal import left_padded
from llada_play.model.checkpoint import DEFAULT_AR_MODEL_DIR, PUZZLE_MODELS_DIR, load_model
from llada_play.model.text import stop_token_ids
from llada_play.ui.revision_chart import revision_figure

ROOT = Path(__file__).resolve().parent.parent
PUZZLE_RESULTS = ROOT / "data" / "puzzle" / "results.json"
SHIPPED = PUZZLE_MODELS_DIR / "diffusion" / "final"
EDITING = ROOT / "data" / "puzzle" / "editing" / "seed0" / "diffusion" / "final"
STEPS = (3, 6, 11, 22)
SEEDS = (0, 1)
TEXT_STEPS = (16, 32, 64)
TEXT_SEEDS = (0, 1, 2, 3)


def _default_settings():
    """benchmarks/default_settings.py (prompts, text measures), loaded by path as tests/test_defaults.py does."""
    spec = importlib.util.spec_from_file_location("default_settings", ROOT / "benchmarks" / "default_settings.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("default_settings", module)
    spec.loader.exec_module(module)
    return module


# ---- counting forward passes ---------------------------------------------------------------------------------

class PassCounter:
    """Forward passes per row of a lockstep run, as if each row ran alone (see the module's docstring), from its
    step records (which must carry ``x_before``: ``denoise(..., observe=True)``, the default)."""

    def __init__(self, rows: int, edit_steps: int = 0):
        self.passes = [0] * rows
        self.edit_steps = edit_steps
        self.editing: list[bool] | None = None  # rows still in their (alone) edit phase, once it has begun

    def add(self, record) -> None:
        block = record.x_before[:, record.block_start:record.block_end]
        masked = (block == record.mask_id).any(1).tolist()
        if any(masked):
            for row, has_mask in enumerate(masked):
                self.passes[row] += has_mask
            return
        # every row's block is full: an edit step of the run
        if self.editing is None:
            self.editing = [True] * len(self.passes)
        edited = {row for row, *_ in record.edits}
        for row in range(len(self.passes)):
            if self.editing[row]:
                self.passes[row] += 1
                self.editing[row] = row in edited

    def end_block(self) -> None:
        self.editing = None


def count_passes(records, rows: int, edit_steps: int = 0) -> list[int]:
    counter = PassCounter(rows, edit_steps)
    block = None
    for record in records:
        if record.block != block:
            counter.end_block()
            block = record.block
        counter.add(record)
    return counter.passes


# ---- Sudoku --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Setting:
    """One way to decode a puzzle: a family (for the chart), a name, the sampler options over the solver's."""

    family: str
    name: str
    options: dict = field(default_factory=dict)
    model: str = "shipped"  # or "editing"

    def config(self, size: int, seed: int = 0) -> SamplerConfig:
        return solver_config(size).replace(**self.options, seed=seed)

    @property
    def random(self) -> bool:
        return self.options.get("remask") is not None or self.options.get("temperature", 0) > 0


@torch.no_grad()
def solve_counted(model, tokenizer, puzzles, config: SamplerConfig, batch_size: int = 100):
    """``puzzle.solve_with_diffusion`` with the passes each puzzle took: (grids, commit steps, passes, edits,
    remasked)."""
    grids, when_all, passes, edits, remasked = [], [], [], 0, 0
    for start in range(0, len(puzzles), batch_size):
        chunk = puzzles[start:start + batch_size]
        prompts, _ = encode_puzzles(tokenizer, chunk)
        run = denoise(model, prompts, config, constraints=pinned_givens(tokenizer, chunk))
        counter = PassCounter(len(chunk), config.edit_steps)
        when = [dict() for _ in chunk]
        for record in run:
            counter.add(record)
            edits, remasked = edits + len(record.edits), remasked + len(record.remasked)
            for row, pos in record.committed.nonzero().tolist():
                when[row][pos - record.prompt_length] = record.step
        grids += decode_grids(tokenizer, run.output[:, prompts.shape[1]:])
        when_all += when
        passes += counter.passes
    return Solved(grids, when_all), passes, edits, remasked


def solved_flags(puzzles, solved) -> list[int]:
    return [int(all(g == s for g, s, v in zip(grid, p.solution, p.givens) if v == 0))
            for p, grid in zip(puzzles, solved.grids)]


def rate_with_se(per_seed: list[list[int]]) -> tuple[float, float]:
    """Mean solve rate and its standard error (binomial for one seed; over puzzles' seed means for several)."""
    n = len(per_seed[0])
    per_puzzle = [sum(col) / len(col) for col in zip(*per_seed)]
    p = sum(per_puzzle) / n
    if len(per_seed) == 1:
        return p, math.sqrt(p * (1 - p) / n)
    return p, statistics.stdev(per_puzzle) / math.sqrt(n)


def paired(a: list[list[int]], b: list[list[int]]) -> tuple[float, float]:
    """Mean per-puzzle difference a - b (each puzzle's mean over its seeds) and its standard error."""
    da = [sum(c) / len(c) for c in zip(*a)]
    db = [sum(c) / len(c) for c in zip(*b)]
    d = [x - y for x, y in zip(da, db)]
    return sum(d) / len(d), statistics.stdev(d) / math.sqrt(len(d))


EDIT_SETTINGS = [  # token editing alone (fixed steps, then up to 2 edit steps) and joined with a commit rule
    ("edit 0.9, 6 steps +2", {"steps": 6, "edit_threshold": 0.9, "edit_steps": 2}),
    ("edit 0.7, 6 steps +2", {"steps": 6, "edit_threshold": 0.7, "edit_steps": 2}),
    ("edit 0.9, 11 steps +2", {"steps": 11, "edit_threshold": 0.9, "edit_steps": 2}),
    ("threshold 0.9 + edit 0.9 (+2)", {"threshold": 0.9, "edit_threshold": 0.9, "edit_steps": 2}),
    ("threshold 0.7 + edit 0.7 (+2)", {"threshold": 0.7, "edit_threshold": 0.7, "edit_steps": 2}),
    ("threshold 0.95 + edit 0.9 (+2)", {"threshold": 0.95, "edit_threshold": 0.9, "edit_steps": 2}),
    ("threshold 0.97 + edit 0.9 (+2)", {"threshold": 0.97, "edit_threshold": 0.9, "edit_steps": 2}),
    ("EB 0.1 + edit 0.9 (+2)", {"entropy_bound": 0.1, "edit_threshold": 0.9, "edit_steps": 2}),
    ("EB 0.01 + edit 0.9 (+2)", {"entropy_bound": 0.01, "edit_threshold": 0.9, "edit_steps": 2}),
    ("EB 0.004 + edit 0.9 (+2)", {"entropy_bound": 0.004, "edit_threshold": 0.9, "edit_steps": 2}),
]


def sudoku_settings(quick: bool, model: str) -> list[Setting]:
    """The settings run on ``model`` ("shipped" or "editing")."""
    if quick:
        if model == "editing":
            return [Setting("editing model, no edits", "6 steps", {"steps": 6}, model="editing"),
                    Setting("editing model", "edit 0.9, 6 steps +2", {"steps": 6, "edit_threshold": 0.9,
                                                                     "edit_steps": 2}, model="editing")]
        return [Setting("baseline (steps)", "22 steps", {"steps": 22}),
                Setting("baseline (steps)", "6 steps", {"steps": 6}),
                Setting("threshold", "threshold 0.9", {"threshold": 0.9}),
                Setting("ReMDM conf", "conf eta 0.2, 6 steps", {"steps": 6, "remask": "conf", "remask_eta": 0.2}),
                Setting("EB-sampler", "EB 0.1", {"entropy_bound": 0.1}),
                Setting("editing (shipped)", "edit 0.9, 6 steps +2", {"steps": 6, "edit_threshold": 0.9,
                                                                     "edit_steps": 2})]
    if model == "editing":
        out = [Setting("editing model, no edits", f"{s} steps", {"steps": s}, model="editing") for s in (6, 11, 22)]
        out += [Setting("editing model, no edits", f"threshold {t}", {"threshold": t}, model="editing")
                for t in (0.99, 0.9)]
        out += [Setting("editing model, no edits", f"EB {b}", {"entropy_bound": b}, model="editing")
                for b in (0.1, 0.01, 0.004)]
        out += [Setting("editing model", name, opts, model="editing") for name, opts in EDIT_SETTINGS]
        return out
    out = [Setting("baseline (steps)", f"{s} steps", {"steps": s}) for s in STEPS]
    out += [Setting("threshold", f"threshold {t}", {"threshold": t}) for t in (0.99, 0.95, 0.9, 0.7, 0.5)]
    # ReMDM: each schedule at a low eta at every step count and at a higher one at 6 (where the target lies)
    for schedule, low, high in (("cap", 0.05, 0.2), ("rescale", 0.2, 0.6), ("conf", 0.1, 0.3), ("loop", 0.1, 0.3)):
        for eta, s in [(low, 3), (low, 6), (low, 11), (low, 22), (high, 6)]:
            out.append(Setting(f"ReMDM {schedule}", f"{schedule} eta {eta}, {s} steps",
                               {"steps": s, "remask": schedule, "remask_eta": eta}))
    out += [Setting("EB-sampler", f"EB {b}", {"entropy_bound": b}) for b in (0.001, 0.002, 0.004, 0.01, 0.03, 0.1, 0.3, 1.0)]
    out += [Setting("editing (shipped)", name, opts) for name, opts in EDIT_SETTINGS]
    out += [Setting("combined", "conf eta 0.1 + edit 0.9, 6 steps +2",
                    {"steps": 6, "remask": "conf", "remask_eta": 0.1, "edit_threshold": 0.9, "edit_steps": 2})]
    return out


def reference_of(row: dict, rows: list[dict]) -> str | None:
    """The run without revision that this one is compared with, paired (same model, same puzzles): the
    baseline at its step count, or the same commit rule without edits; None for those runs themselves."""
    o = row["options"]
    if not ({"remask", "edit_threshold"} & set(o)):
        return None
    base = {k: v for k, v in o.items() if k in ("steps", "threshold", "entropy_bound")}
    for other in rows:
        if other["model"] == row["model"] and other["options"] == base:
            return other["key"]
    return None


def flags_of(row: dict) -> list[list[int]]:
    return [[int(c) for c in f] for f in row["solved_flags"]]


def run_sudoku(args, log, previous: dict | None) -> dict:
    """Every setting (or those named ``--only``) on each model of ``args.models``; the other rows are kept
    from ``previous`` (an earlier run's JSON, ``--merge``) when it was made on the same puzzles."""
    config = PuzzleConfig.from_dict(json.loads(PUZZLE_RESULTS.read_text())["config"])
    puzzles = held_out(config)[:args.puzzles]
    paths = {"shipped": SHIPPED, "editing": EDITING}
    wanted = [m for m in args.models if m != "editing" or (EDITING / "config.json").exists()]
    if "editing" in args.models and "editing" not in wanted:
        log(f"the editing model is not in {EDITING.relative_to(ROOT)}: its settings are left out")
    plan = {m: [s for s in sudoku_settings(args.quick, m) if args.only is None or any(o in s.name for o in args.only.split("|"))]
            for m in wanted}
    run_now = {f"{s.model}: {s.name}" for settings in plan.values() for s in settings}
    rows = []
    if previous and previous.get("puzzles") == len(puzzles):
        rows = [r for r in previous["rows"] if r["key"] not in run_now]
    for model_name, settings in plan.items():
        model, tokenizer = load_model(paths[model_name])
        for i, setting in enumerate(settings):
            seeds = SEEDS if setting.random else (0,)
            per_seed, passes, scores, edits, remasked = [], [], [], 0, 0
            tic = time.perf_counter()
            for seed in seeds:
                solved, p, e, r = solve_counted(model, tokenizer, puzzles, setting.config(config.size, seed))
                per_seed.append(solved_flags(puzzles, solved))
                scores.append(score(puzzles, solved))
                passes += p
                edits, remasked = edits + e, remasked + r
            rate, se = rate_with_se(per_seed)
            key = f"{setting.model}: {setting.name}"
            row = {"key": key, "family": setting.family, "name": setting.name, "model": setting.model,
                   "options": setting.options, "seeds": list(seeds), "n": len(puzzles),
                   "solved": rate, "solved_se": se,
                   "cell_accuracy": statistics.fmean(s["cell_accuracy"] for s in scores),
                   "passes_mean": statistics.fmean(passes), "passes_max": max(passes),
                   "edits_per_puzzle": edits / (len(puzzles) * len(seeds)),
                   "remasked_per_puzzle": remasked / (len(puzzles) * len(seeds)),
                   "solved_per_seed": [sum(f) / len(f) for f in per_seed],
                   "solved_flags": ["".join(map(str, f)) for f in per_seed],
                   "seconds": round(time.perf_counter() - tic, 1)}
            rows.append(row)
            log(f"[{model_name} {i + 1}/{len(settings)}] {setting.name}: {rate:.1%} ± {se:.1%}, "
                f"{row['passes_mean']:.2f} passes ({row['seconds']:.0f} s)")
    pair_rows(rows)
    return sudoku_summary(rows, len(puzzles), config)


def pair_rows(rows: list[dict]) -> None:
    """Each row's paired comparisons (see ``reference_of``; for the editing model also against the shipped
    model under the same setting), from the rows' solved flags."""
    by_key = {r["key"]: r for r in rows}
    for row in rows:
        row.pop("paired", None)
        row.pop("paired_vs_shipped_model", None)
        row.pop("paired_vs_nearest_steps", None)
        ref = reference_of(row, rows)
        if ref is not None:
            diff, se = paired(flags_of(row), flags_of(by_key[ref]))
            row["paired"] = {"against": ref, "difference": diff, "se": se}
        if "entropy_bound" in row["options"] or "threshold" in row["options"]:
            # a commit rule sets its own passes: against the fixed schedule of this model nearest in passes
            fixed = [r for r in rows if r["model"] == row["model"] and set(r["options"]) == {"steps"}]
            if fixed:
                near = min(fixed, key=lambda r: abs(r["passes_mean"] - row["passes_mean"]))
                diff, se = paired(flags_of(row), flags_of(near))
                row["paired_vs_nearest_steps"] = {"against": near["key"], "difference": diff, "se": se}
        twin = f"shipped: {row['name']}"
        if row["model"] == "editing" and twin in by_key:  # the two models, same puzzles, same setting
            diff, se = paired(flags_of(row), flags_of(by_key[twin]))
            row["paired_vs_shipped_model"] = {"against": twin, "difference": diff, "se": se}


def sudoku_summary(rows: list[dict], puzzles: int, config: PuzzleConfig | None = None) -> dict:
    paths = {"shipped": SHIPPED, "editing": EDITING}
    if config is None:
        config = PuzzleConfig.from_dict(json.loads(PUZZLE_RESULTS.read_text())["config"])
    order = {f"{m}: {s.name}": (k, i) for k, m in enumerate(("shipped", "editing"))
             for i, s in enumerate(sudoku_settings(False, m))}
    rows.sort(key=lambda r: order.get(r["key"], (9, 0)))
    models = sorted({r["model"] for r in rows})
    target = [r["key"] for r in rows if r["passes_mean"] <= 8 and r["solved"] >= 0.93]
    return {"models": {m: str(paths[m].relative_to(ROOT)) for m in models},
            "editing_model_present": "editing" in models, "puzzles": puzzles,
            "puzzle_config": {k: getattr(config, k) for k in ("size", "givens", "singles_only", "data_seed")},
            "rows": rows, "target": {"solved_at_least": 0.93, "passes_at_most": 8, "reached_by": target}}


# ---- text ----------------------------------------------------------------------------------------------------

def text_settings(quick: bool) -> list[tuple[str, str, SamplerConfig]]:
    """(family, name, config) for the text runs; seeds are set per run."""
    base = INTERACTIVE
    steps = (16,) if quick else TEXT_STEPS
    out = []
    for s in steps:
        out.append(("no revision", f"{s} steps", base.replace(steps=s)))
        out.append(("ReMDM cap 0.05", f"{s} steps, cap eta 0.05", base.replace(steps=s, remask="cap",
                                                                              remask_eta=0.05)))
    for b in ((12.0,) if quick else (4.0, 12.0)):  # text entropies are nats apiece: bounds near 32 and 16 passes
        out.append(("EB-sampler", f"EB {b}", base.replace(entropy_bound=b)))
    return out


@torch.no_grad()
def generate_counted(model, tokenizer, prompts: list[str], config: SamplerConfig):
    """Generated ids per prompt (cut at end-of-text) and the passes each took, from one left-padded batch."""
    ids, mask = left_padded([tokenizer(p, add_special_tokens=False).input_ids for p in prompts],
                            tokenizer.pad_token_id or 0)
    run = denoise(model, ids, config, attention_mask=mask)
    passes = count_passes(run, len(prompts))
    stops = stop_token_ids(tokenizer)
    out = run.output[:, ids.shape[1]:].tolist()
    return [row[:next((i for i, t in enumerate(row) if t in stops), len(row))] for row in out], passes


def per_prompt_mean(values: list[list[float]]) -> list[float]:
    """values[seed][prompt] -> each prompt's mean over its seeds (NaN, an empty generation, left out)."""
    out = []
    for column in zip(*values):
        kept = [v for v in column if v == v]
        out.append(statistics.fmean(kept) if kept else float("nan"))
    return out


def mean_se(values: list[float]) -> tuple[float, float]:
    kept = [v for v in values if v == v]
    return statistics.fmean(kept), statistics.stdev(kept) / math.sqrt(len(kept))


def run_text(args, log) -> dict:
    ds = _default_settings()
    model, tokenizer = load_model()
    ar, _ = load_model(DEFAULT_AR_MODEL_DIR)
    pairs = ds.draw_prompts(2 if args.quick else 20)
    prompts = [p for p, _ in pairs]
    seeds = TEXT_SEEDS[:2] if args.quick else TEXT_SEEDS
    rows, raw = [], {}
    settings = text_settings(args.quick)
    for i, (family, name, config) in enumerate(settings):
        tic = time.perf_counter()
        nll, d3, passes, empty = [], [], [], 0
        for seed in seeds:
            gens, p = generate_counted(model, tokenizer, prompts, config.replace(seed=seed))
            nll.append(ds.ar_nll(ar, tokenizer, prompts, gens))
            d3.append([ds.distinct(ds.words(tokenizer.decode(g)), 3) for g in gens])
            passes.append(p)
            empty += sum(not g for g in gens)
        raw[name] = {"nll": nll, "d3": d3}
        n_mean, n_se = mean_se(per_prompt_mean(nll))
        d_mean, d_se = mean_se(per_prompt_mean(d3))
        flat = [x for p in passes for x in p]
        rows.append({"family": family, "name": name, "config": config.to_dict(), "seeds": list(seeds),
                     "prompts": len(prompts), "passes_mean": statistics.fmean(flat), "passes_min": min(flat),
                     "passes_max": max(flat), "twin_nll": n_mean, "twin_nll_se": n_se,
                     "distinct3": d_mean, "distinct3_se": d_se, "empty_generations": empty,
                     "seconds": round(time.perf_counter() - tic, 1)})
        log(f"[text {i + 1}/{len(settings)}] {name}: nll {n_mean:.3f} ± {n_se:.3f}, distinct-3 {d_mean:.3f} ± "
            f"{d_se:.3f}, {rows[-1]['passes_mean']:.1f} passes ({rows[-1]['seconds']:.0f} s)")
    plain = {r["config"]["steps"]: r["name"] for r in rows if r["family"] == "no revision"}
    for row in rows:
        if row["family"] == "no revision":
            continue
        steps = row["config"]["steps"] if row["config"]["entropy_bound"] is None else \
            min(plain, key=lambda s: abs(s - row["passes_mean"]))
        ref = plain[steps]
        row["paired"] = {"against": ref}
        for metric in ("nll", "d3"):
            diffs = [[a - b for a, b in zip(x, y)] for x, y in zip(raw[row["name"]][metric], raw[ref][metric])]
            m, se = mean_se(per_prompt_mean(diffs))
            row["paired"]["twin_nll" if metric == "nll" else "distinct3"] = {"difference": m, "se": se}
    return {"model": "llada_play/default_model", "twin": "llada_play/default_ar_model",
            "prompts": prompts, "seeds": list(seeds), "gen_length": INTERACTIVE.gen_length,
            "block_length": INTERACTIVE.block_length, "temperature": INTERACTIVE.temperature, "rows": rows}


# ---- arithmetic ----------------------------------------------------------------------------------------------

ARITHMETIC_MODELS = {"shipped": ROOT / "llada_play" / "arithmetic_model",
                     "editing": ROOT / "data" / "sft" / "editing" / "final"}


def arithmetic_settings(quick: bool) -> list[tuple[str, dict]]:
    """(name, options over evaluation.SHORT_ANSWERS: 8 tokens, one block, greedy) for the arithmetic runs."""
    edit = {"edit_threshold": 0.9, "edit_steps": 2}
    settings = [("8 steps", {}), ("8 steps + edit 0.9 (+2)", edit), ("2 steps", {"steps": 2}),
                ("2 steps + edit 0.9 (+2)", {"steps": 2, **edit}), ("threshold 0.9", {"threshold": 0.9}),
                ("threshold 0.9 + edit 0.9 (+2)", {"threshold": 0.9, **edit})]
    return settings[:2] if quick else settings


@torch.no_grad()
def answer_counted(model, tokenizer, conversations: list[list[dict]], config: SamplerConfig,
                   batch_size: int = 50) -> tuple[list[int], list[int], int]:
    """(right flags, forward passes per prompt, edits) of greedy answers to ``conversations`` (chat prompts,
    left-padded, cut at end-of-turn), scored as ``evaluation.answer_accuracy`` scores them."""
    from llada_play.model.text import decode_generation

    flags, passes, edits = [], [], 0
    for start in range(0, len(conversations), batch_size):
        chunk = conversations[start:start + batch_size]
        texts = [tokenizer.apply_chat_template(c[:-1], add_generation_prompt=True, tokenize=False) for c in chunk]
        enc = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        run = denoise(model, enc.input_ids, config, attention_mask=enc.attention_mask)
        counter = PassCounter(len(chunk), config.edit_steps)
        for record in run:
            counter.add(record)
            edits += len(record.edits)
        passes += counter.passes
        for row, conv in zip(run.output, chunk):
            answer = decode_generation(tokenizer, row, enc.input_ids.shape[1]).strip()
            flags.append(int(answer == conv[-1]["content"].strip()))
    return flags, passes, edits


def run_arithmetic(args, log) -> dict:
    """Exact match on the held-out sums for each arithmetic model (the shipped SFT and its editing twin, where
    on disk) and setting; each row paired with the same model's row without edits, and each editing-model row
    with the shipped model's at the same setting (same 200 prompts: a paired difference)."""
    from llada_play.training.data import load_sft_rows
    from llada_play.training.evaluation import SHORT_ANSWERS

    conversations = load_sft_rows(ROOT / "data" / "sft" / "arithmetic_test.jsonl")[:8 if args.quick else 200]
    rows = []
    for model_name, path in ARITHMETIC_MODELS.items():
        if not (path / "config.json").exists():
            log(f"[arithmetic] {model_name}: {path} is not on disk, left out")
            continue
        model, tokenizer = load_model(path)
        for name, options in arithmetic_settings(args.quick):
            tic = time.perf_counter()
            flags, passes, edits = answer_counted(model, tokenizer, conversations, SHORT_ANSWERS.replace(**options))
            accuracy, se = rate_with_se([flags])
            rows.append({"model": model_name, "key": f"{model_name}: {name}", "name": name, "options": options,
                         "n": len(flags), "accuracy": accuracy, "accuracy_se": se,
                         "passes_mean": statistics.fmean(passes), "passes_max": max(passes),
                         "edits_per_prompt": edits / len(flags), "right_flags": "".join(map(str, flags)),
                         "seconds": round(time.perf_counter() - tic, 1)})
            log(f"[arithmetic] {model_name}: {name}: {pct(accuracy, se)}, {rows[-1]['passes_mean']:.1f} passes")
    by_key = {r["key"]: r for r in rows}
    for row in rows:
        flags = [[int(c) for c in row["right_flags"]]]
        plain = row["name"].split(" + edit")[0]
        against = [f"{row['model']}: {plain}"] if plain != row["name"] else []
        if row["model"] == "editing":
            against.append(f"shipped: {row['name']}")
        row["paired"] = []
        for key in against:
            if key in by_key:
                m, se = paired(flags, [[int(c) for c in by_key[key]["right_flags"]]])
                row["paired"].append({"against": key, "difference": m, "se": se})
    return {"models": {k: str(v.relative_to(ROOT)) for k, v in ARITHMETIC_MODELS.items()},
            "prompts": len(conversations), "data": "data/sft/arithmetic_test.jsonl",
            "base": SHORT_ANSWERS.to_dict(), "rows": rows}


def arithmetic_table(arithmetic: dict) -> str:
    lines = ["| model | setting | passes / prompt (max) | exact match ± SE | edits / prompt | paired differences |",
             "|---|---|---|---|---|---|"]
    for r in arithmetic["rows"]:
        pairs = " ; ".join(f"{100 * p['difference']:+.1f} ± {100 * p['se']:.1f} pts vs {p['against']}"
                           for p in r["paired"])
        lines.append(f"| {r['model']} | {r['name']} | {r['passes_mean']:.2f} ({r['passes_max']}) | "
                     f"{pct(r['accuracy'], r['accuracy_se'])} | {r['edits_per_prompt']:.2f} | {pairs} |")
    return "\n".join(lines)


# ---- output --------------------------------------------------------------------------------------------------

def pct(p: float, se: float) -> str:
    return f"{100 * p:.1f}% ± {100 * se:.1f}"


def sudoku_table(sudoku: dict) -> str:
    lines = ["| model | setting | seeds | passes / puzzle (max) | solved ± SE | paired: vs no revision ; vs fixed steps |",
             "|---|---|---|---|---|---|"]
    for r in sudoku["rows"]:
        pair = r.get("paired")
        vs = f"{100 * pair['difference']:+.1f} ± {100 * pair['se']:.1f} pts" if pair else ""
        near = r.get("paired_vs_nearest_steps")
        if near:
            vs += (" ; " if vs else "") + (f"{100 * near['difference']:+.1f} ± {100 * near['se']:.1f} pts vs "
                                          f"{near['against'].split(': ')[1]}")
        lines.append(f"| {r['model']} | {r['name']} | {len(r['seeds'])} | {r['passes_mean']:.2f} ({r['passes_max']}) "
                     f"| {pct(r['solved'], r['solved_se'])} | {vs} |")
    return "\n".join(lines)


def text_table(text: dict) -> str:
    lines = ["| setting | passes (min-max) | twin NLL ± SE | distinct 3-grams ± SE | paired: NLL diff | "
             "paired: distinct-3 diff |", "|---|---|---|---|---|---|"]
    for r in text["rows"]:
        p = r.get("paired")
        nd = f"{p['twin_nll']['difference']:+.3f} ± {p['twin_nll']['se']:.3f} (vs {p['against']})" if p else ""
        dd = f"{p['distinct3']['difference']:+.3f} ± {p['distinct3']['se']:.3f}" if p else ""
        lines.append(f"| {r['name']} | {r['passes_mean']:.1f} ({r['passes_min']}-{r['passes_max']}) | "
                     f"{r['twin_nll']:.3f} ± {r['twin_nll_se']:.3f} | {r['distinct3']:.3f} ± {r['distinct3_se']:.3f} "
                     f"| {nd} | {dd} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few puzzles and settings (smoke test)")
    parser.add_argument("--puzzles", type=int, default=None, help="held-out puzzles (default 500; 8 with --quick)")
    parser.add_argument("--models", default="shipped,editing",
                        help="Sudoku models to run: shipped, editing (left out while not on disk), or none")
    parser.add_argument("--only", default=None, help="run only the Sudoku settings whose name holds one of these texts, separated by | (names hold commas)")
    parser.add_argument("--skip-text", action="store_true", help="leave out the text part")
    parser.add_argument("--skip-arithmetic", action="store_true", help="leave out the arithmetic part")
    parser.add_argument("--merge", action="store_true",
                        help="keep what --json already holds for the parts and models not run now")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on the shared 2-core machine two threads spin against the other "
                             "processes; 100 puzzles x 22 steps took 20 s with 2 threads, 5.6 s with 1)")
    parser.add_argument("--json", default=str(ROOT / "data" / "revision" / "revision.json"))
    parser.add_argument("--png", default=str(ROOT / "benchmarks" / "revision.png"), help="'' for none")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m and m != "none"]
    if args.puzzles is None:
        args.puzzles = 8 if args.quick else 500
    torch.set_num_threads(args.threads)
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    tic = time.perf_counter()
    previous = json.loads(Path(args.json).read_text()) if args.merge and args.json and Path(args.json).exists() \
        else {}
    run = {"command": "python benchmarks/revision.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {os.cpu_count()} cores, "
                      f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__}",
           "parts": [*(f"sudoku:{m}" for m in args.models), *([] if args.skip_text else ["text"]),
                     *([] if args.skip_arithmetic else ["arithmetic"])]}
    # a call that runs nothing (--models none --skip-text --merge: tables, comparisons and chart made again from
    # the JSON) is not listed among the runs
    out = {"quick": args.quick, "runs": [*previous.get("runs", []), *([run] if run["parts"] else [])]}
    if args.models:
        out["sudoku"] = run_sudoku(args, log, previous.get("sudoku"))
    elif "sudoku" in previous:  # kept; its comparisons made again over all its rows (e.g. after a join)
        pair_rows(previous["sudoku"]["rows"])
        out["sudoku"] = sudoku_summary(previous["sudoku"]["rows"], previous["sudoku"]["puzzles"])
    if "sudoku" in out:
        print(sudoku_table(out["sudoku"]))
    for part, skip, run_part, table in (("text", args.skip_text, run_text, text_table),
                                         ("arithmetic", args.skip_arithmetic, run_arithmetic, arithmetic_table)):
        if not skip:
            out[part] = run_part(args, log)
        elif part in previous:  # kept from the file (--merge)
            out[part] = previous[part]
        if part in out:
            print(table(out[part]))
    run["wall_time_s"] = round(time.perf_counter() - tic, 1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
    if args.png and "sudoku" in out:
        revision_figure(out["sudoku"]).write_image(args.png, width=1150, height=640)  # the notebook's chart
    print(f"{run['wall_time_s']:.0f} s, {run['machine']}")
    return out


if __name__ == "__main__":
    main()
