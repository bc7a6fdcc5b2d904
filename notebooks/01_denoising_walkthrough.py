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
# # 1. How a masked diffusion model writes
#
# A LLaDA-style model is trained on one simple game: hide a random fraction *t* of the tokens of a text behind a
# `[MASK]` token and predict them back. To write, it plays the game backwards: start from a row of masks and,
# step after step, commit the predictions it is surest of. This notebook walks through the three pieces:
#
# 1. the **forward process** (masking at ratio *t*),
# 2. the **mask predictor** (one forward pass guesses every masked token at once),
# 3. the **reverse process** (the sampler), which you can replay step by step with a widget.
#
# *Run time on a 2-core CPU: about 15 seconds
# (with `LLADA_PLAY_QUICK=1`, as `make test` runs it: about 15 seconds; measured 2026-11-30).*

# %%
import torch
from llada_play.ui.notebook import setup

# No loading bars in the outputs; every figure and widget stored with a PNG of it as well (GitHub, nbviewer and
# HTML exports run no JavaScript); torch seeded with 0. ROOT: the project's folder (data/ is in it). QUICK: the
# test suite asks for shrunken work (LLADA_PLAY_QUICK=1).
ROOT, QUICK = setup()

from llada_play.model.checkpoint import load_model
model, tokenizer = load_model()  # the shipped default model, trained on Shakespeare
print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, mask token {tokenizer.mask_token!r}")

# %% [markdown]
# ## 1. The forward process
#
# During training each sequence draws its own masking ratio *t* uniformly in (0, 1) and every token is masked
# independently with probability *p = (1 - ε) t + ε*. Here is one line of *Hamlet* at several ratios (the same
# random draws for every *t*, so the masked set only grows).

# %%
# NBVAL_CHECK_OUTPUT
from llada_play.diffusion.masking import forward_process

line = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer"
ids = torch.tensor([tokenizer(line).input_ids])
ratios = [0.1, 0.3, 0.5, 0.7, 0.9]
rows = []
for t in ratios:
    noisy, masked, _ = forward_process(ids, tokenizer.mask_token_id, eps=0.0, t=torch.tensor([t]),
                                       generator=torch.Generator().manual_seed(1))
    rows.append(masked[0].int().tolist())
    shown = "".join("▒" if m else tokenizer.decode([tok]) for tok, m in zip(ids[0].tolist(), masked[0].tolist()))
    print(f"t={t:.1f}  {shown!r}")

# %%
import plotly.graph_objects as go

pieces = [tokenizer.decode([t]).replace("\n", "↵") for t in ids[0].tolist()]
fig = go.Figure(go.Heatmap(z=rows, x=list(range(len(pieces))), y=[f"t = {t}" for t in ratios],
                           colorscale=[[0, "#e6f4ea"], [1, "#868e96"]], showscale=False,
                           text=[pieces] * len(ratios), hovertemplate="%{text}<extra></extra>"))
fig.update_layout(title="Masked positions (grey) as the masking ratio grows", height=300,
                  xaxis_title="token position", template="plotly_white")
fig.show()

# %% [markdown]
# ## 2. The mask predictor
#
# One forward pass predicts a token for every masked position at once, using the context on **both** sides
# (there is no causal mask). Below, half of the line is masked and we compare the model's first choice with the
# truth.

# %%
# NBVAL_CHECK_OUTPUT
noisy, masked, _ = forward_process(ids, tokenizer.mask_token_id, eps=0.0, t=torch.tensor([0.5]),
                                   generator=torch.Generator().manual_seed(2))
with torch.no_grad():
    probs = model(noisy).logits.softmax(-1)[0]
best = probs.max(-1)
positions = masked[0].nonzero().flatten().tolist()
hits = 0
for pos in positions:
    truth, guess = ids[0, pos].item(), best.indices[pos].item()
    hits += truth == guess
    print(f"{pos:3d}  truth {tokenizer.decode([truth])!r:12}  guess {tokenizer.decode([guess])!r:12}  "
          f"p={best.values[pos]:.2f}")
print(f"\n{hits} of {len(positions)} masked tokens guessed exactly ({hits / len(positions):.0%}).")

# %% [markdown]
# ## 3. The reverse process
#
# `generate` starts from the prompt followed by `gen_length` masks. The generation is cut into blocks filled left
# to right (semi-autoregressive); inside a block each step commits the predictions with the highest confidence
# (`remasking="low_confidence"`), a fixed share of the block per step. A `TraceRecorder` hook keeps every step.
#
# The settings are the app's defaults, `INTERACTIVE`: 64 tokens in 64 steps, blocks of 32, tokens drawn at
# temperature 1 with seed 0. They were chosen by measurement (`benchmarks/default_settings.py`): with greedy
# decoding (temperature 0, `generate`'s default) this small model loops, one speaker answering himself line after
# line ("CLOWN. / Why, I will not to you. / CLOWN. ..."); at temperature 1 it writes a scene.

