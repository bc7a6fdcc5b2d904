"""Where denoising order matters: Sudoku solved by a masked diffusion model and by its left-to-right twin.

Both models share the preset, the tokens (one per cell), the data and the training steps; the diffusion model
is trained with the SFT loss (the solution masked at a random ratio, the puzzle left unmasked), the twin with
next-token loss on the solution. At test time the givens are pinned in the answer for both, so only the empty
cells are decided, and the only difference left is the order: the diffusion model commits the cells it is
surest of first (or in any order a remasking strategy picks), the twin must go left to right.
"""
from __future__ import annotations

import json
from dataclasses import InitVar, dataclass, field
from pathlib import Path

import torch

from ..diffusion.autoregressive import generate_autoregressive
from ..diffusion.sampler_config import SamplerConfig
from ..diffusion.sampling import denoise
from ..model.checkpoint import load_model
from ..model.config import config_from_preset
from ..model.modeling import LladaForMaskedLM
from ..model.tokenizer import build_char_tokenizer, special_token_ids
from ..training.data import SFTBatches
from ..training.trainer import TrainConfig
from .reversal_experiment import mean_spread
from .sudoku import BLANK, Puzzle, forced_cells, make_puzzles
from .twins import Progress, TrainHooks, Twins, accepts_out_dir, former_out_dir, run_twins
from ..validation import refuse_non_finite

MODEL_KINDS = ("diffusion", "autoregressive")
OUTPUT_DIR = "runs/puzzle"


@accepts_out_dir
@dataclass
class PuzzleConfig:
    """Everything a puzzle run depends on; saved into its results so that it can be repeated."""

    output_dir: str = OUTPUT_DIR  # the models, their checkpoints and results.json
    size: int = 6  # the grid's side: 4, 6 or 9 cells
    givens: int = 14  # cells given in each generated puzzle
    singles_only: bool = True  # only puzzles solvable by single-candidate steps (the difficulty knob)
    train_puzzles: int = 10000  # generated puzzles to train on
    test_puzzles: int = 500  # held-out puzzles scored
    data_seed: int = 0  # seed of the generated puzzles
    preset: str = "mini"  # model shape of both kinds
    steps: int = 3000  # training steps per model; measured: 95.1% ± 1.8 solved easy-first vs 12.8% ± 0.8 for the twin, 2 seeds (RESULTS)
    batch_size: int = 64  # puzzles per training step
    lr: float = 2e-3  # peak learning rate (AdamW, after warm-up)
    warmup: int = 100  # warm-up steps
    edit_ratio: float = 0.0  # token editing for the diffusion model: share of visible answer cells corrupted and restored (0: off)
    seeds: list[int] = field(default_factory=lambda: [0, 1])  # one trained pair per seed
    models: list[str] = field(default_factory=lambda: list(MODEL_KINDS))  # diffusion, autoregressive or both
    precision: str = "auto"  # training precision: auto (bf16 where the device runs it fast), bf16 or fp32
    device: str = "cpu"  # where the models train (cpu, cuda...)
    progress: bool = True  # a bar on stderr when run_puzzle_experiment is given no progress callback
    out_dir: InitVar[str | None] = None  # the former name of output_dir, still accepted (older results use it)

    def __post_init__(self, out_dir: str | None = None):
        refuse_non_finite(self)
        former_out_dir(self, out_dir, OUTPUT_DIR)
        unknown = set(self.models) - set(MODEL_KINDS)
        if unknown:
            raise ValueError(f"unknown model kinds {sorted(unknown)}; choose from {list(MODEL_KINDS)}")
        if self.train_puzzles <= 0 or self.test_puzzles <= 0:
            raise ValueError("train_puzzles and test_puzzles must be positive")

    @classmethod
    def from_dict(cls, values: dict) -> "PuzzleConfig":
        names = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown puzzle settings {unknown}; the settings are {sorted(names)}")
        return cls(**values)


def puzzle_tokenizer(size: int):
    """One token per cell value: the digits of the grid and the blank."""
    return build_char_tokenizer("".join(str(d) for d in range(1, size + 1)) + BLANK,
                                model_max_length=2 * size * size)


def encode_puzzles(tokenizer, puzzles: list[Puzzle]) -> tuple[torch.LongTensor, torch.LongTensor]:
    """(prompts, solutions): the puzzles' cells and their solutions' cells as token ids, (count, cells) each."""
    def ids(texts):
        return torch.tensor(tokenizer(texts, add_special_tokens=False).input_ids)

    return ids([p.text for p in puzzles]), ids(["".join(map(str, p.solution)) for p in puzzles])


def pinned_givens(tokenizer, puzzles: list[Puzzle]) -> torch.LongTensor:
    """The givens as per-row pins on the answer (-1 on the empty cells), for either sampler's ``constraints``."""
    prompts, solutions = encode_puzzles(tokenizer, puzzles)
    blank = tokenizer.convert_tokens_to_ids(BLANK)
    return torch.where(prompts == blank, torch.full_like(solutions, -1), solutions)


