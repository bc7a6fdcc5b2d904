"""The one denoising step, over per-run state.

A :class:`~.requests.Run` is one or more rows that go through their blocks together. The engine keeps runs in
the rows ("slots") of one canvas, prompts left-padded to the longest, each run in its own block and step within
the block, and :meth:`DenoisingEngine.step` does one step for all of them with one forward pass:

    forward (full, or a window through the block KV cache) -> logits hooks -> block_logits, forbidden tokens
    -> propose (predict, score, choose commits; :mod:`update`) -> commit -> early exit -> records

Drivers only decide which runs go in and who reads their records: ``denoise``/``generate`` put one run of B
rows alone in an engine (the lockstep case, and the only one where the block KV cache applies: its windowed
pass recomputes one window for every row); ``generate_many`` and the shared sampler put many runs of one row
through a fixed number of slots and refill a finished run's slots at once. Steering asked through a record
(force / forbid / remask / stop) is applied by :meth:`DenoisingEngine.steer`, in the thread that drives the engine,
between two steps.
"""
from __future__ import annotations

import copy

import torch

from ..model.adapters import Denoiser
from ..model.kv_cache import cache_window
from .hooks import LogitsContext, StepRecord, call_logits_hooks
from .remasking import token_probability
from .requests import Run, check_forbidden
from .sampler_config import SamplerConfig
from .revision import remask_counts, revise_block
from .update import (BlockStep, GeneratorChunks, SamplingRules, block_logits, end_rows_after_eos_block,
                     guided_logits, propose)