# %%
from llada_play import TraceRecorder, generate
from llada_play.diffusion.sampler_config import INTERACTIVE
from llada_play.model.text import decode_generation, encode_prompt

prompt = encode_prompt(tokenizer, "Romeo.\n")
recorder = TraceRecorder(tokenizer)
out = generate(model, prompt, **INTERACTIVE.to_dict(), hooks=recorder)
trace = recorder.trace()
print(decode_generation(tokenizer, out[0], prompt.shape[1]))
print(f"\n{len(trace.steps)} steps, {sum(len(s.commits) for s in trace.steps)} tokens committed")

# %% [markdown]
# Scrub through the run with the slider, press play, or jump block by block. Grey cells are still masked (with the
# model's current guess inside), green cells are committed (darker = more confident), the outlined cells were
# committed at the step shown.

# %%
from llada_play.ui.widgets import DenoisingPlayer

DenoisingPlayer(trace)

# %%
from llada_play.ui.viz import commit_order_figure

commit_order_figure(trace).show()

# %% [markdown]
# The commit order shows the semi-autoregressive structure: every position of the first block is committed
# before any of the second. Inside a block the order is the model's, not left to right. Which tokens does it
# commit early? Below: the mean step (within its block) at which line breaks and punctuation were committed,
# against words.

# %%
# NBVAL_CHECK_OUTPUT
import string

kinds = {"line breaks and punctuation": [], "words": []}
for step in trace.steps:
    for _row, _pos, token, _conf, _score in step.commits:
        text = tokenizer.decode([token]).strip()
        easy = text == "" or all(ch in string.punctuation for ch in text)
        kinds["line breaks and punctuation" if easy else "words"].append(step.block_step)
for kind, when in kinds.items():
    print(f"{kind}: {len(when)} tokens, committed on average at step {sum(when) / len(when):.1f} of 32")

# %% [markdown]
#
# ## Steering a run
#
# Hooks can also act. This one forces a word into the middle of the first block after the first step; the rest
# of the text is written around it.

# %%
word = tokenizer(" love", add_special_tokens=False).input_ids[0]
target = prompt.shape[1] + 8

def put_love(record):
    if record.step == 0 and record.x_after[0, target] == tokenizer.mask_token_id:
        record.force(target, word)

steered = generate(model, prompt, **INTERACTIVE.to_dict(), hooks=put_love)
print(decode_generation(tokenizer, steered[0], prompt.shape[1]))

# %% [markdown]
# ## Exercises
#
# 1. **Two ratios.** Section 2 masked half of the *Hamlet* line. Predict the share of masked tokens the model's
#    first choice gets exactly right when only 20% of the line is masked, and when 80% is. (Answer in the next
#    cell, hidden in JupyterLab; run it.)

# %% jupyter={"source_hidden": true} tags=["answer"]
# Answer 1: the more of the line is visible, the better the guesses; 20 random maskings at each ratio.
for t in (0.2, 0.8):
    hits = total = 0
    for seed in range(20):
        noisy, masked, _ = forward_process(ids, tokenizer.mask_token_id, eps=0.0, t=torch.tensor([t]),
                                           generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            guess = model(noisy).logits.argmax(-1)
        hits, total = hits + int((guess[masked] == ids[masked]).sum()), total + int(masked.sum())
    print(f"t = {t}: {hits} of {total} masked tokens guessed exactly ({hits / total:.0%})")

# %% [markdown]
# 2. **Fewer steps.** The run in section 3 wrote 64 tokens in 64 steps. Predict what changes with 16 steps: how
#    many tokens each step commits, and whether the text uses fewer distinct tokens (repeats itself more).
#    (Answer in the next cell.)

# %% jupyter={"source_hidden": true} tags=["answer"]
# Answer 2: 16 steps for two blocks of 32 is 8 steps a block, 4 tokens a step; the tokens committed together were
# predicted in one pass without seeing each other. The distinct-token counts are measured, not assumed.
distinct = {}
for steps in (64, 16):
    rec = TraceRecorder(tokenizer)
    run = generate(model, prompt, **INTERACTIVE.replace(steps=steps).to_dict(), hooks=rec)
    distinct[steps] = len(set(run[0, prompt.shape[1]:].tolist()))
    per_step = sorted({len(s.commits) for s in rec.trace().steps})
    print(f"--- {steps} steps: {per_step} tokens committed per step, {distinct[steps]} distinct tokens of 64")
    print(decode_generation(tokenizer, run[0], prompt.shape[1])[:160])
print(f"\n16 steps: {distinct[16] - distinct[64]:+d} distinct tokens against 64 steps")
