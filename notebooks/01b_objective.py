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
# # 1b. What the model is trained to do
#
# Notebook 1 showed the model writing. This one is about the one objective behind it, computed with the
# project's own functions (`llada_play/diffusion/masking.py`, `losses.py`, `llada_play/training/evaluation.py`)
# on the shipped Shakespeare model, its autoregressive twin and the held-out plays neither of them trained on:
#
# 1. the **forward process** q(x_t | x_0), which hides each token with probability *t*;
# 2. the **loss**, written out beside the lines of `losses.py` that compute it;
# 3. why that loss is an **upper bound on the negative log-likelihood**, and the bound measured against the twin's
#    exact likelihood, with error bars;
# 4. why the network has **no time embedding**: the number of masks tells it *t*, and the best prediction does
#    not depend on *t* anyway;
# 5. **SFT**: the same loss with the prompt kept clean;
# 6. the **mask token** itself, here and in LLaDA-8B.
#
# Three exercises at the end.
#
# *Run time on a 2-core CPU: about 2 minutes
# (with `LLADA_PLAY_QUICK=1`, as `make test` runs it: about 35 seconds; measured 2026-11-30 on one core while
# other benchmarks shared the machine).*

# %%
import torch
from transformers.utils import logging as hf_logging
from llada_play.ui.notebook import setup

# No loading bars in the outputs; every figure and widget stored with a PNG of it as well (GitHub, nbviewer and
# HTML exports run no JavaScript); torch seeded with 0. ROOT: the project's folder (data/ is in it). QUICK: the
# test suite asks for shrunken work (LLADA_PLAY_QUICK=1).
ROOT, QUICK = setup()

from llada_play.model.checkpoint import DEFAULT_AR_MODEL_DIR, load_model
from llada_play.training.data import pack_tokens, read_corpus, split_documents

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
print(f"diffusion model causal={model.config.causal}, twin causal={twin.config.causal}")

# %% [markdown]
# ## 1. The forward process
#
# Training takes a clean window x_0 of *L* = 256 tokens, draws one ratio *t* ~ U(0, 1) **per sequence**, and
# replaces every token by the mask token M independently with probability *t*:
# q(x_t^i = M | x_0) = *t*, otherwise x_t^i = x_0^i. LLaDA uses *p* = (1 - ε) *t* + ε with ε = 0.001
# (`mask_probability`), so that no sequence is drawn without a chance of masks. Eight held-out windows through
# `forward_process`: each row's drawn ratio and the share of its 256 tokens that ended up masked (▒).

# %%
# NBVAL_CHECK_OUTPUT
from llada_play.diffusion.masking import forward_process, mask_probability

print("p at t = 0, 0.5, 1:", [round(p, 4) for p in mask_probability(torch.tensor([0.0, 0.5, 1.0])).tolist()])
x0 = windows[:8]
xt, masked, p_mask = forward_process(x0, MASK, generator=torch.Generator().manual_seed(0))
for row in range(len(x0)):
    start = tokenizer.decode(xt[row, :10]).replace(tokenizer.mask_token, "▒")
    print(f"row {row}: p = {p_mask[row, 0]:.3f}, masked {masked[row].float().mean():.3f} of the tokens; {start!r}")

# %% [markdown]
# ## 2. The loss, written out
#
# $$\mathcal{L}(\theta) \;=\; -\,\mathbb{E}_{t \sim U(0,1),\; x_0 \sim p_{\text{data}},\; x_t \sim q(x_t \mid x_0)}
# \left[\frac{1}{t} \sum_{i=1}^{L} \mathbf{1}\!\left[x_t^i = \mathrm{M}\right]
# \log p_\theta\!\left(x_0^i \mid x_t\right)\right] \Big/ L$$
#
# Read from the inside out: the network sees x_t and predicts every position at once (one forward pass, no causal
# mask); only the masked positions are scored, by the log-probability of the true token; the sum is weighted by
# 1/*t*; the expectation is over the ratio, the text and the masks; dividing by *L* gives nats per token. About
# *tL* tokens are masked at ratio *t*, so the 1/*t* weight brings every ratio's sum back to the scale of *L*
# tokens. In `pretrain_loss` (`logits[masked]` are the masked positions, `p_mask` is the row's *p*, `b * n` the
# batch's tokens; `rows` only picks one process's shard in data-parallel training):

# %%
import inspect
from llada_play.diffusion import losses

