"""Write the teaching notebooks from the cell sources below (then execute them to store their outputs):

    python notebooks/build_notebooks.py [NAME ...]        # all notebooks, or only the named ones
    jupyter nbconvert --to notebook --execute --inplace notebooks/0*.ipynb
    python notebooks/build_notebooks.py --strip

Keeping the sources here makes the notebooks reviewable as code; the .ipynb files are what users open.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = '''\
import os
import torch
from transformers.utils import logging as hf_logging
from llada_play.ui.static import use_static_fallbacks

hf_logging.disable_progress_bar()  # no loading bars in the stored outputs
# Every figure is stored twice: plotly's own output (JupyterLab, VS Code: interactive, offline) and a PNG of it
# (GitHub, nbviewer, HTML exports, which run no JavaScript). Widgets carry a PNG of what they show as well.
use_static_fallbacks()
torch.manual_seed(0)
QUICK = os.environ.get("LLADA_PLAY_QUICK") == "1"  # the test suite may shrink the work'''

NOTEBOOKS = {
    "01_denoising_walkthrough": [
        ("md", """\
# 1. How a masked diffusion model writes

A LLaDA-style model is trained on one simple game: hide a random fraction *t* of the tokens of a text behind a
`[MASK]` token and predict them back. To write, it plays the game backwards: start from a row of masks and,
step after step, commit the predictions it is surest of. This notebook walks through the three pieces:

1. the **forward process** (masking at ratio *t*),
2. the **mask predictor** (one forward pass guesses every masked token at once),
3. the **reverse process** (the sampler), which you can replay step by step with a widget.

*Run time on a 2-core CPU: about 15 seconds
(with `LLADA_PLAY_QUICK=1`, as `make test` runs it: about 15 seconds; measured 2026-11-30).*"""),
        ("code", SETUP + '''

from llada_play.model.checkpoint import load_model
model, tokenizer = load_model()  # the shipped default model, trained on Shakespeare
print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, mask token {tokenizer.mask_token!r}")'''),
        ("md", """\
## 1. The forward process

During training each sequence draws its own masking ratio *t* uniformly in (0, 1) and every token is masked
independently with probability *p = (1 - ε) t + ε*. Here is one line of *Hamlet* at several ratios (the same
random draws for every *t*, so the masked set only grows)."""),
        ("code", '''\
# NBVAL_CHECK_OUTPUT
from llada_play.diffusion.masking import forward_process

line = "To be, or not to be, that is the question:\\nWhether 'tis nobler in the mind to suffer"
ids = torch.tensor([tokenizer(line).input_ids])
ratios = [0.1, 0.3, 0.5, 0.7, 0.9]
rows = []
for t in ratios:
    noisy, masked, _ = forward_process(ids, tokenizer.mask_token_id, eps=0.0, t=torch.tensor([t]),
                                       generator=torch.Generator().manual_seed(1))
    rows.append(masked[0].int().tolist())
    shown = "".join("▒" if m else tokenizer.decode([tok]) for tok, m in zip(ids[0].tolist(), masked[0].tolist()))
    print(f"t={t:.1f}  {shown!r}")'''),
        ("code", '''\
import plotly.graph_objects as go

pieces = [tokenizer.decode([t]).replace("\\n", "↵") for t in ids[0].tolist()]
fig = go.Figure(go.Heatmap(z=rows, x=list(range(len(pieces))), y=[f"t = {t}" for t in ratios],
                           colorscale=[[0, "#e6f4ea"], [1, "#868e96"]], showscale=False,
                           text=[pieces] * len(ratios), hovertemplate="%{text}<extra></extra>"))
fig.update_layout(title="Masked positions (grey) as the masking ratio grows", height=300,
                  xaxis_title="token position", template="plotly_white")
fig.show()'''),
        ("md", """\
## 2. The mask predictor

One forward pass predicts a token for every masked position at once, using the context on **both** sides
(there is no causal mask). Below, half of the line is masked and we compare the model's first choice with the
truth."""),
        ("code", '''\
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
print(f"\\n{hits} of {len(positions)} masked tokens guessed exactly ({hits / len(positions):.0%}).")'''),
        ("md", """\
## 3. The reverse process

`generate` starts from the prompt followed by `gen_length` masks. The generation is cut into blocks filled left
to right (semi-autoregressive); inside a block each step commits the predictions with the highest confidence
(`remasking="low_confidence"`), a fixed share of the block per step. A `TraceRecorder` hook keeps every step.

