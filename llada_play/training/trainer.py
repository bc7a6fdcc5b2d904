"""The training loop: pre-training, SFT and the autoregressive baseline, with step hooks and exact resume.

A hand-written loop (nanoGPT style) rather than ``transformers.Trainer``: the three objectives are three
loss functions, the hooks are plain callables, and an exact resume after SIGKILL only needs the model,
optimizer, schedule and two generators saved together (see docs/ARCHITECTURE.md).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import distributed
from ..model.adapters import Denoiser, as_denoiser
from ..model.checkpoint import atomic_directory
from ..model.errors import CheckpointError
from ..validation import refuse_non_finite
from ..diffusion.losses import autoregressive_loss, pretrain_loss, replacement_tokens, sft_loss

OBJECTIVES = ("pretrain", "sft", "autoregressive")


@dataclass
class TrainConfig:
    objective: str = "pretrain"  # pretrain | sft | autoregressive
    output_dir: str = "runs/default"  # run directory (checkpoints, metrics.jsonl, final/)
    max_steps: int = 1000  # optimizer steps
    lr: float = 1e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # the cosine decays to lr * min_lr_ratio
    warmup_steps: int = 100  # linear warm-up steps before the cosine decay
    weight_decay: float = 0.1  # AdamW weight decay
    beta1: float = 0.9  # AdamW beta1
    beta2: float = 0.95  # AdamW beta2
    grad_clip: float = 1.0  # clip the gradient norm to this
    grad_accum: int = 1  # batches accumulated per optimizer step
    mask_eps: float = 1e-3  # the smallest masking ratio drawn (t in [eps, 1])
    random_length_prob: float = 0.01  # pretrain: share of batches cut to a random length, as LLaDA does
    fixed_mask_ratio: float | None = None  # pretrain only: one ratio for all sequences (0.15: the BERT-style baseline)
    edit_ratio: float = 0.0  # token editing (pretrain, sft): share of visible tokens corrupted and restored; 0: off
    seed: int = 0  # seed of the masks and the data order
    precision: str = "auto"  # auto (bf16 where the device runs it fast) | bf16 | fp32
    device: str = "cpu"  # where to train (cpu, cuda, cuda:1...)
    log_every: int = 10  # steps between rows of metrics.jsonl
    save_every: int = 250  # steps between checkpoints
    keep_last: int = 2  # checkpoints kept
    progress: bool = True  # show a progress bar
    ddp_backend: str = "auto"  # several processes: auto (nccl on GPUs, gloo on CPU) | gloo | nccl

    def __post_init__(self):
        refuse_non_finite(self)
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; choose one of {OBJECTIVES}")
        for name in ("max_steps", "grad_accum", "log_every", "save_every", "keep_last"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"bad learning rate settings: lr={self.lr}, min_lr_ratio={self.min_lr_ratio}")
        if self.fixed_mask_ratio is not None and not 0 < self.fixed_mask_ratio <= 1:
            raise ValueError(f"fixed_mask_ratio must be in (0, 1], got {self.fixed_mask_ratio}")
        if not 0 <= self.edit_ratio < 1:
            raise ValueError(f"edit_ratio must be in [0, 1), got {self.edit_ratio}")
        if self.edit_ratio > 0 and self.objective == "autoregressive":
            raise ValueError("edit_ratio trains a diffusion model to edit; the autoregressive objective has no "
                             "visible positions to restore")
        if self.precision not in {"auto", "bf16", "fp32"}:
            raise ValueError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.ddp_backend not in distributed.BACKENDS:
            raise ValueError(f"ddp_backend must be one of {distributed.BACKENDS}, got {self.ddp_backend!r}")


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to lr * min_lr_ratio at max_steps (step counts from 0)."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.max_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * progress))


@dataclass
class TrainStepRecord:
    """What a training hook sees after each optimizer step."""

    step: int  # optimizer steps done so far (1 after the first)
    loss: float
    lr: float
    grad_norm: float
    mask_ratios: list[float]  # per-sequence masking ratio of the step's batches (1.0 for the AR loss)
    tokens: int  # tokens processed at this step
    tokens_per_s: float
    elapsed: float
    _stop: bool = False
    _save: bool = False

    def stop(self) -> None:
        """End training after this step (a checkpoint is written first)."""
        self._stop = True

    def save_training_state(self) -> None:
        """Write a checkpoint (the training state) after this step, whatever save_every says."""
        self._save = True


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    checkpoint: Path | None
    history: list[dict] = field(default_factory=list)


def resolve_precision(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32."""
    if config.precision == "fp32":
        return None
    if config.precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return None


