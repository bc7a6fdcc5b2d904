"""Recording a denoising run as a serialisable trace, replaying it, and streaming it to a text streamer."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from .hooks import StepRecord
from .sampler_config import SamplerConfig


@dataclass
class TraceStep:
    block: int
    step: int
    block_step: int
    # [row, position, token, confidence, score] for each token the sampler committed at this step
    commits: list[list] = field(default_factory=list)
    # [row, position, token] committed by a hook after the step (steering)
    forced: list[list] = field(default_factory=list)
    # revisions (diffusion/revision.py): [row, position, old token] sent back to the mask by the sampler,
    # [row, position, old token, new token, probability] replaced by token editing, [row, position] sent back
    # by a hook after the step
    remasked: list[list] = field(default_factory=list)
    edits: list[list] = field(default_factory=list)
    unmasked_by_hook: list[list] = field(default_factory=list)
    # [row, position, predicted token, confidence] at every position still masked before the step
    predictions: list[list] = field(default_factory=list)
    # {"row,position": [[token, probability], ...]} alternatives, when the run asked for top-k
    topk: dict[str, list] = field(default_factory=dict)


@dataclass
class Trace:
    """A whole run: the starting canvas and every step's commits; states are derived by replay."""

    prompt_length: int
    gen_length: int
    block_length: int
    mask_id: int
    initial: list[list[int]]  # (batch, length) canvas before the first step: prompt, constraints, masks
    steps: list[TraceStep] = field(default_factory=list)
    config: dict = field(default_factory=dict)  # the run's SamplerConfig as a dict ({} when not given)
    tokens: dict[str, str] = field(default_factory=dict)  # id -> text piece, when a tokenizer was given

    @property
    def batch_size(self) -> int:
        return len(self.initial)

    def states(self, row: int = 0) -> list[list[int]]:
        """The sequence before the first step and after each step: its commits, remasked tokens and edits,
        then what hooks forced or sent back."""
        seq = list(self.initial[row])
        out = [list(seq)]
        for step in self.steps:
            changes = [(r, pos, token) for r, pos, token, *_ in step.commits]
            changes += [(r, pos, self.mask_id) for r, pos, _ in step.remasked]
            changes += [(r, pos, new) for r, pos, _, new, _ in step.edits]
            changes += [tuple(f) for f in step.forced]
            changes += [(r, pos, self.mask_id) for r, pos in step.unmasked_by_hook]
            for r, pos, token in changes:
                if r == row:
                    seq[pos] = token
            out.append(list(seq))
        return out

    def revisions(self, row: int = 0) -> dict[int, list[tuple[int, int, int]]]:
        """position -> [(step index, old token, new token)] for every token revised after its commit (new is
        the mask id for a token sent back), in order."""
        history: dict[int, list[tuple[int, int, int]]] = {}
        for i, step in enumerate(self.steps):
            for r, pos, old in step.remasked:
                if r == row:
                    history.setdefault(pos, []).append((i, old, self.mask_id))
            for r, pos, old, new, _ in step.edits:
                if r == row:
                    history.setdefault(pos, []).append((i, old, new))
        return history

    def sampler_config(self) -> SamplerConfig:
        """The :class:`SamplerConfig` the run used (ValueError when the trace does not say)."""
        if not self.config:
            raise ValueError("this trace was recorded without its sampler config")
        return SamplerConfig.from_dict(self.config)

    def final(self, row: int = 0) -> list[int]:
        return self.states(row)[-1]

    def commit_step(self, row: int = 0) -> dict[int, int]:
        """position -> index of the step that committed it (sampler or hook)."""
        when = {}
        for i, step in enumerate(self.steps):
            for r, pos, *_ in step.commits + step.forced:
                if r == row:
                    when[pos] = i
        return when

    def to_dict(self) -> dict:
        # shallow on purpose: asdict() deep-copies every nested list, which dominated recording time
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["steps"] = [{f.name: getattr(s, f.name) for f in fields(s)} for s in self.steps]
        return out

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), allow_nan=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_dict(cls, data: dict) -> "Trace":
        """The trace of a dict written by :meth:`to_dict`; ValueError naming the first thing that is not (a file
        from elsewhere, cut short or edited by hand)."""
        check_trace_dict(data)
        steps = [TraceStep(**s) for s in data.get("steps", [])]
        return cls(**{**data, "steps": steps})

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> "Trace":
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            text = Path(text_or_path).read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"not a trace: the text is not JSON ({err.msg} at line {err.lineno})") from None
        return cls.from_dict(data)


