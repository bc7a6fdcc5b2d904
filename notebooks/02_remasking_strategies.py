# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. Remasking strategies: which masked tokens to commit first
#
# At every denoising step the mask predictor proposes a token for **every** masked position, but the sampler
# commits only a few of them; the rest are masked again ("remasked"). *Which* ones to keep is the remasking
# strategy, a small pure function of the predicted distributions (`llada_play/diffusion/remasking.py`):
#
# | strategy | keeps the positions with the highest... |
# |---|---|
# | `low_confidence` (LLaDA's default) | probability of the predicted token |
# | `margin` | gap between the two most likely tokens |
# | `entropy` | negative entropy of the distribution (the most certain) |
# | `random` | random score (LLaDA's `random` remasking baseline) |
#
# First the strategies side by side on one prompt; then **measured**, with standard errors, on two tasks with
# ground truth: a Sudoku, where the tokens of an answer depend on each other, and addition, where they barely do
# at this model's level. Then classifier-free guidance on the instruction-tuned arithmetic model, and the three
# reasons sampling is slow, each with the speed-up that addresses it.
#
# *Run time on a 2-core CPU: 7 min 45 s, with `LLADA_PLAY_QUICK=1` (as `make test` runs it) 1 min 25 s; both
# measured 2026-12-01 while a training run used the same cores at lower priority, so an idle machine is faster.*

# %%
from llada_play.ui.notebook import setup

# No loading bars in the outputs; every figure and widget stored with a PNG of it as well (GitHub, nbviewer and
# HTML exports run no JavaScript); torch seeded with 0. ROOT: the project's folder (data/ is in it). QUICK: the
# test suite asks for shrunken work (LLADA_PLAY_QUICK=1).
ROOT, QUICK = setup()

from llada_play.model.checkpoint import ARITHMETIC_MODEL_DIR, load_model
from llada_play.experiments.compare import SamplerSetting, accuracy_by_setting, compare_settings
from llada_play.diffusion.remasking import REMASKING
from llada_play.model.text import encode_prompt

model, tokenizer = load_model()  # the shipped Shakespeare model
# the four strategies of the table above (the registry also holds left_to_right: see the puzzle notebook)
STRATEGIES = [name for name in sorted(REMASKING) if name != "left_to_right"]
print(STRATEGIES)

# %% [markdown]
# ## Side by side on one prompt
#
# Same prompt, same seed, 64 tokens in 64 steps with blocks of 32. The panels show *when* each position was
# committed (x: position, y: step, colour: the model's confidence in the committed token).

# %%
# NBVAL_CHECK_OUTPUT
prompt = encode_prompt(tokenizer, "ROMEO.\n")
settings = [SamplerSetting(s, dict(steps=64, gen_length=64, block_length=32, remasking=s)) for s in STRATEGIES]
results = compare_settings(model, tokenizer, prompt, settings, seed=0)
for r in results:
    print(f"--- {r.name} ({r.forward_passes} forward passes)\n{r.text.strip()[:160]}\n")

# %%
from llada_play.ui.viz import commit_order_panels

commit_order_panels(results, height=380).show()

# %% [markdown]
# Confidence-based strategies fill each block in an order of their own; `random` commits in no particular order.
# Text quality is hard to judge by eye, so the rest of the notebook measures on tasks with one right answer.
#
# ## Where tokens depend on each other: a Sudoku
#
# In a Sudoku every open cell constrains the others: a digit written in one cell rules it out for its row,
# column and box. Committing several cells in one step means deciding them **without seeing each other**
# (each prediction was made from the same grid), and committing in a random order means deciding cells the model
# is not yet sure of. Both should cost accuracy here. The model is the shipped 6x6 Sudoku diffusion model
# (notebook 2b; 0.8M parameters, the givens pinned, one block over the grid). Each point is the share of
# held-out puzzles solved completely, with its standard error `sqrt(p (1 - p) / n)`; `steps` is the mean number
# of denoising steps a puzzle took (about 22 open cells: 22 steps is one cell a step).

# %%
import json
from llada_play.experiments.puzzle import PuzzleConfig, held_out, load_pair
from llada_play.experiments.puzzle_decoding import Decoding, run_decoding

