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
# # 3. The reversal curse: a diffusion model against its autoregressive twin
#
# Berglund et al. ("The Reversal Curse", ICLR 2024) found that a language model trained on *"A is B"* does not
# learn *"B is A"*: a model taught *"Daphne Barrington is the director of 'A Journey Through Time'"* cannot
# answer *"Who directed 'A Journey Through Time'?"*. A masked diffusion model is trained to predict **any**
# masked subset of a sentence from the rest, so it also practises predicting the name from the description.
# Does that break the curse? SMDM (arXiv:2410.18514) reports that it does. Here we measure it with two models
# that differ **only** in the objective: same architecture and size, same tokenizer, the same packed training
# windows in the same order, the same number of steps.
#
# *Run time on a 2-core CPU: about 4 minutes (measured 2026-12-01)
# (with `LLADA_PLAY_QUICK=1`, as `make test` runs it: about 30 seconds).*

# %%
from llada_play.ui.notebook import setup

# No loading bars in the outputs; every figure and widget stored with a PNG of it as well (GitHub, nbviewer and
# HTML exports run no JavaScript); torch seeded with 0. ROOT: the project's folder (data/ is in it). QUICK: the
# test suite asks for shrunken work (LLADA_PLAY_QUICK=1).
ROOT, QUICK = setup()

from llada_play.experiments.reversal_data import make_dataset, make_facts
from llada_play.experiments.reversal_experiment import (ReversalConfig, conclusions, read_results, results_figure,
                                            results_markdown, run_reversal_experiment, training_sentences)

# %% [markdown]
# ## The data
#
# Invented people with invented, unique descriptions, in three subsets: facts stated only name-first (`p2d`),
# only description-first (`d2p`), or both ways (`both`). Each fact appears through 30 paraphrase templates in
# training; 10 other templates are held out for the questions. (`data/reversal/` holds this set in the original
# paper's JSONL layout; `llada-play reversal --data DIR` reads the original files too.)

# %%
# NBVAL_CHECK_OUTPUT
files = make_dataset()  # 30 people per subset, 30 training and 10 test templates: the published shape
facts = make_facts()
for f in (facts[0], facts[30], facts[60]):
    print(f"{f.subset:>4}: {f.name} = {f.description}")
for name, rows in files.items():
    print(f"{name:25} {len(rows):5} rows, e.g. {rows[0]['prompt']!r} -> {rows[0]['completion']!r}")

# %% [markdown]
# Two checks that the test is fair, computed: no training sentence uses a test template, and no one-way fact
# ever appears the other way round in training.

# %%
# NBVAL_CHECK_OUTPUT
sentences = training_sentences(files)
test_prompts = {r["prompt"] for name, rows in files.items() if name.endswith("_test") for r in rows}
print("training sentences that start with a test prompt:",
      sum(any(s.startswith(p + " ") for p in test_prompts) for s in sentences))
def name_first(sentence, fact):
    return sentence.index(fact.name) < sentence.index(fact.description)
wrong_way = sum(1 for f in facts if f.subset != "both" for s in sentences
                if f.name in s and f.description in s and name_first(s, f) != (f.subset == "p2d"))
print("training sentences stating a one-way fact the other way round:", wrong_way)

# %% [markdown]
# ## Train both models
#
# One seed of the quick experiment (`ReversalConfig.quick`, printed below), both models trained from scratch on
# the same windows. A training hook records both loss curves (not on the same scale: the diffusion
# loss is the ELBO-weighted masked-token loss, the autoregressive one the next-token loss).

# %%
import tempfile

config = ReversalConfig.quick(seeds=[0], out_dir=tempfile.mkdtemp(prefix="reversal-"))
if QUICK:  # the test suite: a smaller, shorter run that only checks that the notebook works
    config = ReversalConfig.quick(seeds=[0], out_dir=config.out_dir, steps=30, eval_rows=10)
