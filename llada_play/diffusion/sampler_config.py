"""One set of sampler options, validated once: :class:`SamplerConfig`.

The sampler (``generate``, ``denoise``, ``generate_many``), the command line (its flags are generated from the
fields below), the app, the comparisons and the traces all take this one dataclass, with one name per option.
"""
from __future__ import annotations

import argparse
import json
import math
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..model.kv_cache import CACHE_MODES
from ..validation import refuse_non_finite

REMASK_SCHEDULES = ("cap", "rescale", "conf", "loop")  # ReMDM's (diffusion/revision.py)
from .remasking import get_scorer


def _option(default, help: str, **cli):
    return field(default=default, metadata={"help": help, **cli})


@dataclass(frozen=True)
class SamplerConfig:
    """How to denoise: the schedule, the choice of tokens, end-of-text handling, speed-ups, randomness.

    Semantics follow LLaDA's ``generate()``: ``gen_length`` tokens are split into blocks of ``block_length``
    filled left to right, each block gets ``steps / num_blocks`` steps, and each step commits
    ceil(masked left / steps left) of the block's masked positions, ranked by the ``remasking`` scorer.
    ``steps`` above ``gen_length`` is clamped to ``gen_length`` with a warning.
    """

    steps: int = _option(128, "denoising steps in all")
    gen_length: int = _option(128, "tokens to generate")
    block_length: int = _option(128, "semi-autoregressive block size (gen_length must be a multiple)")
    temperature: float = _option(0.0, "0 is greedy; above 0, Gumbel-max sampling")
    top_k: int | None = _option(None, "sample among the k most probable tokens only (temperature > 0)")
    top_p: float | None = _option(None, "nucleus sampling: among the fewest most probable tokens whose "
                                        "probabilities add up to top_p (temperature > 0)")
    cfg_scale: float = _option(0.0, "classifier-free guidance scale (0: off)")
    remasking: str = _option("low_confidence", "which predicted tokens to commit first (a remasking strategy)")
    threshold: float | None = _option(None, "confidence-threshold parallel decoding: commit every candidate "
                                            "whose probability is >= this (at least one per step); steps unused")
    entropy_bound: float | None = _option(None, "EB-sampler's commit rule (Ben-Hamu et al. 2025): commit, in "
                                                "remasking order, the most candidates whose entropies (nats) "
                                                "add up to at most this plus the largest of them (at least one "
                                                "per step); steps unused")
    remask: str | None = _option(None, "ReMDM remasking of committed tokens: cap, rescale, conf or loop (default "
                                       "off); the block's committed count still follows the schedule",
                                 choices=REMASK_SCHEDULES)
    remask_eta: float = _option(0.0, "ReMDM's strength eta in (0, 1]: the share of committed tokens sent back "
                                     "a step (cap, conf, loop) or of the most that can be (rescale)")
    remask_window: tuple[float, float] = _option((0.5, 0.75), "ReMDM loop phase: the part of each block's "
                                                              "steps (from, to) that holds the noise level")
    edit_threshold: float | None = _option(None, "token editing (LLaDA 2.1): replace a committed token when the "
                                                 "model's top prediction there differs with at least this "
                                                 "probability (default off)")
    edit_steps: int = _option(0, "token editing: steps a block may take after its last mask is filled, while "
                                 "they still edit")
    eos_token_ids: tuple[int, ...] | None = _option(None, "what counts as end-of-text (default: the model's)")
    forbid_eos: bool = _option(False, "never generate end-of-text (LLaDA's logits_eos_inf)")
    eos_last: bool = _option(False, "commit end-of-text only when nothing else is left in the block")
    confidence_eos_eot_inf: bool = _option(False, "LLaDA's switch: end-of-text/turn scored as confidence 0 "
                                                  "and committed last")
    eos_early_exit: bool = _option(False, "once a block is all end-of-text, fill the rest with end-of-text")
    cache: str | None = _option(None, "approximate block KV cache of Fast-dLLM: prefix or dual (default off)",
                                choices=CACHE_MODES)
    cache_refresh_every: int | None = _option(None, "also refresh the cache every N steps within a block")
    topk: int = _option(0, "record this many alternatives per masked position in the step records")
    seed: int | None = _option(None, "seed for Gumbel noise and the random strategy")

    def __post_init__(self):
        for name in ("gen_length", "block_length", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.gen_length % self.block_length:
            raise ValueError(f"gen_length ({self.gen_length}) must be divisible by block_length ({self.block_length})")
        if self.steps % self.num_blocks:
            raise ValueError(f"steps ({self.steps}) must be divisible by the number of blocks (gen_length / "
                             f"block_length = {self.gen_length} / {self.block_length} = {self.num_blocks})")
        if self.steps > self.gen_length:
            warnings.warn(f"steps ({self.steps}) exceeds the {self.gen_length} tokens to unmask; using steps="
                          f"{self.gen_length} (a step must commit at least one token)", stacklevel=4)
            object.__setattr__(self, "steps", self.gen_length)
        numbers = ("temperature", "cfg_scale", "threshold", "top_p", "entropy_bound", "remask_eta", "edit_threshold")
        for name in numbers:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        refuse_non_finite(self, numbers)
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.cfg_scale < 0:
            raise ValueError(f"cfg_scale must be >= 0, got {self.cfg_scale}")
        get_scorer(self.remasking)  # raises, listing the strategies
        if self.threshold is not None and not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        self._check_sampling_rules()
        if self.cache is not None and self.cache not in CACHE_MODES:
            raise ValueError(f"cache must be one of {list(CACHE_MODES)} or None, got {self.cache!r}")
        for name in ("cache_refresh_every", "seed"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{name} must be an integer or None, got {value!r}")
        if self.seed is not None and not 0 <= self.seed < 2**63:  # what torch.Generator.manual_seed takes
            raise ValueError(f"seed must be in [0, 2**63), got {self.seed}")
        if self.cache_refresh_every is not None and self.cache_refresh_every <= 0:
            raise ValueError(f"cache_refresh_every must be a positive integer or None, got {self.cache_refresh_every}")
        if isinstance(self.topk, bool) or not isinstance(self.topk, int) or self.topk < 0:
            raise ValueError(f"topk must be a non-negative integer, got {self.topk!r}")
        if self.eos_token_ids is not None:
            object.__setattr__(self, "eos_token_ids", tuple(int(t) for t in self.eos_token_ids))

    def _check_sampling_rules(self) -> None:
        if self.top_k is not None and (isinstance(self.top_k, bool) or not isinstance(self.top_k, int)
                                       or self.top_k <= 0):
            raise ValueError(f"top_k must be a positive integer or None, got {self.top_k!r}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if (self.top_k is not None or self.top_p is not None) and self.temperature == 0:
            raise ValueError("top_k/top_p choose among tokens to sample: they need temperature > 0 (at 0 the "
                             "most probable token is taken)")
        if self.entropy_bound is not None and self.entropy_bound < 0:
            raise ValueError(f"entropy_bound must be >= 0, got {self.entropy_bound}")
        if self.entropy_bound is not None and self.threshold is not None:
            raise ValueError("threshold and entropy_bound are two commit rules: choose one")
        self._check_revision()

    def _check_revision(self) -> None:
        if self.remask is not None:
            if self.remask not in REMASK_SCHEDULES:
                raise ValueError(f"unknown remask schedule {self.remask!r}; choose one of {list(REMASK_SCHEDULES)}")
            if not 0 < self.remask_eta <= 1:
                raise ValueError(f"remask_eta must be in (0, 1] with remask={self.remask!r}, got {self.remask_eta}")
            if self.remask == "loop" and self.steps_per_block < 3:
                raise ValueError(f"the loop phase needs at least 3 steps a block (one to commit, one to loop, one "
                                 f"to finish), got {self.steps_per_block}")
            if self.threshold is not None or self.entropy_bound is not None:
                raise ValueError("remask keeps the schedule's count of committed tokens, so it needs the fixed "
                                 "schedule: not with threshold or entropy_bound")
        window = tuple(float(v) for v in self.remask_window)
        if len(window) != 2 or not all(math.isfinite(v) for v in window) or not 0 <= window[0] < window[1] <= 1:
            raise ValueError(f"remask_window must be (from, to) with 0 <= from < to <= 1, got {self.remask_window}")
        object.__setattr__(self, "remask_window", window)
        if self.edit_threshold is not None and not 0 < self.edit_threshold <= 1:
            raise ValueError(f"edit_threshold must be in (0, 1], got {self.edit_threshold}")
        if isinstance(self.edit_steps, bool) or not isinstance(self.edit_steps, int) or self.edit_steps < 0:
            raise ValueError(f"edit_steps must be a non-negative integer, got {self.edit_steps!r}")
        if self.edit_steps and self.edit_threshold is None:
            raise ValueError("edit_steps are steps for token editing: set edit_threshold too")

    @property
    def num_blocks(self) -> int:
        return self.gen_length // self.block_length

    @property
    def steps_per_block(self) -> int:
        return self.steps // self.num_blocks

    def replace(self, **changes) -> "SamplerConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["eos_token_ids"] is not None:
            out["eos_token_ids"] = list(out["eos_token_ids"])
        out["remask_window"] = list(out["remask_window"])
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SamplerConfig":
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown sampler option(s) {unknown}; the options are {option_names()}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "SamplerConfig":
        return cls.from_dict(json.loads(text))

    def describe(self) -> str:
        """A short label: the options that differ from the defaults."""
        default = SamplerConfig()
        changed = [f"{f.name}={getattr(self, f.name)}" for f in fields(self)
                   if getattr(self, f.name) != getattr(default, f.name)]
        return ", ".join(changed) or "defaults"


# What the CLI and the app start from: a short answer in two blocks, quick on a CPU, sampled at temperature 1
# (low_confidence order) with seed 0, so the first run is the same for everyone. Chosen by measurement
# (benchmarks/default_settings.py, figures in benchmarks/RESULTS.md): greedy decoding loops on the shipped
# model (3-gram repetition 0.24 over 20 prompts, "CLOWN." answering "CLOWN."); temperature 1 repeats about as
# little as the corpus itself (0.014 against 0.012) while keeping its words and form.
INTERACTIVE = SamplerConfig(steps=64, gen_length=64, block_length=32, temperature=1.0, seed=0)


def option_names() -> list[str]:
    return [f.name for f in fields(SamplerConfig)]


def add_sampler_arguments(parser: argparse.ArgumentParser, defaults: SamplerConfig = INTERACTIVE) -> None:
    """One command-line flag per :class:`SamplerConfig` field (``--gen-length``...), defaults from ``defaults``:
    the project's one rule from a dataclass to flags (:mod:`llada_play.flags`)."""
    from ..flags import add_config_arguments
    from .remasking import REMASKING

    add_config_arguments(parser.add_argument_group("sampler"), SamplerConfig, defaults,
                         overrides={"remasking": {"choices": sorted(REMASKING)}, "eos_token_ids": {"metavar": "ID"}})


def sampler_config_from_args(args: argparse.Namespace) -> SamplerConfig:
    """The :class:`SamplerConfig` of parsed flags made by :func:`add_sampler_arguments` (the flags given, over the
    defaults it was given)."""
    from ..flags import config_from_args

    return config_from_args(SamplerConfig, args)