class DenoisingEngine:
    """A canvas of ``slots`` rows holding runs (see the module's docstring); ``longest``: the longest prompt it
    takes. ``generator``: randomness of runs that have none of their own."""

    def __init__(self, model: Denoiser, config: SamplerConfig, rules: SamplingRules, slots: int, longest: int,
                 generator: torch.Generator | None = None):
        self.model, self.config, self.rules, self.generator = model, config, rules, generator
        self.longest, self.length = longest, longest + config.gen_length
        device, mask_id = model.device, model.mask_id
        self.x = torch.full((slots, self.length), mask_id, dtype=torch.long, device=device)
        self.attention = torch.ones(slots, self.length, dtype=torch.long, device=device)
        self.prompt_index = torch.zeros(slots, self.length, dtype=torch.bool, device=device)
        # what the sampler committed itself: what remasking and editing may revise (never prompt, pins, forced)
        self.revisable = torch.zeros(slots, self.length, dtype=torch.bool, device=device)
        self.revising = config.remask is not None or config.edit_threshold is not None
        self.use_attention = False  # the model gets an attention mask only once a run has padding
        self.owners: list[Run | None] = [None] * slots
        self.runs: list[Run] = []  # in slot order
        self.vocab_size = model.vocab_size
        self.cache = model.new_block_cache() if config.cache else None
        self.window: tuple[int, int] | None = None
        self.stale = True  # the cache needs a full pass
        self.computed: torch.LongTensor | None = None  # slots of the last full pass (the cache's rows)
        self.canvas_logits: torch.Tensor | None = None

    # ---- runs in and out -------------------------------------------------------------------------------------

    @property
    def free(self) -> int:
        return self.owners.count(None)

    def fits(self, run: Run) -> bool:
        return self._free_run_of(run.rows) is not None

    def add(self, run: Run) -> bool:
        """Put a run into free slots; False when they are not free. A run with nothing to denoise (pins fill
        it) is finished at once."""
        first = self._free_run_of(run.rows)
        if first is None:
            return False
        if self.cache is not None and self.runs:
            raise ValueError("the block KV cache serves one run at a time (its windowed pass recomputes one "
                             "window for every row)")
        rows, pad = slice(first, first + run.rows), self.longest - run.prompt_length
        self.x[rows] = self.model.mask_id
        self.x[rows, pad:self.longest] = run.prompt
        if run.pins is not None:
            generation = self.x[rows, self.longest:]
            generation.copy_(torch.where(run.pins >= 0, run.pins, generation))
        self.attention[rows] = 1
        self.attention[rows, :pad] = 0
        if run.attention is not None:
            self.attention[rows, pad:self.longest] = run.attention
        self.use_attention |= pad > 0 or run.attention is not None
        self.prompt_index[rows] = False
        self.revisable[rows] = False
        self.prompt_index[rows, pad:self.longest] = self.attention[rows, pad:self.longest].bool()
        run.first_slot, run.block, run.block_step = first, 0, 0
        self.owners[rows] = [run] * run.rows
        self.runs = sorted([*self.runs, run], key=lambda r: r.first_slot)
        self._enter_block(run)
        return True

    def remove(self, run: Run) -> None:
        """Drop a run (cancelled, abandoned): its slots are free at once."""
        if run in self.runs:
            self.runs.remove(run)
            self.owners[run.slots] = [None] * run.rows

    def fork(self) -> DenoisingEngine:
        """An independent copy (the model shared): the same canvas, runs, block KV cache and generators' states,
        so that both go on from here as two runs."""
        other = copy.copy(self)
        for name in ("x", "attention", "prompt_index", "revisable", "computed", "canvas_logits"):
            value = getattr(self, name)
            setattr(other, name, None if value is None else value.clone())
        if self.cache is not None:
            other.cache = copy.copy(self.cache)
            other.cache.keys = [None if k is None else k.clone() for k in self.cache.keys]
            other.cache.values = [None if v is None else v.clone() for v in self.cache.values]
        other.generator = forked_generator(self.generator)
        runs = {id(run): fork_run(run) for run in self.runs}
        other.runs = [runs[id(run)] for run in self.runs]
        other.owners = [None if owner is None else runs[id(owner)] for owner in self.owners]
        return other

    def canvas(self, run: Run) -> torch.LongTensor:
        """The run's canvas (rows, P + G), live: the engine's own tensor when the run fills it."""
        if run.first_slot == 0 and run.rows == len(self.owners) and run.prompt_length == self.longest:
            return self.x
        return self.x[run.slots, self.longest - run.prompt_length:]

    def _free_run_of(self, rows: int) -> int | None:
        for first in range(len(self.owners) - rows + 1):
            if all(owner is None for owner in self.owners[first:first + rows]):
                return first
        return None

    def _enter_block(self, run: Run) -> None:
        """Move the run past its complete blocks (a filled block costs no forward pass); finish it after its
        last."""
        config = self.config
        while run.block < config.num_blocks:
            start = self.longest + run.block * config.block_length
            if self._block_has_masks(run):
                if self.cache is not None:
                    self.window = cache_window(config.cache, start, start + config.block_length, self.length)
                    self.stale = True
                return
            run.block += 1
            run.block_step = 0
        self._finish(run)

    def _block_has_masks(self, run: Run) -> bool:
        """Whether the run's current block still has a mask in any of its rows."""
        start = self.longest + run.block * self.config.block_length
        return bool((self.x[run.slots, start:start + self.config.block_length] == self.model.mask_id).any())

    def _generator_of(self, run: Run) -> torch.Generator | None:
        return self.generator if run.generator is None else run.generator

    def _finish(self, run: Run, error: BaseException | None = None) -> None:
        run.output = self.canvas(run).clone()
        run.finished, run.error = True, error
        self.remove(run)

    # ---- steering ----------------------------------------------------------------------------------------------

    def steer(self, run: Run, record: StepRecord) -> None:
        """Apply what a consumer asked through ``record`` before the run's next step: forced tokens (committed
        now), forbidden tokens (kept out from the next step on), tokens sent back to the mask, stop. ValueError
        for a request that cannot be met; the run is then left as it was."""
        if not (record.forced or record._forbidden or record._remask or record.stopped):
            return
        if run.finished:  # its slots may hold another run by now
            for row, pos, _ in record.forced:
                raise ValueError(f"cannot force a token at row {row}, position {pos}: the run has ended")
            for row, pos in record._remask:
                raise ValueError(f"cannot remask row {row}, position {pos}: the run has ended")
            return
        self._check_steering(run, record)
        x, pad = self.x[run.slots], self.longest - run.prompt_length
        revisable = self.revisable[run.slots]
        changed = [pad + pos for _, pos, _ in record.forced] + [pad + pos for _, pos in record._remask]
        for row, pos, token in record.forced:
            x[row, pad + pos] = token
        for row, pos in record._remask:
            x[row, pad + pos], revisable[row, pad + pos] = self.model.mask_id, False
        if self.window and any(not self.window[0] <= col < self.window[1] for col in changed):
            self.stale = True  # the cache's keys there came from other tokens
        run.forbidden.extend(record._forbidden)
        if record.stopped:
            self._finish(run)
        elif record.forced and not self._block_has_masks(run):
            self._enter_block(run)  # the forced tokens filled the block: on to the next

    def _check_steering(self, run: Run, record: StepRecord) -> None:
        """ValueError for a request that cannot be met, before anything is changed."""
        mask_id, gen_length, length = self.model.mask_id, self.config.gen_length, run.prompt_length
        x, pad = self.x[run.slots], self.longest - length
        for row, pos, token in record.forced:
            if not (0 <= row < run.rows and length <= pos < length + gen_length):
                raise ValueError(f"cannot force a token at row {row}, position {pos}: outside the generation")
            if x[row, pad + pos] != mask_id:
                raise ValueError(f"cannot force a token at row {row}, position {pos}: already committed")
            if self.vocab_size is not None and not 0 <= token < self.vocab_size:
                raise ValueError(f"forced token {token} is outside the vocabulary of {self.vocab_size}")
        for row, pos, token in record._forbidden:
            if not 0 <= row < run.rows:
                raise ValueError(f"cannot forbid a token at row {row}: the run has {run.rows} rows")
            check_forbidden(token, pos, length, gen_length, self.vocab_size)
        block_start = length + run.block * self.config.block_length
        for row, pos in record._remask:
            where = f"cannot remask row {row}, position {pos}"
            if not (0 <= row < run.rows and length <= pos < length + gen_length):
                raise ValueError(f"{where}: outside the generation")
            if x[row, pad + pos] == mask_id:
                raise ValueError(f"{where}: it is masked already")
            if run.pins is not None and run.pins[row, pos - length] >= 0:
                raise ValueError(f"{where}: a pinned token")
            if pos < block_start:
                raise ValueError(f"{where}: its block is done (the sampler fills the current block and later "
                                 "ones)")

    # ---- the step ----------------------------------------------------------------------------------------------

    def step(self) -> list[Run]:
        """One denoising step for every run not held; returns the runs that ended at it (their slots are
        free). Every stepped run's record is in ``run.record`` (and sent to ``run.on_step``)."""
        runs = [run for run in self.runs if not run.held]
        if not runs:
            return []
        slots = torch.cat([torch.arange(r.first_slot, r.first_slot + r.rows) for r in runs]).to(self.x.device)
        whole = len(slots) == len(self.owners)  # then the table is the canvas itself, no copy
        xt = self.x if whole else self.x[slots]
        offsets = [0]
        for run in runs:
            offsets.append(offsets[-1] + run.rows)
        observed = any(run.observe or run.logits_hooks for run in runs)
        x_before = xt.clone() if observed else None
        logits = self._logits(xt, slots, whole, runs)
        self._call_logits_hooks(runs, offsets, logits, xt, x_before)
        starts = torch.cat([torch.full((r.rows,), self.longest + r.block * self.config.block_length)
                            for r in runs]).to(xt.device)
        same_block = all(r.block == runs[0].block for r in runs)
        width = self.config.block_length
        cols = None if same_block else starts[:, None] + torch.arange(width, device=xt.device)
        rv = (self.revisable if whole else self.revisable[slots]) if self.revising else None
        update, candidates, back = self._propose(xt, rv, logits, runs, offsets, starts, cols)
        revised = self._commit(xt, rv, update, candidates, back, runs, starts, cols)
        if rv is not None and not whole:
            self.revisable[slots] = rv
        filled = end_rows_after_eos_block(xt, starts, starts + width, self.rules.eos_ids, self.model.mask_id) \
            if self.config.eos_early_exit else None
        if not whole:
            self.x[slots] = xt
        if any(run.observe for run in runs):
            fields = self._predictions(logits, x_before, update, candidates, starts, cols, filled)
        else:
            fields = None
        return self._after_step(runs, offsets, xt, x_before, fields, revised)

    def _block(self, table: torch.Tensor, starts: torch.Tensor, cols) -> torch.Tensor:
        """The rows' current blocks of a (rows, length) table: a view when all share one block."""
        if cols is None:
            start = int(starts[0])
            return table[:, start:start + self.config.block_length]
        return table.gather(1, cols)

    def _put_block(self, table: torch.Tensor, block: torch.Tensor, starts: torch.Tensor, cols) -> None:
        if cols is None:
            start = int(starts[0])
            table[:, start:start + self.config.block_length] = block
        else:
            table.scatter_(1, cols, block)

    def _commit(self, xt, rv, update, candidates, back, runs, starts, cols):
        """Write the step's commits, then its revisions (:mod:`revision`), into the table; returns the
        revisions as (remasked, edited, old block, new block, edit probability) tables, or None."""
        block_x = self._block(xt, starts, cols)
        new_block = torch.where(update.commit, update.proposal, block_x)
        revised = None
        if rv is not None:
            revisable = self._block(rv, starts, cols)
            now = revisable
            if self.computed is not None:  # rows the model skipped have no logits (zeros): not revised now
                skipped = torch.ones(len(revisable), dtype=torch.bool, device=revisable.device)
                skipped[self.computed] = False
                now = revisable & ~skipped[:, None]
            chunks = [(r.rows, self._generator_of(r)) for r in runs]
            remasked, edited, probability = revise_block(new_block, block_x, now, candidates, back,
                                                         self.config, self.model.mask_id, chunks)
            if bool(remasked.any() or edited.any()):
                revised = (remasked, edited, block_x.clone(), new_block, probability)
            self._put_block(rv, (revisable | update.commit) & ~remasked, starts, cols)
        self._put_block(xt, new_block, starts, cols)
        return revised

    def _logits(self, xt, slots, whole, runs) -> torch.Tensor:
        """The model's logits over the table: only rows with masks left are computed (the others get zeros,
        never read); with the block KV cache, a full pass at a block's first step (and every
        ``cache_refresh_every`` steps) and windowed passes over the block in between, rows re-selected at full
        passes only so that the cache's rows always match."""
        every, block_step = self.config.cache_refresh_every, runs[0].block_step
        if self.cache is None or self.stale or (every and block_step % every == 0):
            if xt.shape[0] > 1:
                busy = (xt == self.model.mask_id).any(1)
                first = 0
                for run in runs:  # a full block still editing needs its logits too
                    busy[first:first + run.rows] |= run.edit_steps > 0
                    first += run.rows
                self.computed = None if bool(busy.all()) else busy.nonzero().flatten()
            else:
                self.computed = None
            logits, self.stale = self._pass(xt, slots, whole, None), False
            if self.cache is None:
                return self._learn_vocabulary(logits)
            self.canvas_logits = logits
        else:
            start, stop = self.window
            self.canvas_logits[:, start:stop] = self._pass(xt, slots, whole, self.window)
        return self._learn_vocabulary(self.canvas_logits)

    def _pass(self, xt, slots, whole, window) -> torch.Tensor:
        mask = (self.attention if whole else self.attention[slots]) if self.use_attention else None
        prompt_index = self.prompt_index if whole else self.prompt_index[slots]
        rows = self.computed
        args = (self.config.cfg_scale, self.model.mask_id, self.cache, window)
        if rows is None:
            return guided_logits(self.model, xt, mask, args[0], prompt_index, *args[1:])
        logits = guided_logits(self.model, xt[rows], None if mask is None else mask[rows], args[0],
                               prompt_index[rows], *args[1:])
        full = logits.new_zeros((xt.shape[0],) + logits.shape[1:])
        full[rows] = logits
        return full

    def _learn_vocabulary(self, logits: torch.Tensor) -> torch.Tensor:
        if self.vocab_size is None:  # models that do not say: learnt from the first step's logits
            self.vocab_size = logits.shape[-1]
            if self.model.mask_id >= self.vocab_size:
                raise ValueError(f"mask id {self.model.mask_id} is missing from the model's vocabulary of "
                                 f"{self.vocab_size}")
        return logits

    def _call_logits_hooks(self, runs, offsets, logits, xt, x_before) -> None:
        """Each run's hooks see its own rows and canvas (no padding), as in a run alone; an edited tensor they
        return is written back. A hook that raises ends its run with the error."""
        for run, first in zip(runs, offsets):
            if not run.logits_hooks:
                continue
            pad, rows = self.longest - run.prompt_length, slice(first, first + run.rows)
            start = run.prompt_length + run.block * self.config.block_length
            own = logits if logits.shape[0] == run.rows and pad == 0 else logits[rows, pad:]
            x = x_before[rows, pad:]
            context = LogitsContext(run.block, run.steps, run.block_step, x, x == self.model.mask_id, start,
                                    start + self.config.block_length)
            try:
                edited = call_logits_hooks(run.logits_hooks, context, own)
            except Exception as err:
                run.error = err
                continue
            if edited is not own:
                logits[rows, pad:] = edited

    def _propose(self, xt, rv, logits, runs, offsets, starts, cols):
        """The update for every row's current block, as a (rows, block_length) table, and under a remasking
        schedule how many tokens each row sends back."""
        config, width = self.config, self.config.block_length
        block_x = self._block(xt, starts, cols)
        if cols is None:  # one block for all: slices, no gather (the lockstep run, the common case)
            start = int(starts[0])
            candidates = block_logits(logits[:, start:start + width], self.rules)
        else:  # (row, column) pairs: gather/scatter over an index expanded to the vocabulary took 5x longer
            candidates = block_logits(logits[torch.arange(len(xt), device=xt.device)[:, None], cols], self.rules)
        self._forbid(candidates, runs, offsets, starts)
        counts = back = None
        if config.remask is not None:
            decoded = self._block(rv, starts, cols).sum(1)
            masked = (block_x == self.model.mask_id).sum(1)
            parts = [remask_counts(config, r.block_step, decoded[o:o + r.rows], masked[o:o + r.rows],
                                   self._generator_of(r))
                     for r, o in zip(runs, offsets)]
            counts, back = torch.cat([c for c, _ in parts]), torch.cat([b for _, b in parts])
        steps_left = [max(config.steps_per_block - r.block_step, 1) for r in runs]
        if all(s == steps_left[0] for s in steps_left):
            left = steps_left[0]
        else:
            left = torch.cat([torch.full((r.rows,), s) for r, s in zip(runs, steps_left)]).to(xt.device)
        update = propose(block_x, candidates, left, self.rules, self._generators(runs), starts, xt.shape[1], counts)
        return update, candidates, back

    def _forbid(self, candidates, runs, offsets, starts) -> None:
        for run, first in zip(runs, offsets):
            if run.forbid_anywhere is not None:
                candidates[first:first + run.rows, :, run.forbid_anywhere] = float("-inf")
            pad = self.longest - run.prompt_length
            for row, pos, token in run.forbidden:
                col = pad + pos - int(starts[first])
                if 0 <= col < self.config.block_length:
                    candidates[first + row, col, token] = float("-inf")

    def _generators(self, runs):
        """One generator for the table, or one per run: each run then draws exactly what it would alone."""
        own = [self._generator_of(r) for r in runs]
        if all(g is own[0] for g in own):
            return own[0]
        return GeneratorChunks(zip([r.rows for r in runs], own))

    def _predictions(self, logits, x_before, update, candidates, starts, cols, filled) -> dict:
        """What records hold besides the canvas: the block's logits as edited for the step (forbidden tokens
        out), then :func:`step_predictions`."""
        width = self.config.block_length
        if cols is None:
            start = int(starts[0])
            block = logits[:, start:start + width]
            if block.data_ptr() != candidates.data_ptr():
                block.copy_(candidates)
        else:
            logits[torch.arange(len(logits), device=logits.device)[:, None], cols] = candidates.to(logits.dtype)
        return step_predictions(logits, x_before == self.model.mask_id, update, starts, self.config.topk, filled)

    def _after_step(self, runs, offsets, xt, x_before, fields, revised) -> list[Run]:
        """Records, counters, and the runs that ended (a hook's error, a complete last block, early exit)."""
        config, mask_id, ended = self.config, self.model.mask_id, []
        for run, first in zip(runs, offsets):
            pad, rows = self.longest - run.prompt_length, slice(first, first + run.rows)
            start = run.prompt_length + run.block * config.block_length
            record = StepRecord(block=run.block, step=run.steps, block_step=run.block_step,
                                prompt_length=run.prompt_length, gen_length=config.gen_length,
                                block_length=config.block_length, mask_id=mask_id, block_start=start,
                                block_end=start + config.block_length, _refusal=run.steering,
                                x_after=xt[rows, pad:].clone() if run.observe else self.canvas(run))
            if run.observe:
                record.x_before = x_before[rows, pad:]
                for name, value in fields.items():
                    setattr(record, name, value[rows, pad:])
            if revised is not None:
                record.remasked, record.edits = revisions_of(revised, rows, start)
            run.record = record
            run.steps += 1
            run.block_step += 1
            if run.error is not None:
                self._finish(run, run.error)
            else:
                self._after_block_step(run, bool(record.edits))
            if run.on_step is not None:
                run.on_step(record)
            if run.finished:
                ended.append(run)
        return ended

    def _after_block_step(self, run: Run, edited: bool) -> None:
        """Next block once this one has no mask left; under token editing a full block then takes up to
        ``edit_steps`` more steps, until one of them edits nothing."""
        if self._block_has_masks(run):
            return
        if (edited or run.edit_steps == 0) and run.edit_steps < self.config.edit_steps:
            run.edit_steps += 1
            return
        run.edit_steps = 0
        self._enter_block(run)