def cpu_has_fast_bf16() -> bool:
    """CPUs with AMX tiles run bf16 matmuls about twice as fast as fp32; on others bf16 autocast is slower."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe and probe())


def compute_loss(model, batch: dict, config: TrainConfig, mask_id: int, generator: torch.Generator,
                 rows: slice | None = None, edit_tokens: torch.LongTensor | None = None):
    """The objective's loss on ``batch`` (on its ``rows`` only when this process holds one shard of it).
    ``edit_tokens``: the ids a corrupted token is drawn from under ``config.edit_ratio`` (:func:`edit_tokens_for`;
    by default the vocabulary without the mask id)."""
    ids = batch["input_ids"]
    if config.objective == "pretrain":
        return pretrain_loss(model, ids, mask_id, config.mask_eps, config.random_length_prob, generator,
                             config.fixed_mask_ratio, rows, config.edit_ratio, edit_tokens)
    if config.objective == "sft":
        eos = getattr(model, "eos_token_ids", None) or ()
        return sft_loss(model, ids, batch["prompt_lengths"], mask_id, config.mask_eps, generator, rows,
                        config.edit_ratio, edit_tokens, pad_id=eos[0] if eos else None)
    if rows is not None:
        batch = {k: v[rows] for k, v in batch.items()}
        ids = batch["input_ids"]
    loss_mask = None
    if "prompt_lengths" in batch:  # AR SFT: score the response only
        loss_mask = torch.arange(ids.shape[1], device=ids.device)[None] >= batch["prompt_lengths"][:, None]
    return autoregressive_loss(model, ids, loss_mask)


def edit_tokens_for(model, mask_id: int, tokenizer=None) -> torch.LongTensor:
    """The ordinary ids of a model's vocabulary, which token editing draws corrupted tokens from: every id
    but the mask id, the config's pad/end-of-text/begin ids and the tokenizer's special tokens (chat markers)."""
    config = getattr(model, "config", None)
    exclude = {mask_id, *(getattr(tokenizer, "all_special_ids", None) or [])}
    for name in ("pad_token_id", "eos_token_id", "bos_token_id"):
        value = getattr(config, name, None)
        exclude.update(value if isinstance(value, (list, tuple)) else [value])
    return replacement_tokens(config.vocab_size, exclude)


def record_token_editing(model, config: TrainConfig) -> None:
    """Write the edit ratio a model is trained with into its config (``token_editing``, saved in config.json),
    so that a sampler asked to edit can tell a model trained for it. A run without editing leaves it as it is."""
    model_config = getattr(model, "config", None)
    if config.edit_ratio > 0 and model_config is not None:
        model_config.token_editing = config.edit_ratio


# ---- checkpoints -------------------------------------------------------------------------------------

def _step_dirs(output_dir: str | Path) -> list[Path]:
    """Every ``checkpoints/step-N`` directory, oldest first, whatever it holds."""
    root = Path(output_dir) / "checkpoints"
    found = [p for p in root.glob("step-*") if re.fullmatch(r"step-\d+", p.name) and p.is_dir()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (partial ones are hidden staging directories and never listed)."""
    return [p for p in _step_dirs(output_dir) if (p / "trainer_state.pt").exists()]


