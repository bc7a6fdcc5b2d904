"""A few-shot task that can only be solved from the context, for the in-context-learning experiment.

Every prompt draws a fresh mapping from a few keys to labels and shows ``shots`` examples of it, one per line, then
asks for the label of one key that the examples show::

    <|endoftext|>dakul -> red
    mipo -> gold
    dakul -> red
    suvet -> gold
    mipo ->                     answer: " gold"

The mapping is new in every prompt, so a model cannot memorise it: with no examples the best score is chance
(``1 / labels_per_prompt`` when the prompt's labels are ranked), and every prompt's answer is the label its own
examples give the asked key. Parts of the format:

- **keys** are invented two-syllable words ("dakul", "mipo"); 10% of them are held out of training
  (:data:`HELD_OUT_KEYS`), and the evaluation asks about those only. ``keys_per_prompt`` keys appear in a prompt
  (fewer when it has fewer examples); every key shown gets at least one example.
- **labels** are six colour words, one token each for the shipped tokenizer; ``labels_per_prompt`` of them are
  drawn for each prompt and each key gets one of them at random.
- **formats** (:data:`FORMATS`): the separator between a key and its label, one per prompt (``"{key} ->"``,
  ``"{key}:"``, ``"{key} ="``, ``"{key} is"``), drawn at random unless the task fixes one.
- **variants**: ``fresh`` (invented keys), ``agreeing`` (real words with a colour of their own, "snow" -> white,
  labelled with it) and ``flipped`` (the same words and labels, each label moved to the next one of the prompt's
  labels, so that no word gets its own colour). In training, prompts of real words (``known_share`` of them) give a
  word its own colour ``prior_strength`` of the time: a prior. A model that reads the context scores ``flipped``
  as it scores ``fresh``; one that leans on the prior scores it below chance (Wei et al. 2023, "Larger language
  models do in-context learning differently", flipped labels).
- **layouts**: ``before`` puts the examples before the question (the only one a left-to-right model can read);
  ``after`` asks first and gives the examples after the question, the answer's slot in place.

Training text is the same lines, prompts of 0 to ``max_shots`` examples each, followed by their answer and
end-of-text (:func:`training_texts`).
"""
from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass, field

LABELS = ("red", "green", "white", "black", "gold", "silver")
# Real words with a colour of their own: the prior of the "agreeing" and "flipped" variants.
KNOWN = {
    "white": ("snow", "milk", "salt", "pearl", "bone", "tooth"),
    "black": ("coal", "ink", "night", "crow", "raven"),
    "red": ("blood", "rose", "fire", "cherry", "wine"),
    "green": ("grass", "leaf", "frog", "moss"),
    "gold": ("sun", "corn", "lemon", "honey"),
    "silver": ("moon", "iron", "tin", "frost"),
}
HOME = {word: colour for colour, words in KNOWN.items() for word in words}
FORMATS = ("{key} ->", "{key}:", "{key} =", "{key} is")
VARIANTS = ("fresh", "agreeing", "flipped")
LAYOUTS = ("before", "after")
SHOTS = (0, 1, 2, 4, 8, 16)  # the shots curve's points

_ONSETS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


def _invented_keys() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(training keys, held-out keys): every consonant-vowel-consonant-vowel(-consonant) word of the letters
    above that is not a real word of :data:`HOME`, in a fixed shuffled order; every tenth one held out."""
    words = ["".join(p) for p in itertools.product(_ONSETS, _VOWELS, _ONSETS, _VOWELS)]
    words += [w + c for w in words[::7] for c in "lnt"]
    words = sorted(set(words) - set(HOME))
    random.Random(0).shuffle(words)
    held = tuple(w for i, w in enumerate(words) if i % 10 == 0)
    return tuple(w for i, w in enumerate(words) if i % 10), held


TRAINING_KEYS, HELD_OUT_KEYS = _invented_keys()


@dataclass(frozen=True)
class FewShotTask:
    """The settings of one kind of prompt."""

    shots: int = 4  # examples before (or after) the question
    keys_per_prompt: int = 4  # distinct keys in a prompt (at most ``shots``)
    labels_per_prompt: int = 3  # labels a prompt's keys are mapped to; ranking chooses among them
    variant: str = "fresh"  # fresh | agreeing | flipped
    layout: str = "before"  # before: examples, then the question; after: the question, then the examples
    format: str | None = None  # one of FORMATS for every prompt; None draws one per prompt
    held_out: bool = True  # fresh keys from HELD_OUT_KEYS (evaluation) or TRAINING_KEYS (training)

    def __post_init__(self):
        if not isinstance(self.shots, int) or self.shots < 0:
            raise ValueError(f"shots must be a whole number >= 0, got {self.shots!r}")
        if self.keys_per_prompt < 1:
            raise ValueError(f"keys_per_prompt must be >= 1, got {self.keys_per_prompt}")
        if not 2 <= self.labels_per_prompt <= len(LABELS):
            raise ValueError(f"labels_per_prompt must be between 2 and {len(LABELS)} (the labels there are: "
                             f"{', '.join(LABELS)}), got {self.labels_per_prompt}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.format is not None and self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS} or None, got {self.format!r}")
        if self.variant != "fresh":
            fewest = min(len(words) for words in KNOWN.values())
            if self.keys_per_prompt > fewest * self.labels_per_prompt:
                raise ValueError(f"{self.variant} prompts have at most {fewest * self.labels_per_prompt} real words "
                                 f"for {self.labels_per_prompt} labels, asked for {self.keys_per_prompt} keys")

    @property
    def chance(self) -> float:
        """The expected score of a guess among the prompt's labels."""
        return 1 / self.labels_per_prompt


