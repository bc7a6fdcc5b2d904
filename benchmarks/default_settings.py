"""Which sampler settings should the app and the CLI start from? Repetition and corpus-likeness of the shipped
default model's text, measured over a small grid of settings, to choose ``INTERACTIVE`` by measurement.

    python benchmarks/default_settings.py [--seeds 0,1] [--temperatures 0,0.5,0.8,1.0] [--strategies ...]

Prompts: 20 speaker headings drawn with ``random.Random(0)`` from the corpus in ``data/shakespeare/`` (every
line shaped like ``ROMEO.`` / ``Rom.`` / ``First Citizen.`` after a blank line and before a line of speech):
the first 10 are the heading alone (``"CLOWN.\\n"``), the other 10 the heading plus the first three words of
the speech (``"CASCA.\\nO, he sits"``). Each setting generates 64 tokens for all 20 prompts in one left-padded
batch (blocks of 32). Settings with randomness (temperature > 0 or ``random`` remasking) run once per seed;
the table shows the mean over seeds and, in brackets, the lowest and highest per-seed value.

Grid: the four remasking strategies at temperatures 0, 0.5, 0.8 and 1.0 with 64 steps (one token a step), and
at 0 and 0.8 with 32 steps (two a step); about 5 minutes on the project's 2 CPU cores when they are idle.

Measures, on the lower-cased words of each generation (cut at end-of-text), averaged over the prompts:

- ``rep3``: the fraction of word 3-grams that already occurred earlier in the same generation (0 = none);
- ``d1``/``d2``: distinct-1 / distinct-2 (distinct words / word pairs over all of them);
- ``rep line``: % of generations with a line of speech (3+ words, not a speaker heading) written twice;
- ``self-reply``: % of generations where one speaker heads two speeches in a row (the corpus alternates
  speakers; the looping first run was ``CLOWN.`` answering ``CLOWN.`` four times);
- ``oov``: % of words never seen in the corpus (made-up words);
- ``ar nll``: nats per token of the generation under the shipped autoregressive twin given the prompt (how
  much like the corpus the text reads to another model; looping text scores low, gibberish high).

A reference row measures the same on the corpus's own text: the 64 tokens that follow each prompt in the play.
"""
from __future__ import annotations

import argparse
import platform
import random
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from llada_play import SamplerConfig, generate
from llada_play.diffusion.sampler_config import INTERACTIVE
from llada_play.experiments.reversal import left_padded
from llada_play.model.checkpoint import DEFAULT_AR_MODEL_DIR, load_model
from llada_play.model.text import decode_generation, stop_token_ids

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "shakespeare"
SPEAKER = re.compile(r"^[A-Z][A-Za-z']*(?: [A-Z][A-Za-z']*\.?){0,3}\.$")
WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
STRATEGIES = ("low_confidence", "margin", "entropy", "random")
METRICS = ("rep3", "d1", "d2", "rep_line", "self_reply", "oov", "ar_nll")


# ---- prompts and text measures (also used by tests/test_defaults.py) ----

def speaker_turns(corpus: Path = CORPUS) -> list[tuple[str, str, str]]:
    """(work, heading, the text from the speech on) for every speaker heading of the corpus, in file order."""
    turns = []
    for path in sorted(corpus.glob("*_gut.txt")):
        lines = path.read_text().splitlines()
        for i in range(1, len(lines) - 1):
            if (SPEAKER.match(lines[i]) and not lines[i - 1].strip() and lines[i + 1][:1].isalpha()):
                turns.append((path.stem, lines[i], "\n".join(lines[i + 1:i + 40])))
    return turns


def draw_prompts(n: int = 20, seed: int = 0) -> list[tuple[str, str]]:
    """(prompt, the corpus text after it) for ``n`` speaker turns drawn with ``random.Random(seed)``: the first
    half the heading alone, the second half the heading and the first three words of the speech."""
    picked = random.Random(seed).sample(speaker_turns(), n)
    prompts = []
    for i, (_work, heading, speech) in enumerate(picked):
        if i < n // 2:
            prompts.append((heading + "\n", speech))
        else:
            first, _, rest = speech.partition("\n")
            head, tail = " ".join(first.split(" ")[:3]), " ".join(first.split(" ")[3:])
            prompts.append((heading + "\n" + head, (" " + tail if tail else "") + "\n" + rest))
    return prompts


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def repeated_ngram_fraction(tokens: list, n: int = 3) -> float:
    """The fraction of n-grams that already occurred earlier in the sequence."""
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


