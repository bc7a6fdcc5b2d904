"""Opening checkpoints that ship their own Python code written for transformers 4.x, under transformers 5.

Only used for families without a native reader (``formats.py`` reads LLaDA and Dream without their code) and
only with ``trust_remote_code``. The incompatibilities met in published diffusion-LM code, each handled here:

- ``__init__`` never calls ``post_init()``: transformers 5 then fails with "no attribute
  'all_tied_weights_keys'" -> ``post_init()`` is called after ``__init__`` when it was not.
- ``tie_weights(self)`` without keyword arguments, which transformers 5 passes -> extra keywords are dropped.
- ``config.use_cache`` read but no longer a default of ``PretrainedConfig`` -> set to False when missing.
- ``ROPE_INIT_FUNCTIONS["default"]`` (removed in transformers 5) -> the plain RoPE frequencies, during loading.
- ``GenerationConfig`` subclasses whose ``validate(self)`` takes no keywords (Dream's) -> extra keywords dropped.
- rotary ``inv_freq`` buffers that are not saved and that transformers 5 leaves uninitialised (it builds the
  model on the meta device and the code's ``_init_weights`` never recomputes them) -> recomputed after loading.

Anything else that fails inside the checkpoint's code is reported in one line naming the checkpoint and the
error, with the ways out.
"""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

from .errors import CheckpointError


class RemoteCodeError(CheckpointError):
    """The checkpoint's own code failed under this version of transformers."""


def _default_rope_parameters(config, device=None, seq_len=None, **kwargs):
    """Plain RoPE inverse frequencies, as transformers 4.x computed them for rope_type "default"."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    dim = int(head_dim * getattr(config, "partial_rotary_factor", 1.0))
    base = getattr(config, "rope_theta", 10000.0)
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim))
    return inv_freq, 1.0


@contextlib.contextmanager
def default_rope_registered():
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    added = "default" not in ROPE_INIT_FUNCTIONS
    if added:
        ROPE_INIT_FUNCTIONS["default"] = _default_rope_parameters
    try:
        yield
    finally:
        if added:
            ROPE_INIT_FUNCTIONS.pop("default", None)


def _drop_extra_keywords(method):
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except TypeError as err:
            if "unexpected keyword argument" not in str(err):
                raise
            return method(self, *args)  # written for transformers 4.x: transformers 5 passes keywords

    return call


def patch_generation_configs(package: str) -> None:
    """Wrap ``validate`` of the GenerationConfig subclasses that the checkpoint's modules define."""
    import sys

    from transformers import GenerationConfig

    for name, module in list(sys.modules.items()):
        if not name.startswith(package) or module is None:
            continue
        for value in list(vars(module).values()):
            if (isinstance(value, type) and issubclass(value, GenerationConfig) and value is not GenerationConfig
                    and "validate" in value.__dict__ and not getattr(value, "_llada_play_patched", False)):
                value.validate = _drop_extra_keywords(value.__dict__["validate"])
                value._llada_play_patched = True


def patch_model_class(cls) -> None:
    """Make a transformers 4.x model class work under transformers 5 (in place, once)."""
    if getattr(cls, "_llada_play_patched", False):
        return
    original_init = cls.__init__

    @functools.wraps(original_init)
    def __init__(self, config, *args, **kwargs):
        if not hasattr(config, "use_cache"):
            config.use_cache = False
        original_init(self, config, *args, **kwargs)
        if "all_tied_weights_keys" not in self.__dict__:
            self.post_init()

    cls.__init__ = __init__
    if "tie_weights" in cls.__dict__:
        cls.tie_weights = _drop_extra_keywords(cls.__dict__["tie_weights"])
    cls._llada_play_patched = True


def recompute_rotary_buffers(model) -> int:
    """Recompute every rotary ``inv_freq`` buffer from its module's own init function; returns how many."""
    count = 0
    for module in model.modules():
        inv_freq = getattr(module, "inv_freq", None)
        init = getattr(module, "rope_init_fn", None)
        if not isinstance(inv_freq, torch.Tensor) or init is None or getattr(module, "config", None) is None:
            continue
        device = inv_freq.device if inv_freq.device.type != "meta" else torch.device("cpu")
        fresh, scaling = init(module.config, device, **getattr(module, "rope_kwargs", {}))
        module.register_buffer("inv_freq", fresh.to(device), persistent=False)
        if hasattr(module, "original_inv_freq"):
            module.original_inv_freq = module.inv_freq
        if hasattr(module, "attention_scaling"):
            module.attention_scaling = scaling
        count += 1
    return count


def load_remote_model(path: Path, auto_class: str, class_reference: str, **kwargs):
    """``transformers.<auto_class>.from_pretrained(path, trust_remote_code=True)`` with the fixes above."""
    import transformers
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    try:
        with default_rope_registered():
            cls = get_class_from_dynamic_module(class_reference, str(path), local_files_only=True)
            patch_model_class(cls)
            patch_generation_configs(cls.__module__.rsplit(".", 1)[0])
            model = getattr(transformers, auto_class).from_pretrained(path, trust_remote_code=True,
                                                                      local_files_only=True, **kwargs)
            recompute_rotary_buffers(model)
    except (ValueError, MemoryError):
        raise
    except Exception as err:  # the checkpoint's code, whatever it raises
        first_line = (str(err).strip().splitlines() or [""])[0]
        raise RemoteCodeError(
            f"{path}: its own code ({class_reference}) failed under transformers {transformers.__version__}: "
            f"{type(err).__name__}: {first_line}. It may predate transformers 5: pin transformers<5 in a "
            "separate environment, or convert the checkpoint to llada-play's layout") from err
    return model