PUZZLE_RUN = ROOT / "data/puzzle/results.json"
puzzle_config = PuzzleConfig.from_dict(json.loads(PUZZLE_RUN.read_text())["config"])
sudoku_pair = load_pair(PUZZLE_RUN)
puzzles = held_out(puzzle_config, 20 if QUICK else 200)


def standard_error(p, n):
    return (p * (1 - p) / n) ** 0.5


SUDOKU_STEPS = [None, 11, 6, 3]  # None: one open cell a step
sudoku = {(s, n): run_decoding(Decoding(f"{s}, {n} steps", s, n), sudoku_pair, puzzles, puzzle_config.size)
          for s in STRATEGIES for n in SUDOKU_STEPS}
print(f"{len(puzzles)} held-out puzzles, solved (%) ± standard error")
print(f"{'':>15}" + "".join(f"{r['steps']:>14.1f} steps" for (s, _), r in sudoku.items() if s == STRATEGIES[0]))
for s in STRATEGIES:
    print(f"{s:>15}" + "".join(f"{100 * r['solved']:>12.1f} ± {100 * standard_error(r['solved'], r['n']):.1f}"
                               for (name, _), r in sudoku.items() if name == s))

# %%
import plotly.graph_objects as go

fig = go.Figure()
for s in STRATEGIES:
    rows = [sudoku[s, n] for n in SUDOKU_STEPS]
    fig.add_scatter(x=[r["steps"] for r in rows], y=[100 * r["solved"] for r in rows], mode="lines+markers", name=s,
                    error_y=dict(type="data", array=[100 * standard_error(r["solved"], r["n"]) for r in rows]))
fig.update_layout(title=f"Sudoku: puzzles solved against steps ({len(puzzles)} held-out puzzles, ± 1 s.e.)",
                  xaxis_title="denoising steps per puzzle (fewer: more cells committed together)",
                  yaxis_title="solved (%)", template="plotly_white", height=420, yaxis=dict(range=[0, 100]))
fig.show()


# %%
def gap(a, b):
    """(difference in points, and whether it exceeds twice its standard error)."""
    d = a["solved"] - b["solved"]
    se = (standard_error(a["solved"], a["n"]) ** 2 + standard_error(b["solved"], b["n"]) ** 2) ** 0.5
    return 100 * d, abs(d) > 2 * se


one, few = sudoku["low_confidence", None], sudoku["low_confidence", 3]
d, real = gap(one, few)
print(f"low_confidence, one cell a step -> 3 steps: {d:+.1f} points "
      f"({'beyond' if real else 'within'} two standard errors)")
d, real = gap(one, sudoku["random", None])
print(f"one cell a step, low_confidence -> random order: {d:+.1f} points "
      f"({'beyond' if real else 'within'} two standard errors)")
confident = [s for s in STRATEGIES if s != "random"]
top = max(confident, key=lambda s: sudoku[s, None]["solved"])
ties = [s for s in confident if s != top and not gap(sudoku[top, None], sudoku[s, None])[1]]
print(f"among the confidence-based strategies at one cell a step, {top} scores highest; "
      + (f"{', '.join(ties)} within two standard errors of it: no winner here" if ties else
         "the others are more than two standard errors behind"))

# %% [markdown]
# ## Where they barely depend on each other: addition
#
# The shipped **arithmetic model** is the default model after `llada-play sft` on the project's addition data
# (see `MODEL_CARD.md`). Each answer has 8 positions (digits, end-of-turn, end-of-text padding) in one block;
# fewer steps means more tokens committed per forward pass. Every point below is the exact-match accuracy on the
# held-out sums, with its standard error.

# %%
from llada_play.training.data import load_sft_rows

arith, arith_tokenizer = load_model(ARITHMETIC_MODEL_DIR)
test_rows = load_sft_rows(ROOT / "data/sft/arithmetic_test.jsonl")[: 12 if QUICK else 200]
print(len(test_rows), "held-out questions, e.g.", test_rows[0])

STEPS = [1, 2, 4, 8]
grid = [SamplerSetting(f"{s}|{n}", dict(steps=n, gen_length=8, block_length=8, remasking=s))
        for s in STRATEGIES for n in STEPS]