def distinct(tokens: list, n: int) -> float:
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def speeches(text: str) -> tuple[list[str], list[str]]:
    """(speaker headings in order, lines of speech) of a generation; a prompt's own heading comes first."""
    heads, lines = [], []
    for line in text.splitlines():
        line = line.strip()
        if SPEAKER.match(line):
            heads.append(line.upper())
        elif line:
            lines.append(line)
    return heads, lines


def has_repeated_line(text: str) -> bool:
    """A line of speech (3+ words, compared as its words) written twice."""
    seen = set()
    for line in speeches(text)[1]:
        key = tuple(words(line))
        if len(key) >= 3 and key in seen:
            return True
        seen.add(key)
    return False


def has_self_reply(text: str) -> bool:
    """One speaker heads two speeches in a row."""
    heads = speeches(text)[0]
    return any(a == b for a, b in zip(heads, heads[1:]))


def measure_text(prompt: str, generation: str, vocabulary: set[str]) -> dict[str, float]:
    w = words(generation)
    full = prompt + generation  # the prompt's heading counts for who spoke last
    return dict(rep3=repeated_ngram_fraction(w), d1=distinct(w, 1), d2=distinct(w, 2),
                rep_line=100.0 * has_repeated_line(generation), self_reply=100.0 * has_self_reply(full),
                oov=100.0 * sum(x not in vocabulary for x in w) / max(len(w), 1))


def corpus_vocabulary(corpus: Path = CORPUS) -> set[str]:
    return {w for path in corpus.glob("*_gut.txt") for w in words(path.read_text())}


# ---- generation and scoring ----

def generate_all(model, tokenizer, prompts: list[str], config: SamplerConfig) -> list[list[int]]:
    """The generated token ids for every prompt (one left-padded batch), cut at end-of-text."""
    rows = [tokenizer(p, add_special_tokens=False).input_ids for p in prompts]
    ids, mask = left_padded(rows, tokenizer.pad_token_id or 0)
    out = generate(model, ids, mask, **config.to_dict())[:, ids.shape[1]:].tolist()
    stops = stop_token_ids(tokenizer)
    return [row[:next((i for i, t in enumerate(row) if t in stops), len(row))] for row in out]


@torch.no_grad()
def ar_nll(ar_model, tokenizer, prompts: list[str], generations: list[list[int]]) -> list[float]:
    """Nats per generated token under the autoregressive model, given the prompt."""
    out = []
    for prompt, gen in zip(prompts, generations):
        p = tokenizer(prompt, add_special_tokens=False).input_ids
        if not gen:
            out.append(float("nan"))
            continue
        ids = torch.tensor([p + gen])
        logp = ar_model(ids).logits[0, :-1].float().log_softmax(-1)
        target = ids[0, 1:]
        nll = -logp.gather(-1, target[:, None])[:, 0]
        out.append(nll[len(p) - 1:].mean().item())
    return out


@dataclass
class Row:
    label: str
    config: SamplerConfig | None
    per_seed: list[dict[str, float]]  # one dict of prompt-averaged metrics per seed
    per_prompt_rep3: list[float]  # seed-averaged rep3 of each prompt (for the spread over prompts)

    def mean(self, metric: str) -> float:
        return statistics.fmean(s[metric] for s in self.per_seed)

    def spread(self, metric: str) -> tuple[float, float]:
        values = [s[metric] for s in self.per_seed]
        return min(values), max(values)

    def prompt_se(self) -> float:
        return statistics.stdev(self.per_prompt_rep3) / len(self.per_prompt_rep3) ** 0.5


def measure(prompts, generations_text, token_rows, ar, tokenizer, vocabulary) -> tuple[dict, list[float]]:
    per = [measure_text(p, g, vocabulary) for p, g in zip(prompts, generations_text)]
    nll = ar_nll(ar, tokenizer, prompts, token_rows)
    averaged = {m: statistics.fmean(x[m] for x in per) for m in METRICS if m != "ar_nll"}
    averaged["ar_nll"] = statistics.fmean(x for x in nll if x == x)
    return averaged, [x["rep3"] for x in per]


def reference_row(prompt_pairs, tokenizer, gen_length, ar, vocabulary) -> Row:
    prompts = [p for p, _ in prompt_pairs]
    token_rows = [tokenizer(rest, add_special_tokens=False).input_ids[:gen_length] for _, rest in prompt_pairs]
    texts = [tokenizer.decode(t) for t in token_rows]
    averaged, rep3 = measure(prompts, texts, token_rows, ar, tokenizer, vocabulary)
    return Row("the corpus itself (reference)", None, [averaged], rep3)