source = inspect.getsource(losses.pretrain_loss).splitlines()
start = next(i for i, line in enumerate(source) if "forward_process(" in line)
print("\n".join(source[start:]))

# %% [markdown]
# The formula by hand, with the same random draws (a generator with the same seed), against the library on
# eight held-out windows (`random_length_prob=0`: the 1% of training batches cut to a random length are left
# out here):

# %%
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
      f"(its expectation is L = {L})")

# %% [markdown]
# ## 3. Why it is an upper bound on the negative log-likelihood
#
# The trained network defines a generative model. Start from *L* masks and reveal one position at a time, in an
# order σ drawn uniformly at random, sampling each revealed token from p_θ(x_0^i | x_t). For a fixed order this is
# an autoregressive model over that order, with an exact likelihood p_θ^σ(x_0), the product of the *L*
# predictions. The model's own distribution is the mixture over orders, p_θ(x_0) = E_σ[p_θ^σ(x_0)], and since
# -log is convex (Jensen), -log p_θ(x_0) ≤ E_σ[-log p_θ^σ(x_0)].
#
# That right-hand side is *L* times the loss above. After *L - l* steps of a random order, *l* positions are still
# masked, a uniformly random set, and the next position revealed is any of them with probability 1/*l*. The
# continuous ratio *t* puts exactly that weight on each set size: a set of *l* masks arises at ratio *t* with
# binomial probability C(*L*, *l*) *t*^*l* (1 - *t*)^(*L* - *l*), and its integral against 1/*t* over (0, 1) is
# 1/*l* (checked numerically below). So the 1/*t*-weighted loss is the any-order autoregressive loss averaged over
# orders: an upper bound on the model's negative log-likelihood, the negative ELBO ("NELBO"). This is the
# any-order reading of Ou et al. (2024, RADD); the same bound is the continuous-time ELBO of absorbing-state
# discrete diffusion (Austin et al. 2021, D3PM; Lou et al. 2024, SEDD; Sahoo et al. 2024, MDLM; Shi et al. 2024,
# MD4), which LLaDA (Nie et al. 2025) trains on and uses to score likelihoods. Two caveats: it bounds the
# likelihood of the random-order, one-token-a-step sampler (the confidence-ordered sampler of notebook 1 has no
# tractable likelihood), and ε shifts the weights slightly.

# %%
# NBVAL_CHECK_OUTPUT
from math import comb

small_L, grid = 8, torch.linspace(0, 1, 200_001, dtype=torch.float64)[1:]  # a Riemann sum over (0, 1]
for l in range(1, small_L + 1):
    integral = (comb(small_L, l) * grid ** (l - 1) * (1 - grid) ** (small_L - l)).mean().item()  # (1/t) t^l = t^(l-1)
    print(f"L = {small_L}, l = {l}: integral of (1/t) P(l masks | t) dt = {integral:.4f}, 1/l = {1 / l:.4f}")

# %% [markdown]
# ### The bound, measured
#
# On the held-out plays: the NELBO of every window (`nelbo_per_sequence`: draws of *t*, masks, 1/*t*-weighted
# cross-entropy), the twin's **exact** negative log-likelihood (`autoregressive_nll_per_sequence`) and the unigram
# baseline (`unigram_cross_entropy`: training-set token frequencies, no context at all). All three score the same
# tokens: tokens 2 to 256 of each window, given its first (the twin cannot predict a first token without
# context, so the diffusion model gets the first token as given too: `context=1`). Error bars are standard
# errors over windows (`mean_and_standard_error`); each window's NELBO has its own independent draws, so the
# Monte-Carlo noise is inside the error bar.

# %%
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
      f"{time.perf_counter() - started:.0f} s")

# %%
import plotly.graph_objects as go

fig = go.Figure(go.Bar(x=[name.replace(", ", "<br>") for name in stats], y=[m for m, _ in stats.values()],
                       error_y=dict(type="data", array=[2 * se for _, se in stats.values()]),
                       text=[f"{m:.2f}" for m, _ in stats.values()], textposition="inside",
                       marker_color=["#2f9e44", "#1c7ed6", "#adb5bd"]))
fig.update_layout(title="Held-out Shakespeare, nats per token (error bars: ± 2 standard errors over windows)",
                  yaxis_title="nats per token", template="plotly_white", height=380)
fig.show()

# %% [markdown]
# What these numbers say, and what they do not, computed from them (the gap is paired: the same windows for both
# models):

# %%
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
          "within the noise.")

