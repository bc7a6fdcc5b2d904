"""The reversal-curse experiment: a masked diffusion model and its autoregressive twin (same architecture, size,
tokenizer, data windows and token budget) trained on facts stated in one direction, then asked both ways.

One entry point, :func:`run_reversal_experiment`, shared by ``llada-play reversal``, the app's reversal tab and
notebook 03; :func:`summarise`, :func:`results_table` and :func:`results_figure` turn its JSON into the table and
the bar chart.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import InitVar, dataclass, field
from pathlib import Path

import torch

from ..model.checkpoint import DEFAULT_AR_MODEL_DIR, DEFAULT_MODEL_DIR, load_model
from ..model.config import PRESETS, config_from_preset
from ..training.data import PackedBatches, pack_tokens
from ..model.modeling import LladaForMaskedLM
from .reversal import (candidate_scores, draw_candidates, generation_accuracy, infilling_accuracy,
                       infilling_ranking_accuracy, normalise, ranking_accuracy)
from .reversal_data import facts_from_files, make_dataset, read_dataset
from ..model.tokenizer import special_token_ids
from ..training.trainer import TrainConfig
from .twins import Progress, TrainHooks, Twins, accepts_out_dir, former_out_dir, run_twins
from ..validation import refuse_non_finite

MODEL_KINDS = ("diffusion", "autoregressive")
# (metric key, test file, direction): "forward" asks in the trained order, "reverse" in the other one.
QUESTIONS = [
    ("p2d_forward", "p2d_prompts_test"),
    ("p2d_reverse", "p2d_reverse_prompts_test"),
    ("d2p_forward", "d2p_prompts_test"),
    ("d2p_reverse", "d2p_reverse_prompts_test"),
    ("both_forward", "both_prompts_test"),
]


OUTPUT_DIR = "runs/reversal"


@accepts_out_dir
@dataclass
class ReversalConfig:
    """Everything the experiment depends on; saved into the results so a run can be repeated."""

    output_dir: str = OUTPUT_DIR  # the models, their checkpoints and results.json
    data_dir: str | None = None  # a directory in the published layout; None generates the data
    people_per_subset: int = 30  # generated data: people per subset (the published shape: 30; quick: 5)
    train_templates: int = 30  # generated data: templates a fact is written in for training
    test_templates: int = 10  # generated data: templates held out for the test questions
    data_seed: int = 0  # seed of the generated people and facts
    init: str = "scratch"  # scratch | pretrained (the shipped default model and its autoregressive twin)
    # A masked diffusion model needs many passes over the facts to memorise them (measured: the small preset at
    # lr 1e-3 had learnt none after 400 steps, while its twin had); the mini preset at a higher rate gets further
    # in the same CPU time. Both models always share every one of these settings.
    preset: str = "mini"  # model shape when training from scratch
    steps: int = 2500  # training steps per model (quick: 1000)
    batch_size: int = 16  # training windows per step
    seq_len: int = 64  # tokens per training window
    lr: float = 3e-3  # peak learning rate (AdamW, after warm-up)
    warmup: int = 50  # warm-up steps
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # one trained pair per seed (quick: 0 1)
    models: list[str] = field(default_factory=lambda: list(MODEL_KINDS))  # diffusion, autoregressive or both
    eval_rows: int | None = 100  # test rows per question set (seeded subset; quick: 40); none scores them all
    distractors: int = 4  # wrong names beside the right one when answers are ranked
    mc_samples: int = 32  # (quick: 16) Monte-Carlo samples of the diffusion model's likelihood bound per answer
    precision: str = "auto"  # training precision: auto (bf16 where the device runs it fast), bf16 or fp32
    device: str = "cpu"  # where the models train (cpu, cuda...)
    progress: bool = True  # a bar on stderr when run_reversal_experiment is given no progress callback
    out_dir: InitVar[str | None] = None  # the former name of output_dir, still accepted

    def __post_init__(self, out_dir: str | None = None):
        refuse_non_finite(self)
        former_out_dir(self, out_dir, OUTPUT_DIR)
        if self.init not in {"scratch", "pretrained"}:
            raise ValueError(f"init must be 'scratch' or 'pretrained', got {self.init!r}")
        if self.preset not in PRESETS or self.preset == "llada-8b":
            raise ValueError(f"preset {self.preset!r} is not one to train here; use tiny or small")
        unknown = set(self.models) - set(MODEL_KINDS)
        if unknown or not self.models:
            raise ValueError(f"models must be a non-empty subset of {MODEL_KINDS}, got {self.models}")
        if not self.seeds:
            raise ValueError("give at least one seed")
        for name in ("steps", "batch_size", "seq_len", "people_per_subset", "mc_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_rows is not None and self.eval_rows < 1:
            raise ValueError(f"eval_rows must be >= 1 or None, got {self.eval_rows}")

    @classmethod
    def quick(cls, **overrides) -> ReversalConfig:
        """The settings of ``llada-play reversal --quick``: 5 people per subset, two seeds, 1000 steps each,
        40 test rows per question set; under 10 minutes on a 2-core CPU. (Fewer facts seen more often: at 10
        people and 800 steps the diffusion model had learnt none of them yet.)"""
        base = dict(people_per_subset=5, steps=1000, seeds=[0, 1], eval_rows=40, mc_samples=16)
        return cls(**{**base, **overrides})

    @classmethod
    def from_dict(cls, values: dict) -> ReversalConfig:
        """The config saved in a results file (older ones name the output folder ``out_dir``)."""
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


def load_experiment_data(config: ReversalConfig) -> dict[str, list[dict]]:
    """The published-layout files: read from ``data_dir``, or generated from the config's sizes and seed."""
    if config.data_dir is not None:
        return read_dataset(config.data_dir)
    return make_dataset(config.people_per_subset, config.train_templates, config.test_templates, config.data_seed)


