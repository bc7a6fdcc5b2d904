"""In-context learning without next-token prediction: a masked diffusion model and its autoregressive twin (same
preset, tokenizer, data order and token budget), and a diffusion model trained at one fixed high masking ratio,
trained from scratch on few-shot prompts of fresh mappings (:mod:`.icl_data`) and scored on held-out ones.

Scores per model (:func:`evaluate_icl`): accuracy against shots for every variant (examples before the question),
by generation and by ranking; the same with the examples after the question; and, while it trains, accuracy
against the training step (``curve_every``). Each point keeps which prompts were right (``correct``: a string of
0/1), so that two models on the same prompts can be compared pairwise. ``python -m
llada_play.experiments.icl_experiment`` runs it (:func:`run_icl_experiment`, on the twin skeleton of
:mod:`.twins`).
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..model.config import PRESETS, config_from_preset
from ..model.modeling import LladaForMaskedLM
from ..model.tokenizer import special_token_ids
from ..training.data import DocumentBatches
from ..training.trainer import TrainConfig
from ..validation import refuse_non_finite
from .icl import accuracy, copy_any_label, generated_answers, ranked_answers
from .icl_data import SHOTS, FewShotTask, TrainingMix, check_fits, check_labels, draw_prompts, training_texts
from .reversal_experiment import reference_tokenizer
from .twins import Progress, TrainHooks, Twins, folder_name, run_twins

DIFFUSION, AUTOREGRESSIVE, FIXED = "diffusion", "autoregressive", "diffusion, fixed t"
MODEL_KINDS = (DIFFUSION, AUTOREGRESSIVE, FIXED)
CURVE_FILE = "icl_curve.jsonl"


@dataclass
class ICLConfig:
    """Everything the experiment depends on (the flags of ``python -m llada_play.experiments.icl_experiment``);
    saved into the results."""

    output_dir: str = "runs/icl"  # the models, their checkpoints and results.json
    preset: str = "mini"  # the shape of every model
    steps: int = 3000  # training steps per model
    batch_size: int = 16  # windows per step
    seq_len: int = 160  # tokens per window (a 16-shot prompt fits whole)
    lr: float = 2e-3  # peak learning rate (AdamW, after warm-up)
    warmup: int = 100  # warm-up steps
    seeds: list[int] = field(default_factory=lambda: [0, 1])  # one trained set of models per seed
    models: list[str] = field(default_factory=lambda: list(MODEL_KINDS))
    fixed_ratio: float = 0.8  # the masking ratio of the "diffusion, fixed t" model
    train_documents: int = 200_000  # few-shot documents generated for training (0 to max_shots examples each)
    max_shots: int = 16
    keys_per_prompt: int = 4
    labels_per_prompt: int = 3
    known_share: float = 0.25  # of training documents, those of real words with a colour of their own
    prior_strength: float = 0.9  # how often such a word gets its own colour in training
    eval_prompts: int = 500  # held-out prompts per point of the shots curves
    curve_every: int = 250  # steps between points of the accuracy-against-step curve
    curve_prompts: int = 200  # prompts per point of that curve (8 shots, ranking)
    data_seed: int = 0
    precision: str = "auto"
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self):
        refuse_non_finite(self)
        if self.preset not in PRESETS or self.preset == "llada-8b":
            raise ValueError(f"preset {self.preset!r} is not one to train here; use tiny, mini or small")
        unknown = set(self.models) - set(MODEL_KINDS)
        if unknown or not self.models:
            raise ValueError(f"models must be a non-empty subset of {MODEL_KINDS}, got {self.models}")
        if not self.seeds:
            raise ValueError("give at least one seed")
        for name in ("steps", "batch_size", "seq_len", "train_documents", "eval_prompts", "curve_every",
                     "curve_prompts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.fixed_ratio <= 1:
            raise ValueError(f"fixed_ratio must be in (0, 1], got {self.fixed_ratio}")
        if self.max_shots < max(SHOTS):
            raise ValueError(f"max_shots must be at least {max(SHOTS)}, the largest point of the shots curve")
        self.mix()  # its checks

    def mix(self) -> TrainingMix:
        return TrainingMix(self.max_shots, self.keys_per_prompt, self.labels_per_prompt, self.known_share,
                           self.prior_strength)

    def task(self, shots: int, variant: str = "fresh", layout: str = "before") -> FewShotTask:
        return FewShotTask(shots, self.keys_per_prompt, self.labels_per_prompt, variant, layout)

    @classmethod
    def quick(cls, **overrides) -> ICLConfig:
        """A run of a few minutes: tiny models, few steps and prompts (what the tests and quick mode run)."""
        base = dict(preset="tiny", steps=60, seeds=[0], train_documents=2000, eval_prompts=24, curve_every=30,
                    curve_prompts=16, warmup=10)
        return cls(**{**base, **overrides})


def points(config: ICLConfig) -> list[tuple[str, str, int]]:
    """(layout, variant, shots) of every point scored: the three variants before the question at every shot
    count, and fresh prompts after it (from one example: with none there is nothing after the question)."""
    before = [("before", v, k) for v in ("fresh", "flipped", "agreeing") for k in SHOTS]
    return before + [("after", "fresh", k) for k in SHOTS if k]


def point_key(layout: str, variant: str, shots: int) -> str:
    return f"{layout}/{variant}/{shots}"


def held_out_prompts(config: ICLConfig, layout: str, variant: str, shots: int, count: int | None = None) -> list:
    """The prompts of one point: the same for every model and seed (seeded by the data seed)."""
    return draw_prompts(config.task(shots, variant, layout), count or config.eval_prompts, config.data_seed)


def _scored(answers: list[str], prompts: list) -> dict:
    result = accuracy(answers, prompts)
    result["correct"] = "".join("1" if a == p.answer else "0" for a, p in zip(answers, prompts))
    return result


@torch.no_grad()
def evaluate_icl(model, tokenizer, config: ICLConfig, progress: Progress | None = None) -> dict:
    """Every point of :func:`points` by generation and by ranking (the twin also by joint ranking after the
    question): ``{point_key: {"generation": {...}, "ranking": {...}[, "joint": {...}]}}``."""
    model.eval()
    causal = bool(getattr(model.config, "causal", False))
    scores = {}
    todo = points(config)
    for i, (layout, variant, shots) in enumerate(todo):
        if progress:
            progress(i / len(todo), f"scoring {point_key(layout, variant, shots)}")
        prompts = held_out_prompts(config, layout, variant, shots)
        point = {"generation": _scored(generated_answers(model, tokenizer, prompts), prompts),
                 "ranking": _scored(ranked_answers(model, tokenizer, prompts), prompts)}
        if causal and layout == "after":
            point["joint"] = _scored(ranked_answers(model, tokenizer, prompts, joint=True), prompts)
        scores[point_key(layout, variant, shots)] = point
    return scores


@torch.no_grad()
def curve_point(model, tokenizer, config: ICLConfig) -> dict:
    """Ranking accuracy at 8 shots on fresh and flipped prompts: one point of the accuracy-against-step curve."""
    was_training = model.training
    model.eval()
    point = {}
    for variant in ("fresh", "flipped"):
        prompts = held_out_prompts(config, "before", variant, 8, config.curve_prompts)
        point[variant] = accuracy(ranked_answers(model, tokenizer, prompts), prompts)["accuracy"]
    model.train(was_training)
    return point


def icl_twins(config: ICLConfig, models: dict | None = None) -> Twins:
    """The experiment's part of the twin skeleton: every kind on the same windows of the same documents.
    ``models`` (kind -> model) is filled with each model as it is built, for the training hook's curve."""
    tokenizer = reference_tokenizer()
    check_labels(tokenizer)
    check_fits(tokenizer, config.max_shots, config.seq_len)
    texts = training_texts(config.mix(), config.train_documents, config.data_seed)
    batches = DocumentBatches.from_texts(tokenizer, texts, config.seq_len, config.batch_size)
    models = {} if models is None else models

    def build(kind: str, seed: int) -> LladaForMaskedLM:
        torch.manual_seed(seed)
        model = LladaForMaskedLM(config_from_preset(config.preset, causal=kind == AUTOREGRESSIVE,
                                                    **special_token_ids(tokenizer)))
        models[kind] = model
        return model

    def training(kind: str, seed: int) -> tuple[DocumentBatches, TrainConfig]:
        return batches, TrainConfig(
            objective="autoregressive" if kind == AUTOREGRESSIVE else "pretrain", max_steps=config.steps,
            lr=config.lr, warmup_steps=min(config.warmup, config.steps), seed=seed, precision=config.precision,
            device=config.device, save_every=max(1, config.steps // 6), keep_last=1, random_length_prob=0.0,
            fixed_mask_ratio=config.fixed_ratio if kind == FIXED else None)

    def summary(runs: list[dict]) -> dict:
        out = Path(config.output_dir)
        for run in runs:
            path = out / f"seed{run['seed']}" / folder_name(run["model"]) / CURVE_FILE
            run["by_step"] = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        baselines = {point_key(*p): copy_any_label(held_out_prompts(config, *p)) for p in points(config)}
        return {"tokens_per_model": config.steps * config.batch_size * config.seq_len,
                "train_documents": config.train_documents, "parameters": runs[0]["parameters"],
                "copy_any_label": baselines, "chance": 1 / config.labels_per_prompt, "summary": summarise(runs)}

    return Twins(config.models, tokenizer, build, training,
                 lambda kind, model, progress: evaluate_icl(model, tokenizer, config, progress), summary)


def curve_hook(config: ICLConfig, models: dict, tokenizer) -> TrainHooks:
    """A training hook writing a point of the accuracy-against-step curve every ``curve_every`` steps (and at
    step 0's end: the first) into the run's folder; a resumed run appends after its last point."""
    def hook(kind: str, seed: int, record) -> None:
        if record.step % config.curve_every and record.step != 1:
            return
        path = Path(config.output_dir) / f"seed{seed}" / folder_name(kind) / CURVE_FILE
        done = {json.loads(line)["step"] for line in path.read_text().splitlines()} if path.exists() else set()
        if record.step in done:
            return
        point = {"step": record.step, "loss": record.loss, **curve_point(models[kind], tokenizer, config)}
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(point) + "\n")
    return hook


