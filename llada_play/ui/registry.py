"""The models the app has loaded, shared by every session; each session picks one by key."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import torch

from ..model.adapters import as_denoiser
from ..model.checkpoint import CheckpointError, load_model
from .paths import RUNS_DIR

DEFAULT_KEY = "shipped default"


class ModelRegistry:
    """Loaded models, shared by all sessions (read-only while sampling); each session picks one by key.

    A key is :data:`DEFAULT_KEY` or a model directory (or cached hub id): every model the app uses, those the
    Reversal tab trains included, is loaded here once.
    """

    def __init__(self, default: str | None, models_dir: str | None, trust_remote_code: bool = False,
                 dtype: torch.dtype | None = torch.float32, device: str = "cpu", device_map: str | None = None):
        self.default = default
        self.trust_remote_code = trust_remote_code
        self.load_options = dict(dtype=dtype, device=device, device_map=device_map)
        self.models_dir = Path(models_dir) if models_dir else None
        self._loaded: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def choices(self) -> list[str]:
        keys = [DEFAULT_KEY]
        if self.models_dir and self.models_dir.is_dir():
            found = {p.parent for p in self.models_dir.glob("*/config.json")}
            found |= {p.parent for p in self.models_dir.glob("*/*/config.json")}
            keys += sorted(str(p) for p in found)
        return keys

    def path_of(self, key: str) -> str | None:
        return self.default if key == DEFAULT_KEY else key

    def get(self, key: str):
        """(model, tokenizer) for a key, loading it once; raises CheckpointError with the reason."""
        with self._lock:
            if key not in self._loaded:
                model, tokenizer = load_model(self.path_of(key), trust_remote_code=self.trust_remote_code,
                                              **self.load_options)
                if tokenizer is None:
                    raise CheckpointError(f"{key} has no tokenizer: the app needs text in and out")
                self._loaded[key] = (model, tokenizer)
            return self._loaded[key]

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
        return f"Model: `{key}` ({n:.1f}M parameters, {kind}, {family}, mask id {denoiser.mask_id})"

    def new_run_dir(self, kind: str) -> Path:
        """A fresh output folder for a run the app starts, under the models folder so that its models can be
        picked in the Model tab afterwards."""
        return (self.models_dir or RUNS_DIR) / kind / time.strftime("%Y%m%d-%H%M%S")
