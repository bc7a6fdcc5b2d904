"""Why LLaDA draws the masking ratio at random: two models of one shape trained on the same windows, one at
BERT's fixed 15%, one at t ~ U(0, 1), compared by their loss at every ratio, their diffusion NELBO and what they
write from all masks (scored by the shipped autoregressive twin). Notebook 05 runs it at a small budget and reads
the recorded larger ones; ``python -m llada_play.experiments.masking_ratio --steps N`` records one.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..diffusion.sampling import generate
from ..model.config import config_from_preset
from ..model.modeling import LladaForMaskedLM
from ..model.tokenizer import special_token_ids
from ..training.data import PackedBatches, pack_tokens, read_corpus, split_documents
from ..training.evaluation import (autoregressive_nll_per_sequence, loss_by_mask_ratio, mean_and_standard_error,
                                   nelbo_from_loss_curve)
from ..training.trainer import TrainConfig, train

FIXED, UNIFORM = "fixed 15% (BERT-style)", "t ~ U(0,1) (LLaDA)"
OBJECTIVES = {FIXED: 0.15, UNIFORM: None}  # name -> TrainConfig.fixed_mask_ratio
RATIOS = [0.05, 0.15, 0.3, 0.5, 0.7, 0.85, 1.0]
SEQ, BATCH = 128, 16
RESULTS_DIR = Path(__file__).resolve().parent.parent.parent / "data" / "masking_ratio"


def corpus_windows(tokenizer, corpus: str | Path, seq: int = SEQ) -> tuple[list[int], list[dict], list[str]]:
    """(training token stream, 8 fixed held-out batches of 16 windows, held-out play names): 5% of the plays
    held out, seed 0."""
    train_docs, val_docs = split_documents(read_corpus(corpus), 0.05, seed=0)
    val = PackedBatches(pack_tokens(tokenizer, val_docs.values(), seq), seq, BATCH).fixed_batches(8)
    return pack_tokens(tokenizer, train_docs.values(), seq), val, list(val_docs)


def train_pair(tokenizer, train_tokens, steps: int, seq: int = SEQ,
               on_step: Callable[[str, object], None] | None = None) -> dict[str, LladaForMaskedLM]:
    """The two models (``mini`` preset, same initial weights, same batches): only the masking ratio differs
    (BERT's random-token and kept-token replacements are left out). ``on_step(name, record)`` sees every step."""
    models = {}
    for name, ratio in OBJECTIVES.items():
        torch.manual_seed(0)
        model = LladaForMaskedLM(config_from_preset("mini", **special_token_ids(tokenizer)))
        hooks = (lambda record, name=name: on_step(name, record)) if on_step else None
        with tempfile.TemporaryDirectory() as out:  # the model is kept in memory; its training state is not
            config = TrainConfig(objective="pretrain", output_dir=out, max_steps=steps, lr=2e-3, warmup_steps=50,
                                 fixed_mask_ratio=ratio, seed=0, progress=False, save_every=10**9)
            train(model, PackedBatches(train_tokens, seq, BATCH), config, hooks=hooks)
        models[name] = model.eval()
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


def compare(models: dict, val_batches: list[dict], twin, eos_id: int, seeds, steps: int,
            curves: dict[str, dict[float, float]] | None = None) -> dict:
    """Everything the conclusion needs, as JSON-ready numbers (``curves``: the loss curves, if measured already)."""
    curves = curves or loss_curves(models, val_batches)
    return {"steps": steps, "tokens_per_model": steps * BATCH * SEQ, "seeds": len(list(seeds)),
            "loss_by_ratio": {name: {str(t): v for t, v in c.items()} for name, c in curves.items()},
            "nelbo": {name: nelbo_from_loss_curve(c) for name, c in curves.items()},
            "written": {name: written_from_all_masks(m, twin, eos_id, seeds) for name, m in models.items()}}


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
    from transformers import AutoTokenizer

    from ..model.checkpoint import DEFAULT_AR_MODEL_DIR, DEFAULT_MODEL_DIR, load_model

    parser = argparse.ArgumentParser(description="Record the fixed-15% vs uniform-t comparison at one budget.")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--seeds", type=int, default=12, help="generations per model (default 12)")
    parser.add_argument("--corpus", default=str(RESULTS_DIR.parent / "shakespeare"))
    parser.add_argument("--out", default=None, help=f"JSON file (default {RESULTS_DIR}/budget-<steps>.json)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.seeds < 2:
        parser.error("--steps must be >= 1 and --seeds >= 2")
    tokenizer = AutoTokenizer.from_pretrained(DEFAULT_MODEL_DIR)
    train_tokens, val, _ = corpus_windows(tokenizer, args.corpus)
    start = time.monotonic()
    models = train_pair(tokenizer, train_tokens, args.steps)
    twin, _ = load_model(DEFAULT_AR_MODEL_DIR)
    result = compare(models, val, twin, tokenizer.eos_token_id, range(args.seeds), args.steps)
    result["wall_minutes"] = round((time.monotonic() - start) / 60, 1)
    result["recorded"] = time.strftime("%Y-%m-%d")
    out = Path(args.out) if args.out else RESULTS_DIR / f"budget-{args.steps}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join(conclusion(result)), f"\nwritten to {out}", sep="")


if __name__ == "__main__":
    main()
