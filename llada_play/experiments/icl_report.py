"""Reading an in-context-learning run (:mod:`.icl_experiment`'s results): accuracies pooled over seeds, paired
comparisons on the same prompts, the shots and training-step figures, and the conclusions the numbers support.

The notebook, data/icl/README.md and the closing notes print these, so that their words cannot drift from the
numbers. Pooled: a point's prompts are the same for every seed, so each (seed, prompt) is one answer and the
standard error is binomial over all of them; two models on the same point are compared pairwise
(:mod:`.paired`); two different points (fresh and flipped prompts) are different prompts, compared unpaired.
"""
from __future__ import annotations

import math

from .icl_data import SHOTS
from .icl_experiment import AUTOREGRESSIVE, DIFFUSION, FIXED, point_key
from .paired import paired_comparison

NAMES = {DIFFUSION: "diffusion", AUTOREGRESSIVE: "autoregressive twin", FIXED: "diffusion, fixed t"}
COLOURS = {DIFFUSION: "#1f77b4", AUTOREGRESSIVE: "#d62728", FIXED: "#7f7f7f"}


def kinds(results: dict) -> list[str]:
    return [k for k in (DIFFUSION, AUTOREGRESSIVE, FIXED) if any(r["model"] == k for r in results["runs"])]


def runs_of(results: dict, kind: str) -> list[dict]:
    """One kind's runs, seeds in order."""
    return sorted((r for r in results["runs"] if r["model"] == kind), key=lambda r: r["seed"])


def correct(results: dict, kind: str, key: str, method: str = "ranking") -> str:
    """Every seed's 0/1 answers on one point, seeds in order, joined."""
    return "".join(r["scores"][key][method]["correct"] for r in runs_of(results, kind))


def pooled(results: dict, kind: str, key: str, method: str = "ranking") -> dict:
    """{"accuracy", "se", "n"} over all seeds' answers on one point."""
    bits = correct(results, kind, key, method)
    p = bits.count("1") / len(bits)
    return {"accuracy": p, "se": math.sqrt(p * (1 - p) / len(bits)), "n": len(bits)}


def per_seed(results: dict, kind: str, key: str, method: str = "ranking") -> list[float]:
    """Each seed's accuracy on one point, seeds in order: a model that learns in context late may have done so in
    one seed and not yet in the other, which the pooled number hides."""
    return [r["scores"][key][method]["accuracy"] for r in runs_of(results, kind)]


def paired(results: dict, a: tuple, b: tuple) -> dict:
    """A paired comparison of (kind, key, method) ``a`` against ``b``: the same prompts, seed by seed."""
    return paired_comparison(correct(results, *a), correct(results, *b))


def unpaired_z(x: dict, y: dict) -> float:
    """z of the difference of two pooled accuracies on different prompts."""
    se = math.sqrt(x["se"] ** 2 + y["se"] ** 2)
    return (x["accuracy"] - y["accuracy"]) / se if se else 0.0