def decode_grids(tokenizer, answers: torch.LongTensor) -> list[tuple[int, ...]]:
    """Token ids of answers back to grids (0 where a token is not a digit, e.g. still masked)."""
    grids = []
    for row in answers.tolist():
        pieces = tokenizer.convert_ids_to_tokens(row)
        grids.append(tuple(int(p) if p and p.isdigit() else 0 for p in pieces))
    return grids


def solver_config(size: int, strategy: str = "low_confidence", steps: int | None = None,
                  threshold: float | None = None) -> SamplerConfig:
    """One block over the whole answer; one cell per step unless ``steps`` (fewer: several cells a step) or a
    ``threshold`` says otherwise."""
    cells = size * size
    return SamplerConfig(steps=steps or cells, gen_length=cells, block_length=cells, remasking=strategy,
                         threshold=threshold, seed=0)


@dataclass
class Solved:
    """A batch of attempts: the grids, and for the diffusion model the step at which each cell was committed."""

    grids: list[tuple[int, ...]]
    commit_steps: list[dict[int, int]] | None = None  # cell -> step at which it was committed (empty cells only)


@torch.no_grad()
def solve_with_diffusion(model, tokenizer, puzzles: list[Puzzle], config: SamplerConfig,
                         batch_size: int = 100) -> Solved:
    grids, steps = [], []
    for start in range(0, len(puzzles), batch_size):
        chunk = puzzles[start:start + batch_size]
        prompts, _ = encode_puzzles(tokenizer, chunk)
        run = denoise(model, prompts, config, constraints=pinned_givens(tokenizer, chunk))
        when = [dict() for _ in chunk]
        for record in run:
            for row, pos in record.committed.nonzero().tolist():
                when[row][pos - record.prompt_length] = record.step
        grids += decode_grids(tokenizer, run.output[:, prompts.shape[1]:])
        steps += when
    return Solved(grids, steps)


@torch.no_grad()
def solve_with_autoregressive(model, tokenizer, puzzles: list[Puzzle], batch_size: int = 100) -> Solved:
    grids = []
    for start in range(0, len(puzzles), batch_size):
        chunk = puzzles[start:start + batch_size]
        prompts, _ = encode_puzzles(tokenizer, chunk)
        cells = prompts.shape[1]
        out = generate_autoregressive(model, prompts, cells, constraints=pinned_givens(tokenizer, chunk))
        grids += decode_grids(tokenizer, out[:, cells:])
    # left to right, one open cell a step (the givens are pinned, not decided)
    steps = [{cell: k for k, cell in enumerate(c for c, v in enumerate(p.givens) if v == 0)} for p in puzzles]
    return Solved(grids, steps)


def forced_share(puzzle: Puzzle, grid: tuple[int, ...], when: dict[int, int]) -> tuple[int, int]:
    """(commits of a cell that a single forced on the grid as it stood before that step, commits)."""
    cells, forced = list(puzzle.givens), 0
    for step in sorted(set(when.values())):
        now = [c for c, s in when.items() if s == step]
        obvious = forced_cells(tuple(cells), puzzle.size)
        forced += sum(c in obvious for c in now)
        for c in now:
            cells[c] = grid[c]
    return forced, len(when)


def score(puzzles: list[Puzzle], solved: Solved) -> dict:
    """Solve rate (every cell right) and accuracy over the empty cells; with commit steps also how many empty
    cells were committed, in commit order, before the first wrong one (all of them when solved), and the share
    of commits that were forced by a single when made (a commit that is not forced is a guess)."""
    blanks = right = solved_count = forced = commits = 0
    before_mistake = []
    for i, (puzzle, grid) in enumerate(zip(puzzles, solved.grids)):
        empty = [c for c, v in enumerate(puzzle.givens) if v == 0]
        ok = [grid[c] == puzzle.solution[c] for c in empty]
        blanks, right, solved_count = blanks + len(empty), right + sum(ok), solved_count + all(ok)
        if solved.commit_steps is not None:
            when = solved.commit_steps[i]
            order = sorted(empty, key=lambda c: (when.get(c, 1 << 30), c))
            wrong = [k for k, c in enumerate(order) if grid[c] != puzzle.solution[c]]
            before_mistake.append(wrong[0] if wrong else len(order))
            f, n = forced_share(puzzle, grid, when)
            forced, commits = forced + f, commits + n
    out = {"solved": solved_count / len(puzzles), "cell_accuracy": right / blanks, "n": len(puzzles)}
    if before_mistake:
        out["cells_before_first_mistake"] = sum(before_mistake) / len(before_mistake)
        out["forced_commits"] = forced / max(commits, 1)
    return out


def build_model(kind: str, config: PuzzleConfig, tokenizer, seed: int) -> LladaForMaskedLM:
    torch.manual_seed(seed)
    cells = config.size * config.size
    preset = config_from_preset(config.preset, causal=kind == "autoregressive", max_position_embeddings=2 * cells,
                                **special_token_ids(tokenizer))
    return LladaForMaskedLM(preset)