@dataclass(frozen=True)
class FewShotPrompt:
    """One prompt: its examples (key, label) in order, the asked key and its answer, the labels it was drawn from,
    the separator format and the layout."""

    examples: tuple[tuple[str, str], ...]
    key: str
    answer: str
    labels: tuple[str, ...]
    format: str
    layout: str = "before"

    def line(self, key: str, label: str | None = None) -> str:
        """One example line, or the question's line up to its answer when ``label`` is None."""
        head = self.format.format(key=key)
        return head if label is None else f"{head} {label}"

    def before_answer(self) -> str:
        """The text up to the answer's slot (the examples first in the ``before`` layout)."""
        if self.layout == "after":
            return self.line(self.key)
        return "".join(self.line(k, v) + "\n" for k, v in self.examples) + self.line(self.key)

    def after_answer(self) -> str:
        """The text after the answer (the examples in the ``after`` layout; nothing in ``before``)."""
        if self.layout == "before":
            return ""
        return "".join("\n" + self.line(k, v) for k, v in self.examples)

    def text(self) -> str:
        """The whole prompt with its answer filled in: what a training document holds."""
        return f"{self.before_answer()} {self.answer}{self.after_answer()}"

    def determined(self) -> bool:
        """Whether the examples give the asked key exactly one label, the answer."""
        given = {v for k, v in self.examples if k == self.key}
        return given == {self.answer}


def _assign(keys: list[str], labels: list[str], task: FewShotTask, rng: random.Random,
            prior_strength: float) -> dict[str, str]:
    if task.variant == "fresh":
        return {k: rng.choice(labels) for k in keys}
    if task.variant == "agreeing":
        return {k: HOME[k] if rng.random() < prior_strength else rng.choice([c for c in labels if c != HOME[k]])
                for k in keys}
    shifted = {c: labels[(i + 1) % len(labels)] for i, c in enumerate(labels)}  # flipped: each to the next label
    return {k: shifted[HOME[k]] for k in keys}


def draw_prompt(task: FewShotTask, rng: random.Random, prior_strength: float = 1.0) -> FewShotPrompt:
    """One prompt of ``task``. ``prior_strength``: for ``agreeing`` prompts, how often a real word gets its own
    colour (training uses less than 1, so that its context can overrule the prior)."""
    labels = rng.sample(LABELS, task.labels_per_prompt)
    count = min(task.keys_per_prompt, task.shots) if task.shots else 1
    if task.variant == "fresh":
        keys = rng.sample(HELD_OUT_KEYS if task.held_out else TRAINING_KEYS, count)
    else:
        pool = [w for c in labels for w in KNOWN[c]]
        keys = rng.sample(pool, count)
    mapping = _assign(keys, labels, task, rng, prior_strength)
    shown = keys + [rng.choice(keys) for _ in range(task.shots - count)] if task.shots else []
    rng.shuffle(shown)
    key = rng.choice(shown) if shown else keys[0]
    return FewShotPrompt(tuple((k, mapping[k]) for k in shown), key, mapping[key], tuple(labels),
                         task.format or rng.choice(FORMATS), task.layout)


_LINE = re.compile(r"^\s*(\S+?)(?:\s*(->|:|=)\s*|\s+(is)\s+)(\S+)\s*$")
_FORMAT_OF = {f.format(key="").strip(): f for f in FORMATS}  # "->" -> "{key} ->"


def parse_examples(text: str) -> tuple[list[tuple[str, str]], str]:
    """(the (key, label) pairs, the format of the first) of lines like ``dakul -> red`` (any separator of
    :data:`FORMATS`: ``->``, ``:``, ``=``, ``is``), one a line, blank lines skipped; a line that is not one key, a
    separator and one label is refused, naming its number."""
    pairs, formats = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if not match:
            raise ValueError(f"line {number} ({line.strip()[:40]!r}) is not an example: write one key, a separator "
                             "(->, :, = or is) and one label, e.g. 'dakul -> red'")
        pairs.append((match.group(1), match.group(4)))
        formats.append(_FORMAT_OF[match.group(2) or match.group(3)])
    return pairs, formats[0] if formats else FORMATS[0]