def training_sentences(files: dict[str, list[dict]], seed: int = 0) -> list[str]:
    """Every training row as one sentence, in a seeded shuffled order (so that a window of packed text is not
    a run of paraphrases about one person)."""
    sentences = [row["prompt"] + row["completion"] + "." for name in sorted(files) if name.endswith("_train")
                 for row in files[name]]
    sentences = [s[:-1] if s.endswith("..") else s for s in sentences]
    random.Random(seed).shuffle(sentences)
    return sentences


def reference_tokenizer():
    """The shipped model's tokenizer: both models (from scratch or not) share it."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(DEFAULT_MODEL_DIR, local_files_only=True)


def build_model(kind: str, config: ReversalConfig, tokenizer, seed: int):
    """A fresh model of the preset, or the shipped pre-trained one for ``init='pretrained'``."""
    causal = kind == "autoregressive"
    if config.init == "pretrained":
        model, _ = load_model(DEFAULT_AR_MODEL_DIR if causal else DEFAULT_MODEL_DIR)
        return model
    torch.manual_seed(seed)
    return LladaForMaskedLM(config_from_preset(config.preset, causal=causal, **special_token_ids(tokenizer)))


def _subset(rows: list[dict], limit: int | None, seed: int) -> list[dict]:
    if limit is None or len(rows) <= limit:
        return rows
    return random.Random(seed).sample(rows, limit)


@torch.no_grad()
def evaluate_reversal(model, tokenizer, files: dict[str, list[dict]], config: ReversalConfig,
                      progress: Progress | None = None) -> dict[str, dict[str, float | None]]:
    """All scores of one trained model: generation and ranking per question set, infilling (direct for a
    diffusion model, None for a causal one) and infilling by ranking."""
    model.eval()
    causal = bool(getattr(model.config, "causal", False))
    scores: dict[str, dict[str, float | None]] = {"generation": {}, "ranking": {}}
    present = [(key, name) for key, name in QUESTIONS if files.get(name)]
    for i, (key, name) in enumerate(present):
        if progress:
            progress(i / (len(present) + 1), f"scoring {key}")
        rows = _subset(files[name], config.eval_rows, config.data_seed)
        pool = [r["completion"] for r in files[name]]
        scores["generation"][key] = generation_accuracy(model, tokenizer, rows, causal, sentence_start=True)
        scores["ranking"][key] = ranking_accuracy(model, tokenizer, rows, causal, config.distractors,
                                                  config.mc_samples, pool=pool, sentence_start=True)
    facts = facts_from_files(files, "p2d")
    if len(facts) > config.distractors:
        if progress:
            progress(len(present) / (len(present) + 1), "scoring infilling")
        names = [f.name for f in facts]
        facts = _subset(facts, config.eval_rows, config.data_seed)
        scores["infilling"] = {"p2d": None if causal else infilling_accuracy(model, tokenizer, facts,
                                                                              sentence_start=True)}
        scores["infilling_ranking"] = {"p2d": infilling_ranking_accuracy(
            model, tokenizer, facts, causal, config.distractors, config.mc_samples, config.data_seed, names)}
    return scores


def reversal_twins(config: ReversalConfig) -> Twins:
    """The experiment's part of the twin skeleton: both kinds on the same packed windows of the facts, scored
    on every question set."""
    files = load_experiment_data(config)
    tokenizer = reference_tokenizer()
    tokens = pack_tokens(tokenizer, training_sentences(files, config.data_seed), config.seq_len)

    def training(kind: str, seed: int) -> tuple[PackedBatches, TrainConfig]:
        return PackedBatches(tokens, config.seq_len, config.batch_size), TrainConfig(
            objective="autoregressive" if kind == "autoregressive" else "pretrain", max_steps=config.steps,
            lr=config.lr, warmup_steps=min(config.warmup, config.steps), seed=seed, precision=config.precision,
            device=config.device, save_every=max(1, config.steps // 4), keep_last=1, random_length_prob=0.0)

    def summary(runs: list[dict]) -> dict:
        return {"data": {name: len(rows) for name, rows in sorted(files.items())}, "train_tokens": len(tokens),
                "tokens_per_model": config.steps * config.batch_size * config.seq_len,
                "parameters": runs[0]["parameters"],  # the same for every run: one preset for both kinds
                "summary": summarise(runs)}

    return Twins(config.models, tokenizer, lambda kind, seed: build_model(kind, config, tokenizer, seed), training,
                 lambda kind, model, progress: evaluate_reversal(model, tokenizer, files, config, progress), summary)


def run_reversal_experiment(config: ReversalConfig, resume: bool = False, progress: Progress | None = None,
                            train_hooks: TrainHooks | None = None) -> dict:
    """Train and score every (seed, model kind); write ``results.json`` (and each model) under ``output_dir``.

    ``progress(fraction, message)`` is called as the run advances (the app's progress bar);
    ``train_hooks(kind, seed, record)`` sees every training step (live loss plots). With ``resume`` (a job
    restarted after preemption), models already scored are kept and a model in training continues from its
    latest checkpoint (:mod:`.twins`).
    """
    results = run_twins(reversal_twins(config), config, config.seeds, resume, progress, train_hooks)
    return with_model_paths(results, Path(config.output_dir))  # as read_results gives them: they open from here


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def mean_spread(values: list[float]) -> dict:
    """Mean, sample standard deviation (0 for one value), min and max of a metric over seeds."""
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return {"mean": mean, "std": std, "min": min(values), "max": max(values), "values": values}


def summarise(runs: list[dict]) -> dict:
    """Mean, sample standard deviation and range over seeds, per model kind, metric and question set."""
    summary: dict = {}
    for kind in sorted({r["model"] for r in runs}, key=MODEL_KINDS.index):
        mine = [r["scores"] for r in runs if r["model"] == kind]
        summary[kind] = {}
        for metric in mine[0]:
            for key in mine[0][metric]:
                values = [s[metric][key] for s in mine if s[metric].get(key) is not None]
                if values:
                    summary[kind][f"{metric}/{key}"] = mean_spread(values)
    return summary


def results_table(results: dict) -> list[dict]:
    """One row per metric: ``{"metric": ..., "<kind>": "mean ± std", ...}`` in percent, for display."""
    summary = results["summary"]
    metrics = list(dict.fromkeys(m for kind in summary.values() for m in kind))
    rows = []
    for metric in metrics:
        row = {"metric": metric}
        for kind, values in summary.items():
            v = values.get(metric)
            row[kind] = "n/a" if v is None else f"{100 * v['mean']:.1f} ± {100 * v['std']:.1f}"
        rows.append(row)
    return rows


def results_markdown(results: dict) -> str:
    rows = results_table(results)
    kinds = list(results["summary"])
    seeds = results["config"]["seeds"]
    lines = [f"| metric (% , mean ± std over {_count(len(seeds), 'seed')}) | " + " | ".join(kinds) + " |",
             "|---|" + "---|" * len(kinds)]
    lines += ["| " + r["metric"] + " | " + " | ".join(r[k] for k in kinds) + " |" for r in rows]
    return "\n".join(lines)


# The question sets and metrics in words (Berglund et al.'s names: p2d facts were trained person -> description
# only, d2p facts description -> person only; "forward" asks in the trained order, "reverse" in the other one).
QUESTION_WORDS = {
    "p2d_forward": "name → description (trained direction)",
    "p2d_reverse": "description → name (reverse of training)",
    "d2p_forward": "description → name (trained direction)",
    "d2p_reverse": "name → description (reverse of training)",
    "both_forward": "facts trained in both orders",
    "p2d": "a blank name before its description (p2d facts)",
}
METRIC_WORDS = {
    "generation": "written",
    "ranking": "ranked",
    "infilling": "filled in",
    "infilling_ranking": "filled in, ranked",
}
DIRECTIONS_LEGEND = (
    "**How to read the names** (as in Berglund et al., *The Reversal Curse*): **p2d** facts were trained only "
    "person → description (\"Daphne Barrington is the director of ...\"), **d2p** facts only description → person "
    "(\"The director of ... is Daphne Barrington\"), **both** in both orders. **forward** asks in the trained "
    "order, **reverse** the other way round: `p2d_forward` is name → description (trained direction), `p2d_reverse` "
    "description → name, `d2p_reverse` name → description (reverse of training). **generation**: the model writes "
    "the answer (exact match); **ranking**: the true answer scored against {distractors} other people's (chance "
    "{chance:.0f}%); **infilling**: the name masked before its description, filled in (diffusion only) or ranked.")


def metric_label(metric: str) -> str:
    """A metric key ("ranking/p2d_reverse") in words: "description → name (reverse of training), ranked"."""
    family, _, key = metric.partition("/")
    return f"{QUESTION_WORDS.get(key, key)}, {METRIC_WORDS.get(family, family)}"


def directions_legend(distractors: int = 4) -> str:
    """The legend of the table and the chart: what p2d, d2p, forward, reverse and each metric mean (Markdown);
    ``distractors``: the wrong answers beside the right one when ranking (the result's config says)."""
    return DIRECTIONS_LEGEND.format(distractors=distractors, chance=100 / (1 + distractors))


def results_figure(results: dict):
    """Horizontal grouped bars (one colour per model kind; each metric named in words, :func:`metric_label`) with
    the seeds' standard deviation as error bars, and ranking's chance as a dotted line. The legend and the
    chance label sit above the plot area (never over a bar), the axis runs to 110% so that a bar at 100% and its
    error bar are whole, and the title is short enough for a narrow page."""
    import plotly.graph_objects as go

    summary = results["summary"]
    metrics = list(dict.fromkeys(m for kind in summary.values() for m in kind))
    labels = [metric_label(m) for m in metrics]
    colours = {"diffusion": "#4c78a8", "autoregressive": "#f58518"}
    fig = go.Figure()
    for kind, values in summary.items():
        fig.add_bar(name=kind, y=labels, x=[100 * values[m]["mean"] if m in values else None for m in metrics],
                    orientation="h", cliponaxis=False, marker_color=colours.get(kind),
                    error_x=dict(type="data", array=[100 * values[m]["std"] if m in values else 0 for m in metrics]),
                    hovertemplate="%{y}: %{x:.1f}%<extra>" + kind + "</extra>")
    chance = 100 / (1 + results["config"]["distractors"])
    fig.add_vline(x=chance, line_dash="dot", line_color="#555")
    fig.add_annotation(x=chance, y=1, xref="x", yref="paper", xanchor="right", yanchor="bottom", showarrow=False,
                       text=f"chance when ranking: {chance:.0f}%", font=dict(size=11, color="#555"))
    seeds = len(results["config"]["seeds"])
    fig.update_layout(
        barmode="group", template="plotly_white", height=120 + 34 * len(metrics), bargap=0.25,
        title=dict(text=f"{_count(seeds, 'seed')}, {results['tokens_per_model']:,} tokens per model",
                   x=0.5, xanchor="center", y=1, yanchor="top", pad=dict(t=8), font=dict(size=14)),
        xaxis=dict(title="accuracy (%)", range=[0, 110], tickvals=[0, 20, 40, 60, 80, 100]),
        yaxis=dict(autorange="reversed", automargin=True),
        legend=dict(orientation="h", x=1, xanchor="right", y=1.0, yanchor="bottom", yref="paper"),
        margin=dict(l=10, r=20, t=70, b=50))
    return fig


def rank_answers(results: dict, models: dict[str, torch.nn.Module], tokenizer, question: str,
                 truth: str) -> tuple[list[str], dict[str, list[float]]] | None:
    """One question of the ranking metric, shown rather than counted: the true answer (matched to a held-out row
    of the result's data, spacing aside) first, then distractors from the same question set (drawn seeded by the
    question), and each model's log-likelihood per token of each. None when ``truth`` is no answer in the data."""
    config = ReversalConfig.from_dict(results["config"])
    try:
        files = load_experiment_data(config)
    except (ValueError, OSError):
        return None
    for _, name in QUESTIONS:
        pool = sorted({r["completion"] for r in files.get(name, [])})
        answer = next((c for c in pool if normalise(c) == normalise(truth)), None)
        if answer is not None:
            break
    else:
        return None
    candidates = draw_candidates(answer, pool, config.distractors, random.Random(question))
    scores = {kind: candidate_scores(model, tokenizer, question, candidates,
                                     bool(getattr(model.config, "causal", False)), config.mc_samples,
                                     sentence_start=True)
              for kind, model in models.items()}
    return candidates, scores


def conclusions(results: dict, margin: float = 0.05) -> list[str]:
    """What a result shows, decided from its numbers, one sentence per line (shared by the notebook and the app);
    no line for a model kind whose result has no name-first (``p2d``) questions.

    A ranking score is *above chance* when its mean beats chance (1 / (1 + distractors)) by more than two seed
    standard deviations, by more than two standard errors of guessing on the rows scored, and by at least
    ``margin``; a model has *learnt* the facts when its trained-direction ranking is above chance or it
    generates more than 10% of the answers. The name-first (``p2d``) facts are the test of the curse: reversed,
    the question asks for a name that training only ever put first.
    """
    summary, config = results["summary"], results["config"]
    chance = 1 / (1 + config["distractors"])
    sets = dict(QUESTIONS)

    def mean(kind: str, metric: str) -> float:
        return summary[kind][metric]["mean"]

    def above_chance(kind: str, metric: str) -> bool:
        v = summary[kind][metric]
        available = results.get("data", {}).get(sets[metric.split("/")[1]], 100)
        scored = min(config.get("eval_rows") or available, available) * len(v["values"])
        guessing = math.sqrt(chance * (1 - chance) / max(1, scored))
        return v["mean"] - chance > max(2 * v["std"], 2 * guessing, margin)

    needed = {"ranking/p2d_forward", "generation/p2d_forward", "ranking/p2d_reverse", "generation/p2d_reverse"}
    lines, learnt, reversed_ok = [], {}, {}
    for kind in [k for k in summary if needed <= summary[k].keys()]:  # data without name-first facts: no verdict
        learnt[kind] = above_chance(kind, "ranking/p2d_forward") or mean(kind, "generation/p2d_forward") > 0.1
        reversed_ok[kind] = above_chance(kind, "ranking/p2d_reverse") or mean(kind, "generation/p2d_reverse") > 0.05
        lines.append(f"{kind}: trained direction ranking {mean(kind, 'ranking/p2d_forward'):.0%}, generation "
                     f"{mean(kind, 'generation/p2d_forward'):.0%} -> {'learnt' if learnt[kind] else 'at chance'}; "
                     f"reversed ranking {mean(kind, 'ranking/p2d_reverse'):.0%}, generation "
                     f"{mean(kind, 'generation/p2d_reverse'):.0%} -> "
                     f"{'above chance' if reversed_ok[kind] else 'at or below chance'} (chance {chance:.0%}).")
    def writes_reversed(kind: str) -> bool:
        return mean(kind, "generation/p2d_reverse") > 0.05

    def reversed_words(kind: str) -> str:
        """What the model does with reversed questions, in the metric that shows it: ranking the true answer
        above chance is not writing it (the lesson of a review: a model that only ranks was said to answer)."""
        ranked, written = mean(kind, "ranking/p2d_reverse"), mean(kind, "generation/p2d_reverse")
        ranks = above_chance(kind, "ranking/p2d_reverse")
        writes = writes_reversed(kind)
        if ranks and writes:
            return (f"ranks the true answer of a reversed question above chance ({ranked:.0%}, chance {chance:.0%}) "
                    f"and writes {written:.0%} of them")
        if ranks:
            return (f"ranks the true answer of a reversed question above chance ({ranked:.0%}, chance {chance:.0%}) "
                    f"but writes {'none' if written == 0 else f'only {written:.0%}'} of them")
        return f"writes {written:.0%} of the reversed answers (its ranking, {ranked:.0%}, is not above chance)"

    if learnt.get("autoregressive"):
        lines.append("=> the autoregressive model learnt the facts as stated and " + (
            reversed_words("autoregressive") + (": no reversal curse here." if writes_reversed("autoregressive")
                                                else ": the curse holds for writing, not for ranking.")
            if reversed_ok["autoregressive"] else "shows the reversal curse."))
    if learnt.get("diffusion"):
        lines.append("=> the diffusion model learnt the facts as stated and " + (
            reversed_words("diffusion") + "." if reversed_ok["diffusion"]
            else "does not answer reversed questions either: neither ranks nor writes them above chance."))
    elif "diffusion" in learnt:
        lines.append("=> the diffusion model is at chance in the trained direction at this budget: it has not "
                     "memorised the facts, so this run is not evidence either way on whether it escapes the curse"
                     + (" (its reversed ranking above chance is a hint, no more)." if reversed_ok["diffusion"]
                        else "."))
    return lines


def with_model_paths(results: dict, folder: Path) -> dict:
    """``results`` (written in ``folder``) with each run's ``model_dir`` made a path that opens from here.

    The file names each model relative to itself (the run's ``output_dir``, or a folder of models shipped
    beside it: ``data/reversal/results/long-models/``); a copy kept elsewhere (``llada-play reversal --out``)
    finds them under its config's ``output_dir``, and older files name them relative to where they ran (left
    as they are). Models not kept are null."""
    bases = [folder, Path(results["config"].get("output_dir") or ".")]
    for run in results["runs"]:
        model_dir = run.get("model_dir")
        found = [base / model_dir for base in bases if model_dir and (base / model_dir).is_dir()]
        if found and not Path(model_dir).is_absolute():
            run["model_dir"] = str(found[0])
    return results


def read_results(path: str | Path) -> dict:
    """A results file written by :func:`run_reversal_experiment`, checked for the keys the views need, its
    models named by paths that open from here (:func:`with_model_paths`)."""
    path = Path(path)
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read reversal results from {path}: {err}") from err
    missing = {"config", "runs", "summary"} - set(results)
    if missing:
        raise ValueError(f"{path} is not a reversal results file (missing {sorted(missing)})")
    return with_model_paths(results, path.parent)