losses = {"diffusion": [], "autoregressive": []}
results = run_reversal_experiment(config, train_hooks=lambda kind, seed, record: losses[kind].append(record.loss))
print(f"{config.people_per_subset} people per subset, {config.preset} preset, {results['parameters']:,} "
      f"parameters per model, {config.steps} steps, "
      f"{results['tokens_per_model']:,} training tokens each, {results['wall_time_s']:.0f} s for both")

# %%
import plotly.graph_objects as go
from plotly.subplots import make_subplots

fig = make_subplots(rows=1, cols=2, subplot_titles=["diffusion (masked-token loss)", "autoregressive (next-token loss)"])
for i, kind in enumerate(losses, 1):
    fig.add_scatter(y=losses[kind], mode="lines", name=kind, row=1, col=i)
fig.update_layout(template="plotly_white", height=320, showlegend=False, xaxis_title="step", xaxis2_title="step")
fig.show()

# %%
print(results_markdown(results))

# %% [markdown]
# ## Ask both models
#
# Held-out questions, asked in the trained direction and reversed: the first question of each set (a fixed rule,
# no choosing). Read them with the table above in mind: this one-seed quick run is **undertrained** (a few CPU
# minutes; the diffusion model's generation accuracy is low even in the trained direction), so its answers show
# the mechanics, not the effect. The long run at the end of the notebook, six times the steps, is where the
# diffusion model has learnt the facts.

# %%
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
        print(f"   {kind:>15}: {answer(m, tokenizer, row['prompt'])!r}")

# %% [markdown]
# The diffusion model's answer to a reversed question, as it was written (one token per step, the most confident
# first; scrub or play):

# %%
from llada_play import TraceRecorder, denoise
from llada_play.experiments.reversal import answer_config, question_ids
from llada_play.ui.widgets import DenoisingPlayer

question = asked["p2d_reverse_prompts_test"][0]["prompt"]
config = answer_config()  # greedy, one token per step, blocks of 8
recorder = TraceRecorder(tokenizer, config=config)
for record in denoise(pair["diffusion"][0], question_ids(tokenizer, question), config):  # one step per record
    recorder(record)
DenoisingPlayer(recorder.trace(), grid=False, eos_ids={tokenizer.eos_token_id})

# %% [markdown]
# ## The full experiment
#
# One seed of a small run is an anecdote. The full experiment uses the published data shape (30 people per
# subset, 30 + 10 templates) and several seeds; its recorded result ships with the project and was written by
#
# ```bash
# llada-play reversal --out data/reversal/results/full.json
# ```

# %%
full = read_results(ROOT / "data/reversal/results/full.json")
c = full["config"]
print(f"{c['people_per_subset']} people per subset, seeds {c['seeds']}, {c['preset']} preset, {c['steps']} steps, "
      f"{full['tokens_per_model']:,} tokens per model; {full['wall_time_s'] / 60:.0f} min on {full['machine']}")
print(results_markdown(full))

# %%
results_figure(full).show()

# %%
# NBVAL_CHECK_OUTPUT
s = full["summary"]
def pct(kind, metric):
    v = s[kind].get(metric)
    return "n/a" if v is None else f"{100 * v['mean']:.1f}% ± {100 * v['std']:.1f}"
for metric in ["generation/p2d_forward", "generation/p2d_reverse", "generation/d2p_forward",
               "generation/d2p_reverse", "ranking/p2d_reverse", "ranking/d2p_reverse", "infilling/p2d",
               "infilling_ranking/p2d"]:
    print(f"{metric:24} diffusion {pct('diffusion', metric):>14}   autoregressive {pct('autoregressive', metric):>14}")
print(f"ranking chance level: {1 / (1 + c['distractors']):.0%}")