def run_setting(model, ar, tokenizer, prompts, config, seeds, vocabulary) -> Row:
    random_ = config.temperature > 0 or config.remasking == "random"
    per_seed, rep3_by_seed = [], []
    for seed in (seeds if random_ else [seeds[0]]):
        token_rows = generate_all(model, tokenizer, prompts, config.replace(seed=seed))
        texts = [tokenizer.decode(t) for t in token_rows]
        averaged, rep3 = measure(prompts, texts, token_rows, ar, tokenizer, vocabulary)
        per_seed.append(averaged)
        rep3_by_seed.append(rep3)
    per_prompt = [statistics.fmean(col) for col in zip(*rep3_by_seed)]
    label = f"T={config.temperature:g} {config.remasking} steps={config.steps}"
    return Row(label, config, per_seed, per_prompt)


def grid(base: SamplerConfig, temperatures, fewer_steps: int, fewer_steps_temperatures,
         strategies=STRATEGIES) -> list[SamplerConfig]:
    """Every strategy at every temperature with ``base.steps``, then at ``fewer_steps`` for a few temperatures."""
    full = [base.replace(temperature=t, remasking=r) for t in temperatures for r in strategies]
    return full + [base.replace(temperature=t, remasking=r, steps=fewer_steps)
                   for t in fewer_steps_temperatures for r in strategies]


def print_table(rows: list[Row]) -> None:
    print("| setting | seeds | rep3 (seed min-max) | ± s.e. over prompts | d1 | d2 | rep line % | self-reply % "
          "| oov % | ar nll |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in sorted(rows, key=lambda r: r.mean("rep3")):
        lo, hi = row.spread("rep3")
        spread = f" ({lo:.3f}-{hi:.3f})" if len(row.per_seed) > 1 else ""
        cells = [f"{row.mean(m):.2f}" for m in ("d1", "d2")]
        cells += [f"{row.mean(m):.0f}" for m in ("rep_line", "self_reply")]
        cells += [f"{row.mean('oov'):.1f}", f"{row.mean('ar_nll'):.2f}"]
        print(f"| {row.label} | {len(row.per_seed)} | {row.mean('rep3'):.3f}{spread} | {row.prompt_se():.3f} | "
              + " | ".join(cells) + " |")


def show_romeo(model, tokenizer, configs: list[SamplerConfig]) -> None:
    """The app's first run: the Denoise tab's prompt, seed 0, for a few settings."""
    ids = torch.tensor([tokenizer("Romeo.\n", add_special_tokens=False).input_ids])
    for config in configs:
        out = generate(model, ids, **config.replace(seed=0).to_dict())
        print(f"--- {config.describe()}\n{decode_generation(tokenizer, out[0], ids.shape[1])}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1", help="seeds of the settings with randomness")
    parser.add_argument("--temperatures", default="0,0.5,0.8,1.0", help="with 64 steps (gen_length 64, blocks of 32)")
    parser.add_argument("--fewer-steps", type=int, default=32)
    parser.add_argument("--fewer-steps-temperatures", default="0,0.8", help="temperatures also run with --fewer-steps")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="remasking strategies")
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    base = SamplerConfig(steps=64, gen_length=64, block_length=32, seed=0)
    model, tokenizer = load_model()
    ar, _ = load_model(DEFAULT_AR_MODEL_DIR)
    vocabulary = corpus_vocabulary()
    pairs = draw_prompts(args.prompts)
    prompts = [p for p, _ in pairs]
    print(f"machine: {platform.machine()}, {platform.processor() or '?'}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {time.strftime('%Y-%m-%d')}")
    print("prompts:", " | ".join(repr(p) for p in prompts))
    start = time.perf_counter()
    rows = [reference_row(pairs, tokenizer, base.gen_length, ar, vocabulary)]
    floats = lambda text: [float(t) for t in text.split(",") if t]  # noqa: E731
    settings = grid(base, floats(args.temperatures), args.fewer_steps, floats(args.fewer_steps_temperatures),
                    args.strategies.split(","))
    for config in settings:
        rows.append(run_setting(model, ar, tokenizer, prompts, config, seeds, vocabulary))
        print(f"  {rows[-1].label}: rep3 {rows[-1].mean('rep3'):.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
    print_table(rows)
    print(f"\n{time.perf_counter() - start:.0f} s in all. The app's first run (prompt 'Romeo.\\n', seed 0):\n")
    show_romeo(model, tokenizer, [INTERACTIVE, *[r.config for r in sorted(rows[1:], key=lambda r: r.mean("rep3"))[:4]]])


if __name__ == "__main__":
    main()