def forked_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """A generator that draws from here on what ``generator`` would."""
    if generator is None:
        return None
    other = torch.Generator(device=generator.device)
    other.set_state(generator.get_state())
    return other


def fork_run(run: Run) -> Run:
    """A copy of a run's state that can go its own way: its own generator, forbids and last record."""
    other = copy.copy(run)
    other.generator = forked_generator(run.generator)
    other.forbidden = list(run.forbidden)
    if run.record is not None:
        other.record = copy.copy(run.record)
        for name in ("_forced", "_forbidden", "_remask"):
            setattr(other.record, name, list(getattr(run.record, name)))
    return other


def revisions_of(revised, rows: slice, block_start: int) -> tuple[list, list]:
    """One run's remasked tokens (row, position, old) and edits (row, position, old, new, probability) from
    the step's revision tables (positions on the run's canvas, ``block_start`` its block's first)."""
    remasked, edited, old, new, probability = (table[rows] for table in revised)
    back = [(r, block_start + c, int(old[r, c])) for r, c in remasked.nonzero().tolist()]
    changes = [(r, block_start + c, int(old[r, c]), int(new[r, c]), round(float(probability[r, c]), 6))
               for r, c in edited.nonzero().tolist()]
    return back, changes


def step_predictions(logits, mask_index, update: BlockStep, start: int | torch.Tensor, topk: int,
                     filled=None) -> dict:
    """What a record holds besides the sequence: predictions and confidences at every masked position, not only
    in the current block, so that a viewer can show what the model thinks of the whole canvas. ``start``: where
    the block begins, for all rows or per row (a LongTensor, rows in different blocks)."""
    batch, length = mask_index.shape
    device = mask_index.device
    rows = update.rows
    committed = torch.zeros_like(mask_index)
    c_rows, c_cols = update.commit.nonzero(as_tuple=True)
    per_row = isinstance(start, torch.Tensor)
    committed[c_rows, c_cols + (start[c_rows] if per_row else start)] = True
    cols = update.cols + (start[rows] if per_row else start)  # the candidates' canvas positions
    if filled is not None:
        committed |= filled
    m_rows, m_cols = mask_index.nonzero(as_tuple=True)
    masked_logits = logits[m_rows, m_cols].float()
    # one pass for the argmax and its probability: p(argmax) = exp(max - logsumexp)
    best, best_ids = masked_logits.max(-1)
    predicted = torch.full(mask_index.shape, -1, dtype=torch.long, device=device)
    predicted[m_rows, m_cols] = best_ids
    confidence = torch.full(mask_index.shape, float("nan"), device=device)
    confidence[m_rows, m_cols] = (best - masked_logits.logsumexp(-1)).exp()
    # Inside the block, report the token the sampler actually proposed (sampled when temperature > 0).
    proposed = update.proposal[rows, update.cols]
    predicted[rows, cols] = proposed
    confidence[rows, cols] = token_probability(update.logits, proposed)
    scores = torch.full(mask_index.shape, float("nan"), device=device)
    scores[rows, cols] = update.scores[rows, update.cols]
    fields = dict(committed=committed, predicted=predicted, confidence=confidence, scores=scores)
    if topk:
        best = masked_logits.softmax(-1).topk(topk, dim=-1)
        fields["topk_ids"] = torch.full((batch, length, topk), -1, dtype=torch.long, device=device)
        fields["topk_probs"] = torch.zeros((batch, length, topk), device=device)
        fields["topk_ids"][m_rows, m_cols], fields["topk_probs"][m_rows, m_cols] = best.indices, best.values
    return fields
