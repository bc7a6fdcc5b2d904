"""Why LLaDA draws the masking ratio at random: two models of one shape trained on the same windows, one at
BERT's fixed 15%, one at t ~ U(0, 1), compared by their loss at every ratio, their diffusion NELBO and what they
write from all masks (scored by the shipped autoregressive twin). Notebook 05 runs it at a small budget and reads
the recorded larger ones; ``python -m llada_play.experiments.masking_ratio --steps N`` records one
(:func:`run_masking_ratio_experiment`, on the twin skeleton of :mod:`.twins`).
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..diffusion.sampling import generate
from ..model.config import config_from_preset
from ..model.modeling import LladaForMaskedLM
from ..model.tokenizer import special_token_ids
from ..training.data import PackedBatches, pack_tokens, read_corpus, split_documents
from ..training.evaluation import (autoregressive_nll_per_sequence, loss_by_mask_ratio, mean_and_standard_error,
                                   nelbo_from_loss_curve)
from ..training.trainer import TrainConfig
from .twins import Progress, TrainHooks, Twins, run_twins, train_twins
from ..validation import refuse_non_finite

FIXED, UNIFORM = "fixed 15% (BERT-style)", "t ~ U(0,1) (LLaDA)"
OBJECTIVES = {FIXED: 0.15, UNIFORM: None}  # name -> TrainConfig.fixed_mask_ratio
RATIOS = [0.05, 0.15, 0.3, 0.5, 0.7, 0.85, 1.0]
SEQ, BATCH = 128, 16
TRAIN_SEEDS = [0]  # both models start from one initial weights; the spread measured is the generations'
PROJECT = Path(__file__).resolve().parent.parent.parent
RESULTS_DIR = PROJECT / "data" / "masking_ratio"


@dataclass
class MaskingRatioConfig:
    """One budget of the comparison: the flags of ``python -m llada_play.experiments.masking_ratio``, saved into
    its results."""

    steps: int  # training steps per model
    seeds: int = 12  # generations per model, each scored by the twin
    corpus: str = "data/shakespeare"  # a folder of plays; a relative one not found here is the project's
    out: str | None = None  # also write the result to this JSON file (main: data/masking_ratio/budget-<steps>.json)
    output_dir: str = "runs/masking_ratio"  # the two models, their checkpoints and results.json
    progress: bool = True  # a bar on stderr when run_masking_ratio_experiment is given no progress callback

    def __post_init__(self):
        refuse_non_finite(self)
        if self.steps < 1 or self.seeds < 2:
            raise ValueError(f"steps must be >= 1 and seeds >= 2, got {self.steps} and {self.seeds}")

    def corpus_path(self) -> Path:
        path = Path(self.corpus)
        return path if path.exists() else PROJECT / path


def corpus_windows(tokenizer, corpus: str | Path, seq: int = SEQ) -> tuple[list[int], list[dict], list[str]]:
    """(training token stream, 8 fixed held-out batches of 16 windows, held-out play names): 5% of the plays
    held out, seed 0."""
    train_docs, val_docs = split_documents(read_corpus(corpus), 0.05, seed=0)
    val = PackedBatches(pack_tokens(tokenizer, val_docs.values(), seq), seq, BATCH).fixed_batches(8)
    return pack_tokens(tokenizer, train_docs.values(), seq), val, list(val_docs)


def pair_twins(tokenizer, train_tokens, steps: int, score: Callable[[str, torch.nn.Module, Progress], dict],
               seq: int = SEQ) -> Twins:
    """The experiment's part of the twin skeleton: the two models (``mini`` preset, same initial weights, same
    batches), in which only the masking ratio differs (BERT's random-token and kept-token replacements are left
    out), scored by ``score``."""
    def build(kind: str, seed: int) -> LladaForMaskedLM:
        torch.manual_seed(seed)
        return LladaForMaskedLM(config_from_preset("mini", **special_token_ids(tokenizer)))

    def training(kind: str, seed: int) -> tuple[PackedBatches, TrainConfig]:
        return PackedBatches(train_tokens, seq, BATCH), TrainConfig(
            objective="pretrain", max_steps=steps, lr=2e-3, warmup_steps=50, fixed_mask_ratio=OBJECTIVES[kind],
            seed=seed, save_every=max(1, steps // 4), keep_last=1)

    return Twins(list(OBJECTIVES), tokenizer, build, training, score)


def train_pair(tokenizer, train_tokens, steps: int, seq: int = SEQ,
               on_step: Callable[[str, object], None] | None = None) -> dict[str, LladaForMaskedLM]:
    """The two models of :func:`pair_twins`, trained and returned unscored (the notebook scores them itself).
    ``on_step(name, record)`` sees every step."""
    models = {}

    def keep(kind: str, model: torch.nn.Module, _progress: Progress) -> dict:
        models[kind] = model
        return {}

    hooks = (lambda kind, seed, record: on_step(kind, record)) if on_step else None
    with tempfile.TemporaryDirectory() as out:  # the models are kept in memory; their training state is not
        train_twins(pair_twins(tokenizer, train_tokens, steps, keep, seq), TRAIN_SEEDS, out, train_hooks=hooks)
    return models


def loss_curves(models: dict, val_batches: list[dict], ratios=RATIOS) -> dict[str, dict[float, float]]:
    """Held-out masked-token loss of each model at each ratio."""
    return {name: loss_by_mask_ratio(m, val_batches, m.config.mask_token_id, ratios=ratios)
            for name, m in models.items()}


def written_from_all_masks(model, twin, eos_id: int, seeds) -> dict:
    """64 tokens from all masks (64 steps, blocks of 32, temperature 1) per seed, cut at the first end-of-text and
    scored by the autoregressive ``twin``: mean ± standard error of its NLL (nats/token) and of the share of
    distinct tokens."""
    empty = torch.zeros(1, 0, dtype=torch.long)
    nll, distinct = [], []
    for seed in seeds:
        out = generate(model, empty, steps=64, gen_length=64, block_length=32, temperature=1.0, seed=seed)[0]
        ends = (out == eos_id).nonzero()
        text = out[: int(ends[0]) if len(ends) else len(out)]
        if len(text) < 2:
            text = out[:2]  # ended at once: score its first two tokens
        nll.append(autoregressive_nll_per_sequence(twin, text[None]).item())
        distinct.append(len(set(text.tolist())) / len(text))
    return {"nll": mean_and_standard_error(nll), "distinct": mean_and_standard_error(distinct)}


def model_scores(model, val_batches: list[dict], twin, eos_id: int, seeds: Iterable[int],
                 curve: dict[float, float] | None = None) -> dict:
    """One model's numbers: its held-out loss at every ratio (``curve``, if measured already), the NELBO from it
    and its generations under the twin."""
    curve = curve if curve is not None else loss_by_mask_ratio(model, val_batches, model.config.mask_token_id,
                                                               ratios=RATIOS)
    return {"loss_by_ratio": {str(t): v for t, v in curve.items()}, "nelbo": nelbo_from_loss_curve(curve),
            "written": written_from_all_masks(model, twin, eos_id, seeds)}


def budget_result(steps: int, seeds: int, scores: dict[str, dict]) -> dict:
    """One budget's JSON (what :func:`conclusion` and the notebook read) from each model's :func:`model_scores`."""
    return {"steps": steps, "tokens_per_model": steps * BATCH * SEQ, "seeds": seeds,
            **{key: {name: s[key] for name, s in scores.items()} for key in ("loss_by_ratio", "nelbo", "written")}}


def compare(models: dict, val_batches: list[dict], twin, eos_id: int, seeds, steps: int,
            curves: dict[str, dict[float, float]] | None = None) -> dict:
    """Everything the conclusion needs, as JSON-ready numbers (``curves``: the loss curves, if measured already)."""
    curves = curves or loss_curves(models, val_batches)
    seeds = list(seeds)
    return budget_result(steps, len(seeds), {name: model_scores(m, val_batches, twin, eos_id, seeds, curves[name])
                                             for name, m in models.items()})


def run_masking_ratio_experiment(config: MaskingRatioConfig, resume: bool = False,
                                 progress: Progress | None = None, train_hooks: TrainHooks | None = None) -> dict:
    """Train both models and score each as it finishes; write ``results.json`` (the budget's numbers, as
    :func:`budget_result` names them, beside the skeleton's config and runs) under ``output_dir``, and a copy to
    ``out`` if given. With ``resume``, what a stopped run finished is kept (:mod:`.twins`)."""
    from transformers import AutoTokenizer

    from ..model.checkpoint import DEFAULT_AR_MODEL_DIR, DEFAULT_MODEL_DIR, load_model

    tokenizer = AutoTokenizer.from_pretrained(DEFAULT_MODEL_DIR)
    train_tokens, val, _ = corpus_windows(tokenizer, config.corpus_path())
    twin, _ = load_model(DEFAULT_AR_MODEL_DIR)
    start = time.monotonic()

    def score(kind: str, model: torch.nn.Module, report: Progress) -> dict:
        report(0.0, f"scoring {config.seeds} generations")
        return model_scores(model, val, twin, tokenizer.eos_token_id, range(config.seeds))

    def summarise(runs: list[dict]) -> dict:
        return {**budget_result(config.steps, config.seeds, {r["model"]: r["scores"] for r in runs}),
                "wall_minutes": round((time.monotonic() - start) / 60, 1), "recorded": time.strftime("%Y-%m-%d")}

    twins = replace(pair_twins(tokenizer, train_tokens, config.steps, score), summarise=summarise)
    results = run_twins(twins, config, TRAIN_SEEDS, resume, progress, train_hooks)
    if config.out:
        Path(config.out).parent.mkdir(parents=True, exist_ok=True)
        Path(config.out).write_text(json.dumps(results, indent=1) + "\n")
    return results


def _separated(result: dict) -> bool:
    (f_nll, f_se), (u_nll, u_se) = result["written"][FIXED]["nll"], result["written"][UNIFORM]["nll"]
    return abs(f_nll - u_nll) > 2 * (f_se ** 2 + u_se ** 2) ** 0.5


def uniform_writes_better(result: dict) -> bool:
    """The uniform-t model's generations score lower under the twin, beyond two standard errors."""
    return _separated(result) and result["written"][UNIFORM]["nll"][0] < result["written"][FIXED]["nll"][0]


def conclusion(result: dict) -> list[str]:
    """What one budget's numbers say: which bound is lower, and whether the generations differ beyond two
    standard errors."""
    nelbo, written = result["nelbo"], result["written"]
    (f_nll, f_se), (u_nll, u_se) = written[FIXED]["nll"], written[UNIFORM]["nll"]
    separated = _separated(result)
    lower = UNIFORM if nelbo[UNIFORM] < nelbo[FIXED] else FIXED
    if not separated:
        verdict = "within two standard errors of each other: no difference shown"
    else:
        verdict = f"the {UNIFORM if u_nll < f_nll else FIXED} model's text reads more like the corpus, beyond two SE"
    return [f"{result['steps']:,} steps ({result['tokens_per_model']:,} tokens a model): lower NELBO: {lower} "
            f"({nelbo[UNIFORM]:.2f} uniform vs {nelbo[FIXED]:.2f} fixed nats/token); generations under the twin "
            f"{u_nll:.2f} ± {u_se:.2f} uniform vs {f_nll:.2f} ± {f_se:.2f} fixed: {verdict}.",
            ("uniform-t writes better here" if uniform_writes_better(result)
             else "uniform-t does not write better at this budget")]


def recorded_results(folder: Path = RESULTS_DIR) -> list[dict]:
    """The recorded budgets (``budget-<steps>.json``), smallest first."""
    return sorted((json.loads(p.read_text()) for p in folder.glob("budget-*.json")), key=lambda r: r["steps"])


def main(argv: list[str] | None = None) -> None:
    """``python -m llada_play.experiments.masking_ratio --steps N``: ``llada-play masking-ratio`` (the same flags,
    MaskingRatioConfig's fields, by :mod:`llada_play.flags`), except that the result is also recorded in
    ``data/masking_ratio/budget-<steps>.json`` unless ``--out`` names another file."""
    from ..flags import parse_config

    config = parse_config(MaskingRatioConfig, argv, description="Record the fixed-15% vs uniform-t comparison at "
                                                                "one budget.")
    if config.out is None:  # named from here (relative where it can be), so that the file records no machine path
        config = replace(config, out=os.path.relpath(RESULTS_DIR / f"budget-{config.steps}.json"))
    result = run_masking_ratio_experiment(config)
    print("\n".join(conclusion(result)), f"\nwritten to {config.out}", sep="")


if __name__ == "__main__":
    main()
