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
# # 3b. In-context learning without next-token prediction
#
# LLaDA's paper makes in-context learning one of its two headline claims: LLaDA 8B matches LLaMA3 8B on few-shot
# benchmarks, so *"in-context learning is not an ability inherent to next-token prediction"*. Its explanation is
# the variable masking ratio: at a low ratio the model is trained to read almost the whole context and fill in
# the little that is missing. Here we test the claim at the scale of a CPU, with the same design as notebook 3:
# a diffusion model and its autoregressive twin that differ **only** in the objective (same size, tokenizer,
# training documents in the same order, same steps), plus a third model trained at one fixed high masking ratio,
# the paper's explanation put to the test.
#
# *Run time on a 2-core CPU: about 15 seconds (measured 2026-12-03; `LLADA_PLAY_QUICK=1`, as `make test` runs it,
# re-scores 40 prompts instead of 200). The training itself is not run here: the shipped pair and the recorded
# run are read from `data/icl/` (its README has the command and the training time: about 22 minutes a model on
# one core).*

# %%
from llada_play.ui.notebook import setup

# No loading bars in the outputs; every figure and widget stored with a PNG of it as well (GitHub, nbviewer and
# HTML exports run no JavaScript); torch seeded with 0. ROOT: the project's folder (data/ is in it). QUICK: the
# test suite asks for shrunken work (LLADA_PLAY_QUICK=1).
ROOT, QUICK = setup()

import json

from llada_play.experiments import icl_report as report
from llada_play.experiments.icl import encode, generated_answers, label_id, slot_log_probs
from llada_play.experiments.icl_data import (HELD_OUT_KEYS, TRAINING_KEYS, FewShotTask, TrainingMix, draw_prompts,
                                             training_texts)

# %% [markdown]
# ## The task: a mapping that exists only in the prompt
#
# Every prompt draws a **fresh** random mapping from a few invented words to colours, shows `k` examples of it,
# one a line, and asks for the colour of one word the examples show. The mapping is new in every prompt, so a
# model cannot have memorised it: without examples the best it can do is guess (one in three among the prompt's
# three colours), and with them the answer is determined by the prompt alone. The separator varies from prompt
# to prompt (`->`, `:`, `=`, `is`), and the evaluation asks only about words held out of training.

# %%
# NBVAL_CHECK_OUTPUT
prompt = draw_prompts(FewShotTask(shots=8), 1, seed=0)[0]
print(prompt.text())
print("\nanswer:", prompt.answer, "   labels of this prompt:", ", ".join(prompt.labels))

# %% [markdown]
# What the models see, token by token (the shipped tokenizer: a 4,096-token BPE learnt on Shakespeare). An
# invented word is two to four tokens, so matching the asked word to its examples means matching several tokens;
# each colour is one token, so ranking the colours is exact for both kinds of model.

# %%
# NBVAL_CHECK_OUTPUT
from llada_play.experiments.reversal_experiment import reference_tokenizer

tokenizer = reference_tokenizer()
before, after = encode(tokenizer, prompt)
print(" | ".join(tokenizer.convert_ids_to_tokens(before[-15:])), "| [answer]")
print("answer token:", tokenizer.convert_ids_to_tokens([label_id(tokenizer, prompt.answer)]))

# %% [markdown]
# Two variants tell *reading the context* from *using a prior*. In training, a quarter of the prompts use real
# words that have a colour of their own ("snow", "coal", "grass") and give them that colour 90% of the time: a
# prior the models can learn. **Flipped** prompts show the same words with every colour moved to the next one of
# the prompt's colours, so no word gets its own: a model that reads the examples scores as on fresh prompts, one
# that leans on the prior scores below chance. And a bidirectional model can read examples placed **after** the
# question, its answer's slot masked in place:

# %%
# NBVAL_CHECK_OUTPUT
flipped = draw_prompts(FewShotTask(shots=4, variant="flipped"), 1, seed=0)[0]
print(flipped.text(), "\n")
late = draw_prompts(FewShotTask(shots=4, layout="after"), 1, seed=0)[0]
print(late.before_answer() + " [answer]" + late.after_answer())

# %% [markdown]
# Checks, computed: every prompt's answer is the one label its own examples give the asked word, no held-out
# word appears in training, and the same word gets different colours in different prompts.

# %%
# NBVAL_CHECK_OUTPUT
prompts = draw_prompts(FewShotTask(shots=8), 500, seed=0)
print("prompts whose answer their examples determine:", sum(p.determined() for p in prompts), "of", len(prompts))
train = training_texts(TrainingMix(), 2000, seed=0)
words = {line.split()[0].rstrip(":") for text in train for line in text.splitlines() if line.split()}
print("held-out words in 2,000 training documents:", len(words & set(HELD_OUT_KEYS)),
      f"({len(TRAINING_KEYS):,} training words, {len(HELD_OUT_KEYS):,} held out)")
seen = {}
for p in prompts:
    for k, v in dict(p.examples).items():  # one colour per word within a prompt
        seen.setdefault(k, []).append(v)
