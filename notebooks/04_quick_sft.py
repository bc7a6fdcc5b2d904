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
# # 4. Quick SFT: teaching the Shakespeare model to add
#
# Supervised fine-tuning of a masked diffusion model (LLaDA's recipe): the **prompt is never masked**; the
# response, including the end-of-text padding after it, is masked at a random ratio like in pre-training; each
# sequence's loss is divided by its response length. We fine-tune the shipped default model on the project's
# arithmetic set (`data/sft/`, made by a seeded script) and measure held-out exact-match accuracy before and
# after. The held-out sums never appear in training.
#
# *Run time on a 2-core CPU: about 3 minutes
# (with `LLADA_PLAY_QUICK=1`, as `make test` runs it: about 50 seconds; measured 2026-11-30).*

# %%
from llada_play.ui.notebook import setup

# No loading bars in the outputs; every figure and widget stored with a PNG of it as well (GitHub, nbviewer and
# HTML exports run no JavaScript); torch seeded with 0. ROOT: the project's folder (data/ is in it). QUICK: the
# test suite asks for shrunken work (LLADA_PLAY_QUICK=1).
ROOT, QUICK = setup()

from llada_play.training.data import SFTBatches, encode_conversation, load_sft_rows

train_rows = load_sft_rows(ROOT / "data/sft/arithmetic_train.jsonl")
test_rows = load_sft_rows(ROOT / "data/sft/arithmetic_test.jsonl")
print(len(train_rows), "training rows,", len(test_rows), "held-out rows")
for messages in train_rows[:3]:
    print(messages)

# %% [markdown]
# Each row goes through the chat template. The prompt part stays visible; the response is what gets masked:

# %%
# NBVAL_CHECK_OUTPUT
from llada_play.model.checkpoint import load_model

model, tokenizer = load_model()
prompt_ids, response_ids = encode_conversation(tokenizer, train_rows[0])
print("prompt:  ", repr(tokenizer.decode(prompt_ids)))
print("response:", repr(tokenizer.decode(response_ids)))
batches = SFTBatches.from_conversations(tokenizer, train_rows, batch_size=32)
print("padded to", batches.input_ids.shape[1], "tokens with end-of-text")

# %% [markdown]
# Before fine-tuning, the model has never seen a question; it answers with Shakespeare:

# %%
from llada_play.training.evaluation import answer_accuracy

before = answer_accuracy(model, tokenizer, test_rows, return_answers=True)
for messages, answer in list(zip(test_rows, before["answers"]))[:3]:
    print(f"{messages[0]['content']!r:35} -> {answer!r}  (truth {messages[-1]['content']!r})")
print(f"held-out accuracy {before['accuracy']:.1%}, well-formed {before['well_formed']:.0%}")

# %% [markdown]
# Now fine-tune (1,000 steps of 32 rows, learning rate 1e-3; the same run as `llada-play sft`). A training hook
# collects the loss of every step.

# %%
import tempfile
from llada_play.recipes import run_sft
from llada_play.training.trainer import TrainConfig

losses = []
out_dir = tempfile.mkdtemp(prefix="quick-sft-")
config = TrainConfig(objective="sft", output_dir=out_dir, max_steps=60 if QUICK else 1000, lr=1e-3,
                     warmup_steps=50, progress=False, save_every=10_000)
summary = run_sft(None, ROOT / "data/sft/arithmetic_train.jsonl", config, batch_size=32,
                  hooks=lambda record: losses.append(record.loss),
                  eval_data=ROOT / "data/sft/arithmetic_test.jsonl")
acc = summary["held_out_accuracy"]
print(f"{summary['steps']} steps in {summary['wall_time_s']:.0f} s")
print(f"held-out accuracy: {acc['before']['accuracy']:.1%} before, {acc['after']['accuracy']:.1%} after")
print(f"well-formed answers: {acc['before']['well_formed']:.0%} before, {acc['after']['well_formed']:.0%} after")

# %%
import plotly.graph_objects as go

smooth = [sum(losses[max(0, i - 19):i + 1]) / len(losses[max(0, i - 19):i + 1]) for i in range(len(losses))]
fig = go.Figure([go.Scatter(y=losses, mode="lines", name="loss", opacity=0.35),
                 go.Scatter(y=smooth, mode="lines", name="mean of 20 steps")])
fig.update_layout(title="SFT loss", xaxis_title="step", yaxis_title="loss per response token",
                  template="plotly_white", height=320)
fig.show()

# %% [markdown]
# Watch the fine-tuned model answer a held-out question: the answer digits, end-of-turn and end-of-text tokens
# are committed in the order the model is surest of.

# %%
from llada_play import TraceRecorder, generate
from llada_play.model.text import decode_generation, encode_prompt
from llada_play.ui.widgets import DenoisingPlayer

tuned, _ = load_model(summary["final_model"])
question = test_rows[0][0]["content"]
prompt = encode_prompt(tokenizer, question, chat=True)
recorder = TraceRecorder(tokenizer)
out = generate(tuned, prompt, steps=8, gen_length=8, block_length=8, hooks=recorder)
print(question, "->", decode_generation(tokenizer, out[0], prompt.shape[1]))
DenoisingPlayer(recorder.trace(), grid=False)

# %% [markdown]
# ## Exercises
#
# 1. **Bigger numbers.** Every training sum had both numbers between 0 and 49. Predict the fine-tuned model's
#    accuracy on *"Compute a + b."* with a and b between 50 and 99, whose answers have three digits. (Answer in the
#    next cell, hidden in JupyterLab; run it.)

# %% jupyter={"source_hidden": true} tags=["answer"]
# Answer 1: 40 sums outside the training range, in one of the training phrasings.
import random

rng = random.Random(0)
pairs = [(rng.randint(50, 99), rng.randint(50, 99)) for _ in range(40)]
outside = [[{"role": "user", "content": f"Compute {a} + {b}."}, {"role": "assistant", "content": str(a + b)}]
           for a, b in pairs]
far = answer_accuracy(tuned, tokenizer, outside, return_answers=True)
print(f"numbers 50-99: accuracy {far['accuracy']:.0%}, well-formed {far['well_formed']:.0%}; e.g. "
      + ", ".join(f"{a} + {b} -> {answer!r}" for (a, b), answer in list(zip(pairs, far["answers"]))[:4]))

# %% [markdown]
# 2. **Fewer steps.** Answers above were written with 8 steps for 8 positions. Predict the held-out accuracy when
#    all 8 positions are committed in 1 step, and in 2 steps. (Answer in the next cell.)

# %% jupyter={"source_hidden": true} tags=["answer"]
# Answer 2: the same held-out questions, 1, 2 and 8 steps for the 8 answer positions.
from llada_play import SamplerConfig

for steps in (1, 2, 8):
    result = answer_accuracy(tuned, tokenizer, test_rows, SamplerConfig(steps=steps, gen_length=8, block_length=8))
    print(f"{steps} step(s): held-out accuracy {result['accuracy']:.1%}")