def shots_markdown(results: dict) -> str:
    """A table: accuracy (± binomial SE, pooled over seeds) by shots, for every kind, variant and method."""
    head = "| model | prompts | method | " + " | ".join(f"{k} shots" for k in SHOTS) + " |"
    rows = [head, "|" + "---|" * (3 + len(SHOTS))]
    for kind in kinds(results):
        for layout, variant in (("before", "fresh"), ("before", "flipped"), ("before", "agreeing"),
                                ("after", "fresh")):
            methods = ["ranking", "generation"] + (["joint"] if kind == AUTOREGRESSIVE and layout == "after" else [])
            for method in methods:
                cells = []
                for k in SHOTS:
                    key = point_key(layout, variant, k)
                    if key not in results["runs"][0]["scores"]:
                        cells.append("")
                        continue
                    s = pooled(results, kind, key, method)
                    cells.append(f"{s['accuracy']:.0%} ± {s['se']:.0%}")
                where = variant + (", examples after" if layout == "after" else "")
                rows.append(f"| {NAMES[kind]} | {where} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def shots_figure(results: dict, method: str = "ranking"):
    """Accuracy against shots (± binomial SE pooled over seeds): fresh and flipped prompts with the examples
    before the question, and fresh prompts with them after; chance and the copy-any-label baseline dotted."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = [("before", "fresh", "invented words"), ("before", "flipped", "real words, colours flipped"),
              ("after", "fresh", "examples after the question")]
    fig = make_subplots(rows=1, cols=3, subplot_titles=[t for *_, t in panels], shared_yaxes=True,
                        horizontal_spacing=0.05)
    for col, (layout, variant, _) in enumerate(panels, 1):
        xs = [k for k in SHOTS if point_key(layout, variant, k) in results["runs"][0]["scores"]]
        for kind in kinds(results):
            ys = [pooled(results, kind, point_key(layout, variant, k), method) for k in xs]
            fig.add_scatter(x=[str(k) for k in xs], y=[100 * s["accuracy"] for s in ys], mode="lines+markers",
                            name=NAMES[kind], legendgroup=kind, showlegend=col == 1,
                            line=dict(color=COLOURS[kind], width=3), marker=dict(size=9),
                            error_y=dict(type="data", array=[200 * s["se"] for s in ys], visible=True),
                            row=1, col=col)
        copy = [100 * results["copy_any_label"][point_key(layout, variant, k)] for k in xs]
        fig.add_scatter(x=[str(k) for k in xs], y=copy, mode="lines", name="copy any shown label",
                        legendgroup="copy", showlegend=col == 1, line=dict(color="#2ca02c", dash="dot", width=2),
                        row=1, col=col)
        fig.add_hline(y=100 * results["chance"], line_dash="dash", line_color="#555", row=1, col=col)
        fig.update_xaxes(title_text="examples (k)", row=1, col=col)
    fig.update_yaxes(title_text=f"accuracy (%), {method}", range=[0, 100], row=1, col=1)
    fig.update_layout(template="plotly_white", height=430, font=dict(size=15),
                      title=f"Accuracy against shots (error bars: 2 standard errors; dashed: chance "
                            f"{results['chance']:.0%})",
                      legend=dict(orientation="h", y=-0.22, x=0), margin=dict(t=80, b=110))
    return fig


def _curve(results: dict, kind: str, seed: int) -> list[dict]:
    return next((r.get("by_step") or [] for r in results["runs"] if r["model"] == kind and r["seed"] == seed), [])


def step_figure(results: dict):
    """Ranking accuracy at 8 shots against the training step, fresh and flipped prompts side by side, one line
    per model and seed (solid seed 0, dashed seed 1...): learning in context can appear abruptly, at a different
    step in each seed, which a mean over seeds would smear."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=["invented words (fresh)", "real words, colours flipped"])
    seeds = sorted({r["seed"] for r in results["runs"]})
    dashes = ["solid", "dash", "dot", "dashdot"]
    for col, variant in enumerate(("fresh", "flipped"), 1):
        for kind in kinds(results):
            for n, seed in enumerate(seeds):
                curve = _curve(results, kind, seed)
                if not curve:
                    continue
                fig.add_scatter(x=[p["step"] for p in curve], y=[100 * p[variant] for p in curve],
                                mode="lines+markers", name=f"{NAMES[kind]}, seed {seed}", legendgroup=f"{kind}{seed}",
                                showlegend=col == 1, marker=dict(size=6),
                                line=dict(color=COLOURS[kind], dash=dashes[n % len(dashes)], width=3), row=1, col=col)
        fig.add_hline(y=100 * results["chance"], line_dash="dot", line_color="#555", row=1, col=col)
        fig.update_xaxes(title_text="training step", row=1, col=col)
    fig.update_yaxes(title_text="accuracy at 8 shots (%), ranking", range=[0, 100], row=1, col=1)
    fig.update_layout(template="plotly_white", height=430, font=dict(size=15),
                      title=f"When reading the examples appears (200 prompts a point; dotted: chance "
                            f"{results['chance']:.0%})",
                      legend=dict(orientation="h", y=-0.25, x=0), margin=dict(t=80, b=130))
    return fig


def first_step_above(results: dict, kind: str, seed: int, margin: float = 0.10) -> int | None:
    """The first curve step at which one seed's 8-shot fresh accuracy is ``margin`` above chance and stays so at
    every later point (two points at least: the last alone is one noisy estimate); None if it never does."""
    curve = _curve(results, kind, seed)
    above = [p["fresh"] > results["chance"] + margin for p in curve]
    for i, p in enumerate(curve[:-1]):
        if all(above[i:]):
            return p["step"]
    return None


def _pct(s: dict) -> str:
    return f"{s['accuracy']:.1%} ± {s['se']:.1%}"


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def conclusions(results: dict, shots: int = 16, significance: float = 0.01, points: float = 0.05) -> list[str]:
    """What the run shows, decided by its numbers (ranking; pooled over seeds; ``significance`` for paired tests
    and ``points`` for the least difference called one)."""
    lines, top, mid = [], point_key("before", "fresh", shots), point_key("before", "fresh", 8)
    zero = point_key("before", "fresh", 0)
    seeds, learned = sorted({r["seed"] for r in results["runs"]}), {}
    lines.append(f"Seeds {seeds}; each point {results['config']['eval_prompts']} held-out prompts per seed; "
                 f"chance {results['chance']:.0%}.")
    for kind in kinds(results):
        s, base = pooled(results, kind, top), results["copy_any_label"][top]
        test = paired(results, (kind, top, "ranking"), (kind, zero, "ranking"))
        learns = test["difference"] >= points and test["p"] < significance
        learned[kind] = learns
        verdict = "learns from the examples" if learns else "does not learn from the examples at this budget"
        beyond = s["accuracy"] - base > 2 * s["se"]
        seeds_said = ", ".join(f"{a:.0%}" for a in per_seed(results, kind, top))
        lines.append(f"{NAMES[kind]}: {_pct(s)} at {shots} shots (seeds: {seeds_said}) against "
                     f"{_pct(pooled(results, kind, zero))} with none ({test['difference']:+.1%}, paired "
                     f"{_p(test['p'])}): it {verdict}"
                     + (f"; and beyond copying any shown label ({base:.1%})" if learns and beyond else
                        f"; copying any shown label would score {base:.1%}" if learns else "") + ".")
    if {DIFFUSION, AUTOREGRESSIVE} <= set(kinds(results)):
        for key in (mid, top):
            t = paired(results, (DIFFUSION, key, "ranking"), (AUTOREGRESSIVE, key, "ranking"))
            lead = ("the diffusion model ahead" if t["difference"] > 0 else "the twin ahead") \
                if t["p"] < significance and abs(t["difference"]) >= points else "no difference called"
            lines.append(f"Diffusion against the twin at {key.rsplit('/', 1)[1]} shots: {t['difference']:+.1%} ± "
                         f"{t['se']:.1%} (paired, {_p(t['p'])}): {lead}.")
    for kind in kinds(results):
        fresh, flipped = pooled(results, kind, mid), pooled(results, kind, point_key("before", "flipped", 8))
        reads = learned[kind]
        if flipped["accuracy"] < results["chance"] - 2 * flipped["se"]:
            said = "below chance: the words' own colours outweigh the examples"
        elif reads and unpaired_z(flipped, fresh) < -2:
            said = "below its fresh score: the prior pulls against the examples"
        elif reads:
            said = "as on fresh prompts: the examples, not the prior, decide"
        else:
            said = "not below chance, and this model does not read the examples either"
        lines.append(f"{NAMES[kind]}, flipped colours at 8 shots: {_pct(flipped)} ({said}).")
    after = point_key("after", "fresh", 8)
    if after in results["runs"][0]["scores"]:
        for kind in kinds(results):
            s = pooled(results, kind, after)
            above = s["accuracy"] - results["chance"] > max(2 * s["se"], points)
            lines.append(f"{NAMES[kind]}, examples after the question (8 shots): {_pct(s)}, "
                         + ("above chance: it reads examples that come after the slot." if above else
                            "not above chance.")
                         + (f" Scoring the whole text with each label: {_pct(pooled(results, kind, after, 'joint'))}."
                            if kind == AUTOREGRESSIVE else ""))
    if {DIFFUSION, FIXED} <= set(kinds(results)):
        t = paired(results, (DIFFUSION, top, "ranking"), (FIXED, top, "ranking"))
        lines.append(f"Uniform t against fixed t = {results['config']['fixed_ratio']} at {shots} shots: "
                     f"{t['difference']:+.1%} ± {t['se']:.1%} (paired, {_p(t['p'])}).")
    for kind in kinds(results):
        said = []
        for seed in seeds:
            step = first_step_above(results, kind, seed)
            said.append(f"seed {seed} " + (f"from step {step} on" if step is not None else "at no point"))
        lines.append(f"{NAMES[kind]}: 8-shot accuracy 10 points above chance (the curve): " + "; ".join(said) + ".")
    return lines