again = {k: v for k, v in seen.items() if len(v) > 1}
print("held-out words shown in more than one of these prompts:", len(again),
      "; given different colours in different prompts:", sum(len(set(v)) > 1 for v in again.values()))

# %% [markdown]
# ## The recorded run
#
# Three models per seed, trained from scratch on 200,000 such documents (0 to 16 examples each; the same windows
# in the same order for all three), then scored on 500 held-out prompts per point: every number of examples,
# every variant, the examples before and after the question. The diffusion models answer by generation (the
# library's sampler filling the slot) and by ranking the prompt's colours (for a one-token answer the Monte-Carlo
# bound is exact); the twin by generation and by its exact log-probability.

# %%
results = json.loads((ROOT / "data/icl/results.json").read_text())
c = results["config"]
print(f"{c['preset']} preset, {results['parameters']:,} parameters per model, {c['steps']:,} steps of "
      f"{c['batch_size']} x {c['seq_len']} tokens = {results['tokens_per_model']:,} tokens each, seeds {c['seeds']}")
for run in sorted(results["runs"], key=lambda r: (r["seed"], r["model"])):
    print(f"  seed {run['seed']}, {run['model']:>18}: trained in {run['train_time_s'] / 60:.1f} min, "
          f"final training loss {run['final_train_loss']:.3f}")
print(results["wall_time_note"], "Machine:", results["machine"])

# %% [markdown]
# Accuracy by number of examples, pooled over seeds (each seed answers the same 500 prompts; ± one binomial
# standard error over all answers). The dotted green line is what answering with the colour of a random example,
# ignoring the words, would score: with one example it is always right, so beating it means matching words.

# %%
report.shots_figure(results).show()

# %%
from IPython.display import Markdown

Markdown(report.shots_markdown(results))

# %% [markdown]
# ## When does it appear?
#
# While they trained, each model was scored every 250 steps on 200 prompts of 8 examples, fresh and flipped.

# %%
report.step_figure(results).show()

# %% [markdown]
# ## What the numbers say
#
# Each line below is decided by the numbers (`icl_report.conclusions`): a model "learns from the examples" when its
# 16-example accuracy beats its accuracy with none by at least 5 points, paired over the same prompts, with p <
# 0.01 (McNemar's exact test); models are compared on the same prompts the same way.

# %%
# NBVAL_CHECK_OUTPUT
print("\n".join(report.conclusions(results)))

# %% [markdown]
# ## Reading the numbers honestly
#
# * **The twin learns in context, the diffusion model does not, at this budget.** With the same 7.7 million
#   training tokens, the autoregressive twin goes from chance without examples to 80% with them (pooled; 61% in
#   seed 0, 98% in seed 1), above what copying the colour of a random example would score (53%). The diffusion
#   model stays at chance whatever the number of examples (35% at 16); the one exception is a single example
#   (43%), where the only colour shown is the answer: it copies a little, it does not match words. This is the
#   opposite of LLaDA's 8B result, and it is not a contradiction of it: the claim is about a model trained on
#   2.3 trillion tokens, about 300,000 times our budget.
# * **It appears suddenly, and not in every seed.** In the training-step figure the twin of seed 1 jumps from 60%
#   to 98% between steps 2,000 and 2,500, on flipped prompts as well; the twin of seed 0 had not jumped by step
#   3,000 (its 60% is little more than copying a shown colour). Abrupt appearance with a seed-dependent onset is
#   what studies of induction heads report for small transformers (Olsson et al. 2022).
# * **The diffusion model learns the prior instead.** On flipped prompts it scores 2%: it answers a word's own
#   colour (snow: white) against every example. It has learnt word-to-colour associations, which need no
#   reading of the context, and not the copying of a colour from an earlier line, which does.
# * **After the question**, where only a bidirectional model could use the examples, neither model is above
#   chance by its slot: the twin cannot see them, and the diffusion model does not read examples anywhere. Scoring
#   the whole text with each colour lets the twin use them after all (76%): a left-to-right model can still
#   *rank* continuations by how well the examples that follow fit.
# * **The masking-ratio link cannot be tested from these numbers**: the paper predicts that a model trained at
#   one high ratio learns in context later or worse than one trained at every ratio, but at this budget neither
#   diffusion model learns it at all (35% against 32% at 16 examples, paired p = 0.14). The fixed-ratio model
#   learned the prior less (flipped 24%, not 2%), as a model that rarely sees a word with its colour visible
#   would.
# * **Why would a diffusion model be slower here?** We did not establish it. What we measured before choosing
#   this budget (`benchmarks/RESULTS.md`): single-token keys, one document per training window, a 2.5x higher
#   learning rate and a smaller, faster preset left the diffusion model at chance within 1,000 to 2,500 steps
#   (one seed, 200 prompts a point), except the last point of the smaller preset (46.5% at step 2,500, where that
#   pilot was stopped: one point, not followed up).
#   A plausible reason, not tested: to learn that a masked colour equals the colour after an earlier copy of its
#   word, a training example must have the masked colour, both copies of the word (two to four tokens each) and
#   the earlier colour visible at once, which at masking ratio t happens with probability about t(1 - t)^7; the
#   twin sees every such pair in every sequence. Notebook 3's reversal experiment needed six times these steps
#   before its diffusion model learnt its facts.