def own_prompt(examples: list[tuple[str, str]], key: str, layout: str = "before",
               format: str = FORMATS[0]) -> FewShotPrompt:
    """A prompt of someone's own examples asking for ``key``: its answer is the one label the examples give the key
    ("" where they give none, or several); it is ranked among the examples' labels (all of :data:`LABELS` where
    they show fewer than two)."""
    key = key.strip()
    if not key or len(key.split()) != 1:
        raise ValueError(f"ask for one key (one word), got {key!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    given = {label for k, label in examples if k == key}
    labels = tuple(dict.fromkeys(label for _, label in examples))
    return FewShotPrompt(tuple(examples), key, given.pop() if len(given) == 1 else "",
                         labels if len(labels) >= 2 else LABELS, format, layout)


def draw_prompts(task: FewShotTask, count: int, seed: int) -> list[FewShotPrompt]:
    """``count`` prompts of ``task``, the same for the same seed."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    rng = random.Random(f"{seed}-{task}")
    return [draw_prompt(task, rng) for _ in range(count)]


@dataclass(frozen=True)
class TrainingMix:
    """What the models are trained on: prompts of 0 to ``max_shots`` examples, ``known_share`` of them of real words
    whose own colour they get ``prior_strength`` of the time, the rest of fresh training keys."""

    max_shots: int = 16
    keys_per_prompt: int = 4
    labels_per_prompt: int = 3
    known_share: float = 0.25
    prior_strength: float = 0.9
    layouts: tuple[str, ...] = field(default=("before",))

    def __post_init__(self):
        if self.max_shots < 1:
            raise ValueError(f"max_shots must be >= 1, got {self.max_shots}")
        if not 0 <= self.known_share <= 1 or not 0 <= self.prior_strength <= 1:
            raise ValueError(f"known_share and prior_strength must be in [0, 1], got {self.known_share} and "
                             f"{self.prior_strength}")
        FewShotTask(self.max_shots, self.keys_per_prompt, self.labels_per_prompt)  # its checks


def training_texts(mix: TrainingMix, count: int, seed: int) -> list[str]:
    """``count`` training documents (each a prompt with its answer), seeded."""
    rng = random.Random(f"train-{seed}")
    texts = []
    for _ in range(count):
        variant = "agreeing" if rng.random() < mix.known_share else "fresh"
        task = FewShotTask(rng.randint(0, mix.max_shots), mix.keys_per_prompt, mix.labels_per_prompt, variant,
                           rng.choice(mix.layouts), held_out=False)
        texts.append(draw_prompt(task, rng, mix.prior_strength).text())
    return texts


def prompt_tokens(tokenizer, prompt: FewShotPrompt) -> int:
    """Tokens of the whole prompt with its answer and the end-of-text before it."""
    return 1 + len(tokenizer(prompt.text(), add_special_tokens=False).input_ids)


def longest_prompt_tokens(tokenizer, shots: int) -> int:
    """An upper bound on the tokens of any prompt with ``shots`` examples (and of a training document with that
    many): the longest line, times the lines, plus the end-of-text."""
    keys = [*TRAINING_KEYS, *HELD_OUT_KEYS, *HOME]
    widest_key = max(len(tokenizer(k, add_special_tokens=False).input_ids) for k in keys)
    widest_rest = max(len(tokenizer(f.format(key="") + f" {label}\n", add_special_tokens=False).input_ids)
                      for f in FORMATS for label in LABELS)
    return 1 + (shots + 1) * (widest_key + widest_rest)


def check_fits(tokenizer, shots: int, context: int) -> None:
    """Refuse ``shots`` examples that may not fit a context of ``context`` tokens, naming the most that do."""
    if longest_prompt_tokens(tokenizer, shots) > context:
        most = max((k for k in range(shots) if longest_prompt_tokens(tokenizer, k) <= context), default=0)
        raise ValueError(f"{shots} examples may need {longest_prompt_tokens(tokenizer, shots)} tokens, more than "
                         f"the context of {context}; at most {most} fit")


def check_labels(tokenizer) -> None:
    """The experiment scores a label as one token after a space; refuse a tokenizer that splits one."""
    split = [c for c in LABELS if len(tokenizer(f" {c}", add_special_tokens=False).input_ids) != 1]
    if split:
        raise ValueError(f"the labels must be one token each for this tokenizer, and {', '.join(split)} are not")