def puzzle_training(kind: str, config: PuzzleConfig, tokenizer, train_set: list[Puzzle],
                    seed: int) -> tuple[SFTBatches, TrainConfig]:
    """The batches and settings of one model of ``kind`` (the puzzle is the prompt, the solution the answer)."""
    prompts, solutions = encode_puzzles(tokenizer, train_set)
    batches = SFTBatches(torch.cat([prompts, solutions], 1), torch.full((len(train_set),), prompts.shape[1]),
                         config.batch_size)
    return batches, TrainConfig(objective="autoregressive" if kind == "autoregressive" else "sft",
                                max_steps=config.steps, lr=config.lr, warmup_steps=min(config.warmup, config.steps),
                                seed=seed, precision=config.precision, device=config.device,
                                edit_ratio=0.0 if kind == "autoregressive" else config.edit_ratio,
                                save_every=max(1, config.steps // 4), keep_last=1, log_every=50)


def evaluate(kind: str, model, tokenizer, puzzles: list[Puzzle], size: int) -> dict:
    """The model's solve rate: easy-first decoding for the diffusion model, left to right for the twin."""
    if kind == "autoregressive":
        return score(puzzles, solve_with_autoregressive(model, tokenizer, puzzles))
    return score(puzzles, solve_with_diffusion(model, tokenizer, puzzles, solver_config(size)))


def held_out(config: PuzzleConfig, count: int | None = None) -> list[Puzzle]:
    """The test puzzles of a run (drawn with the data seed + 1), or the first ``count`` of them."""
    return make_puzzles(count or config.test_puzzles, config.size, config.givens, config.data_seed + 1,
                        config.singles_only)


def datasets(config: PuzzleConfig) -> tuple[list[Puzzle], list[Puzzle]]:
    """(train, test): disjoint sets of puzzles drawn with the config's data seed."""
    test = held_out(config)
    train_set = make_puzzles(config.train_puzzles, config.size, config.givens, config.data_seed,
                             config.singles_only, exclude={p.text for p in test})
    return train_set, test


def run_puzzle_experiment(config: PuzzleConfig, resume: bool = False, progress: Progress | None = None,
                          train_hooks: TrainHooks | None = None) -> dict:
    """Train and score every (seed, kind); write ``results.json`` and the models under ``output_dir`` (each run's
    ``model_dir`` relative to it, so that the folder can be moved or shipped as it is). With ``resume``, what a
    stopped run finished is kept and its model in training continues (:mod:`.twins`)."""
    tokenizer = puzzle_tokenizer(config.size)
    train_set, test = datasets(config)
    twins = Twins(config.models, tokenizer, lambda kind, seed: build_model(kind, config, tokenizer, seed),
                  lambda kind, seed: puzzle_training(kind, config, tokenizer, train_set, seed),
                  lambda kind, model, _: evaluate(kind, model, tokenizer, test, config.size))
    return run_twins(twins, config, config.seeds, resume, progress, train_hooks)


def solve_rates(results: dict) -> dict[str, dict]:
    """{kind: {"solved": mean_spread, "cell_accuracy": mean_spread, "train_min": mean minutes, "seeds": n}}."""
    out = {}
    for kind in MODEL_KINDS:
        runs = [r for r in results["runs"] if r["model"] == kind]
        if runs:
            out[kind] = {"solved": mean_spread([r["scores"]["solved"] for r in runs]),
                         "cell_accuracy": mean_spread([r["scores"]["cell_accuracy"] for r in runs]),
                         "train_min": sum(r["train_time_s"] for r in runs) / len(runs) / 60,
                         "seeds": len(runs), "n": runs[0]["scores"]["n"]}
    return out


def results_markdown(results: dict) -> str:
    """A table of the runs: solve rate and accuracy on the empty cells, mean ± std over seeds, per kind."""
    lines = ["| model | solved | cell accuracy | train time | seeds |", "|---|---|---|---|---|"]
    for kind, rates in solve_rates(results).items():
        solved, cells = rates["solved"], rates["cell_accuracy"]
        lines.append(f"| {kind} | {solved['mean']:.1%} ± {solved['std']:.1%} | "
                     f"{cells['mean']:.1%} ± {cells['std']:.1%} | {rates['train_min']:.1f} min | {rates['seeds']} |")
    return "\n".join(lines)


def model_dir_of(results_path: str | Path, run: dict) -> Path:
    """Where a run's model is: its ``model_dir``, taken relative to the results file (as in the shipped
    data/puzzle/) unless it is absolute."""
    return Path(results_path).parent / run["model_dir"]


def load_pair(results_path: str | Path, seed: int | None = None) -> dict[str, tuple]:
    """{kind: (model, tokenizer)} of one seed of a results file (the first seed by default)."""
    results = json.loads(Path(results_path).read_text())
    seed = results["config"]["seeds"][0] if seed is None else seed
    return {run["model"]: load_model(model_dir_of(results_path, run)) for run in results["runs"]
            if run["seed"] == seed}