# %% [markdown]
# ## 4. Why there is no time embedding
#
# Diffusion models for images are told the noise level. LLaDA's network is not: `model/modeling.py` embeds the
# tokens and rotates by position, and that is all. First, *t* is in the input anyway: the share of masked tokens
# in x_t estimates *t*, with standard deviation sqrt(*t*(1 - *t*)/*L*) (a binomial count over *L* tokens). Measured,
# 2,000 draws of the forward process on one window at each ratio:

# %%
# NBVAL_CHECK_OUTPUT
RATIOS = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]
g = torch.Generator().manual_seed(0)
read_t = {}
for t in RATIOS:
    _, masked, _ = forward_process(windows[0].expand(2000, L), MASK, eps=0.0, t=torch.full((2000,), t), generator=g)
    fraction = masked.float().mean(1)
    read_t[t] = (fraction.mean().item(), fraction.std().item())
    print(f"t = {t:.2f}: masked share {read_t[t][0]:.3f} ± {read_t[t][1]:.3f}   "
          f"sqrt(t(1-t)/L) = {math.sqrt(t * (1 - t) / L):.3f}")

# %% [markdown]
# Second, the network behaves according to *t* without being told it. At each ratio, held-out windows are masked
# and the model's predictions at the masked positions are measured: their cross-entropy against the truth
# (`loss_by_mask_ratio`) and their entropy (how unsure the model is, which it computes from x_t alone).

# %%
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
      f"at t = 1: cross-entropy {curve[1.0]:.2f}, entropy {entropy[1.0]:.2f} nats")

# %% [markdown]
# And the reason it does not need *t* even in principle: for every clean text x_0 that agrees with x_t on its
# visible tokens, q(x_t | x_0) = *t*^*m* (1 - *t*)^(*L* - *m*) (*m* masks), the same number for all of them. By
# Bayes' rule q(x_0 | x_t) ∝ p_data(x_0) q(x_t | x_0), so that factor cancels: the best prediction of a masked
# token is p_data(x_0^i | the visible tokens of x_t), a conditional of clean text with no *t* in it. Ou et al.
# (2024) prove this for absorbing diffusion and drop the time input (RADD); MDLM (Sahoo et al. 2024) and MD4
# (Shi et al. 2024) make the same observation for their masking schedules. The curves above are that
# conditional getting harder as context disappears, not a clock the model reads.
#
# ## 5. SFT: the prompt stays clean
#
# Supervised fine-tuning keeps the objective and changes what may be masked: the prompt never is; the response,
# with its end-of-turn and the end-of-text padding after it, is masked at a ratio *t* ~ U(0, 1), still weighted
# by 1/*t*; each row's sum is divided by its response length instead of *L* (`sft_loss`):

# %%
source = inspect.getsource(losses.sft_loss).splitlines()
print("\n".join(line for line in source if any(key in line for key in
                 ("response = positions", "response_length = ", "forward_process(", "token_loss = ", "loss = ("))))

# %% [markdown]
# One training row of the shipped arithmetic data, padded with end-of-text as in a batch (`SFTBatches`; the row
# of the first 32 with the most padding), through `sft_loss` five times with the shipped arithmetic model (the default model after SFT); a forward pre-hook records what the
# network was shown (`|` separates prompt and response, ▒ = masked):

# %%
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
print(f"prompt {cut} tokens (never masked), response {ids.shape[1] - cut} tokens (maskable)")

# %% [markdown]
# The same loss on held-out rows, for the default model before SFT and the arithmetic model after it (mean over
# draws of *t*):

# %%
test = SFTBatches.from_conversations(tokenizer, load_sft_rows(ROOT / "data/sft/arithmetic_test.jsonl")[:64],
                                     batch_size=64)
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    for name, m in [("default model (before SFT)", model), ("arithmetic model (after SFT)", arith)]:
        values = [sft_loss(m, test.input_ids, test.prompt_lengths, MASK, generator=g).loss.item() for _ in range(8)]
        print(f"{name:29} SFT loss {sum(values) / len(values):.3f} nats per response token (64 held-out rows)")

# %% [markdown]
# ## 6. The mask token
#
# Here and in LLaDA-8B the mask is one reserved token, `<|mdm_mask|>`, that never occurs in text; only its place
# in the vocabulary differs. Nothing in the losses or the sampler hard-codes it: they read `config.mask_token_id`
# (and when a LLaDA checkpoint's tokenizer does not call `<|mdm_mask|>` its mask token, the loader makes it so,
# `model/checkpoint.py`; the `llada-8b` preset and the adapters' fallback for LLaDA checkpoints carry the same id):

