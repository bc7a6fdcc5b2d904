"""The second-thoughts study as one chart (data/revision/revision.json's Sudoku rows): solve rate against forward
passes, a panel per model, a series per family of settings. Drawn by benchmarks/revision.py and notebook 02c."""
from __future__ import annotations

import math

SERIES = {  # family: colour, marker, joined (a sweep of one knob)
    "fixed steps": ("#000000", "circle", True),
    "confidence threshold": ("#4c78a8", "square", True),
    "EB-sampler (entropy bound)": ("#f58518", "diamond", True),
    "ReMDM cap": ("#54a24b", "triangle-up", False),
    "ReMDM rescale": ("#2f6b29", "triangle-down", False),
    "ReMDM conf": ("#e45756", "triangle-left", False),
    "ReMDM loop": ("#b279a2", "triangle-right", False),
    "token editing at fixed steps": ("#9d755d", "x", False),
    "threshold or EB + token editing (joint)": ("#7b3294", "star", False),
    "ReMDM conf + token editing": ("#8c8c8c", "star-diamond", False),
}
PANELS = {"shipped": "shipped model (absorbing objective only)", "editing": "model trained to edit (edit_ratio 0.1)"}


def family(row: dict) -> str:
    """The series a row of the study belongs to, from its sampler options."""
    options = row["options"]
    if "remask" in options:
        return "ReMDM conf + token editing" if "edit_threshold" in options else f"ReMDM {options['remask']}"
    if "edit_threshold" in options:
        joint = "threshold" in options or "entropy_bound" in options
        return "threshold or EB + token editing (joint)" if joint else "token editing at fixed steps"
    if "entropy_bound" in options:
        return "EB-sampler (entropy bound)"
    return "confidence threshold" if "threshold" in options else "fixed steps"


def revision_figure(study: dict):
    """The chart of ``study`` (revision.json's ``sudoku``): grey lines join a commit rule without edits to the
    same rule with them; the shaded box is the issue's target (>= 93% solved in <= 8 passes)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = {row["key"]: row for row in study["rows"]}
    fig = make_subplots(rows=1, cols=2, subplot_titles=list(PANELS.values()), shared_yaxes=True, horizontal_spacing=0.04)
    for col, model_name in enumerate(PANELS, start=1):
        model_rows = [r for r in study["rows"] if r["model"] == model_name]
        for r in model_rows:  # grey connectors: the same rule without edits -> with edits
            against = r.get("paired", {}).get("against")
            if "edit_threshold" in r["options"] and against in rows:
                fig.add_trace(go.Scatter(x=[rows[against]["passes_mean"], r["passes_mean"]],
                                         y=[100 * rows[against]["solved"], 100 * r["solved"]], mode="lines",
                                         line=dict(color="#bbbbbb", width=1.5), showlegend=False, hoverinfo="skip"),
                              row=1, col=col)
        if model_name == "editing":  # the shipped model's fixed steps, for reference
            ref = sorted((r for r in study["rows"] if r["model"] == "shipped" and family(r) == "fixed steps"),
                         key=lambda r: r["passes_mean"])
            fig.add_trace(go.Scatter(x=[r["passes_mean"] for r in ref], y=[100 * r["solved"] for r in ref],
                                     mode="lines", line=dict(color="#000000", width=1.5, dash="dot"),
                                     name="shipped model, fixed steps (reference)"), row=1, col=col)
        for name, (colour, marker, joined) in SERIES.items():
            members = sorted((r for r in model_rows if family(r) == name), key=lambda r: r["passes_mean"])
            if not members:
                continue
            fig.add_trace(go.Scatter(
                x=[r["passes_mean"] for r in members], y=[100 * r["solved"] for r in members],
                mode="lines+markers" if joined else "markers", name=name, legendgroup=name, showlegend=col == 1,
                marker=dict(color=colour, symbol=marker, size=10, line=dict(width=1, color=colour)),
                line=dict(color=colour, width=2),
                error_y=dict(type="data", array=[100 * r["solved_se"] for r in members], thickness=1, width=3),
                hovertext=[f"{r['name']}: {100 * r['solved']:.1f}% in {r['passes_mean']:.2f} passes" for r in members],
                hoverinfo="text"), row=1, col=col)
        fig.add_shape(type="rect", x0=1.4, x1=8, y0=93, y1=100, line=dict(color="#2ca02c", dash="dash"),
                      fillcolor="rgba(44,160,44,0.12)", row=1, col=col)
        fig.add_annotation(x=math.log10(1.5), y=96.5, xanchor="left", text="target: >= 93% in <= 8 passes",
                           showarrow=False, font=dict(size=12, color="#2ca02c"), row=1, col=col)
    fig.update_xaxes(type="log", tickvals=[2, 3, 4, 6, 8, 11, 16, 22], range=[math.log10(1.4), math.log10(26)],
                     title_text="forward passes per puzzle (mean, log scale)")
    fig.update_yaxes(range=[0, 100], dtick=10)
    fig.update_yaxes(title_text="puzzles solved (%)", row=1, col=1)
    fig.update_layout(width=1150, height=640, template="plotly_white", font=dict(size=13),
                      title=f"6x6 Sudoku: puzzles solved against forward passes ({study['puzzles']} held-out puzzles, "
                            "± 1 SE)",
                      legend=dict(orientation="h", x=0, y=-0.16, xanchor="left", yanchor="top", font=dict(size=12)),
                      margin=dict(l=70, r=20, t=80, b=170))
    return fig