The settings are the app's defaults, `INTERACTIVE`: 64 tokens in 64 steps, blocks of 32, tokens drawn at
temperature 1 with seed 0. They were chosen by measurement (`benchmarks/default_settings.py`): with greedy
decoding (temperature 0, `generate`'s default) this small model loops, one speaker answering himself line after
line ("CLOWN. / Why, I will not to you. / CLOWN. ..."); at temperature 1 it writes a scene."""),
        ("code", '''\
from llada_play import TraceRecorder, generate
from llada_play.diffusion.sampler_config import INTERACTIVE
from llada_play.model.text import decode_generation, encode_prompt

prompt = encode_prompt(tokenizer, "Romeo.\\n")
recorder = TraceRecorder(tokenizer)
out = generate(model, prompt, **INTERACTIVE.to_dict(), hooks=recorder)
trace = recorder.trace()
print(decode_generation(tokenizer, out[0], prompt.shape[1]))
print(f"\\n{len(trace.steps)} steps, {sum(len(s.commits) for s in trace.steps)} tokens committed")'''),
        ("md", """\
Scrub through the run with the slider, press play, or jump block by block. Grey cells are still masked (with the
model's current guess inside), green cells are committed (darker = more confident), the outlined cells were
committed at the step shown."""),
        ("code", '''\
from llada_play.ui.widgets import DenoisingPlayer

DenoisingPlayer(trace)'''),
        ("code", '''\
from llada_play.ui.viz import commit_order_figure

commit_order_figure(trace).show()'''),
        ("md", """\
The commit order shows the semi-autoregressive structure: every position of the first block is committed
before any of the second. Inside a block the order is the model's, not left to right. Which tokens does it
commit early? Below: the mean step (within its block) at which line breaks and punctuation were committed,
against words."""),
        ("code", '''\
# NBVAL_CHECK_OUTPUT
import string

kinds = {"line breaks and punctuation": [], "words": []}
for step in trace.steps:
    for _row, _pos, token, _conf, _score in step.commits:
        text = tokenizer.decode([token]).strip()
        easy = text == "" or all(ch in string.punctuation for ch in text)
        kinds["line breaks and punctuation" if easy else "words"].append(step.block_step)
for kind, when in kinds.items():
    print(f"{kind}: {len(when)} tokens, committed on average at step {sum(when) / len(when):.1f} of 32")'''),
        ("md", """\

## Steering a run

Hooks can also act. This one forces a word into the middle of the first block after the first step; the rest
of the text is written around it."""),
        ("code", '''\
word = tokenizer(" love", add_special_tokens=False).input_ids[0]
target = prompt.shape[1] + 8

def put_love(record):
    if record.step == 0 and record.x_after[0, target] == tokenizer.mask_token_id:
        record.force(target, word)

steered = generate(model, prompt, **INTERACTIVE.to_dict(), hooks=put_love)
print(decode_generation(tokenizer, steered[0], prompt.shape[1]))'''),
        ("md", """\
## Exercises

1. **Two ratios.** Section 2 masked half of the *Hamlet* line. Predict the share of masked tokens the model's
   first choice gets exactly right when only 20% of the line is masked, and when 80% is. (Answer in the next
   cell, hidden in JupyterLab; run it.)"""),
        ("answer", '''\
# Answer 1: the more of the line is visible, the better the guesses; 20 random maskings at each ratio.
for t in (0.2, 0.8):
    hits = total = 0
    for seed in range(20):
        noisy, masked, _ = forward_process(ids, tokenizer.mask_token_id, eps=0.0, t=torch.tensor([t]),
                                           generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            guess = model(noisy).logits.argmax(-1)
        hits, total = hits + int((guess[masked] == ids[masked]).sum()), total + int(masked.sum())
    print(f"t = {t}: {hits} of {total} masked tokens guessed exactly ({hits / total:.0%})")'''),
        ("md", """\
2. **Fewer steps.** The run in section 3 wrote 64 tokens in 64 steps. Predict what changes with 16 steps: how
   many tokens each step commits, and whether the text uses fewer distinct tokens (repeats itself more).
   (Answer in the next cell.)"""),
        ("answer", '''\
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
print(f"\\n16 steps: {distinct[16] - distinct[64]:+d} distinct tokens against 64 steps")'''),
    ],
}

NOTEBOOKS["01b_objective"] = [
    ("md", """\
# 1b. What the model is trained to do

Notebook 1 showed the model writing. This one is about the one objective behind it, computed with the
project's own functions (`llada_play/diffusion/masking.py`, `losses.py`, `llada_play/training/evaluation.py`)
on the shipped Shakespeare model, its autoregressive twin and the held-out plays neither of them trained on:

1. the **forward process** q(x_t | x_0), which hides each token with probability *t*;
2. the **loss**, written out beside the lines of `losses.py` that compute it;
3. why that loss is an **upper bound on the negative log-likelihood**, and the bound measured against the twin's
   exact likelihood, with error bars;
4. why the network has **no time embedding**: the number of masks tells it *t*, and the best prediction does
   not depend on *t* anyway;
5. **SFT**: the same loss with the prompt kept clean;
6. the **mask token** itself, here and in LLaDA-8B.

Three exercises at the end.

*Run time on a 2-core CPU: about 2 minutes
(with `LLADA_PLAY_QUICK=1`, as `make test` runs it: about 35 seconds; measured 2026-11-30 on one core while
other benchmarks shared the machine).*"""),
    ("code", SETUP + '''

from pathlib import Path
from llada_play.model.checkpoint import DEFAULT_AR_MODEL_DIR, load_model
from llada_play.training.data import pack_tokens, read_corpus, split_documents

ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
hf_logging.set_verbosity_error()  # whole plays are tokenized into one id stream on purpose: no length warning
model, tokenizer = load_model()             # the shipped diffusion model, trained on Shakespeare
twin, _ = load_model(DEFAULT_AR_MODEL_DIR)  # its autoregressive twin: same shape, tokenizer, data and budget
MASK = model.config.mask_token_id
# the split of both training runs (MODEL_CARD.md): whole plays held out by a seeded shuffle
train_docs, held_docs = split_documents(read_corpus(ROOT / "data/shakespeare"), 0.05, seed=0)
train_tokens = pack_tokens(tokenizer, train_docs.values(), 256)
held_tokens = pack_tokens(tokenizer, held_docs.values(), 256)
L = 256  # the training window
windows = held_tokens[: len(held_tokens) // L * L].view(-1, L)  # the held-out text in windows that do not overlap
print(f"held out: {', '.join(held_docs)}; {len(held_tokens):,} tokens, {len(windows)} windows of {L}")
print(f"diffusion model causal={model.config.causal}, twin causal={twin.config.causal}")'''),
    ("md", """\
## 1. The forward process

Training takes a clean window x_0 of *L* = 256 tokens, draws one ratio *t* ~ U(0, 1) **per sequence**, and
replaces every token by the mask token M independently with probability *t*:
q(x_t^i = M | x_0) = *t*, otherwise x_t^i = x_0^i. LLaDA uses *p* = (1 - ε) *t* + ε with ε = 0.001
(`mask_probability`), so that no sequence is drawn without a chance of masks. Eight held-out windows through
`forward_process`: each row's drawn ratio and the share of its 256 tokens that ended up masked (▒)."""),
    ("code", '''\
# NBVAL_CHECK_OUTPUT
from llada_play.diffusion.masking import forward_process, mask_probability

print("p at t = 0, 0.5, 1:", [round(p, 4) for p in mask_probability(torch.tensor([0.0, 0.5, 1.0])).tolist()])
x0 = windows[:8]
xt, masked, p_mask = forward_process(x0, MASK, generator=torch.Generator().manual_seed(0))
for row in range(len(x0)):
    start = tokenizer.decode(xt[row, :10]).replace(tokenizer.mask_token, "▒")
    print(f"row {row}: p = {p_mask[row, 0]:.3f}, masked {masked[row].float().mean():.3f} of the tokens; {start!r}")'''),
    ("md", """\
## 2. The loss, written out

$$\\mathcal{L}(\\theta) \\;=\\; -\\,\\mathbb{E}_{t \\sim U(0,1),\\; x_0 \\sim p_{\\text{data}},\\; x_t \\sim q(x_t \\mid x_0)}
\\left[\\frac{1}{t} \\sum_{i=1}^{L} \\mathbf{1}\\!\\left[x_t^i = \\mathrm{M}\\right]
\\log p_\\theta\\!\\left(x_0^i \\mid x_t\\right)\\right] \\Big/ L$$

Read from the inside out: the network sees x_t and predicts every position at once (one forward pass, no causal
mask); only the masked positions are scored, by the log-probability of the true token; the sum is weighted by
1/*t*; the expectation is over the ratio, the text and the masks; dividing by *L* gives nats per token. About
*tL* tokens are masked at ratio *t*, so the 1/*t* weight brings every ratio's sum back to the scale of *L*
tokens. In `pretrain_loss` (`logits[masked]` are the masked positions, `p_mask` is the row's *p*, `b * n` the
batch's tokens; `rows` only picks one process's shard in data-parallel training):"""),
    ("code", '''\
import inspect
from llada_play.diffusion import losses

source = inspect.getsource(losses.pretrain_loss).splitlines()
start = next(i for i, line in enumerate(source) if "forward_process(" in line)
print("\\n".join(source[start:]))'''),
    ("md", """\
The formula by hand, with the same random draws (a generator with the same seed), against the library on
eight held-out windows (`random_length_prob=0`: the 1% of training batches cut to a random length are left
out here):"""),
    ("code", '''\
# NBVAL_CHECK_OUTPUT
from llada_play.diffusion.losses import pretrain_loss

batch = windows[:8]
with torch.no_grad():
    library = pretrain_loss(model, batch, MASK, random_length_prob=0.0, generator=torch.Generator().manual_seed(1))
    xt, masked, p_mask = forward_process(batch, MASK, generator=torch.Generator().manual_seed(1))  # same t, same masks
    log_p = model(xt).logits.log_softmax(-1).gather(-1, batch[..., None])[..., 0]  # log p_theta(x_0^i | x_t)
    by_hand = -(masked * log_p / p_mask).sum() / batch.numel()
print(f"pretrain_loss {library.loss:.4f}, by hand {by_hand:.4f} ({library.num_masked} of {batch.numel()} tokens masked)")
print(f"(masked count) / p per row: {[round(v) for v in (masked.sum(1) / p_mask[:, 0]).tolist()]} "
      f"(its expectation is L = {L})")'''),
    ("md", """\
## 3. Why it is an upper bound on the negative log-likelihood

The trained network defines a generative model. Start from *L* masks and reveal one position at a time, in an
order σ drawn uniformly at random, sampling each revealed token from p_θ(x_0^i | x_t). For a fixed order this is
an autoregressive model over that order, with an exact likelihood p_θ^σ(x_0), the product of the *L*
predictions. The model's own distribution is the mixture over orders, p_θ(x_0) = E_σ[p_θ^σ(x_0)], and since
-log is convex (Jensen), -log p_θ(x_0) ≤ E_σ[-log p_θ^σ(x_0)].

That right-hand side is *L* times the loss above. After *L - l* steps of a random order, *l* positions are still
masked, a uniformly random set, and the next position revealed is any of them with probability 1/*l*. The
continuous ratio *t* puts exactly that weight on each set size: a set of *l* masks arises at ratio *t* with
binomial probability C(*L*, *l*) *t*^*l* (1 - *t*)^(*L* - *l*), and its integral against 1/*t* over (0, 1) is
1/*l* (checked numerically below). So the 1/*t*-weighted loss is the any-order autoregressive loss averaged over
orders: an upper bound on the model's negative log-likelihood, the negative ELBO ("NELBO"). This is the
any-order reading of Ou et al. (2024, RADD); the same bound is the continuous-time ELBO of absorbing-state
discrete diffusion (Austin et al. 2021, D3PM; Lou et al. 2024, SEDD; Sahoo et al. 2024, MDLM; Shi et al. 2024,
MD4), which LLaDA (Nie et al. 2025) trains on and uses to score likelihoods. Two caveats: it bounds the
likelihood of the random-order, one-token-a-step sampler (the confidence-ordered sampler of notebook 1 has no
tractable likelihood), and ε shifts the weights slightly."""),
    ("code", '''\
# NBVAL_CHECK_OUTPUT
from math import comb

small_L, grid = 8, torch.linspace(0, 1, 200_001, dtype=torch.float64)[1:]  # a Riemann sum over (0, 1]
for l in range(1, small_L + 1):
    integral = (comb(small_L, l) * grid ** (l - 1) * (1 - grid) ** (small_L - l)).mean().item()  # (1/t) t^l = t^(l-1)
    print(f"L = {small_L}, l = {l}: integral of (1/t) P(l masks | t) dt = {integral:.4f}, 1/l = {1 / l:.4f}")'''),
    ("md", """\
### The bound, measured

On the held-out plays: the NELBO of every window (`nelbo_per_sequence`: draws of *t*, masks, 1/*t*-weighted
cross-entropy), the twin's **exact** negative log-likelihood (`autoregressive_nll_per_sequence`) and the unigram
baseline (`unigram_cross_entropy`: training-set token frequencies, no context at all). All three score the same
tokens: tokens 2 to 256 of each window, given its first (the twin cannot predict a first token without
context, so the diffusion model gets the first token as given too: `context=1`). Error bars are standard
errors over windows (`mean_and_standard_error`); each window's NELBO has its own independent draws, so the
Monte-Carlo noise is inside the error bar."""),
    ("code", '''\
import time
from llada_play.training.evaluation import (autoregressive_nll_per_sequence, mean_and_standard_error,
                                            nelbo_per_sequence, unigram_cross_entropy)

scored = windows[::16] if QUICK else windows  # quick: every 16th window
DRAWS = 2 if QUICK else 4  # draws of t per window
started = time.perf_counter()
measured = {
    "diffusion model, NELBO (upper bound)": nelbo_per_sequence(model, scored, MASK, samples=DRAWS, context=1, seed=0),
    "autoregressive twin, exact NLL": autoregressive_nll_per_sequence(twin, scored),
    "unigram baseline": torch.tensor([unigram_cross_entropy(train_tokens, w[1:], len(tokenizer)) for w in scored]),
}
stats = {name: mean_and_standard_error(values) for name, values in measured.items()}
for name, (mean, se) in stats.items():
    print(f"{name:37} {mean:.3f} ± {se:.3f} nats/token")
print(f"{len(scored)} windows x {L - 1} scored tokens, {DRAWS} draws of t per window, "
      f"{time.perf_counter() - started:.0f} s")'''),
    ("code", '''\
import plotly.graph_objects as go

fig = go.Figure(go.Bar(x=[name.replace(", ", "<br>") for name in stats], y=[m for m, _ in stats.values()],
                       error_y=dict(type="data", array=[2 * se for _, se in stats.values()]),
                       text=[f"{m:.2f}" for m, _ in stats.values()], textposition="inside",
                       marker_color=["#2f9e44", "#1c7ed6", "#adb5bd"]))
fig.update_layout(title="Held-out Shakespeare, nats per token (error bars: ± 2 standard errors over windows)",
                  yaxis_title="nats per token", template="plotly_white", height=380)
fig.show()'''),
    ("md", """\
What these numbers say, and what they do not, computed from them (the gap is paired: the same windows for both
models):"""),
    ("code", '''\
import math

(nelbo, nelbo_se), (ar, ar_se), (unigram, _) = stats.values()
names = list(measured)
gap, gap_se = mean_and_standard_error(measured[names[0]] - measured[names[1]])
print(f"The diffusion model's bound is {nelbo:.2f} ± {nelbo_se:.2f} nats/token, the twin's exact NLL "
      f"{ar:.2f} ± {ar_se:.2f}: the bound lies {gap:+.2f} ± {gap_se:.2f} from it ({gap / gap_se:+.0f} standard errors).")
print(f"Proven: the diffusion model's NLL is at most {nelbo:.2f} nats/token (perplexity at most "
      f"{math.exp(nelbo):.0f}), at least {unigram - nelbo:.2f} below the unigram baseline's {unigram:.2f}.")
if gap > 2 * gap_se:
    print(f"Not proven: that the diffusion model is worse than the twin. Its true NLL lies below the bound by an "
          f"unknown amount (the Jensen gap over orders); the measured {gap:.2f} is how far the bound stays above the "
          f"twin, the most the diffusion model can be behind it, not how far it is behind.")
elif gap < -2 * gap_se:
    print("The bound is below the twin's exact NLL: the diffusion model is the better model of this text.")
else:
    print("The bound and the twin's NLL agree within two standard errors: the diffusion model is at least as good, "
          "within the noise.")'''),
    ("md", """\
## 4. Why there is no time embedding

Diffusion models for images are told the noise level. LLaDA's network is not: `model/modeling.py` embeds the
tokens and rotates by position, and that is all. First, *t* is in the input anyway: the share of masked tokens
in x_t estimates *t*, with standard deviation sqrt(*t*(1 - *t*)/*L*) (a binomial count over *L* tokens). Measured,
2,000 draws of the forward process on one window at each ratio:"""),
    ("code", '''\
# NBVAL_CHECK_OUTPUT
RATIOS = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]
g = torch.Generator().manual_seed(0)
read_t = {}
for t in RATIOS:
    _, masked, _ = forward_process(windows[0].expand(2000, L), MASK, eps=0.0, t=torch.full((2000,), t), generator=g)
    fraction = masked.float().mean(1)
    read_t[t] = (fraction.mean().item(), fraction.std().item())
    print(f"t = {t:.2f}: masked share {read_t[t][0]:.3f} ± {read_t[t][1]:.3f}   "
          f"sqrt(t(1-t)/L) = {math.sqrt(t * (1 - t) / L):.3f}")'''),
    ("md", """\
Second, the network behaves according to *t* without being told it. At each ratio, held-out windows are masked
and the model's predictions at the masked positions are measured: their cross-entropy against the truth
(`loss_by_mask_ratio`) and their entropy (how unsure the model is, which it computes from x_t alone)."""),
    ("code", '''\
from plotly.subplots import make_subplots
from llada_play.training.evaluation import loss_by_mask_ratio

probe = windows[::84] if QUICK else windows[::21]  # evenly spaced windows
curve = loss_by_mask_ratio(model, [{"input_ids": probe}], MASK, ratios=RATIOS)
entropy = {}
with torch.no_grad():
    for t in RATIOS:
        xt, masked, _ = forward_process(probe, MASK, eps=0.0, t=torch.full((len(probe),), t),
                                        generator=torch.Generator().manual_seed(0))
        probs = model(xt).logits.softmax(-1)[masked]
        entropy[t] = torch.special.entr(probs).sum(-1).mean().item()
fig = make_subplots(rows=1, cols=2, subplot_titles=["the input: share of masked tokens",
                                                    "the model: its predictions at masked positions"])
fig.add_scatter(x=RATIOS, y=[read_t[t][0] for t in RATIOS], error_y=dict(array=[read_t[t][1] for t in RATIOS]),
                mode="markers", name="masked share ± 1 sd", row=1, col=1)
fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"), name="= t", row=1, col=1)
fig.add_scatter(x=RATIOS, y=[curve[t] for t in RATIOS], mode="lines+markers", name="cross-entropy", row=1, col=2)
fig.add_scatter(x=RATIOS, y=[entropy[t] for t in RATIOS], mode="lines+markers", name="entropy", row=1, col=2)
fig.update_xaxes(title_text="masking ratio t")
fig.update_yaxes(title_text="share of tokens masked", row=1, col=1)
fig.update_yaxes(title_text="nats per masked token", row=1, col=2)
fig.update_layout(template="plotly_white", height=420, legend=dict(orientation="h", y=-0.25))
fig.show()
print(f"{len(probe)} windows; at t = {RATIOS[0]}: cross-entropy {curve[RATIOS[0]]:.2f}, entropy {entropy[RATIOS[0]]:.2f}; "
      f"at t = 1: cross-entropy {curve[1.0]:.2f}, entropy {entropy[1.0]:.2f} nats")'''),
    ("md", """\
And the reason it does not need *t* even in principle: for every clean text x_0 that agrees with x_t on its
visible tokens, q(x_t | x_0) = *t*^*m* (1 - *t*)^(*L* - *m*) (*m* masks), the same number for all of them. By
Bayes' rule q(x_0 | x_t) ∝ p_data(x_0) q(x_t | x_0), so that factor cancels: the best prediction of a masked
token is p_data(x_0^i | the visible tokens of x_t), a conditional of clean text with no *t* in it. Ou et al.
(2024) prove this for absorbing diffusion and drop the time input (RADD); MDLM (Sahoo et al. 2024) and MD4
(Shi et al. 2024) make the same observation for their masking schedules. The curves above are that
conditional getting harder as context disappears, not a clock the model reads.

## 5. SFT: the prompt stays clean

Supervised fine-tuning keeps the objective and changes what may be masked: the prompt never is; the response,
with its end-of-turn and the end-of-text padding after it, is masked at a ratio *t* ~ U(0, 1), still weighted
by 1/*t*; each row's sum is divided by its response length instead of *L* (`sft_loss`):"""),
    ("code", '''\
source = inspect.getsource(losses.sft_loss).splitlines()
print("\\n".join(line for line in source if any(key in line for key in
                 ("response = positions", "response_length = ", "forward_process(", "token_loss = ", "loss = ("))))'''),
    ("md", """\
One training row of the shipped arithmetic data, padded with end-of-text as in a batch (`SFTBatches`; the row
of the first 32 with the most padding), through `sft_loss` five times with the shipped arithmetic model (the default model after SFT); a forward pre-hook records what the
network was shown (`|` separates prompt and response, ▒ = masked):"""),
    ("code", '''\
# NBVAL_CHECK_OUTPUT
from llada_play.diffusion.losses import sft_loss
from llada_play.model.checkpoint import ARITHMETIC_MODEL_DIR
from llada_play.training.data import SFTBatches, load_sft_rows

arith, _ = load_model(ARITHMETIC_MODEL_DIR)
sft_rows = SFTBatches.from_conversations(tokenizer, load_sft_rows(ROOT / "data/sft/arithmetic_train.jsonl")[:32],
                                         batch_size=32)
pick = int((sft_rows.input_ids == tokenizer.eos_token_id).sum(1).argmax())
ids, prompt_length = sft_rows.input_ids[pick:pick + 1], sft_rows.prompt_lengths[pick:pick + 1]
seen = []
hook = arith.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
with torch.no_grad():
    for seed in range(5):
        out = sft_loss(arith, ids, prompt_length, MASK, generator=torch.Generator().manual_seed(seed))
        shown = [tokenizer.decode([tok]).replace(tokenizer.mask_token, "▒") for tok in seen[-1][0].tolist()]
        cut = int(prompt_length)
        print(f"t = {out.p_mask[0]:.2f}, loss {out.loss:6.3f}: {''.join(shown[:cut])!r} | {''.join(shown[cut:])!r}")
hook.remove()
print(f"prompt {cut} tokens (never masked), response {ids.shape[1] - cut} tokens (maskable)")'''),
    ("md", """\
The same loss on held-out rows, for the default model before SFT and the arithmetic model after it (mean over
draws of *t*):"""),
    ("code", '''\
test = SFTBatches.from_conversations(tokenizer, load_sft_rows(ROOT / "data/sft/arithmetic_test.jsonl")[:64],
                                     batch_size=64)
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    for name, m in [("default model (before SFT)", model), ("arithmetic model (after SFT)", arith)]:
        values = [sft_loss(m, test.input_ids, test.prompt_lengths, MASK, generator=g).loss.item() for _ in range(8)]
        print(f"{name:29} SFT loss {sum(values) / len(values):.3f} nats per response token (64 held-out rows)")'''),
    ("md", """\
## 6. The mask token

Here and in LLaDA-8B the mask is one reserved token, `<|mdm_mask|>`, that never occurs in text; only its place
in the vocabulary differs. Nothing in the losses or the sampler hard-codes it: they read `config.mask_token_id`
(and when a LLaDA checkpoint's tokenizer does not call `<|mdm_mask|>` its mask token, the loader makes it so,
`model/checkpoint.py`; the `llada-8b` preset and the adapters' fallback for LLaDA checkpoints carry the same id):"""),
    ("code", '''\
# NBVAL_CHECK_OUTPUT
from llada_play.model.adapters import FAMILIES
from llada_play.model.config import PRESETS
from llada_play.model.formats import LLADA_DEFAULTS

print(f"this project: {tokenizer.mask_token} = id {tokenizer.mask_token_id} of a {len(tokenizer):,}-token "
      f"vocabulary (config.mask_token_id = {model.config.mask_token_id})")
print(f"LLaDA-8B:     <|mdm_mask|> = id {PRESETS['llada-8b']['mask_token_id']} of a "
      f"{PRESETS['llada-8b']['vocab_size']:,}-token vocabulary (LLaDA config default "
      f"{LLADA_DEFAULTS['mask_token_id']}, adapters' fallback {FAMILIES['llada'].default_mask_id})")'''),
    ("md", """\
## Exercises

1. **Short rows.** The mask count tells the model *t* only roughly. At *t* = 0.3, predict the standard deviation
   of the masked share for a row of 16 tokens and for one of 1,024, against 256. (Answer in the next cell,
   hidden in JupyterLab; run it.)"""),
    ("answer", '''\
# Answer 1: sqrt(t (1 - t) / L): four times the spread at 16 tokens, half of it at 1,024.
g = torch.Generator().manual_seed(0)
for length in (16, 256, 1024):
    _, masked, _ = forward_process(torch.zeros(4000, length, dtype=torch.long), MASK, eps=0.0,
                                   t=torch.full((4000,), 0.3), generator=g)
    share = masked.float().mean(1)
    print(f"L = {length:4d}: masked share {share.mean():.3f} ± {share.std():.3f} "
          f"(sqrt(t(1-t)/L) = {math.sqrt(0.3 * 0.7 / length):.3f})")'''),
    ("md", """\
2. **The bound is an area.** In expectation (1/*t*) × (masked tokens) is *L*, so the NELBO per token is the
   cross-entropy at ratio *t* averaged uniformly over *t*: the area under the cross-entropy curve of section 4.
   Predict the NELBO from that curve. Then predict whether the plain mean cross-entropy over all masked tokens
   (no 1/*t*; `masked_token_loss` reports both) comes out above or below the NELBO. (Answer in the next cell.)"""),
    ("answer", '''\
# Answer 2: the area under the curve (trapezoids, flat below t = 0.05) is close to the Monte-Carlo NELBO. The plain
# mean over masked tokens weights each ratio by its number of masks, 2 * integral of t CE(t): the hard high ratios
# count more, so it is above the NELBO.
from llada_play.training.evaluation import masked_token_loss

ts, ce = [0.0] + RATIOS, [curve[RATIOS[0]]] + [curve[t] for t in RATIOS]
def area(f):
    return sum((ts[k + 1] - ts[k]) * (f(k) + f(k + 1)) / 2 for k in range(len(ts) - 1))
from_curve = {"NELBO": area(lambda k: ce[k]), "plain mean": 2 * area(lambda k: ts[k] * ce[k])}
print(f"from the curve: NELBO about {from_curve['NELBO']:.2f}, plain masked-token mean about "
      f"{from_curve['plain mean']:.2f} nats/token")
direct = masked_token_loss(model, [{"input_ids": probe}] * 4, MASK)  # 4 draws of t per window, the same windows
print(f"measured on the same windows: NELBO {direct['nelbo_per_token']:.2f}, "
      f"plain masked-token mean {direct['masked_token_loss']:.2f} nats/token")
print(f"the plain mean is {'above' if direct['masked_token_loss'] > direct['nelbo_per_token'] else 'below'} the NELBO "
      f"by {abs(direct['masked_token_loss'] - direct['nelbo_per_token']):.2f}; the curve's area is "
      f"{abs(from_curve['NELBO'] - direct['nelbo_per_token']):.2f} from the measured NELBO")'''),
    ("md", """\
3. **A quieter estimate.** LLaDA scores likelihoods with another draw: mask exactly *l* tokens, *l* uniform in
   1..*L*, weighted by *L*/*l* (`mc_log_likelihood`); with `stratified=True` the *l* of one batch are spread
   evenly over 1..*L*. For one held-out window and 8 draws per estimate, predict: do the three estimators (random
   *t* with 1/*t*, exact *l*, stratified *l*) agree on average, and which varies least from one repetition to
   the next? (Answer in the next cell.)"""),
    ("answer", '''\
# Answer 3: all three are unbiased estimates of the same bound (the sum over l of the expected loss of l masks, / l);
# spreading l evenly over 1..L removes the noise of drawing how many tokens to mask, so the stratified estimate
# should vary least. Measured below, with each mean's standard error over the repetitions.
from llada_play.diffusion.losses import mc_log_likelihood

window, REPEATS = windows[0], 4 if QUICK else 16
g = torch.Generator().manual_seed(3)
def exact_l(stratified):
    return torch.tensor([-mc_log_likelihood(model, window[:1], window[1:], MASK, num_samples=8, batch_size=8,
                                            generator=g, stratified=stratified) / (L - 1) for _ in range(REPEATS)])
estimates = {"random t, weight 1/t": nelbo_per_sequence(model, window.expand(REPEATS, L).clone(), MASK, samples=8,
                                                         context=1, seed=3),
             "exactly l masked, weight L/l": exact_l(False), "l stratified (LLaDA)": exact_l(True)}
three = {name: mean_and_standard_error(values) for name, values in estimates.items()}
for name, values in estimates.items():
    print(f"{name:29} mean {three[name][0]:.3f} ± {three[name][1]:.3f}, "
          f"std over {REPEATS} repetitions {values.std():.3f} nats/token")
print("least spread:", min(estimates, key=lambda name: estimates[name].std()))
z = max(abs(three[a][0] - three[b][0]) / math.hypot(three[a][1], three[b][1]) for a in three for b in three if a != b)
print(f"the means differ by at most {z:.1f} standard errors: " + ("they agree within the noise." if z < 3 else
      "more than noise; a rare draw with few masks carries a large weight, and few repetitions may miss it."))'''),
    ("md", """\
## References

- Nie et al. *Large Language Diffusion Models* (LLaDA), 2025. arXiv:2502.09992.
- Austin et al. *Structured Denoising Diffusion Models in Discrete State-Spaces* (D3PM), NeurIPS 2021.
  arXiv:2107.03006.
- Sahoo et al. *Simple and Effective Masked Diffusion Language Models* (MDLM), NeurIPS 2024. arXiv:2406.07524.
- Shi et al. *Simplified and Generalized Masked Diffusion for Discrete Data* (MD4), NeurIPS 2024.
  arXiv:2406.04329.
- Ou et al. *Your Absorbing Discrete Diffusion Secretly Models the Conditional Distributions of Clean Data*
  (RADD), 2024. arXiv:2406.03736.
- Lou et al. *Discrete Diffusion Modeling by Estimating the Ratios of the Data Distribution* (SEDD), ICML 2024.
  arXiv:2310.16834.
- Devlin et al. *BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding*, NAACL 2019
  (masked language modelling at a fixed 15% ratio; notebook 6). arXiv:1810.04805."""),
]

NOTEBOOKS["04_quick_sft"] = [
    ("md", """\
# 4. Quick SFT: teaching the Shakespeare model to add

Supervised fine-tuning of a masked diffusion model (LLaDA's recipe): the **prompt is never masked**; the
response, including the end-of-text padding after it, is masked at a random ratio like in pre-training; each
sequence's loss is divided by its response length. We fine-tune the shipped default model on the project's
arithmetic set (`data/sft/`, made by a seeded script) and measure held-out exact-match accuracy before and
after. The held-out sums never appear in training.

*Run time on a 2-core CPU: about 3 minutes
(with `LLADA_PLAY_QUICK=1`, as `make test` runs it: about 50 seconds; measured 2026-11-30).*"""),
    ("code", SETUP + '''

from pathlib import Path
from llada_play.training.data import SFTBatches, encode_conversation, load_sft_rows

ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
train_rows = load_sft_rows(ROOT / "data/sft/arithmetic_train.jsonl")
test_rows = load_sft_rows(ROOT / "data/sft/arithmetic_test.jsonl")
print(len(train_rows), "training rows,", len(test_rows), "held-out rows")
for messages in train_rows[:3]:
    print(messages)'''),
    ("md", """\
Each row goes through the chat template. The prompt part stays visible; the response is what gets masked:"""),
    ("code", '''\
# NBVAL_CHECK_OUTPUT
from llada_play.model.checkpoint import load_model

model, tokenizer = load_model()
prompt_ids, response_ids = encode_conversation(tokenizer, train_rows[0])
print("prompt:  ", repr(tokenizer.decode(prompt_ids)))
print("response:", repr(tokenizer.decode(response_ids)))
batches = SFTBatches.from_conversations(tokenizer, train_rows, batch_size=32)
print("padded to", batches.input_ids.shape[1], "tokens with end-of-text")'''),
    ("md", """\
Before fine-tuning, the model has never seen a question; it answers with Shakespeare:"""),
    ("code", '''\
from llada_play.training.evaluation import answer_accuracy

before = answer_accuracy(model, tokenizer, test_rows, return_answers=True)
for messages, answer in list(zip(test_rows, before["answers"]))[:3]:
    print(f"{messages[0]['content']!r:35} -> {answer!r}  (truth {messages[-1]['content']!r})")
print(f"held-out accuracy {before['accuracy']:.1%}, well-formed {before['well_formed']:.0%}")'''),
    ("md", """\
Now fine-tune (1,000 steps of 32 rows, learning rate 1e-3; the same run as `llada-play sft`). A training hook
collects the loss of every step."""),
    ("code", '''\
import tempfile
from llada_play.recipes import run_sft
from llada_play.training.trainer import TrainConfig

losses = []
out_dir = tempfile.mkdtemp(prefix="quick-sft-")
config = TrainConfig(objective="sft", output_dir=out_dir, max_steps=200 if QUICK else 1000, lr=1e-3,
                     warmup_steps=50, progress=False, save_every=10_000)
summary = run_sft(None, ROOT / "data/sft/arithmetic_train.jsonl", config, batch_size=32,
                  hooks=lambda record: losses.append(record.loss),
                  eval_data=ROOT / "data/sft/arithmetic_test.jsonl")
acc = summary["held_out_accuracy"]
print(f"{summary['steps']} steps in {summary['wall_time_s']:.0f} s")
print(f"held-out accuracy: {acc['before']['accuracy']:.1%} before, {acc['after']['accuracy']:.1%} after")
print(f"well-formed answers: {acc['before']['well_formed']:.0%} before, {acc['after']['well_formed']:.0%} after")'''),
    ("code", '''\
import plotly.graph_objects as go

smooth = [sum(losses[max(0, i - 19):i + 1]) / len(losses[max(0, i - 19):i + 1]) for i in range(len(losses))]
fig = go.Figure([go.Scatter(y=losses, mode="lines", name="loss", opacity=0.35),
                 go.Scatter(y=smooth, mode="lines", name="mean of 20 steps")])
fig.update_layout(title="SFT loss", xaxis_title="step", yaxis_title="loss per response token",
                  template="plotly_white", height=320)
fig.show()'''),
    ("md", """\
Watch the fine-tuned model answer a held-out question: the answer digits, end-of-turn and end-of-text tokens
are committed in the order the model is surest of."""),
    ("code", '''\
from llada_play import TraceRecorder, generate
from llada_play.model.text import decode_generation, encode_prompt
from llada_play.ui.widgets import DenoisingPlayer

tuned, _ = load_model(summary["final_model"])
question = test_rows[0][0]["content"]
prompt = encode_prompt(tokenizer, question, chat=True)
recorder = TraceRecorder(tokenizer)
out = generate(tuned, prompt, steps=8, gen_length=8, block_length=8, hooks=recorder)
print(question, "->", decode_generation(tokenizer, out[0], prompt.shape[1]))
DenoisingPlayer(recorder.trace(), grid=False)'''),
    ("md", """\
## Exercises

1. **Bigger numbers.** Every training sum had both numbers between 0 and 49. Predict the fine-tuned model's
   accuracy on *"Compute a + b."* with a and b between 50 and 99, whose answers have three digits. (Answer in the
   next cell, hidden in JupyterLab; run it.)"""),
    ("answer", '''\
# Answer 1: 40 sums outside the training range, in one of the training phrasings.
import random

rng = random.Random(0)
pairs = [(rng.randint(50, 99), rng.randint(50, 99)) for _ in range(40)]
outside = [[{"role": "user", "content": f"Compute {a} + {b}."}, {"role": "assistant", "content": str(a + b)}]
           for a, b in pairs]
far = answer_accuracy(tuned, tokenizer, outside, return_answers=True)
print(f"numbers 50-99: accuracy {far['accuracy']:.0%}, well-formed {far['well_formed']:.0%}; e.g. "
      + ", ".join(f"{a} + {b} -> {answer!r}" for (a, b), answer in list(zip(pairs, far["answers"]))[:4]))'''),
    ("md", """\
2. **Fewer steps.** Answers above were written with 8 steps for 8 positions. Predict the held-out accuracy when
   all 8 positions are committed in 1 step, and in 2 steps. (Answer in the next cell.)"""),
    ("answer", '''\
# Answer 2: the same held-out questions, 1, 2 and 8 steps for the 8 answer positions.
from llada_play import SamplerConfig

for steps in (1, 2, 8):
    result = answer_accuracy(tuned, tokenizer, test_rows, SamplerConfig(steps=steps, gen_length=8, block_length=8))
    print(f"{steps} step(s): held-out accuracy {result['accuracy']:.1%}")'''),
]

NOTEBOOKS["02_remasking_strategies"] = [
    ("md", """\
# 2. Remasking strategies: which masked tokens to commit first

At every denoising step the mask predictor proposes a token for **every** masked position, but the sampler
commits only a few of them; the rest are masked again ("remasked"). *Which* ones to keep is the remasking
strategy, a small pure function of the predicted distributions (`llada_play/diffusion/remasking.py`):

| strategy | keeps the positions with the highest... |
|---|---|
| `low_confidence` (LLaDA's default) | probability of the predicted token |
| `margin` | gap between the two most likely tokens |
| `entropy` | negative entropy of the distribution (the most certain) |
| `random` | random score (LLaDA's `random` remasking baseline) |

First the strategies side by side on one prompt; then **measured**, with standard errors, on two tasks with
ground truth: a Sudoku, where the tokens of an answer depend on each other, and addition, where they barely do
at this model's level. Then classifier-free guidance on the instruction-tuned arithmetic model, and the three
reasons sampling is slow, each with the speed-up that addresses it.

*Run time on a 2-core CPU: 7 min 45 s, with `LLADA_PLAY_QUICK=1` (as `make test` runs it) 1 min 25 s; both
measured 2026-12-01 while a training run used the same cores at lower priority, so an idle machine is faster.*"""),
    ("code", SETUP + '''

from pathlib import Path
from llada_play.model.checkpoint import ARITHMETIC_MODEL_DIR, load_model
from llada_play.experiments.compare import SamplerSetting, accuracy_by_setting, compare_settings
from llada_play.diffusion.remasking import REMASKING
from llada_play.model.text import encode_prompt

ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
model, tokenizer = load_model()  # the shipped Shakespeare model
# the four strategies of the table above (the registry also holds left_to_right: see the puzzle notebook)
STRATEGIES = [name for name in sorted(REMASKING) if name != "left_to_right"]
print(STRATEGIES)'''),
    ("md", """\
## Side by side on one prompt

Same prompt, same seed, 64 tokens in 64 steps with blocks of 32. The panels show *when* each position was
committed (x: position, y: step, colour: the model's confidence in the committed token)."""),
    ("code", '''\
# NBVAL_CHECK_OUTPUT
prompt = encode_prompt(tokenizer, "ROMEO.\\n")
settings = [SamplerSetting(s, dict(steps=64, gen_length=64, block_length=32, remasking=s)) for s in STRATEGIES]
results = compare_settings(model, tokenizer, prompt, settings, seed=0)
for r in results:
    print(f"--- {r.name} ({r.forward_passes} forward passes)\\n{r.text.strip()[:160]}\\n")'''),
    ("code", '''\
from llada_play.ui.viz import commit_order_panels

commit_order_panels(results, height=380).show()'''),
    ("md", """\
Confidence-based strategies fill each block in an order of their own; `random` commits in no particular order.
Text quality is hard to judge by eye, so the rest of the notebook measures on tasks with one right answer.

## Where tokens depend on each other: a Sudoku

In a Sudoku every open cell constrains the others: a digit written in one cell rules it out for its row,
column and box. Committing several cells in one step means deciding them **without seeing each other**
(each prediction was made from the same grid), and committing in a random order means deciding cells the model
is not yet sure of. Both should cost accuracy here. The model is the shipped 6x6 Sudoku diffusion model
(notebook 2b; 0.8M parameters, the givens pinned, one block over the grid). Each point is the share of
held-out puzzles solved completely, with its standard error `sqrt(p (1 - p) / n)`; `steps` is the mean number
of denoising steps a puzzle took (about 22 open cells: 22 steps is one cell a step)."""),
    ("code", '''\
import json
from llada_play.experiments.puzzle import PuzzleConfig, held_out, load_pair
from llada_play.experiments.puzzle_decoding import Decoding, run_decoding

PUZZLE_RUN = ROOT / "data/puzzle/results.json"
puzzle_config = PuzzleConfig.from_dict(json.loads(PUZZLE_RUN.read_text())["config"])
sudoku_pair = load_pair(PUZZLE_RUN)
puzzles = held_out(puzzle_config, 40 if QUICK else 200)


def standard_error(p, n):
    return (p * (1 - p) / n) ** 0.5


SUDOKU_STEPS = [None, 11, 6, 3]  # None: one open cell a step
sudoku = {(s, n): run_decoding(Decoding(f"{s}, {n} steps", s, n), sudoku_pair, puzzles, puzzle_config.size)
          for s in STRATEGIES for n in SUDOKU_STEPS}
print(f"{len(puzzles)} held-out puzzles, solved (%) ± standard error")
print(f"{'':>15}" + "".join(f"{r['steps']:>14.1f} steps" for (s, _), r in sudoku.items() if s == STRATEGIES[0]))
for s in STRATEGIES:
    print(f"{s:>15}" + "".join(f"{100 * r['solved']:>12.1f} ± {100 * standard_error(r['solved'], r['n']):.1f}"
                               for (name, _), r in sudoku.items() if name == s))'''),
    ("code", '''\
import plotly.graph_objects as go

fig = go.Figure()
for s in STRATEGIES:
    rows = [sudoku[s, n] for n in SUDOKU_STEPS]
    fig.add_scatter(x=[r["steps"] for r in rows], y=[100 * r["solved"] for r in rows], mode="lines+markers", name=s,
                    error_y=dict(type="data", array=[100 * standard_error(r["solved"], r["n"]) for r in rows]))
fig.update_layout(title=f"Sudoku: puzzles solved against steps ({len(puzzles)} held-out puzzles, ± 1 s.e.)",
                  xaxis_title="denoising steps per puzzle (fewer: more cells committed together)",
                  yaxis_title="solved (%)", template="plotly_white", height=420, yaxis=dict(range=[0, 100]))
fig.show()'''),
    ("code", '''\
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
         "the others are more than two standard errors behind"))'''),
    ("md", """\
## Where they barely depend on each other: addition

The shipped **arithmetic model** is the default model after `llada-play sft` on the project's addition data
(see `MODEL_CARD.md`). Each answer has 8 positions (digits, end-of-turn, end-of-text padding) in one block;
fewer steps means more tokens committed per forward pass. Every point below is the exact-match accuracy on the
held-out sums, with its standard error."""),
    ("code", '''\
from llada_play.training.data import load_sft_rows

arith, arith_tokenizer = load_model(ARITHMETIC_MODEL_DIR)
test_rows = load_sft_rows(ROOT / "data/sft/arithmetic_test.jsonl")[: 24 if QUICK else 200]
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
          f"{row['forward_passes']} forward passes")'''),
    ("code", '''\
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
fig.show()'''),
    ("code", '''\
def row_of(name):
    return next(r for r in by_passes if r["setting"] == name)

accuracies = [r["accuracy"] for r in by_passes]
widest = max(standard_error(a, len(test_rows)) for a in accuracies)
spread = max(accuracies) - min(accuracies)
print("all 8 tokens in one pass:", ", ".join(f"{s} {row_of(f'{s}|1')['accuracy']:.1%}" for s in STRATEGIES))
print("one token per pass (8):  ", ", ".join(f"{s} {row_of(f'{s}|8')['accuracy']:.1%}" for s in STRATEGIES))
print(f"all {len(by_passes)} settings lie within {spread:.1%} of each other; one standard error is up to "
      f"{widest:.1%}: " + ("inside the noise, no strategy and no step count is better here"
                          if spread <= 4 * widest else "some settings differ beyond the noise"))'''),
    ("md", """\
## Sensitivity to the sampler's hyper-parameters

Do results move with the number of steps, the block length and the temperature? On this task, measured:
answers get 16 positions so that blocks of 2 to 16 make sense; a cell is empty where the steps cannot be split
evenly over the blocks (the sampler refuses such settings with a message). Compare the spread with the
standard error printed below the heatmaps before reading anything into a colour."""),
    ("code", '''\
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
fig.show()'''),
    ("code", '''\
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
fig.show()'''),
    ("code", '''\
se_points = 100 * max(standard_error(v / 100, len(test_rows)) for v in [*cells.values(), *temp.values()])
print(f"one standard error: up to {se_points:.1f} points")
print(f"steps x block length: accuracy from {min(cells.values()):.0f}% to {max(cells.values()):.0f}%")
for s in STRATEGIES:
    d = temp[s, 1.5] - temp[s, 0.0]
    print(f"{s:>15}: temperature 0 -> {temp[s, 0.0]:.0f}%, temperature 1.5 -> {temp[s, 1.5]:.0f}% "
          f"({d:+.0f} points, {'beyond' if abs(d) > 2 * 2 ** 0.5 * se_points else 'within'} two standard errors)")'''),
    ("md", """\
## Classifier-free guidance

LLaDA's sampler offers classifier-free guidance (Ho & Salimans, 2022; for masked diffusion models, Nie et al.,
2024, *Scaling up Masked Diffusion Models on Text*): each step runs the model twice, once on the prompt and once
with the prompt masked, and moves the logits away from the unconditional ones,
`logits = cond + w (cond - uncond)` with `w = cfg_scale` (`update.classifier_free_guidance`). It costs twice
the forward passes. Measured on the arithmetic model (itself an SFT, i.e. instruction-tuned, model) on
the same held-out sums, 8 steps:"""),
    ("code", '''\
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
      f"{'beyond' if abs(d) > 2 * se else 'within'} two standard errors, at twice the forward passes")'''),
    ("md", """\
## Why sampling is slow, and the speed-up for each reason

1. **Bidirectional attention leaves nothing to cache exactly.** An autoregressive model keeps the keys and
   values of the tokens it has written; here every position attends to every other, and a committed token
   changes what all others see, so each step recomputes the whole canvas. *Speed-up:* an approximate block KV
   cache (Fast-dLLM, Wu et al. 2025): keep the keys and values outside the current block from the block's first
   step (`cache="prefix"` or `"dual"`), and recompute only the block's window in between.
2. **One forward pass per committed token.** With `steps = gen_length` the model is run once per token, like an
   autoregressive model but over the whole canvas each time. *Speed-up:* parallel decoding with a confidence
   threshold (Fast-dLLM): commit every token above the threshold (at least one per step), so easy stretches go
   several tokens a pass; the Sudoku above shows what committing dependent tokens together can cost.
3. **A fixed-length canvas.** The answer length is chosen up front; a short answer still pays for every
   masked position and every block. *Speed-up:* stop at end-of-text (`eos_early_exit=True`): once a block ends
   in end-of-text the rest of the canvas is filled with it and no more blocks run.

The ladder below adds them one at a time on the arithmetic task with a longer canvas (32 positions in blocks of
8, as an app user would ask for). `windowed` counts the passes that ran only the current block's window."""),
    ("code", '''\
from llada_play.experiments.compare import fast_decoding_settings

ladder = accuracy_by_setting(arith, arith_tokenizer, test_rows, fast_decoding_settings(), seed=0)
base = ladder[0]
for row in ladder:
    print(f"{row['setting']:>40}: accuracy {row['accuracy']:6.1%} ± {standard_error(row['accuracy'], row['n']):.1%}, "
          f"{row['forward_passes']:3} forward passes per batch "
          f"({row['windowed_passes']} windowed), {row['wall_time_s']:5.2f} s, "
          f"{base['wall_time_s'] / row['wall_time_s']:4.1f}x the baseline's speed")'''),
    ("code", '''\
fig = go.Figure(go.Scatter(x=[r["wall_time_s"] for r in ladder], y=[100 * r["accuracy"] for r in ladder],
                           mode="markers+text", text=[r["setting"] for r in ladder], textposition="top center",
                           marker=dict(size=12)))
fig.update_layout(title=f"Accuracy against wall time ({len(test_rows)} held-out sums, 32 positions)",
                  xaxis_title="wall time (s)", yaxis_title="exact match (%)", template="plotly_white", height=380,
                  xaxis=dict(rangemode="tozero"))
fig.show()'''),
    ("md", """\
What to take away is in the printed lines above, computed from this run's numbers: on the Sudoku, committing
dependent cells together and committing in a random order cost accuracy beyond the noise, while on addition
the strategies and step counts differ by less than the noise; what guidance and the faster samplers change is
in their own lines. Measure on your own task, with its error bars, before choosing. The app's **Compare** tab
runs the same comparisons (with the cache and early-exit options) on 40 of the sums."""),
    ("md", """\
## Exercises

1. **Two passes, spent two ways.** An answer has 8 positions. Give it 2 forward passes as one block of 8 in 2
   steps (4 tokens a step, the most confident first), or as two blocks of 4 in one step each (each block's 4
   tokens at once, the left block first). Predict which is more accurate on the held-out sums. (Answer in the
   next cell, hidden in JupyterLab; run it.)"""),
    ("answer", '''\
# Answer 1: the same held-out sums, low_confidence, temperature 0.
two_ways = accuracy_by_setting(arith, arith_tokenizer, test_rows, [
    SamplerSetting("one block of 8, 2 steps", dict(steps=2, gen_length=8, block_length=8)),
    SamplerSetting("two blocks of 4, 1 step each", dict(steps=2, gen_length=8, block_length=4))], seed=0)
for row in two_ways:
    print(f"{row['setting']:>29}: accuracy {row['accuracy']:6.1%}, {row['forward_passes']} forward passes")'''),
    ("md", """\
2. **Extreme thresholds.** Threshold decoding above used 0.5, 0.7 and 0.9. Predict accuracy and forward passes
   at 0.99 and at 0.1. (Answer in the next cell.)"""),
    ("answer", '''\
# Answer 2: a high threshold commits little per pass (more passes, up to the 8 steps); a low one commits
# nearly everything in the first pass.
extreme = accuracy_by_setting(arith, arith_tokenizer, test_rows,
                              [SamplerSetting(f"threshold {t}", dict(steps=8, gen_length=8, block_length=8,
                                                                     threshold=t)) for t in (0.1, 0.99)], seed=0)
for row in sorted(thr + extreme, key=lambda r: float(r["setting"].split()[-1])):
    print(f"{row['setting']:>15}: accuracy {row['accuracy']:6.1%}, {row['forward_passes']} forward passes")'''),
]

NOTEBOOKS["02b_order_matters"] = [
    ("md", """\
# 2b. Order matters: Sudoku, easy cells first

Notebook 2 compared remasking strategies on text and arithmetic, where they barely differ. Here is a task where
the **order of unmasking decides success**: a 6x6 Sudoku. A masked diffusion model may fill the grid in any
order, so it can take the cells it is surest of first (the "easy" ones, which the givens already force) and
use them to settle the hard ones. An autoregressive model must go left to right, committing cells it cannot
know yet. Ye et al. (ICLR 2025, *Beyond Autoregression: Discrete Diffusion for Complex Reasoning and
Planning*) report a 6M-parameter masked diffusion model at 100% on Sudoku against 20.7% for an autoregressive
one; this notebook shows the same effect with two 0.8M-parameter models that train in about 10 minutes each on
an idle 2-core CPU.

You will see: the task and its tokens, one puzzle replayed step by step (widget, with a static picture for
readers without a kernel), the solve rate under every decoding order, and why easy-first wins.

*Run time on a 2-core CPU: about 45 seconds (with `LLADA_PLAY_QUICK=1`, as `make test` runs it: about 25
seconds; measured 2026-11-30). The
models are the shipped pair in `data/puzzle/`; `llada-play puzzle --out runs/puzzle` trains them again.*"""),
    ("code", SETUP + '''

import json
from pathlib import Path

from llada_play.experiments.puzzle import PuzzleConfig, held_out, load_pair, results_markdown, solve_rates
from llada_play.experiments.sudoku import grid_text

ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
RUN = ROOT / "data/puzzle/results.json"
results = json.loads(RUN.read_text())
config = PuzzleConfig.from_dict(results["config"])
pair = load_pair(RUN)  # seed 0 of the run: {"diffusion": (model, tokenizer), "autoregressive": (model, tokenizer)}
test = held_out(config)  # the run's held-out puzzles, drawn again from their seed
for kind, (model, _) in pair.items():
    print(f"{kind}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
print(f"{len(test)} held-out puzzles, {config.size}x{config.size}, {config.givens} givens")'''),
    ("md", """\
## The task, as tokens

Every puzzle is drawn by the project (`llada_play/experiments/sudoku.py`): a random full grid, emptied cell by
cell while it stays uniquely solvable **by singles alone** (a cell with one candidate left, or a digit with one
place left in a row, column or box). One token per cell: the digits and `_` for an empty cell. The puzzle is
the prompt (36 tokens), the solution the answer (36 tokens). At test time the givens are **pinned** in the
answer for both models, so only the empty cells are decided and the only difference left is the order."""),
    ("code", '''\
# NBVAL_CHECK_OUTPUT
from llada_play.experiments.puzzle import encode_puzzles, pinned_givens

puzzle = test[0]
text = grid_text(puzzle.givens)
print("\\n".join(text[r * 6:(r + 1) * 6] for r in range(6)))
tokenizer = pair["diffusion"][1]
prompt, answer = encode_puzzles(tokenizer, [puzzle])
print("prompt ids:", prompt[0, :12].tolist(), "...")
print("pinned answer (-1 = decided by the model):", pinned_givens(tokenizer, [puzzle])[0, :12].tolist(), "...")
print(f"{puzzle.blanks} open cells")'''),
    ("md", """\
## The two models, measured

Both share the `mini` preset, the 10,000 training puzzles, 3,000 steps of batch 64 and the learning rate. The
diffusion model learns with the SFT loss (the solution masked at a random ratio, the puzzle left unmasked); its
twin has causal attention and learns to predict the next token. Scored on the 500 held-out puzzles, the
diffusion model decoding one cell per step easy-first, the twin left to right (mean ± std over the training
seeds of the run):"""),
    ("code", '''\
# NBVAL_CHECK_OUTPUT
print(results_markdown(results))'''),
    ("md", """\
## One puzzle, replayed

The first held-out puzzle on which the two models' outcomes differ (a fixed rule, no hand-picking; the cell
prints which one it is), solved by both. Press play or drag the slider: grey digits are
the diffusion model's current guesses in the open cells, the small number in a cell's corner is the
probability, `#k` the commit order, the orange frame the cell committed at this step, and red digits at the end
are wrong. The twin can only guess the next cell, so its grid shows no grey guesses."""),
    ("code", '''\
from llada_play.experiments.puzzle_replay import solve_live, twin_attempt
from llada_play.ui.widgets import PuzzleReplay

for index, puzzle in enumerate(test):
    easy_first = solve_live(*pair["diffusion"], puzzle)
    twin = twin_attempt(*pair["autoregressive"], puzzle)
    if bool(easy_first.wrong) != bool(twin.wrong):
        break
print(f"held-out puzzle #{index}")
print("diffusion:", easy_first.summary())
print("twin:     ", twin.summary())
PuzzleReplay({"Diffusion model, easy-first": easy_first, "Autoregressive twin, left to right": twin})'''),
    ("md", """\
Why does easy-first work? Look at which cells it takes. A cell is **forced** when a single (one candidate
left, or the only place for a digit in a unit) settles it on the grid as it stands; a commit of a cell that is
not forced is a guess. Count the forced commits of both runs, and of the same diffusion model made to go left
to right:"""),
    ("code", '''\
# NBVAL_CHECK_OUTPUT
from llada_play.experiments.puzzle import solver_config

left_to_right = solve_live(*pair["diffusion"], puzzle, solver_config(6, "left_to_right", puzzle.blanks))
for name, attempt in [("diffusion, easy-first", easy_first), ("diffusion, left to right", left_to_right),
                      ("twin, left to right", twin)]:
    forced, commits = attempt.forced_commits()
    print(f"{name:26s} {forced:2d} of {commits} commits forced; {attempt.summary()}")'''),
    ("md", """\
## Decoding order as the experiment

The same diffusion model decoded in every way the sampler offers (`llada_play/experiments/puzzle_decoding.py`):
three scores of "easy" (`low_confidence`, `margin`, `entropy`), `random` order, forced `left_to_right` order,
a confidence threshold (commit every cell above it, at least one a step: fewer steps), and fewer steps than
open cells (several cells a step). The recorded study below ran on all 500 held-out puzzles and both training
seeds (`benchmarks/puzzle_decoding.py`, numbers in `benchmarks/RESULTS.md`); "forced commits" is the share of
commits that a single forced when they were made."""),
    ("code", '''\
# NBVAL_CHECK_OUTPUT
from llada_play.experiments.puzzle_decoding import study_figure, study_markdown

study = json.loads((ROOT / "data/puzzle/decoding.json").read_text())
print(study_markdown(study))'''),
    ("code", '''\
study_figure(study).show()'''),
    ("md", """\
The recorded numbers again, live, on the first held-out puzzles with the shipped seed-0 pair (fewer puzzles,
so wider error bars; the counts should agree with the table within them):"""),
    ("code", '''\
from llada_play.experiments.puzzle_decoding import Decoding, decoding_study

N = 40 if QUICK else 200
live = decoding_study(RUN, test[:N], [Decoding("easy-first: low_confidence"), Decoding("random order", "random"),
                                      Decoding("left to right (forced order)", "left_to_right"),
                                      Decoding("autoregressive twin, left to right", twin=True)])
print(study_markdown(live))'''),
    ("md", """\
## What the numbers say

Computed from the recorded study (a difference counts only when it is larger than three standard errors of a
solve rate over the puzzles, `sqrt(p (1 - p) / n)`, combined for the two rates compared):"""),
    ("code", '''\
import math

rows = {row["decoding"]["name"]: row for row in study["rows"]}


def rate(name):
    return rows[name]["solved"]["mean"]


def gap_in_errors(a, b):
    n = rows[a]["n"]
    se = math.sqrt(sum(rate(x) * (1 - rate(x)) / n for x in (a, b)))
    return (rate(a) - rate(b)) / se if se else math.inf


easy, others = "easy-first: low_confidence", ["random order", "left to right (forced order)",
                                                 "autoregressive twin, left to right"]
print(f"Easy-first decoding solves {rate(easy):.1%} of {rows[easy]['n']} held-out puzzles "
      f"(seeds {rows[easy]['seeds']}, ± {rows[easy]['solved']['std']:.1%} across them).")
for other in others:
    z = gap_in_errors(easy, other)
    verdict = "a real difference" if abs(z) > 3 else "inside the noise"
    print(f"  {other}: {rate(other):.1%}, {100 * (rate(easy) - rate(other)):+.1f} points for easy-first "
          f"({z:.0f} standard errors: {verdict})")
scores = ["easy-first: low_confidence", "easy-first: margin", "easy-first: entropy"]
spread = max(rate(s) for s in scores) - min(rate(s) for s in scores)
largest = max(abs(gap_in_errors(a, b)) for a in scores for b in scores if a != b)
print(f"The three easy-first scores are within {100 * spread:.1f} points of each other "
      + ("(inside the noise: none of them is better here)." if largest <= 3 else f"({largest:.0f} standard errors)."))
forced = {name: rows[name]["forced_commits"]["mean"] for name in [easy, *others]}
print("Forced commits: " + ", ".join(f"{name} {share:.0%}" for name, share in forced.items()) + ".")'''),
    ("md", """\
Easy-first decoding nearly always commits a cell that the grid already forces, and so it rarely guesses; a
fixed order has to commit cells that are not settled yet, and one wrong cell spoils the puzzle. The twin has
no choice of order at all, which is why the same training budget buys it so much less on this task.

## Exercises

1. **Parallel commits.** With `threshold=0.9` the sampler commits every open cell whose guess has probability
   above 0.9 at each step (at least one). Predict: more or fewer puzzles solved than one cell per step, in how
   many steps? Then try `threshold=0.5`. (Answer in the next cell, hidden in JupyterLab; run it.)"""),
    ("answer", '''\
# Answer 1: fewer steps, fewer puzzles solved; at 0.5 many unsettled cells are committed in the first step.
from llada_play.experiments.puzzle import score, solve_with_diffusion
from llada_play.experiments.puzzle_decoding import steps_taken

diffusion_model, diffusion_tokenizer = pair["diffusion"]
few = test[:30 if QUICK else 100]
for threshold in (None, 0.9, 0.5):
    solved = solve_with_diffusion(diffusion_model, diffusion_tokenizer, few, solver_config(6, threshold=threshold))
    print(f"threshold {threshold}: {score(few, solved)['solved']:.0%} solved in {steps_taken(solved):.1f} steps "
          "on average")'''),
    ("md", """\
2. **Out of distribution.** Both models only saw puzzles that singles alone solve. Draw 6x6 puzzles that need a
   guess (`make_puzzles(..., singles_only=False)` with 10 givens) and predict how the diffusion model's solve
   rate changes, and its share of forced commits. (Answer in the next cell.)"""),
    ("answer", '''\
# Answer 2: puzzles that need a guess somewhere, a kind never seen in training, against the training kind.
from llada_play.experiments.sudoku import make_puzzles

count = 20 if QUICK else 100
for name, puzzles in [("singles only, 14 givens", test[:count]),
                      ("a guess needed, 10 givens", make_puzzles(count, 6, 10, seed=7, singles_only=False))]:
    scores = score(puzzles, solve_with_diffusion(diffusion_model, diffusion_tokenizer, puzzles, solver_config(6)))
    print(f"{name}: {scores['solved']:.0%} solved, {scores['cell_accuracy']:.0%} of the empty cells right, "
          f"{scores['forced_commits']:.0%} of the commits forced")'''),
]

NOTEBOOKS["03_reversal_curse"] = [
    ("md", """\
# 3. The reversal curse: a diffusion model against its autoregressive twin

Berglund et al. ("The Reversal Curse", ICLR 2024) found that a language model trained on *"A is B"* does not
learn *"B is A"*: a model taught *"Daphne Barrington is the director of 'A Journey Through Time'"* cannot
answer *"Who directed 'A Journey Through Time'?"*. A masked diffusion model is trained to predict **any**
masked subset of a sentence from the rest, so it also practises predicting the name from the description.
Does that break the curse? SMDM (arXiv:2410.18514) reports that it does. Here we measure it with two models
that differ **only** in the objective: same architecture and size, same tokenizer, the same packed training
windows in the same order, the same number of steps.

*Run time on a 2-core CPU: about 4 minutes (measured 2026-12-01)
(with `LLADA_PLAY_QUICK=1`, as `make test` runs it: about 30 seconds).*"""),
    ("code", SETUP + '''

from pathlib import Path
from llada_play.experiments.reversal_data import make_dataset, make_facts
from llada_play.experiments.reversal_experiment import (ReversalConfig, conclusions, read_results, results_figure,
                                            results_markdown, run_reversal_experiment, training_sentences)

ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()'''),
    ("md", """\
## The data

Invented people with invented, unique descriptions, in three subsets: facts stated only name-first (`p2d`),
only description-first (`d2p`), or both ways (`both`). Each fact appears through 30 paraphrase templates in
training; 10 other templates are held out for the questions. (`data/reversal/` holds this set in the original
paper's JSONL layout; `llada-play reversal --data DIR` reads the original files too.)"""),
    ("code", '''\
# NBVAL_CHECK_OUTPUT
files = make_dataset()  # 30 people per subset, 30 training and 10 test templates: the published shape
facts = make_facts()
for f in (facts[0], facts[30], facts[60]):
    print(f"{f.subset:>4}: {f.name} = {f.description}")
for name, rows in files.items():
    print(f"{name:25} {len(rows):5} rows, e.g. {rows[0]['prompt']!r} -> {rows[0]['completion']!r}")'''),
    ("md", """\
Two checks that the test is fair, computed: no training sentence uses a test template, and no one-way fact
ever appears the other way round in training."""),
    ("code", '''\
# NBVAL_CHECK_OUTPUT
sentences = training_sentences(files)
test_prompts = {r["prompt"] for name, rows in files.items() if name.endswith("_test") for r in rows}
print("training sentences that start with a test prompt:",
      sum(any(s.startswith(p + " ") for p in test_prompts) for s in sentences))
def name_first(sentence, fact):
    return sentence.index(fact.name) < sentence.index(fact.description)
wrong_way = sum(1 for f in facts if f.subset != "both" for s in sentences
                if f.name in s and f.description in s and name_first(s, f) != (f.subset == "p2d"))
print("training sentences stating a one-way fact the other way round:", wrong_way)'''),
    ("md", """\
## Train both models

One seed of the quick experiment (`ReversalConfig.quick`, printed below), both models trained from scratch on
the same windows. A training hook records both loss curves (not on the same scale: the diffusion
loss is the ELBO-weighted masked-token loss, the autoregressive one the next-token loss)."""),
    ("code", '''\
import tempfile

config = ReversalConfig.quick(seeds=[0], out_dir=tempfile.mkdtemp(prefix="reversal-"))
if QUICK:  # the test suite: a smaller, shorter run that only checks that the notebook works
    config = ReversalConfig.quick(seeds=[0], out_dir=config.out_dir, steps=60, eval_rows=10)
losses = {"diffusion": [], "autoregressive": []}
results = run_reversal_experiment(config, train_hooks=lambda kind, seed, record: losses[kind].append(record.loss))
print(f"{config.people_per_subset} people per subset, {config.preset} preset, {results['parameters']:,} "
      f"parameters per model, {config.steps} steps, "
      f"{results['tokens_per_model']:,} training tokens each, {results['wall_time_s']:.0f} s for both")'''),
    ("code", '''\
import plotly.graph_objects as go
from plotly.subplots import make_subplots

fig = make_subplots(rows=1, cols=2, subplot_titles=["diffusion (masked-token loss)", "autoregressive (next-token loss)"])
for i, kind in enumerate(losses, 1):
    fig.add_scatter(y=losses[kind], mode="lines", name=kind, row=1, col=i)
fig.update_layout(template="plotly_white", height=320, showlegend=False, xaxis_title="step", xaxis2_title="step")
fig.show()'''),
    ("code", '''\
print(results_markdown(results))'''),
    ("md", """\
## Ask both models

Held-out questions, asked in the trained direction and reversed: the first question of each set (a fixed rule,
no choosing). Read them with the table above in mind: this one-seed quick run is **undertrained** (a few CPU
minutes; the diffusion model's generation accuracy is low even in the trained direction), so its answers show
the mechanics, not the effect. The long run at the end of the notebook, six times the steps, is where the
diffusion model has learnt the facts."""),
    ("code", '''\
from llada_play.model.checkpoint import load_model
from llada_play.experiments.reversal import answer

pair = {run["model"]: load_model(run["model_dir"]) for run in results["runs"]}
tokenizer = pair["diffusion"][1]
asked = make_dataset(config.people_per_subset, test_templates=config.test_templates)
for label, file in [("p2d, trained direction", "p2d_prompts_test"), ("p2d, reversed", "p2d_reverse_prompts_test"),
                    ("d2p, trained direction", "d2p_prompts_test"), ("d2p, reversed", "d2p_reverse_prompts_test")]:
    row = asked[file][0]
    print(f"[{label}] {row['prompt']} ...   (truth: {row['completion'].strip()})")
    for kind, (m, _) in pair.items():
        print(f"   {kind:>15}: {answer(m, tokenizer, row['prompt'])!r}")'''),
    ("md", """\
The diffusion model's answer to a reversed question, as it was written (one token per step, the most confident
first; scrub or play):"""),
    ("code", '''\
from llada_play import TraceRecorder, denoise
from llada_play.experiments.reversal import answer_config, question_ids
from llada_play.ui.widgets import DenoisingPlayer

question = asked["p2d_reverse_prompts_test"][0]["prompt"]
config = answer_config()  # greedy, one token per step, blocks of 8
recorder = TraceRecorder(tokenizer, config=config)
for record in denoise(pair["diffusion"][0], question_ids(tokenizer, question), config):  # one step per record
    recorder(record)
DenoisingPlayer(recorder.trace(), grid=False, eos_ids={tokenizer.eos_token_id})'''),
    ("md", """\
## The full experiment

One seed of a small run is an anecdote. The full experiment uses the published data shape (30 people per
subset, 30 + 10 templates) and several seeds; its recorded result ships with the project and was written by

```bash
llada-play reversal --out data/reversal/results/full.json
```"""),
    ("code", '''\
full = read_results(ROOT / "data/reversal/results/full.json")
c = full["config"]
print(f"{c['people_per_subset']} people per subset, seeds {c['seeds']}, {c['preset']} preset, {c['steps']} steps, "
      f"{full['tokens_per_model']:,} tokens per model; {full['wall_time_s'] / 60:.0f} min on {full['machine']}")
print(results_markdown(full))'''),
    ("code", '''\
results_figure(full).show()'''),
    ("code", '''\
# NBVAL_CHECK_OUTPUT
s = full["summary"]
def pct(kind, metric):
    v = s[kind].get(metric)
    return "n/a" if v is None else f"{100 * v['mean']:.1f}% ± {100 * v['std']:.1f}"
for metric in ["generation/p2d_forward", "generation/p2d_reverse", "generation/d2p_forward",
               "generation/d2p_reverse", "ranking/p2d_reverse", "ranking/d2p_reverse", "infilling/p2d",
               "infilling_ranking/p2d"]:
    print(f"{metric:24} diffusion {pct('diffusion', metric):>14}   autoregressive {pct('autoregressive', metric):>14}")
print(f"ranking chance level: {1 / (1 + c['distractors']):.0%}")'''),
    ("md", """\
## Reading the numbers honestly

* **Generation, reversed** is the reversal curse proper: the question is a sentence whose answer (a name, for
  `p2d` facts) comes *after* the description, while training only ever put that name *before* it.
* **Ranking** asks the same reversed questions as a multiple choice between the true answer and four other
  people's, by likelihood (exact for the autoregressive model, the Monte-Carlo bound for the diffusion model).
* **Infilling** masks the name in *"<name> is <description>."*, the training order. A diffusion model can fill it
  in directly, but that is bidirectional *context*, not bidirectional *knowledge*: the name still sits before
  the description, as in training. The autoregressive model can only rank whole sentences (`infilling_ranking`).

The literature's expectation (SMDM) is the autoregressive model near zero reversed and the diffusion model well
above it. What this run shows, decided by the numbers (`conclusions`; above chance means more than two seed
standard deviations, more than two standard errors of guessing on the rows scored, and at least 5 points, above
it):"""),
    ("code", '''\
# NBVAL_CHECK_OUTPUT
print("\\n".join(conclusions(full)))'''),
    ("md", """\
## A longer budget

Masked diffusion needs many more passes over a fact than next-token prediction before it has memorised it. The
same experiment with six times the steps (15,000 per model, 15.4M tokens), written by

```bash
llada-play reversal --steps 15000 --seeds 0,1 --out data/reversal/results/long.json
```"""),
    ("code", '''\
long = read_results(ROOT / "data/reversal/results/long.json")
print(f"{long['config']['steps']} steps, seeds {long['config']['seeds']}, {long['tokens_per_model']:,} tokens per "
      f"model, on {long['machine']}")
print(results_markdown(long))
results_figure(long).show()'''),
    ("code", '''\
# NBVAL_CHECK_OUTPUT
print("\\n".join(conclusions(long)))'''),
    ("md", """\
The first seed's two models ship beside the result (`data/reversal/results/long-models/`, also in the app's
Reversal tab). Reversed questions, the way the ranking metric scores them: the true name against four other
people's (`*`: the true one), by each model's log-likelihood per token (exact for the autoregressive model, the
Monte-Carlo bound for the diffusion model), and what each model writes when asked to generate; three people in
detail, then the count over all thirty (the table above has the rates over 100 questions and two seeds):"""),
    ("code", '''\
from llada_play.experiments.reversal_experiment import load_experiment_data, rank_answers

long_data = load_experiment_data(ReversalConfig.from_dict(long["config"]))
long_pair = {run["model"]: load_model(run["model_dir"]) for run in long["runs"] if run["seed"] == long["config"]["seeds"][0]}
long_tok = long_pair["diffusion"][1]
people = long_data["p2d_reverse_prompts_test"][::10]  # the first held-out template of each person
first = {kind: 0 for kind in long_pair}
for i, row in enumerate(people):
    candidates, scores = rank_answers(long, {k: m for k, (m, _) in long_pair.items()}, long_tok, row["prompt"],
                                      row["completion"])
    for kind, v in scores.items():
        first[kind] += v[0] == max(v)
    if i < 3:  # the first three people in detail
        print(row["prompt"], "...")
        for j, c in enumerate(candidates):
            marks = "  ".join(f"{k} {v[j]:6.2f}{' <- choice' if v[j] == max(v) else '          '}"
                              for k, v in scores.items())
            print(f"{'*' if j == 0 else ' '} {c.strip():24} {marks}")
        for k, (m, _) in long_pair.items():
            print(f"  {k} writes: {answer(m, long_tok, row['prompt'])!r}")
        print()
print(f"All {len(people)} people, asked this way: the true name ranked first by "
      + ", ".join(f"the {k} model {n}/{len(people)}" for k, n in first.items())
      + f" (chance: 1 in {1 + long['config']['distractors']}).")'''),
    ("md", """\
## Exercises

1. **Both directions, by generation.** Take the long run's pair loaded above and the first 10 people of the
   `p2d` subset (facts stated name first). Predict how many each model answers in the trained direction (the
   name given, the description asked) and reversed (the description given, the name asked). (Answer in the next
   cell, hidden in JupyterLab; run it.)"""),
    ("answer", '''\
# Answer 1: greedy generation, the first held-out template of each of the first 10 p2d people.
from llada_play.experiments.reversal import generation_accuracy

for label, file in [("trained direction", "p2d_prompts_test"), ("reversed", "p2d_reverse_prompts_test")]:
    rows = long_data[file][::10][:10]
    for kind, (m, _) in long_pair.items():
        accuracy = generation_accuracy(m, long_tok, rows, kind == "autoregressive", sentence_start=True)
        print(f"{label:18} {kind:>15}: {accuracy:.0%} of {len(rows)}")'''),
    ("md", """\
2. **Filling in the name.** The diffusion model can also fill a masked name into *"<name> is <description>."*,
   the order it was trained on. Predict its score for the same 10 people, against its score on the reversed
   questions above. (Answer in the next cell.)"""),
    ("answer", '''\
# Answer 2: infilling in the training order needs no reversal, only bidirectional context.
from llada_play.experiments.reversal import infilling_accuracy
from llada_play.experiments.reversal_data import facts_from_files

ten = facts_from_files(long_data, "p2d")[:10]
score = infilling_accuracy(long_pair["diffusion"][0], long_tok, ten, sentence_start=True)
print(f"the long run's diffusion model fills in {score:.0%} of {len(ten)} names, e.g. {ten[0].name} is "
      f"{ten[0].description}.")'''),
]

NOTEBOOKS["05_why_variable_masking"] = [
    ("md", """\
# 5. Why LLaDA draws the masking ratio at random

BERT is trained to fill in a **fixed** 15% of masked tokens. LLaDA draws the masking ratio *t* uniformly in
(0, 1) for every sequence, so the same network learns to predict masked tokens at every noise level, which is
what the reverse process needs: generation starts from a fully masked sequence (*t* = 1) and walks down to
*t* = 0. This notebook trains both kinds of model, **same size, same data, same steps and tokens**, and shows
where the fixed-ratio model breaks down.

*Run time on a 2-core CPU: about 6 minutes (measured 2026-12-01, idle); with `LLADA_PLAY_QUICK=1`, as
`make test` runs it: about 1 minute.*"""),
    ("code", SETUP + '''

from pathlib import Path
from transformers import AutoTokenizer
from llada_play.experiments import masking_ratio as mr
from llada_play.model.checkpoint import DEFAULT_MODEL_DIR

ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
hf_logging.set_verbosity_error()  # packing a whole play into one id stream is intended; skip the length warning
tokenizer = AutoTokenizer.from_pretrained(DEFAULT_MODEL_DIR)  # the shipped model's BPE tokenizer
train_tokens, val_batches, held_out = mr.corpus_windows(tokenizer, ROOT / "data/shakespeare")
print(f"{len(train_tokens):,} training tokens; held out: {', '.join(held_out)}")'''),
    ("md", """\
Two models of the same shape (the `mini` preset: 4 layers, width 128), trained by the same loop and loss code; the only difference
is `fixed_mask_ratio=0.15` (BERT's ratio; BERT's random-token and kept-token replacements are left out so that
the masking ratio is the one thing that differs). The code is `llada_play/experiments/masking_ratio.py`, which
also records the same comparison at larger budgets than this notebook has minutes for."""),
    ("code", '''\
STEPS = 100 if QUICK else 1000
curves = {name: [] for name in mr.OBJECTIVES}  # every step's training loss, for each model
models = mr.train_pair(tokenizer, train_tokens, STEPS, on_step=lambda name, record: curves[name].append(record.loss))
for name, model in models.items():
    print(f"{name}: {STEPS} steps x {mr.BATCH} x {mr.SEQ} = {STEPS * mr.BATCH * mr.SEQ:,} tokens, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters")'''),
    ("md", """\
## Masked-token loss against the masking ratio

For each ratio *t*, mask the held-out windows at exactly that rate and measure the cross-entropy on the masked
tokens (`llada_play.training.evaluation.loss_by_mask_ratio`)."""),
    ("code", '''\
import plotly.graph_objects as go

RATIOS = mr.RATIOS
by_ratio = mr.loss_curves(models, val_batches, RATIOS)
fig = go.Figure()
for name, losses in by_ratio.items():
    fig.add_scatter(x=list(losses), y=list(losses.values()), mode="lines+markers", name=name)
fig.add_vline(x=0.15, line_dash="dot", annotation_text="BERT's 15%")
fig.update_layout(title="Held-out masked-token loss by masking ratio", xaxis_title="masking ratio t",
                  yaxis_title="cross-entropy (nats per masked token)", template="plotly_white", height=400)
fig.show()'''),
    ("code", '''\
fixed, uniform = by_ratio[mr.FIXED], by_ratio[mr.UNIFORM]
print(f"t = 0.15 (the fixed model's training ratio): fixed {fixed[0.15]:.2f}, uniform {uniform[0.15]:.2f} nats")
print(f"t = 1.0 (where generation starts):          fixed {fixed[1.0]:.2f}, uniform {uniform[1.0]:.2f} nats")
print("ratios where the fixed-ratio model is worse:", [t for t in RATIOS if fixed[t] > uniform[t]])'''),
    ("md", """\
The area under each curve is the model's diffusion NELBO, the bound on its negative log-likelihood that LLaDA's
loss minimises (notebook 1b): `integral_0^1 CE(t) dt` nats per token, with CE(t) the loss per masked token at
ratio t (`training.evaluation.nelbo_from_loss_curve`, trapezoids over the ratios measured). A model that is good
only near 15% pays for the rest of the interval."""),
    ("code", '''\
from llada_play.training.evaluation import nelbo_from_loss_curve

nelbo = {name: nelbo_from_loss_curve(losses) for name, losses in by_ratio.items()}
for name, value in nelbo.items():
    print(f"{name}: NELBO {value:.2f} nats per token")'''),
    ("md", """\
## Generating from an all-mask sequence

Both models run the same sampler (64 tokens, 64 steps, blocks of 32) from nothing but masks: the sampler needs
good predictions at every ratio along the way, starting at *t* = 1."""),
    ("code", '''\
from llada_play import TraceRecorder, generate
from llada_play.model.text import decode_generation

empty = torch.zeros(1, 0, dtype=torch.long)
traces = {}
for name, m in models.items():
    recorder = TraceRecorder(tokenizer)
    out = generate(m, empty, steps=64, gen_length=64, block_length=32, hooks=recorder)
    traces[name] = recorder.trace()
    print(f"--- {name}\\n{decode_generation(tokenizer, out[0], 0)[:300]}\\n")'''),
    ("code", '''\
fig = go.Figure()
for name, trace in traces.items():
    conf = [sum(c[3] for c in s.commits) / max(1, len(s.commits)) for s in trace.steps]
    fig.add_scatter(y=conf, mode="lines", name=name)
fig.update_layout(title="Confidence of the committed tokens at each step, from all masks", xaxis_title="step",
                  yaxis_title="probability of the committed token", template="plotly_white", height=340)
fig.show()'''),
    ("code", '''\
from collections import Counter

for name, trace in traces.items():
    tokens = [c[2] for s in trace.steps for c in s.commits]
    top, count = Counter(tokens).most_common(1)[0]
    print(f"{name}: {len(set(tokens))} distinct tokens of {len(tokens)}; the most frequent, "
          f"{tokenizer.decode([top])!r}, {count} times")'''),
    ("md", """\
One generation each says little. Below, each model writes from all masks with temperature 1 and several seeds,
and the shipped **autoregressive twin** of the default model (trained on the same plays, same tokenizer)
scores every text: its negative log-likelihood in nats per token, cut at the first end-of-text. Lower means the
text reads more like Shakespeare to another model; text that loops also scores low, so the share of distinct
tokens is printed beside it. Mean ± standard error over the seeds."""),
    ("code", '''\
from llada_play.model.checkpoint import DEFAULT_AR_MODEL_DIR, load_model

twin, _ = load_model(DEFAULT_AR_MODEL_DIR)
SEEDS = range(3 if QUICK else 12)
result = mr.compare(models, val_batches, twin, tokenizer.eos_token_id, SEEDS, STEPS, curves=by_ratio)
for name, scores in result["written"].items():
    (m_nll, se_nll), (m_d, se_d) = scores["nll"], scores["distinct"]
    print(f"{name}: twin's NLL {m_nll:.2f} ± {se_nll:.2f} nats/token, distinct tokens {m_d:.0%} ± {se_d:.0%}")'''),
    ("md", """\
The same comparison was recorded at larger budgets with `python -m llada_play.experiments.masking_ratio --steps N`
(same code, same seeds; the files are in `data/masking_ratio/`). The conclusion reads this run and those."""),
    ("code", '''\
# The conclusion, from this run's numbers and the recorded budgets'.
recorded = [r for r in mr.recorded_results(ROOT / "data/masking_ratio") if r["steps"] != STEPS]
for r in [result, *recorded]:
    print(*mr.conclusion(r), sep="\\n  ")
better = [f"{r['steps']:,}" for r in [result, *recorded] if mr.uniform_writes_better(r)]
largest = max([result, *recorded], key=lambda r: r["steps"])
if better:
    print(f"\\nUniform-t writes better at {', '.join(better)} training steps, as LLaDA's argument predicts.")
else:
    print(f"\\nAt no budget measured, up to {largest['steps']:,} steps ({largest['tokens_per_model']:,} tokens a "
          "model), does the uniform-t model write better than the fixed-ratio one; if it overtakes it, that happens "
          "beyond the budgets a 2-core CPU could give here.")'''),
    ("md", """\
The fixed-ratio model has only ever seen sequences that are 85% visible. The loss curve measures what that
costs: it is the better model near its training ratio and the worse one at the high ratios printed above, which
is where sampling starts (every step of the reverse process walks *t* down from 1, so the model is asked to
predict at every ratio along the way). The bound and the generations are compared in the printed conclusion,
computed from this run's numbers: read it rather than this paragraph. The uniformly masked model is trained at
every ratio it meets while sampling, which is what LLaDA relies on to make a masked language model generative.
Whether that shows in the text depends on the budget: the printed conclusion says at which of the budgets
measured it does (this notebook's own and the recorded ones in `data/masking_ratio/`)."""),
    ("md", """\
## Exercises

1. **Where the curves cross.** Predict the masking ratio between 0.5 and 1.0 at which the fixed-ratio model
   stops being the better one. (Answer in the next cell, hidden in JupyterLab; run it; it measures a finer grid
   on 2 of the 8 held-out batches.)"""),
    ("answer", '''\
# Answer 1: the held-out loss of both models on a finer grid of ratios.
FINE = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]
fine = mr.loss_curves(models, val_batches[:2], FINE)
fixed_fine, uniform_fine = fine[mr.FIXED], fine[mr.UNIFORM]
for t in FINE:
    print(f"t = {t:.2f}: fixed {fixed_fine[t]:.3f}, uniform {uniform_fine[t]:.3f} nats")
worse = [t for t in FINE if fixed_fine[t] > uniform_fine[t]]
print(f"the fixed-ratio model is worse from t = {worse[0]}" if worse else "the fixed-ratio model is better at "
      "every ratio of this grid")'''),
    ("md", """\
2. **Filling in, one pass.** Mask 15% of a held-out batch and fill every mask with each model's first choice in
   a single forward pass. Predict which model gets more of them exactly right, and at 85%. (Answer in the next
   cell.)"""),
    ("answer", '''\
# Answer 2: one pass, argmax at every masked position, the same masks for both models.
from llada_play.diffusion.masking import forward_process

batch = val_batches[0]["input_ids"]
for t in (0.15, 0.85):
    noisy, masked, _ = forward_process(batch, tokenizer.mask_token_id, eps=0.0, t=torch.full((len(batch),), t),
                                       generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        right = {name: (m(noisy).logits.argmax(-1)[masked] == batch[masked]).float().mean().item()
                 for name, m in models.items()}
    print(f"t = {t}: " + ", ".join(f"{name} {share:.1%}" for name, share in right.items())
          + f" of {int(masked.sum())} masked tokens right")'''),
]


NOTEBOOKS["06_cluster_training"] = [
    ("md", """\
# 6. Training as a job: this machine first, a Slurm cluster next

`llada_play.jobs` runs any training recipe as a **job** through `submitit`: a subprocess on this machine
(`executor="local"`, the default here) or a Slurm batch job (`executor="slurm"`), with the same code, the same
configuration and the same handle to follow it. This notebook runs every kind of job on the local executor:

1. a small pre-training run on `data/shakespeare`, followed live by the `JobMonitor` widget,
2. a job that is cancelled, and a job that fails on a bad configuration,
3. the same run with two DDP processes (`tasks_per_node=2`, gloo on CPU), and a sweep of two seeds,
4. the trained checkpoint loaded into the denoising player,

and ends with the Slurm configuration you would use on a real cluster, printed, not submitted.

*Run time on a 2-core CPU: about 1.5 minutes
(with `LLADA_PLAY_QUICK=1`, as `make test` runs it: about 1.5 minutes; measured 2026-11-30).*"""),
    ("code", SETUP + '''

import tempfile
from pathlib import Path
from IPython.display import display
from llada_play.model.checkpoint import DEFAULT_MODEL_DIR
from llada_play.ui.job_widgets import JobMonitor
from llada_play.jobs import ClusterConfig, JobFailed, submit, submit_sweep, sweep_grid
from llada_play.training.trainer import TrainConfig

ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
RUNS = Path(tempfile.mkdtemp(prefix="cluster-nb-"))
STEPS = 40 if QUICK else 200
# the tiny preset with the shipped model's tokenizer (no tokenizer training inside the jobs)
RECIPE = dict(corpus=str(ROOT / "data/shakespeare"), preset="tiny", tokenizer_dir=str(DEFAULT_MODEL_DIR),
              seq_len=64, batch_size=8, eval_batches=4)

def config(name, steps=STEPS, **overrides):
    return TrainConfig(output_dir=str(RUNS / name), max_steps=steps, lr=3e-3, warmup_steps=10, log_every=5,
                       save_every=50, **overrides)

print(f"{STEPS} steps per run")'''),
    ("md", """\
## A job on this machine, followed live

`submit` returns at once with a `JobHandle` (`status()`, `metrics()`, `log_tail()`, `cancel()`, `result()`,
`model_dir()`). `JobMonitor(handle)` draws them: the status line, the loss read from the run's `metrics.jsonl`
as it grows, the end of the job's log and a Cancel button. `monitor.show()` displays it; `await
monitor.follow_async()` refreshes until the job ends, so the cell finishes with the final state, and Cancel
works meanwhile: the cell waits on the kernel's event loop, which hands button clicks through (a plain
`monitor.follow()` blocks the kernel, and a click would wait for the cell to end; it is for scripts).
`monitor.start()` refreshes from a background thread instead and returns at once. The stored output also holds
a picture of the final loss curve, for readers without a kernel."""),
    ("code", '''\
job = submit(config("pretrain"), "pretrain", ClusterConfig(executor="local"), **RECIPE)
monitor = JobMonitor(job)
monitor.show()
status = await monitor.follow_async()
summary = job.result()
print(f"job {job.job_id}: {status}; {len(job.metrics())} logged points, last loss {job.metrics()[-1]['loss']:.3f}")
held_out = summary["metrics"]
print(f"held-out masked-token loss {held_out['held_out_before_training']['masked_token_loss']:.2f} before, "
      f"{held_out['held_out']['masked_token_loss']:.2f} after training (unigram baseline "
      f"{held_out['unigram_held_out']:.2f}); model in {job.model_dir().relative_to(RUNS)}")'''),
    ("md", """\
## Cancelling a job

A second job asks for 100,000 steps. As soon as it has logged its first metrics, the monitor's Cancel button
is clicked (here from code, `cancel_button.click()`, the same callback as a click in the page): the handle
cancels the job (a signal to the local process, `scancel` on Slurm) and the monitor shows the final state."""),
    ("code", '''\
import time

long_job = submit(config("cancelled", steps=100_000), "pretrain", **RECIPE)
long_monitor = JobMonitor(long_job, poll_s=0.5)
long_monitor.show()
while not long_job.metrics() and not long_monitor.done():
    time.sleep(0.5)
    long_monitor.refresh()
print("before cancelling:", long_monitor.refresh(), "at step", long_job.metrics()[-1]["step"])
long_monitor.cancel_button.click()
print("after cancelling: ", await long_monitor.follow_async(timeout_s=60), "; final model written:",
      (RUNS / "cancelled" / "final").exists())'''),
    ("md", """\
## A job that fails

Settings that only the recipe can check fail inside the job. Here the sequence length (1,024) is above the
tiny preset's context: the job ends `FAILED`, the monitor shows the error with the end of the log, and
`result()` raises `JobFailed` carrying the same log tail, which we catch and print (the cell does not error)."""),
    ("code", '''\
bad_job = submit(config("failing"), "pretrain", **{**RECIPE, "seq_len": 1024})
bad_monitor = JobMonitor(bad_job, poll_s=0.5)
bad_monitor.show()
await bad_monitor.follow_async()
try:
    bad_job.result()
except JobFailed as err:
    message = str(err)
    print(message.splitlines()[0])
    print("the cause, from the log:", next(line for line in message.splitlines() if line.startswith("ValueError")))'''),
    ("md", """\
## Two processes: data-parallel training (DDP)

`tasks_per_node=2` starts two training processes, as Slurm's `srun` would; they join a torch.distributed
group (gloo on CPU), each computes the gradient on half of every batch, and DDP averages them. The whole batch
and its masks are drawn identically on both ranks, so the run follows the one-process run above except for
floating-point rounding (the gradient is summed in another order), which can grow over the steps. The gap
between the two logged loss curves at the first logged step and the largest gap are measured below."""),
    ("code", '''\
ddp_job = submit(config("ddp"), "pretrain", ClusterConfig(tasks_per_node=2), **RECIPE)
ddp_monitor = JobMonitor(ddp_job)
ddp_monitor.show()
print("2-process job:", await ddp_monitor.follow_async())
one, two = ([r["loss"] for r in j.metrics()] for j in (job, ddp_job))
gap = max(abs(a - b) for a, b in zip(one, two))
print(f"{len(two)} logged points; loss difference to the 1-process run at step {job.metrics()[0]['step']}: "
      f"{abs(one[0] - two[0]):.1e}, largest {gap:.1e} ({gap / min(one):.1e} relative)")
print("two ranks started:", "global_rank=0(2)" in ddp_job.log_tail(400))'''),
    ("md", """\
## A sweep: two seeds as one job array

`submit_sweep` submits one job per variant (a single job array on Slurm); each writes to its own directory."""),
    ("code", '''\
import plotly.graph_objects as go

sweep = submit_sweep(config("sweep"), sweep_grid(seed=[0, 1]), "pretrain", **RECIPE)
fig = go.Figure()
for handle in sweep:
    print(f"{handle.name}: {handle.wait()}, final training loss {handle.metrics()[-1]['loss']:.3f}, "
          f"held-out {handle.result()['metrics']['held_out']['masked_token_loss']:.3f}")
    rows = handle.metrics()
    fig.add_scatter(x=[r["step"] for r in rows], y=[r["loss"] for r in rows], mode="lines", name=handle.name)
fig.update_layout(title="Training loss of the two seeds", xaxis_title="step", yaxis_title="loss",
                  template="plotly_white", height=320)
fig.show()'''),
    ("md", """\
## The result, in the denoising player

`job.model_dir()` is the trained model (its `final/` directory). It loads like any model and runs the same
sampler. A tiny model after a few hundred steps is not expected to write well; judge the text below yourself."""),
    ("code", '''\
from llada_play import TraceRecorder, generate
from llada_play.model.checkpoint import load_model
from llada_play.model.text import decode_generation, encode_prompt
from llada_play.ui.widgets import DenoisingPlayer

model, tokenizer = load_model(job.model_dir())
prompt = encode_prompt(tokenizer, "Romeo.\\n")
recorder = TraceRecorder(tokenizer)
# sampled (temperature 1): greedy decoding of a model this young writes only the most frequent token, a newline
out = generate(model, prompt, steps=32, gen_length=32, block_length=16, temperature=1.0, seed=0, hooks=recorder)
print(decode_generation(tokenizer, out[0], prompt.shape[1]))
DenoisingPlayer(recorder.trace())'''),
    ("md", """\
## On a real cluster

The same call with `executor="slurm"` submits through `sbatch` (it needs Slurm's `sbatch` on `PATH`; this
notebook submits nothing). Below: a 2-node job with 4 GPU processes per node, and the batch script
`submitit` would write for it (`jobs.sbatch_script`), then the equivalent command lines, including the LoRA
fine-tuning of LLaDA-8B-Instruct on one GPU."""),
    ("code", '''\
from llada_play.jobs import sbatch_script, submit_command_line

cluster = ClusterConfig(executor="slurm", partition="gpu", nodes=2, tasks_per_node=4, gpus_per_node=4,
                        cpus_per_task=8, account="myproj", time_min=240, sbatch={"qos": "high"},
                        setup=["module load cuda/12.4", "source ~/venvs/llada/bin/activate"])
import sys

script = sbatch_script(cluster, "llada-pretrain", "runs/big/submitit")
# submitit writes absolute paths and this machine's Python; shown relative to this folder and as plain `python`
print(script.replace(str(Path.cwd()) + "/", "").replace(sys.executable, "python"))'''),
    ("code", '''\
# NBVAL_CHECK_OUTPUT
print(submit_command_line(["train", "--data", "data/shakespeare", "--preset", "small", "--device", "cuda",
                           "--out", "runs/big"], cluster))
print()
lora_gpu = ClusterConfig(executor="slurm", partition="gpu", gpus_per_node=1, cpus_per_task=8, time_min=480)
print(submit_command_line(["sft", "--model", "GSAI-ML/LLaDA-8B-Instruct",
                           "--dtype", "bfloat16", "--device", "cuda", "--lora-rank", "16", "--data", "rows.jsonl",
                           "--out", "runs/llada-lora"], lora_gpu))'''),
    ("md", """\
On the cluster, `handle.status()` reads Slurm's accounting (`sacct`) and `cancel()` runs `scancel`; every job
runs its recipe with `resume=True`, so a job that Slurm preempts and requeues continues from its latest
checkpoint (`tests/test_jobs.py` checks this on a one-node Slurm that `scripts/local-slurm.sh start` brings up)."""),
    ("md", """\
## Exercises

1. **A bigger allocation.** For 4 nodes with 8 GPU processes each, predict the number of training processes,
   the `#SBATCH` lines for nodes, tasks and GPUs, and whether a global batch of 48 rows can be split between
   the processes (and 64). Nothing is submitted. (Answer in the next cell, hidden in JupyterLab; run it.)"""),
    ("answer", '''\
# NBVAL_CHECK_OUTPUT
# Answer 1: 32 processes; every process takes an equal share of the global batch, so it must divide evenly.
from llada_play.jobs import check_compatible

big = ClusterConfig(executor="slurm", partition="gpu", nodes=4, tasks_per_node=8, gpus_per_node=8)
print("training processes:", big.world_size)
print("\\n".join(line for line in sbatch_script(big, "llada-big").splitlines()
                if any(key in line for key in ("--nodes", "--ntasks-per-node", "--gpus-per-node"))))
for rows in (48, 64):
    try:
        check_compatible(TrainConfig(output_dir="runs/big", device="cuda"), big, batch_size=rows)
        print(f"batch {rows}: accepted, {rows // big.world_size} rows per process")
    except ValueError as err:
        print(f"batch {rows}: refused before submitting: {err}")'''),
    ("md", """\
2. **A grid.** Predict how many jobs `sweep_grid(seed=[0, 1, 2], lr=[1e-3, 3e-3])` gives `submit_sweep`, and
   the folder each writes to (`submit_sweep` names it after the variant). (Answer in the next cell.)"""),
    ("answer", '''\
# NBVAL_CHECK_OUTPUT
# Answer 2: every combination, 3 x 2 = 6 jobs (one job array on Slurm), each in <output_dir>/<k=v,...>.
grid = sweep_grid(seed=[0, 1, 2], lr=[1e-3, 3e-3])
print(len(grid), "jobs:")
for variant in grid:
    print("  runs/grid/" + ",".join(f"{key}={value}" for key, value in variant.items()))'''),
]


def strip_widget_state(path: Path) -> None:
    """Drop the saved widget state (anywidget embeds plotly.js, ~5 MB): widgets come alive when the notebook
    runs, and the stored outputs stay small."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)


def cell(kind: str, source: str):
    """A markdown or code cell; an "answer" is a code cell that JupyterLab shows collapsed (nbval still runs it)."""
    if kind == "md":
        return new_markdown_cell(source)
    code = new_code_cell(source)
    if kind == "answer":
        code.metadata["jupyter"] = {"source_hidden": True}
        code.metadata["tags"] = ["answer"]
    return code


def build(name: str, cells) -> Path:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [cell(kind, src) for kind, src in cells]
    path = HERE / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    import sys

    args = sys.argv[1:]
    if args[:1] == ["--strip"]:
        for path in sorted(HERE.glob("0*.ipynb")):
            strip_widget_state(path)
    else:  # build the named notebooks (all of them by default)
        unknown = set(args) - set(NOTEBOOKS)
        if unknown:
            sys.exit(f"unknown notebook(s) {sorted(unknown)}; choose from {sorted(NOTEBOOKS)}")
        for name in args or NOTEBOOKS:
            print(build(name, NOTEBOOKS[name]))