by_passes = accuracy_by_setting(arith, arith_tokenizer, test_rows, grid, seed=0)
# threshold decoding: commit every token above the confidence threshold, at least one per step
thresholds = [0.5, 0.7, 0.9]
thr = accuracy_by_setting(arith, arith_tokenizer, test_rows,
                          [SamplerSetting(f"threshold {t}", dict(steps=8, gen_length=8, block_length=8,
                                                                 threshold=t)) for t in thresholds], seed=0)
for row in by_passes + thr:
    print(f"{row['setting']:>22}: accuracy {row['accuracy']:6.1%} ± {standard_error(row['accuracy'], row['n']):.1%}, "
          f"{row['forward_passes']} forward passes")

# %%
fig = go.Figure()
for s in STRATEGIES:
    rows = [r for r in by_passes if r["setting"].startswith(s + "|")]
    fig.add_scatter(x=[r["forward_passes"] for r in rows], y=[100 * r["accuracy"] for r in rows],
                    mode="lines+markers", name=s,
                    error_y=dict(type="data", array=[100 * standard_error(r["accuracy"], r["n"]) for r in rows]))
fig.add_scatter(x=[r["forward_passes"] for r in thr], y=[100 * r["accuracy"] for r in thr], mode="markers+text",
                text=[r["setting"] for r in thr], textposition="top center", name="low_confidence + threshold",
                marker=dict(symbol="diamond", size=11))
fig.update_layout(title="Accuracy against forward passes per answer (held-out sums, ± 1 s.e.)", template="plotly_white",
                  xaxis_title="forward passes per answer", yaxis_title="exact match (%)", height=420,
                  xaxis=dict(type="log", tickvals=STEPS))
fig.show()


# %%
def row_of(name):
    return next(r for r in by_passes if r["setting"] == name)

accuracies = [r["accuracy"] for r in by_passes]
widest = max(standard_error(a, len(test_rows)) for a in accuracies)
spread = max(accuracies) - min(accuracies)
print("all 8 tokens in one pass:", ", ".join(f"{s} {row_of(f'{s}|1')['accuracy']:.1%}" for s in STRATEGIES))
print("one token per pass (8):  ", ", ".join(f"{s} {row_of(f'{s}|8')['accuracy']:.1%}" for s in STRATEGIES))
print(f"all {len(by_passes)} settings lie within {spread:.1%} of each other; one standard error is up to "
      f"{widest:.1%}: " + ("inside the noise, no strategy and no step count is better here"
                          if spread <= 4 * widest else "some settings differ beyond the noise"))

# %% [markdown]
# ## Sensitivity to the sampler's hyper-parameters
#
# Do results move with the number of steps, the block length and the temperature? On this task, measured:
# answers get 16 positions so that blocks of 2 to 16 make sense; a cell is empty where the steps cannot be split
# evenly over the blocks (the sampler refuses such settings with a message). Compare the spread with the
# standard error printed below the heatmaps before reading anything into a colour.