def _safetensors_size(file: Path) -> int | None:
    """The size a safetensors file's header gives it (8 bytes of length, the JSON header, the tensors' data up to
    the largest data_offsets end); None when the header does not read."""
    with file.open("rb") as f:
        length = int.from_bytes(f.read(8), "little")
        try:
            header = json.loads(f.read(min(length, file.stat().st_size)))  # garbage may claim exabytes
            return 8 + length + max((t["data_offsets"][1] for name, t in header.items() if name != "__metadata__"),
                                    default=0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return None


def intact_state(folder: Path) -> str | None:
    """None when a ``step-N`` directory holds a training state to resume from, else why not. The trainer state
    must load and hold step N; every file it lists must have the size written (states saved before the list
    have none); every safetensors file must be whole (safe_open reads the header alone and checks that the file
    covers every tensor's data_offsets) and every JSON file must parse. Reads no tensor data."""
    from safetensors import SafetensorError, safe_open

    state_file, step = folder / "trainer_state.pt", int(folder.name[5:])
    if not state_file.exists():
        return "trainer_state.pt missing"
    if not zipfile.is_zipfile(state_file):  # torch.save writes a zip archive, whose index is at its end
        return f"trainer_state.pt unreadable: not a whole torch archive ({state_file.stat().st_size} bytes)"
    try:  # mmap: the archive's index and pickle are read, the tensors' bytes are not
        state = torch.load(state_file, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:  # noqa: BLE001 - a damaged archive raises RuntimeError, EOFError, UnpicklingError...
        return f"trainer_state.pt unreadable: {(str(err).splitlines() or [type(err).__name__])[0]}"
    saved_step = state.get("step") if isinstance(state, dict) else None
    if saved_step != step:
        return f"trainer_state.pt holds step {saved_step}, not {step}"
    for name, size in state.get("files", {}).items():
        if not (folder / name).is_file():
            return f"{name} missing"
        if (actual := (folder / name).stat().st_size) != size:
            return f"{name} {'truncated' if actual < size else 'grown'}: {actual} of {size} bytes"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        return "no .safetensors weights"
    for file in weights:
        try:
            with safe_open(file, "pt"):
                pass
        except SafetensorError as err:
            size, expected = file.stat().st_size, _safetensors_size(file)
            if expected is not None and size < expected:
                return f"{file.name} truncated: {size} of {expected} bytes"
            return f"{file.name} unreadable ({size} bytes): {err}"
    for file in sorted(folder.glob("*.json")):
        try:
            json.loads(file.read_text(encoding="utf-8"))
        except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return f"{file.name} unreadable: {err}"
    return None


def resume_point(output_dir: str | Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest intact training state under ``output_dir/checkpoints`` (None when there is none) and the
    damaged ones newer than it, newest first, each with why (see :func:`intact_state`)."""
    damaged = []
    for folder in reversed(_step_dirs(output_dir)):
        why = intact_state(folder)
        if why is None:
            return folder, damaged
        damaged.append((folder, why))
    return None, damaged


def _set_aside(folder: Path) -> Path:
    """Rename a damaged step-N directory to damaged-step-N (-2, -3... when taken): kept for the user to inspect,
    out of the way of the step-N this run writes again and of the removal of old checkpoints."""
    target, n = folder.with_name(f"damaged-{folder.name}"), 1
    while target.exists():
        n += 1
        target = folder.with_name(f"damaged-{folder.name}-{n}")
    return folder.rename(target)


def _rng_state(generators: dict[str, torch.Generator]) -> dict:
    state = {name: g.get_state() for name, g in generators.items()}
    state["torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def save_training_state(output_dir, step, model, tokenizer, optimizer, generators, config: TrainConfig) -> Path:
    """Write the training state of step N (weights, tokenizer, optimizer, random states) to
    ``checkpoints/step-N`` atomically, and keep the last ``keep_last``."""
    final = Path(output_dir) / "checkpoints" / f"step-{step:07d}"
    with atomic_directory(final) as staging:
        model.save_pretrained(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        files = {p.name: p.stat().st_size for p in staging.iterdir() if p.is_file()}  # what resume checks
        torch.save({"step": step, "optimizer": optimizer.state_dict(), "rng": _rng_state(generators),
                    "config": asdict(config), "files": files}, staging / "trainer_state.pt")
    for old in checkpoint_dirs(output_dir)[:-config.keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _all_same_step(step: int) -> None:
    """Every rank must resume from the same checkpoint (a shared file system); say so when they do not."""
    if distributed.current().world_size == 1:
        return
    if not distributed.same_on_all_ranks(step):
        raise ValueError(f"the processes found different checkpoints to resume from (this rank: step {step}); "
                         "the output directory must be on a file system every node shares")


# A checkpoint holds what the run trains: the whole model, or only the adapters of a peft (LoRA) model, whose
# frozen base comes from the model directory the run starts from. These two functions decide which.

def _is_lora(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def _trained_weights(model) -> tuple[str, dict[str, torch.Tensor]]:
    """The file ``model.save_pretrained`` writes the trained weights to, and those weights named as in it."""
    if _is_lora(model):
        from peft import get_peft_model_state_dict

        return "adapter_model.safetensors", get_peft_model_state_dict(model)
    return "model.safetensors", model.state_dict()


def load_weights(path: Path, model) -> None:
    """Load a checkpoint's weights into ``model`` (all of them, or a LoRA model's adapters), refusing files
    that do not match it tensor for tensor."""
    from safetensors.torch import load_file

    name, own = _trained_weights(model)
    file = path / name
    if not file.exists():
        other = "a full-model" if _is_lora(model) else "a LoRA"
        raise ValueError(f"cannot resume from {path}: {name} is missing (was it written by {other} run?)")
    if _is_lora(model):
        saved_base = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
        base = model.peft_config[model.active_adapter].base_model_name_or_path
        if saved_base != base:
            raise ValueError(f"cannot resume from {path}: its adapters were trained on {saved_base}, "
                             f"this run starts from {base}")
    weights = load_file(file)
    for key, tensor in weights.items():
        if key in own and own[key].shape != tensor.shape:
            raise ValueError(f"cannot resume from {path}: tensor {key} has shape {tuple(tensor.shape)}, "
                             f"the model has {tuple(own[key].shape)}")
    tied = getattr(getattr(model, "config", None), "tie_word_embeddings", False)
    missing = [k for k in own if k not in weights and not (k == "lm_head.weight" and tied)]  # saved once, tied
    unexpected = [k for k in weights if k not in own]
    if missing or unexpected:
        raise ValueError(f"cannot resume from {path}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if _is_lora(model):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, weights)
    else:
        model.load_state_dict(weights, strict=False)  # strict would also want the tied lm_head.weight


def load_training_state(path: Path, model, optimizer, generators, config: TrainConfig) -> int:
    """Restore the training state of a step-N directory (weights, optimizer and every random state) into this
    run; returns the step to continue from."""
    state = torch.load(path / "trainer_state.pt", weights_only=False)
    saved = state["config"]
    saved.setdefault("edit_ratio", 0.0)  # training states written before token editing
    for key in ("objective", "grad_accum", "max_steps", "lr", "warmup_steps", "edit_ratio"):
        if saved.get(key) != getattr(config, key):
            raise ValueError(f"cannot resume from {path}: it was trained with {key}={saved.get(key)!r}, "
                             f"this run has {key}={getattr(config, key)!r}")
    load_weights(path, model)
    optimizer.load_state_dict(state["optimizer"])
    for name, g in generators.items():
        g.set_state(state["rng"][name])
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return int(state["step"])


def _trim_metrics(path: Path, step: int) -> None:
    """Drop log rows written after the checkpoint we resume from (the killed run's lost steps)."""
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(r + "\n" for r in rows))


# ---- the loop ----------------------------------------------------------------------------------------

def make_optimizer(model, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, with weight decay on matrices only (not norms)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=config.lr, betas=(config.beta1, config.beta2))


def _training_views(model, config: TrainConfig, mask_id: int | None, env,
                    device: torch.device) -> tuple[torch.nn.Module, Callable, int | None]:
    """What backward runs through (the model, DDP-wrapped when several processes train), what the loss calls
    (that, or its denoiser view with aligned logits) and the mask id (the model's own when None)."""
    forward_model = model
    if env.world_size > 1:  # gradients are averaged across processes during backward
        forward_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    forward = forward_model
    if config.objective != "autoregressive":
        view = as_denoiser(model, mask_id)
        mask_id = view.mask_id
        forward = view if forward_model is model else Denoiser(
            forward_model, view.family, view.mask_id, view.eos_token_ids, view.vocab_size, view.context_length,
            view.shift_logits)
    return forward_model, forward, mask_id


def _start_step(out: Path, model, optimizer, generators, config: TrainConfig, resume: bool, main: bool) -> int:
    """The step to start from: 0, or the newest intact checkpoint's when resuming (its training state restored;
    newer damaged ones are set aside with a warning, none intact is a CheckpointError). The main process also
    trims or restarts metrics.jsonl to match and records the configuration."""
    metrics_path = out / "metrics.jsonl"
    start = 0
    chosen, damaged = resume_point(out) if resume else (None, [])
    if chosen is None and damaged:
        raise CheckpointError(f"no intact training state under {out / 'checkpoints'}: "
                              + ", ".join(f"{folder.name} ({why})" for folder, why in damaged))
    if chosen is not None:
        start = load_training_state(chosen, model, optimizer, generators, config)
    _all_same_step(start)  # with several processes, also: every rank has read its checkpoint before any rename
    if main:
        for folder, why in damaged:
            kept = _set_aside(folder)
            warnings.warn(f"{folder} is damaged ({why}); resuming from {chosen.name}, the damaged one is kept "
                          f"as {kept}", stacklevel=3)
        if chosen is not None:
            _trim_metrics(metrics_path, start)
        elif metrics_path.exists():
            metrics_path.unlink()  # a fresh run starts a fresh log
        (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2))
    return start


def _accumulate_gradients(forward_model, forward, batches, config: TrainConfig, mask_id: int | None,
                          generators: dict[str, torch.Generator], env, device: torch.device,
                          autocast_dtype: torch.dtype | None,
                          edit_tokens: torch.LongTensor | None = None) -> tuple[float, int, list[float]]:
    """Forward and backward over the step's ``grad_accum`` micro-batches; returns the step's loss, the tokens
    processed and the masking ratios (with several processes: the global batch's mean loss and ratio)."""
    total_loss, tokens, ratios = 0.0, 0, []
    for micro in range(config.grad_accum):
        # every rank draws the whole global batch (same generator, same seed) and scores its rows
        batch = {k: v.to(device) for k, v in batches.next_batch(generators["data"]).items()}
        rows = distributed.shard_rows(batch["input_ids"].shape[0], env)
        sync = env.world_size == 1 or micro == config.grad_accum - 1
        with contextlib.nullcontext() if sync else forward_model.no_sync():
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                result = compute_loss(forward, batch, config, mask_id, generators["mask"], rows, edit_tokens)
            (result.loss / config.grad_accum).backward()
        total_loss += result.loss.item() / config.grad_accum
        tokens += batch["input_ids"].numel()
        ratios.extend(result.p_mask.tolist())
    if env.world_size > 1:  # log the global batch's loss and masking ratio, as one process would
        total_loss, mean_ratio = distributed.mean_over_ranks([total_loss, sum(ratios) / len(ratios)])
        ratios = [mean_ratio]
    return total_loss, tokens, ratios


def _metrics_row(record: TrainStepRecord) -> dict:
    """A metrics.jsonl row for a step."""
    return {"step": record.step, "loss": round(record.loss, 5), "lr": record.lr,
            "grad_norm": round(record.grad_norm, 4),
            "mask_ratio": round(sum(record.mask_ratios) / len(record.mask_ratios), 4),
            "tokens_per_s": round(record.tokens_per_s, 1), "elapsed": round(record.elapsed, 2)}


def train(model, batches, config: TrainConfig, tokenizer=None, mask_id: int | None = None,
          hooks: Callable | Iterable[Callable] | None = None, resume: bool = False) -> TrainResult:
    """Train ``model`` on ``batches`` (anything with ``next_batch(generator) -> dict``) for
    ``config.max_steps`` optimizer steps. ``hooks`` get a :class:`TrainStepRecord` after every step.
    With ``resume``, continue from the latest checkpoint in ``config.output_dir``."""
    hooks = [hooks] if callable(hooks) else list(hooks or [])
    env = distributed.init_distributed(config.device, config.ddp_backend)
    device = distributed.local_device(config.device)
    model.to(device).train()
    main = env.is_main
    forward_model, forward, mask_id = _training_views(model, config, mask_id, env, device)
    edit_tokens = edit_tokens_for(model, mask_id, tokenizer).to(device) if config.edit_ratio > 0 else None
    record_token_editing(model, config)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    optimizer = make_optimizer(model, config)
    generators = {"data": torch.Generator().manual_seed(config.seed),
                  "mask": torch.Generator(device=device).manual_seed(config.seed + 1)}
    torch.manual_seed(config.seed)
    start = _start_step(out, model, optimizer, generators, config, resume, main)

    autocast_dtype = resolve_precision(config, device)
    history: list[dict] = []
    last_checkpoint = None
    loss_value = float("nan")
    bar = tqdm(total=config.max_steps, initial=start, disable=not config.progress or not main,
               desc=config.objective, dynamic_ncols=True)
    t0 = time.perf_counter()
    step = start
    with ((out / "metrics.jsonl").open("a") if main else open(os.devnull, "w")) as log:
        while step < config.max_steps:
            step_start = time.perf_counter()
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            total_loss, tokens, ratios = _accumulate_gradients(forward_model, forward, batches, config, mask_id,
                                                               generators, env, device, autocast_dtype,
                                                               edit_tokens)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            loss_value = total_loss
            dt = time.perf_counter() - step_start
            record = TrainStepRecord(step=step, loss=total_loss, lr=lr, grad_norm=grad_norm, mask_ratios=ratios,
                                     tokens=tokens, tokens_per_s=tokens / dt, elapsed=time.perf_counter() - t0)
            row = _metrics_row(record)  # before the hooks, which may change the record they are shown
            for hook in hooks:
                hook(record)
            if env.world_size > 1:  # one rank's hook stopping or saving decides for all
                record._stop, record._save = distributed.any_rank([record._stop, record._save])
            if step % config.log_every == 0 or step == config.max_steps or record._stop:
                log.write(json.dumps(row) + "\n")
                log.flush()
                history.append(row)
            bar.update(1)
            bar.set_postfix(loss=f"{total_loss:.3f}", tok_s=f"{tokens / dt:.0f}")
            if step % config.save_every == 0 or step == config.max_steps or record._stop or record._save:
                if main:  # the ranks hold identical weights; one writes them
                    last_checkpoint = save_training_state(out, step, model, tokenizer, optimizer, generators,
                                                          config)
                distributed.barrier()
                last_checkpoint = last_checkpoint if main else out / "checkpoints" / f"step-{step:07d}"
            if record._stop:
                break
    bar.close()
    model.eval()
    return TrainResult(steps=step, final_loss=loss_value, checkpoint=last_checkpoint, history=history)