TRACE_FIELDS = {f.name for f in fields(Trace)}
STEP_FIELDS = {f.name for f in fields(TraceStep)}
# entries of a step's lists: their lengths, and which of their items are canvas positions and token ids
ENTRY_SHAPES = {"commits": (5, 1, 2), "forced": (3, 1, 2), "remasked": (3, 1, 2), "edits": (5, 1, 2),
                "unmasked_by_hook": (2, 1, None), "predictions": (4, 1, 2)}


def check_trace_dict(data) -> None:
    """Refuse, in one sentence, what :meth:`Trace.from_dict` cannot replay: missing or unknown fields, a ragged
    canvas, steps whose entries are not [row, position, token, ...] within the canvas."""
    if not isinstance(data, dict):
        raise ValueError(f"not a trace: expected a JSON object, got {type(data).__name__}")
    missing = {"prompt_length", "gen_length", "block_length", "mask_id", "initial"} - set(data)
    if missing:
        raise ValueError(f"not a trace: it has no {', '.join(sorted(missing))}")
    unknown = set(data) - TRACE_FIELDS
    if unknown:
        raise ValueError(f"not a trace: unknown fields {', '.join(sorted(unknown))}")
    for name in ("prompt_length", "gen_length", "block_length", "mask_id"):
        if not isinstance(data[name], int) or isinstance(data[name], bool) or data[name] < 0:
            raise ValueError(f"trace field {name} must be a whole number >= 0, got {data[name]!r}")
    initial = data["initial"]
    if not isinstance(initial, list) or not initial or not all(isinstance(r, list) for r in initial):
        raise ValueError("trace field initial must be a list of rows of token ids")
    length = data["prompt_length"] + data["gen_length"]
    if any(len(r) != length for r in initial):
        raise ValueError(f"trace field initial: every row must hold prompt_length + gen_length = {length} tokens")
    if any(not isinstance(t, int) or isinstance(t, bool) for r in initial for t in r):
        raise ValueError("trace field initial: tokens must be whole numbers")
    if data["block_length"] < 1:
        raise ValueError("trace field block_length must be at least 1")
    if not isinstance(data.get("tokens", {}), dict) or not isinstance(data.get("config", {}), dict):
        raise ValueError("trace fields tokens and config must be JSON objects")
    steps = data.get("steps", [])
    if not isinstance(steps, list):
        raise ValueError("trace field steps must be a list")
    rows = len(initial)
    for i, step in enumerate(steps, 1):
        if not isinstance(step, dict) or not {"block", "step", "block_step"} <= set(step) or set(step) - STEP_FIELDS:
            raise ValueError(f"trace step {i}: expected an object with block, step, block_step and the lists of "
                             f"{', '.join(sorted(ENTRY_SHAPES))}")
        for name, (size, pos_at, tok_at) in ENTRY_SHAPES.items():
            entries = step.get(name, [])
            if not isinstance(entries, list):
                raise ValueError(f"trace step {i}: {name} must be a list")
            for entry in entries:
                if not isinstance(entry, list) or len(entry) != size:
                    raise ValueError(f"trace step {i}: each of {name} must be a list of {size} items")
                row, pos = entry[0], entry[pos_at]
                if not (isinstance(row, int) and 0 <= row < rows and isinstance(pos, int) and 0 <= pos < length):
                    raise ValueError(f"trace step {i}: {name} names row {row!r}, position {pos!r}, outside the "
                                     f"{rows} x {length} canvas")
                if tok_at is not None and not isinstance(entry[tok_at], int):
                    raise ValueError(f"trace step {i}: {name} has a token that is not a whole number")


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 6)