def _mean_se(values: list[float]) -> dict:
    mean = sum(values) / len(values)
    se = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values)) if len(values) > 1 else None
    return {"mean": mean, "se_over_seeds": se, "values": values}


def summarise(runs: list[dict]) -> dict:
    """Per kind, point and method: the mean accuracy over seeds (its standard error over seeds where there are
    two or more; a single seed's spread is its binomial one, in the runs)."""
    summary: dict = {}
    for kind in [k for k in MODEL_KINDS if any(r["model"] == k for r in runs)]:
        mine = [r["scores"] for r in runs if r["model"] == kind]
        summary[kind] = {key: {method: _mean_se([s[key][method]["accuracy"] for s in mine])
                               for method in mine[0][key]} for key in mine[0]}
    return summary


def run_icl_experiment(config: ICLConfig, resume: bool = False, progress: Progress | None = None) -> dict:
    """Train and score every (seed, kind); ``results.json`` under ``config.output_dir``."""
    models: dict = {}
    twins = icl_twins(config, models)
    return run_twins(twins, config, config.seeds, resume, progress, curve_hook(config, models, twins.tokenizer))


def main(argv: list[str] | None = None) -> None:
    """``python -m llada_play.experiments.icl_experiment``: ICLConfig's fields as flags (:mod:`llada_play.flags`),
    with ``--quick`` (the settings of :meth:`ICLConfig.quick` under the flags given) and ``--resume``."""
    from ..flags import add_config_arguments, config_from_args

    parser = argparse.ArgumentParser(description="Train and score the in-context-learning twins.")
    add_config_arguments(parser, ICLConfig)
    parser.add_argument("--resume", action="store_true", help="continue a stopped run in its output_dir")
    parser.add_argument("--quick", action="store_true", help="tiny models and few prompts: a few minutes")
    args = parser.parse_args(argv)
    try:
        config = config_from_args(ICLConfig, args, base=ICLConfig.quick() if args.quick else None)
        results = run_icl_experiment(config, resume=args.resume)
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    for kind, scores in results["summary"].items():
        line = ", ".join(f"{k}: {scores[point_key('before', 'fresh', k)]['ranking']['mean']:.0%}" for k in SHOTS)
        print(f"{kind}, ranking, fresh prompts by shots: {line}")
    print(f"written to {Path(config.output_dir) / 'results.json'}")


if __name__ == "__main__":
    main()
