"""The models the app has loaded, shared by every session; each session picks one by key."""
from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path

import torch

from ..diffusion.shared_sampler import SharedSampler
from ..model.adapters import as_denoiser
from ..model.checkpoint import SHIPPED_MODELS, CheckpointError, default_model_path, load_model
from .model_kinds import ModelKind, kind_of
from .paths import ROOT, RUNS_DIR

DEFAULT_KEY = "shipped default"


class ModelRegistry:
    """Loaded models, shared by all sessions (read-only while sampling); each session picks one by key.

    A key is :data:`DEFAULT_KEY` (the ``default`` directory, else the shipped default model), the name of a
    shipped model (:data:`~llada_play.model.checkpoint.SHIPPED_MODELS`), or a model directory (or cached hub id):
    every model the app uses, those the Reversal tab trains included, is loaded here once (a directory reached by
    two keys, e.g. a shipped model's name and its path, is loaded once). Served to a class (``serving``), a model
    directory under the models folder is keyed by its name there (``app-sft/20250101-120000/final``) and neither
    the keys, the descriptions nor the refusals show a server path.
    """

    def __init__(self, default: str | None, models_dir: str | None, trust_remote_code: bool = False,
                 dtype: torch.dtype | None = torch.float32, device: str = "cpu", device_map: str | None = None,
                 sampler_threads: int | None = None, logits_hooks=(), serving: bool = False):
        self.default = default
        self.serving = serving
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
            keys += sorted(self.key_of(p) for p in found)
        return keys

    def key_of(self, path: str | Path) -> str:
        """The key of a model directory: its path, or when served to a class its name under the models folder
        (a directory elsewhere keeps its path)."""
        if self.serving and self.models_dir:
            try:
                return Path(os.path.abspath(path)).relative_to(os.path.abspath(self.models_dir)).as_posix()
            except ValueError:
                pass
        return str(path)

    def path_of(self, key: str) -> str | None:
        """The directory (or hub id) of a key; None for the shipped default when no ``default`` was given."""
        if key == DEFAULT_KEY:
            return self.default
        if key in SHIPPED_MODELS:
            return str(SHIPPED_MODELS[key])
        if self.serving and self.models_dir and not Path(key).is_absolute() and ".." not in Path(key).parts:
            if (self.models_dir / key).is_dir():  # a name under the models folder
                return str(self.models_dir / key)
        return key

    def without_paths(self, text: str) -> str:
        """``text`` with the models folder and the project's directory cut from the paths it names, when served
        to a class (a refusal then names ``app-sft/.../config.json``, not where the server keeps it)."""
        if not self.serving:
            return text
        bases = {str(ROOT), str(ROOT.resolve())}
        if self.models_dir:
            bases |= {str(self.models_dir), os.path.abspath(self.models_dir), str(self.models_dir.resolve())}
        for base in sorted(bases, key=len, reverse=True):
            text = text.replace(base.rstrip("/") + "/", "")
        return text

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
                try:
                    model, tokenizer = load_model(self.path_of(key), trust_remote_code=self.trust_remote_code,
                                                  **self.load_options)
                except ValueError as err:  # CheckpointError, or a model too large for this machine
                    if not self.serving:
                        raise
                    raise CheckpointError(self.without_paths(str(err))) from err
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

    def kind(self, key: str) -> ModelKind:
        """What kind of model a key loads (:mod:`.model_kinds`): text, instruct, a task's model; raises
        CheckpointError as :meth:`get`."""
        model, _ = self.get(key)
        return kind_of(self.shipped_name(key), self.path_of(key), bool(getattr(model.config, "causal", False)))

    def describe(self, key: str) -> str:
        """The model in plain words (what it does), then its details in small print."""
        try:
            model, _ = self.get(key)
        except ValueError as err:  # CheckpointError, or a model too large for this machine
            return (f"**No model loaded** ({self.without_paths(str(err))}). Train one with `llada-play train` or "
                    "pick another.")
        kind = self.kind(key)
        n = sum(p.numel() for p in model.parameters()) / 1e6
        causal = getattr(model.config, "causal", False)
        how = "autoregressive (left to right)" if causal else "masked diffusion (writes by unmasking)"
        denoiser = as_denoiser(model)
        layout = getattr(model.config, "source_layout", None)
        family = f", {layout} checkpoint read natively" if layout else (
            "" if denoiser.family.name == "llada_play" else f", {denoiser.family.name} family")
        name = self.shipped_name(key)
        label = f"`{key}`" if name in (None, key) else f"`{key}` = **{name}**"
        where = f", in `{self.path_of(key)}`" if key in SHIPPED_MODELS and not self.serving else ""
        dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        return (f"**Model:** {label}, {kind.words}.  \n<small>{n:.1f}M parameters, {how}, {dtype}, mask id "
                f"{denoiser.mask_id}{family}{where}.</small>")

    def new_run_dir(self, kind: str) -> Path:
        """A fresh output folder for a run the app starts, under the models folder so that its models can be
        picked in the Model tab afterwards. Created here, so that two runs started in the same second (a 20-step
        Quick SFT takes less) get folders of their own: the second once wrote over the first's model."""
        stamp = (self.models_dir or RUNS_DIR) / kind / time.strftime("%Y%m%d-%H%M%S")
        for n in itertools.count(1):
            folder = stamp if n == 1 else stamp.with_name(f"{stamp.name}-{n}")
            try:
                folder.mkdir(parents=True)
                return folder
            except FileExistsError:
                continue