class TraceRecorder:
    """A step hook that keeps every :class:`StepRecord` of a run and turns them into a :class:`Trace`.

    It only keeps references during the run (cheap) and converts at :meth:`trace` time, so tokens that later
    hooks force after a step are in the trace whatever the order of the hooks.
    """

    def __init__(self, tokenizer=None, predictions: bool = True, config: SamplerConfig | None = None):
        self.tokenizer = tokenizer
        self.predictions = predictions
        self.config = config.to_dict() if config is not None else {}
        self.records: list[StepRecord] = []
        self.initial: torch.Tensor | None = None

    def __call__(self, record: StepRecord) -> None:
        if self.initial is None:
            self.initial = record.x_before
        self.records.append(record)

    def trace(self) -> Trace:
        if self.initial is None:
            raise ValueError("nothing was recorded: the run had no denoising step")
        initial = self.initial.cpu()
        first = self.records[0]
        mask_id = first.mask_id
        trace = Trace(prompt_length=first.prompt_length, gen_length=first.gen_length,
                      block_length=first.block_length, mask_id=mask_id, initial=initial.tolist(), config=self.config)
        seen: set[int] = set(initial.flatten().tolist())
        for record in self.records:
            step = TraceStep(block=record.block, step=record.step, block_step=record.block_step)
            rows, cols = record.committed.nonzero(as_tuple=True)
            after = record.x_after[rows, cols].tolist()
            conf = record.confidence[rows, cols].tolist()
            score = record.scores[rows, cols].tolist()
            step.commits = [[r, c, t, _finite(p), _finite(s)]
                            for r, c, t, p, s in zip(rows.tolist(), cols.tolist(), after, conf, score)]
            step.forced = [list(f) for f in record.forced]
            step.remasked = [list(r) for r in record.remasked]
            step.edits = [list(e) for e in record.edits]
            step.unmasked_by_hook = [list(u) for u in record.remask_requests]
            if self.predictions:
                m_rows, m_cols = (record.x_before == mask_id).nonzero(as_tuple=True)
                tokens = record.predicted[m_rows, m_cols].tolist()
                probs = record.confidence[m_rows, m_cols].tolist()
                step.predictions = [[r, c, t, _finite(p)]
                                    for r, c, t, p in zip(m_rows.tolist(), m_cols.tolist(), tokens, probs)]
                seen.update(tokens)
            if record.topk_ids is not None:
                m_rows, m_cols = (record.x_before == mask_id).nonzero(as_tuple=True)
                ids = record.topk_ids[m_rows, m_cols].tolist()
                probs = record.topk_probs[m_rows, m_cols].tolist()
                for r, c, i, p in zip(m_rows.tolist(), m_cols.tolist(), ids, probs):
                    step.topk[f"{r},{c}"] = [[t, round(q, 6)] for t, q in zip(i, p)]
                    seen.update(i)
            seen.update(after)
            seen.update(f[2] for f in step.forced)
            seen.update(e[3] for e in step.edits)
            trace.steps.append(step)
        if self.tokenizer is not None:
            trace.tokens = {str(t): self.tokenizer.decode([t]) for t in sorted(seen) if t >= 0}
        return trace


class StreamerHook:
    """Drive a ``transformers`` streamer from the sampler: each step sends the current block as a draft
    (``put_draft``, committed tokens plus the model's current guesses), each finished block is sent as
    confirmed text (``put``), and :meth:`end` closes the stream. Works with ``TextDiffusionStreamer``."""

    def __init__(self, streamer, mask_id: int):
        self.streamer = streamer
        self.mask_id = mask_id
        self.sent_prompt = False
        self.confirmed_until: int | None = None

    def __call__(self, record: StepRecord) -> None:
        x = record.x_after[:1]
        if not self.sent_prompt:
            self.streamer.put(x[0, :record.prompt_length].cpu())
            self.sent_prompt = True
            self.confirmed_until = record.prompt_length
        block_done = not bool((x[0, record.block_start:record.block_end] == self.mask_id).any())
        if block_done:
            self.streamer.put(x[0, self.confirmed_until:record.block_end].cpu())
            self.confirmed_until = record.block_end
        elif hasattr(self.streamer, "put_draft"):
            draft = x[0, self.confirmed_until:record.block_end].clone()
            guesses = record.predicted[0, self.confirmed_until:record.block_end]
            still_masked = draft == self.mask_id
            draft[still_masked] = guesses[still_masked]
            self.streamer.put_draft(draft.cpu()[None])

    def end(self) -> None:
        self.streamer.end()