# %% [markdown]
# ## Reading the numbers honestly
#
# * **Generation, reversed** is the reversal curse proper: the question is a sentence whose answer (a name, for
#   `p2d` facts) comes *after* the description, while training only ever put that name *before* it.
# * **Ranking** asks the same reversed questions as a multiple choice between the true answer and four other
#   people's, by likelihood (exact for the autoregressive model, the Monte-Carlo bound for the diffusion model).
# * **Infilling** masks the name in *"<name> is <description>."*, the training order. A diffusion model can fill it
#   in directly, but that is bidirectional *context*, not bidirectional *knowledge*: the name still sits before
#   the description, as in training. The autoregressive model can only rank whole sentences (`infilling_ranking`).
#
# The literature's expectation (SMDM) is the autoregressive model near zero reversed and the diffusion model well
# above it. What this run shows, decided by the numbers (`conclusions`; above chance means more than two seed
# standard deviations, more than two standard errors of guessing on the rows scored, and at least 5 points, above
# it):

# %%
# NBVAL_CHECK_OUTPUT
print("\n".join(conclusions(full)))

# %% [markdown]
# ## A longer budget
#
# Masked diffusion needs many more passes over a fact than next-token prediction before it has memorised it. The
# same experiment with six times the steps (15,000 per model, 15.4M tokens), written by
#
# ```bash
# llada-play reversal --steps 15000 --seeds 0,1 --out data/reversal/results/long.json
# ```

# %%
long = read_results(ROOT / "data/reversal/results/long.json")
print(f"{long['config']['steps']} steps, seeds {long['config']['seeds']}, {long['tokens_per_model']:,} tokens per "
      f"model, on {long['machine']}")
print(results_markdown(long))
results_figure(long).show()

# %%
# NBVAL_CHECK_OUTPUT
print("\n".join(conclusions(long)))

# %% [markdown]
# The first seed's two models ship beside the result (`data/reversal/results/long-models/`, also in the app's
# Reversal tab). Reversed questions, the way the ranking metric scores them: the true name against four other
# people's (`*`: the true one), by each model's log-likelihood per token (exact for the autoregressive model, the
# Monte-Carlo bound for the diffusion model), and what each model writes when asked to generate; three people in
# detail, then the count over all thirty (the table above has the rates over 100 questions and two seeds):

# %%
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
      + f" (chance: 1 in {1 + long['config']['distractors']}).")

# %% [markdown]
# ## Exercises
#
# 1. **Both directions, by generation.** Take the long run's pair loaded above and the first 10 people of the
#    `p2d` subset (facts stated name first). Predict how many each model answers in the trained direction (the
#    name given, the description asked) and reversed (the description given, the name asked). (Answer in the next
#    cell, hidden in JupyterLab; run it.)

# %% jupyter={"source_hidden": true} tags=["answer"]
# Answer 1: greedy generation, the first held-out template of each of the first 10 p2d people.
from llada_play.experiments.reversal import generation_accuracy

for label, file in [("trained direction", "p2d_prompts_test"), ("reversed", "p2d_reverse_prompts_test")]:
    rows = long_data[file][::10][:10]
    for kind, (m, _) in long_pair.items():
        accuracy = generation_accuracy(m, long_tok, rows, kind == "autoregressive", sentence_start=True)
        print(f"{label:18} {kind:>15}: {accuracy:.0%} of {len(rows)}")

# %% [markdown]
# 2. **Filling in the name.** The diffusion model can also fill a masked name into *"<name> is <description>."*,
#    the order it was trained on. Predict its score for the same 10 people, against its score on the reversed
#    questions above. (Answer in the next cell.)

# %% jupyter={"source_hidden": true} tags=["answer"]
# Answer 2: infilling in the training order needs no reversal, only bidirectional context.
from llada_play.experiments.reversal import infilling_accuracy
from llada_play.experiments.reversal_data import facts_from_files

ten = facts_from_files(long_data, "p2d")[:10]
score = infilling_accuracy(long_pair["diffusion"][0], long_tok, ten, sentence_start=True)
print(f"the long run's diffusion model fills in {score:.0%} of {len(ten)} names, e.g. {ten[0].name} is "
      f"{ten[0].description}.")