# %% [markdown]
# ## Ask both models
#
# The shipped pair (seed 1, the seed whose twin learnt to read the examples, so that the contrast shows) on one
# held-out prompt: each model's probability of each colour, and the diffusion
# model's answer as it was written (two steps: the colour and the end of its line).

# %%
from llada_play.model.checkpoint import SHIPPED_MODELS, load_model

diffusion, _ = load_model(SHIPPED_MODELS["Few-shot, diffusion (seed 1)"])
twin, _ = load_model(SHIPPED_MODELS["Few-shot, autoregressive twin (seed 1)"])
asked = draw_prompts(FewShotTask(shots=8), 3, seed=0)
for p in asked:
    print(p.text().replace("\n", " | "))
    for name, model in (("diffusion", diffusion), ("twin", twin)):
        row = slot_log_probs(model, tokenizer, [p])[0]
        ids = [label_id(tokenizer, label) for label in p.labels]
        probs = row[ids].softmax(-1)
        said = generated_answers(model, tokenizer, [p])[0]
        print(f"   {name:>9}: writes {said!r:10} ranks " + ", ".join(f"{l} {q:.0%}" for l, q in zip(p.labels, probs)))

# %%
import torch

from llada_play import TraceRecorder, denoise
from llada_play.diffusion.sampler_config import SamplerConfig
from llada_play.ui.widgets import DenoisingPlayer

config = SamplerConfig(steps=2, gen_length=2, block_length=2)
recorder = TraceRecorder(tokenizer, config=config)
for record in denoise(diffusion, torch.tensor([encode(tokenizer, asked[0])[0]]), config):
    recorder(record)
DenoisingPlayer(recorder.trace(), grid=False, eos_ids={tokenizer.eos_token_id})

# %% [markdown]
# ## Score it yourself
#
# The recorded numbers are reproducible: the shipped (seed 1) diffusion model scored again here, on the first prompts of
# the 8-example point, gives the same answers as the run recorded (the run kept which prompts each model got
# right).

# %%
from llada_play.experiments.icl import ranked_answers
from llada_play.experiments.icl_experiment import ICLConfig, held_out_prompts

count = 40 if QUICK else 200
config_run = ICLConfig(**{k: v for k, v in c.items() if k in ICLConfig.__dataclass_fields__})
point = held_out_prompts(config_run, "before", "fresh", 8)[:count]
count = len(point)
again = "".join("1" if a == p.answer else "0" for a, p in zip(ranked_answers(diffusion, tokenizer, point), point))
recorded = next(r for r in results["runs"] if r["model"] == "diffusion" and r["seed"] == 1)
print(f"{count} prompts: {again.count('1')} right now, {recorded['scores']['before/fresh/8']['ranking']['correct'][:count].count('1')} "
      f"in the record; the same prompts right: {again == recorded['scores']['before/fresh/8']['ranking']['correct'][:count]}")

# %% [markdown]
# ## Exercises
#
# 1. **Your own mapping.** Write five examples of your own (`blorp -> green`, ...) with one word shown three times
#    and ask for it. Which model follows your examples? (Answer in the next cell, hidden in JupyterLab; run it.)

# %% jupyter={"source_hidden": true} tags=["answer"]
# Answer 1: the two models on a hand-written prompt; their probabilities of each colour.
from llada_play.experiments.icl_data import own_prompt, parse_examples

pairs, fmt = parse_examples("blorp -> green\nzindle -> red\nblorp -> green\nquax -> white\nblorp -> green")
mine = own_prompt(pairs, "blorp", format=fmt)
for name, model in (("diffusion", diffusion), ("twin", twin)):
    row = slot_log_probs(model, tokenizer, [mine])[0]
    probs = row[[label_id(tokenizer, label) for label in mine.labels]].softmax(-1)
    print(f"{name:>9}: " + ", ".join(f"{l} {q:.0%}" for l, q in zip(mine.labels, probs)), "(answer: green)")

# %% [markdown]
# 2. **The prior against the examples.** "snow" is white in most training documents. Show the models
#    `snow -> red` three times among other lines and ask for snow: predict each model's probability of red and of
#    white. (Answer in the next cell.)

# %% jupyter={"source_hidden": true} tags=["answer"]
# Answer 2: examples that contradict a learnt colour.
pairs, fmt = parse_examples("snow -> red\ncoal -> white\nsnow -> red\ngrass -> black\nsnow -> red")
against = own_prompt(pairs, "snow", format=fmt)
for name, model in (("diffusion", diffusion), ("twin", twin)):
    row = slot_log_probs(model, tokenizer, [against])[0].softmax(-1)
    print(f"{name:>9}: red {row[label_id(tokenizer, 'red')]:.0%}, white {row[label_id(tokenizer, 'white')]:.0%} "
          "(of the whole vocabulary)")
