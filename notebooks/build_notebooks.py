"""Write the teaching notebooks from the cell sources below (then execute them to store their outputs):

    python notebooks/build_notebooks.py
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
import plotly.io as pio
import torch
from transformers.utils import logging as hf_logging

hf_logging.disable_progress_bar()  # no loading bars in the stored outputs
# JupyterLab draws plotly's own output type offline; code hosts show the small HTML that loads plotly.js.
pio.renderers.default = "plotly_mimetype+notebook_connected"
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
3. the **reverse process** (the sampler), which you can replay step by step with a widget."""),
        ("code", SETUP + '''

from llada_play.checkpoint import load_model
model, tokenizer = load_model()  # the shipped default model, trained on Shakespeare
print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, mask token {tokenizer.mask_token!r}")'''),
        ("md", """\
## 1. The forward process

During training each sequence draws its own masking ratio *t* uniformly in (0, 1) and every token is masked
independently with probability *p = (1 - ε) t + ε*. Here is one line of *Hamlet* at several ratios (the same
random draws for every *t*, so the masked set only grows)."""),
        ("code", '''\
# NBVAL_CHECK_OUTPUT
from llada_play.masking import forward_process

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
(`remasking="low_confidence"`), a fixed share of the block per step. A `TraceRecorder` hook keeps every step."""),
        ("code", '''\
from llada_play import TraceRecorder, generate
from llada_play.text import decode_generation, encode_prompt

prompt = encode_prompt(tokenizer, "Romeo.\\n")
recorder = TraceRecorder(tokenizer)
out = generate(model, prompt, steps=64, gen_length=64, block_length=32, hooks=recorder)
trace = recorder.trace()
print(decode_generation(tokenizer, out[0], prompt.shape[1]))
print(f"\\n{len(trace.steps)} steps, {sum(len(s.commits) for s in trace.steps)} tokens committed")'''),
        ("md", """\
Scrub through the run with the slider, press play, or jump block by block. Grey cells are still masked (with the
model's current guess inside), green cells are committed (darker = more confident), the outlined cells were
committed at the step shown."""),
        ("code", '''\
from llada_play.widgets import DenoisingPlayer

DenoisingPlayer(trace)'''),
        ("code", '''\
from llada_play.viz import commit_order_figure

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

steered = generate(model, prompt, steps=64, gen_length=64, block_length=32, hooks=put_love)
print(decode_generation(tokenizer, steered[0], prompt.shape[1]))'''),
    ],
}

NOTEBOOKS["04_quick_sft"] = [
    ("md", """\
# 4. Quick SFT: teaching the Shakespeare model to add

Supervised fine-tuning of a masked diffusion model (LLaDA's recipe): the **prompt is never masked**; the
response, including the end-of-text padding after it, is masked at a random ratio like in pre-training; each
sequence's loss is divided by its response length. We fine-tune the shipped default model on the project's
arithmetic set (`data/sft/`, made by a seeded script) and measure held-out exact-match accuracy before and
after. The held-out sums never appear in training."""),
    ("code", SETUP + '''

from pathlib import Path
from llada_play.data import SFTBatches, encode_conversation, load_sft_rows

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
from llada_play.checkpoint import load_model

model, tokenizer = load_model()
prompt_ids, response_ids = encode_conversation(tokenizer, train_rows[0])
print("prompt:  ", repr(tokenizer.decode(prompt_ids)))
print("response:", repr(tokenizer.decode(response_ids)))
batches = SFTBatches.from_conversations(tokenizer, train_rows, batch_size=32)
print("padded to", batches.input_ids.shape[1], "tokens with end-of-text")'''),
    ("md", """\
Before fine-tuning, the model has never seen a question; it answers with Shakespeare:"""),
    ("code", '''\
from llada_play.evaluation import answer_accuracy

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
from llada_play.training import TrainConfig

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
from llada_play.text import decode_generation, encode_prompt
from llada_play.widgets import DenoisingPlayer

tuned, _ = load_model(summary["final_model"])
question = test_rows[0][0]["content"]
prompt = encode_prompt(tokenizer, question, chat=True)
recorder = TraceRecorder(tokenizer)
out = generate(tuned, prompt, steps=8, gen_length=8, block_length=8, hooks=recorder)
print(question, "->", decode_generation(tokenizer, out[0], prompt.shape[1]))
DenoisingPlayer(recorder.trace(), grid=False)'''),
]


def strip_widget_state(path: Path) -> None:
    """Drop the saved widget state (anywidget embeds plotly.js, ~5 MB): widgets come alive when the notebook
    runs, and the stored outputs stay small."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)


def build(name: str, cells) -> Path:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells]
    path = HERE / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--strip"]:
        for path in sorted(HERE.glob("0*.ipynb")):
            strip_widget_state(path)
    else:
        for name, cells in NOTEBOOKS.items():
            print(build(name, cells))