# %%
# NBVAL_CHECK_OUTPUT
from llada_play.model.adapters import FAMILIES
from llada_play.model.config import PRESETS
from llada_play.model.formats import LLADA_DEFAULTS

print(f"this project: {tokenizer.mask_token} = id {tokenizer.mask_token_id} of a {len(tokenizer):,}-token "
      f"vocabulary (config.mask_token_id = {model.config.mask_token_id})")
print(f"LLaDA-8B:     <|mdm_mask|> = id {PRESETS['llada-8b']['mask_token_id']} of a "
      f"{PRESETS['llada-8b']['vocab_size']:,}-token vocabulary (LLaDA config default "
      f"{LLADA_DEFAULTS['mask_token_id']}, adapters' fallback {FAMILIES['llada'].default_mask_id})")

# %% [markdown]
# ## Exercises
#
# 1. **Short rows.** The mask count tells the model *t* only roughly. At *t* = 0.3, predict the standard deviation
#    of the masked share for a row of 16 tokens and for one of 1,024, against 256. (Answer in the next cell,
#    hidden in JupyterLab; run it.)

# %% jupyter={"source_hidden": true} tags=["answer"]
# Answer 1: sqrt(t (1 - t) / L): four times the spread at 16 tokens, half of it at 1,024.
g = torch.Generator().manual_seed(0)
for length in (16, 256, 1024):
    _, masked, _ = forward_process(torch.zeros(4000, length, dtype=torch.long), MASK, eps=0.0,
                                   t=torch.full((4000,), 0.3), generator=g)
    share = masked.float().mean(1)
    print(f"L = {length:4d}: masked share {share.mean():.3f} ± {share.std():.3f} "
          f"(sqrt(t(1-t)/L) = {math.sqrt(0.3 * 0.7 / length):.3f})")

# %% [markdown]
# 2. **The bound is an area.** In expectation (1/*t*) × (masked tokens) is *L*, so the NELBO per token is the
#    cross-entropy at ratio *t* averaged uniformly over *t*: the area under the cross-entropy curve of section 4.
#    Predict the NELBO from that curve. Then predict whether the plain mean cross-entropy over all masked tokens
#    (no 1/*t*; `masked_token_loss` reports both) comes out above or below the NELBO. (Answer in the next cell.)

# %% jupyter={"source_hidden": true} tags=["answer"]
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
      f"{abs(from_curve['NELBO'] - direct['nelbo_per_token']):.2f} from the measured NELBO")

# %% [markdown]
# 3. **A quieter estimate.** LLaDA scores likelihoods with another draw: mask exactly *l* tokens, *l* uniform in
#    1..*L*, weighted by *L*/*l* (`mc_log_likelihood`); with `stratified=True` the *l* of one batch are spread
#    evenly over 1..*L*. For one held-out window and 8 draws per estimate, predict: do the three estimators (random
#    *t* with 1/*t*, exact *l*, stratified *l*) agree on average, and which varies least from one repetition to
#    the next? (Answer in the next cell.)

# %% jupyter={"source_hidden": true} tags=["answer"]
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
      "more than noise; a rare draw with few masks carries a large weight, and few repetitions may miss it."))

# %% [markdown]
# ## References
#
# - Nie et al. *Large Language Diffusion Models* (LLaDA), 2025. arXiv:2502.09992.
# - Austin et al. *Structured Denoising Diffusion Models in Discrete State-Spaces* (D3PM), NeurIPS 2021.
#   arXiv:2107.03006.
# - Sahoo et al. *Simple and Effective Masked Diffusion Language Models* (MDLM), NeurIPS 2024. arXiv:2406.07524.
# - Shi et al. *Simplified and Generalized Masked Diffusion for Discrete Data* (MD4), NeurIPS 2024.
#   arXiv:2406.04329.
# - Ou et al. *Your Absorbing Discrete Diffusion Secretly Models the Conditional Distributions of Clean Data*
#   (RADD), 2024. arXiv:2406.03736.
# - Lou et al. *Discrete Diffusion Modeling by Estimating the Ratios of the Data Distribution* (SEDD), ICML 2024.
#   arXiv:2310.16834.
# - Devlin et al. *BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding*, NAACL 2019
#   (masked language modelling at a fixed 15% ratio; notebook 6). arXiv:1810.04805.
