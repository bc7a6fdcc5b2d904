"""The models the app has loaded, shared by every session; each session picks one by key."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import torch

from ..diffusion.shared_sampler import SharedSampler
from ..model.adapters import as_denoiser
from ..model.checkpoint import SHIPPED_MODELS, CheckpointError, default_model_path, load_model
from .paths import RUNS_DIR

DEFAULT_KEY = "shipped default"


class ModelRegistry:
    """Loaded models, shared by all sessions (read-only while sampling); each session picks one by key.

    A key is :data:`DEFAULT_KEY` (the ``default`` directory, else the shipped default model), the name of a
    shipped model (:data:`~llada_play.model.checkpoint.SHIPPED_MODELS`), or a model directory (or cached hub id):
    every model the app uses, those the Reversal tab trains included, is loaded here once (a directory reached by
    two keys, e.g. a shipped model's name and its path, is loaded once).
    """

    def __init__(self, default: str | None, models_dir: str | None, trust_remote_code: bool = False,
                 dtype: torch.dtype | None = torch.float32, device: str = "cpu", device_map: str | None = None,
                 sampler_threads: int | None = None, logits_hooks=()):
        self.default = default
        self.logits_hooks = list(logits_hooks)  # applied to every run the app's sampling tabs start
        self.sampler_threads = sampler_threads  # the shared samplers' torch threads (None: the process's)
        self.trust_remote_code = trust_remote_code
        self.load_options = dict(dtype=dtype, device=device, device_map=device_map)
        self.models_dir = Path(models_dir) if models_dir else None
        self._loaded: dict[str, tuple] = {}
        self._samplers: dict[str, SharedSampler] = {}
        self._lock = threading.Lock()

    def choices(self) -> list[str]:
        """The default, then the shipped models by name, then the model directories under the models folder."""
        keys = [DEFAULT_KEY, *SHIPPED_MODELS]
        if self.models_dir and self.models_dir.is_dir():
            found = {p.parent for p in self.models_dir.glob("*/config.json")}
            found |= {p.parent for p in self.models_dir.glob("*/*/config.json")}
            keys += sorted(str(p) for p in found)
        return keys

    def path_of(self, key: str) -> str | None:
        """The directory (or hub id) of a key; None for the shipped default when no ``default`` was given."""
        if key == DEFAULT_KEY:
            return self.default
        return str(SHIPPED_MODELS[key]) if key in SHIPPED_MODELS else key

    def _cache_key(self, key: str) -> str:
        """One entry per directory, whichever key reaches it."""
        path = self.path_of(key)
        if path is None:
            return str(default_model_path().resolve())
        return str(Path(path).resolve()) if Path(path).is_dir() else path

    def get(self, key: str):
        """(model, tokenizer) for a key, loading it once; raises CheckpointError with the reason."""
        with self._lock:
            cache_key = self._cache_key(key)
            if cache_key not in self._loaded:
                model, tokenizer = load_model(self.path_of(key), trust_remote_code=self.trust_remote_code,
                                              **self.load_options)
                if tokenizer is None:
                    raise CheckpointError(f"{key} has no tokenizer: the app needs text in and out")
                self._loaded[cache_key] = (model, tokenizer)
            return self._loaded[cache_key]

    def sampler(self, key: str) -> SharedSampler:
        """The shared sampler of a key's model: every session's runs on that model share its forward passes."""
        model, _ = self.get(key)
        with self._lock:
            where = self._cache_key(key)
            if where not in self._samplers:
                self._samplers[where] = SharedSampler(model, threads=self.sampler_threads)
            return self._samplers[where]

    def denoising(self) -> tuple[int, float]:
        """(runs going or waiting for a slot, mean rows per forward pass so far) over every model's shared
        sampler."""
        with self._lock:
            samplers = list(self._samplers.values())
        passes = sum(s.passes for s in samplers)
        return sum(s.active for s in samplers), sum(s.rows_stepped for s in samplers) / max(passes, 1)

    def shipped_name(self, key: str) -> str | None:
        """The display name of the shipped model a key loads, if it loads one."""
        try:
            where = self._cache_key(key)
        except CheckpointError:
            return None
        return next((name for name, path in SHIPPED_MODELS.items() if str(path.resolve()) == where), None)

    def describe(self, key: str) -> str:
        try:
            model, _ = self.get(key)
        except ValueError as err:  # CheckpointError, or a model too large for this machine
            return f"**No model loaded** ({err}). Train one with `llada-play train` or pick another."
        n = sum(p.numel() for p in model.parameters()) / 1e6
        kind = "causal (autoregressive)" if getattr(model.config, "causal", False) else "masked diffusion"
        denoiser = as_denoiser(model)
        layout = getattr(model.config, "source_layout", None)
        family = f"{layout} checkpoint read natively" if layout else f"{denoiser.family.name} family"
        name = self.shipped_name(key)
        label = f"`{key}`" if name in (None, key) else f"`{key}` = **{name}**"
        where = f", in `{self.path_of(key)}`" if key in SHIPPED_MODELS else ""
        dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        return (f"Model: {label} ({n:.1f}M parameters, {kind}, {family}, mask id {denoiser.mask_id}, {dtype}"
                f"{where})")

    def new_run_dir(self, kind: str) -> Path:
        """A fresh output folder for a run the app starts, under the models folder so that its models can be
        picked in the Model tab afterwards."""
        return (self.models_dir or RUNS_DIR) / kind / time.strftime("%Y%m%d-%H%M%S")