# %%
BLOCKS, GRID_STEPS = [2, 4, 8, 16], [2, 4, 8, 16]
cells = {}
for b in BLOCKS:
    for n in GRID_STEPS:
        if n % (16 // b):
            continue  # the steps must divide evenly over the 16 / b blocks
        row = accuracy_by_setting(arith, arith_tokenizer, test_rows,
                                  [SamplerSetting("", dict(steps=n, gen_length=16, block_length=b))], seed=0)[0]
        cells[b, n] = 100 * row["accuracy"]
z = [[cells.get((b, n)) for n in GRID_STEPS] for b in BLOCKS]
fig = go.Figure(go.Heatmap(z=z, x=[str(n) for n in GRID_STEPS], y=[str(b) for b in BLOCKS], colorscale="Viridis",
                           zmin=0, zmax=100, text=[[f"{v:.0f}" if v is not None else "" for v in r] for r in z],
                           texttemplate="%{text}", colorbar=dict(title="%")))
fig.update_layout(title="low_confidence, 16 answer positions: accuracy (%) by steps and block length",
                  xaxis_title="steps", yaxis_title="block length", template="plotly_white", height=380)
fig.show()

# %%
TEMPERATURES = [0.0, 0.5, 1.0, 1.5]
temp = {}
for s in STRATEGIES:
    for t in TEMPERATURES:
        row = accuracy_by_setting(arith, arith_tokenizer, test_rows,
                                  [SamplerSetting("", dict(steps=8, gen_length=8, block_length=8, remasking=s,
                                                           temperature=t))], seed=0)[0]
        temp[s, t] = 100 * row["accuracy"]
z = [[temp[s, t] for t in TEMPERATURES] for s in STRATEGIES]
fig = go.Figure(go.Heatmap(z=z, x=[str(t) for t in TEMPERATURES], y=STRATEGIES, colorscale="Viridis", zmin=0,
                           zmax=100, text=[[f"{v:.0f}" for v in r] for r in z], texttemplate="%{text}",
                           colorbar=dict(title="%")))
fig.update_layout(title="Accuracy (%) by temperature and strategy (8 steps, one block)", xaxis_title="temperature",
                  template="plotly_white", height=340)
fig.show()

# %%
se_points = 100 * max(standard_error(v / 100, len(test_rows)) for v in [*cells.values(), *temp.values()])
print(f"one standard error: up to {se_points:.1f} points")
print(f"steps x block length: accuracy from {min(cells.values()):.0f}% to {max(cells.values()):.0f}%")
for s in STRATEGIES:
    d = temp[s, 1.5] - temp[s, 0.0]
    print(f"{s:>15}: temperature 0 -> {temp[s, 0.0]:.0f}%, temperature 1.5 -> {temp[s, 1.5]:.0f}% "
          f"({d:+.0f} points, {'beyond' if abs(d) > 2 * 2 ** 0.5 * se_points else 'within'} two standard errors)")

# %% [markdown]
# ## Classifier-free guidance
#
# LLaDA's sampler offers classifier-free guidance (Ho & Salimans, 2022; for masked diffusion models, Nie et al.,
# 2024, *Scaling up Masked Diffusion Models on Text*): each step runs the model twice, once on the prompt and once
# with the prompt masked, and moves the logits away from the unconditional ones,
# `logits = cond + w (cond - uncond)` with `w = cfg_scale` (`update.classifier_free_guidance`). It costs twice
# the forward passes. Measured on the arithmetic model (itself an SFT, i.e. instruction-tuned, model) on
# the same held-out sums, 8 steps:

# %%
CFG_SCALES = [0.0, 0.5, 1.0, 2.0]
guided = accuracy_by_setting(arith, arith_tokenizer, test_rows,
                             [SamplerSetting(f"cfg_scale {w}", dict(steps=8, gen_length=8, block_length=8,
                                                                    cfg_scale=w)) for w in CFG_SCALES], seed=0)
for row in guided:
    print(f"{row['setting']:>14}: accuracy {row['accuracy']:6.1%} ± {standard_error(row['accuracy'], row['n']):.1%}, "
          f"{row['forward_passes']} forward passes")
d = guided[-1]["accuracy"] - guided[0]["accuracy"]
se = 2 ** 0.5 * max(standard_error(r["accuracy"], r["n"]) for r in guided)
print(f"cfg_scale 2 against none: {100 * d:+.1f} points, "
      f"{'beyond' if abs(d) > 2 * se else 'within'} two standard errors, at twice the forward passes")

# %% [markdown]
# ## Why sampling is slow, and the speed-up for each reason
#
# 1. **Bidirectional attention leaves nothing to cache exactly.** An autoregressive model keeps the keys and
#    values of the tokens it has written; here every position attends to every other, and a committed token
#    changes what all others see, so each step recomputes the whole canvas. *Speed-up:* an approximate block KV
#    cache (Fast-dLLM, Wu et al. 2025): keep the keys and values outside the current block from the block's first
#    step (`cache="prefix"` or `"dual"`), and recompute only the block's window in between.
# 2. **One forward pass per committed token.** With `steps = gen_length` the model is run once per token, like an
#    autoregressive model but over the whole canvas each time. *Speed-up:* parallel decoding with a confidence
#    threshold (Fast-dLLM): commit every token above the threshold (at least one per step), so easy stretches go
#    several tokens a pass; the Sudoku above shows what committing dependent tokens together can cost.
# 3. **A fixed-length canvas.** The answer length is chosen up front; a short answer still pays for every
#    masked position and every block. *Speed-up:* stop at end-of-text (`eos_early_exit=True`): once a block ends
#    in end-of-text the rest of the canvas is filled with it and no more blocks run.
#
# The ladder below adds them one at a time on the arithmetic task with a longer canvas (32 positions in blocks of
# 8, as an app user would ask for). `windowed` counts the passes that ran only the current block's window.

# %%
from llada_play.experiments.compare import fast_decoding_settings

ladder = accuracy_by_setting(arith, arith_tokenizer, test_rows, fast_decoding_settings(), seed=0)
base = ladder[0]
for row in ladder:
    print(f"{row['setting']:>40}: accuracy {row['accuracy']:6.1%} ± {standard_error(row['accuracy'], row['n']):.1%}, "
          f"{row['forward_passes']:3} forward passes per batch "
          f"({row['windowed_passes']} windowed), {row['wall_time_s']:5.2f} s, "
          f"{base['wall_time_s'] / row['wall_time_s']:4.1f}x the baseline's speed")

# %%
fig = go.Figure(go.Scatter(x=[r["wall_time_s"] for r in ladder], y=[100 * r["accuracy"] for r in ladder],
                           mode="markers+text", text=[r["setting"] for r in ladder], textposition="top center",
                           marker=dict(size=12)))
fig.update_layout(title=f"Accuracy against wall time ({len(test_rows)} held-out sums, 32 positions)",
                  xaxis_title="wall time (s)", yaxis_title="exact match (%)", template="plotly_white", height=380,
                  xaxis=dict(rangemode="tozero"))
fig.show()

# %% [markdown]
# What to take away is in the printed lines above, computed from this run's numbers: on the Sudoku, committing
# dependent cells together and committing in a random order cost accuracy beyond the noise, while on addition
# the strategies and step counts differ by less than the noise; what guidance and the faster samplers change is
# in their own lines. Measure on your own task, with its error bars, before choosing. The app's **Compare** tab
# runs the same comparisons (with the cache and early-exit options) on 40 of the sums.

# %% [markdown]
# ## Exercises
#
# 1. **Two passes, spent two ways.** An answer has 8 positions. Give it 2 forward passes as one block of 8 in 2
#    steps (4 tokens a step, the most confident first), or as two blocks of 4 in one step each (each block's 4
#    tokens at once, the left block first). Predict which is more accurate on the held-out sums. (Answer in the
#    next cell, hidden in JupyterLab; run it.)

# %% jupyter={"source_hidden": true} tags=["answer"]
# Answer 1: the same held-out sums, low_confidence, temperature 0.
two_ways = accuracy_by_setting(arith, arith_tokenizer, test_rows, [
    SamplerSetting("one block of 8, 2 steps", dict(steps=2, gen_length=8, block_length=8)),
    SamplerSetting("two blocks of 4, 1 step each", dict(steps=2, gen_length=8, block_length=4))], seed=0)
for row in two_ways:
    print(f"{row['setting']:>29}: accuracy {row['accuracy']:6.1%}, {row['forward_passes']} forward passes")

# %% [markdown]
# 2. **Extreme thresholds.** Threshold decoding above used 0.5, 0.7 and 0.9. Predict accuracy and forward passes
#    at 0.99 and at 0.1. (Answer in the next cell.)

# %% jupyter={"source_hidden": true} tags=["answer"]
# Answer 2: a high threshold commits little per pass (more passes, up to the 8 steps); a low one commits
# nearly everything in the first pass.
extreme = accuracy_by_setting(arith, arith_tokenizer, test_rows,
                              [SamplerSetting(f"threshold {t}", dict(steps=8, gen_length=8, block_length=8,
                                                                     threshold=t)) for t in (0.1, 0.99)], seed=0)
for row in sorted(thr + extreme, key=lambda r: float(r["setting"].split()[-1])):
    print(f"{row['setting']:>15}: accuracy {row['accuracy']:6.1%}, {row['forward_passes']} forward passes")
