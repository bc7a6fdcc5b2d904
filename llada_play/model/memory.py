"""Will the model fit? Parameter counts from a config (meta device) or from safetensors headers, bytes per
dtype plus a stated margin, against the memory free on the target device — all before any weight loads."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

GIB = 1024 ** 3
# Margin on top of the weights for sampling: activations and logits of a few-hundred-token canvas, the
# allocator's slack and (on a GPU) the CUDA context. 10% of the weights + 1 GiB covers LLaDA-8B sampling at
# LLaDA's default lengths; training needs more (optimizer state, activations for backward).
OVERHEAD_FRACTION = 0.10
OVERHEAD_FIXED_BYTES = 1 * GIB

SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                     "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


class InsufficientMemoryError(ValueError):
    """The model would not fit in the memory available on the target device."""


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int
    bytes_per_parameter: float
    overhead_bytes: int

    @property
    def weight_bytes(self) -> int:
        return int(self.parameters * self.bytes_per_parameter)

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.overhead_bytes


def count_parameters(config, trust_remote_code: bool = False) -> int:
    """Parameters of the model a config describes, built on the meta device (no memory, no weights).

    Shared (tied) tensors count once."""
    from .config import LladaConfig

    if isinstance(config, LladaConfig):
        from .modeling import LladaForMaskedLM

        with torch.device("meta"):
            model = LladaForMaskedLM(config)
    else:
        # init_empty_weights also catches layers built with an explicit device (remote code often does that).
        from accelerate import init_empty_weights
        from transformers import AutoModel, AutoModelForMaskedLM

        with init_empty_weights():
            try:
                model = AutoModelForMaskedLM.from_config(config, trust_remote_code=trust_remote_code)
            except ValueError:  # no masked-LM head registered for this config (LLaDA registers AutoModel)
                model = AutoModel.from_config(config, trust_remote_code=trust_remote_code)
        model.tie_weights()  # init_empty_weights leaves tied tensors as separate meta copies
    return sum(p.numel() for p in model.parameters())


def stored_parameters(path: str | Path) -> tuple[int, int] | None:
    """(parameters, bytes) stored in a directory's safetensors files, read from their headers only;
    None when the directory has no safetensors weights."""
    from safetensors import safe_open

    from .formats import weight_files

    path = Path(path)
    if not (path / "model.safetensors.index.json").exists() and not (path / "model.safetensors").exists():
        return None
    files = weight_files(path)
    count, size = 0, 0
    for file in files:
        with safe_open(file, framework="pt") as f:
            for key in f.keys():
                tensor = f.get_slice(key)
                n = 1
                for dim in tensor.get_shape():
                    n *= dim
                count += n
                size += n * SAFETENSORS_BYTES.get(tensor.get_dtype(), 4)
    return count, size


def dtype_bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def estimate_memory(parameters: int, dtype: torch.dtype | None = None, stored_bytes: int | None = None) -> MemoryEstimate:
    """Memory to hold ``parameters`` in ``dtype`` (or as stored, ``stored_bytes`` in all, when dtype is None)
    for sampling, margin included."""
    if dtype is not None:
        per_parameter = float(dtype_bytes(dtype))
    elif stored_bytes is not None:
        per_parameter = stored_bytes / max(parameters, 1)
    else:
        per_parameter = 4.0
    weights = parameters * per_parameter
    return MemoryEstimate(parameters, per_parameter, int(OVERHEAD_FRACTION * weights) + OVERHEAD_FIXED_BYTES)


def available_memory(device: str | torch.device = "cpu", device_map=None) -> int:
    """Bytes free for a model on ``device``; with a ``device_map`` (accelerate spreads layers over every GPU
    and then the CPU), the free memory of all of them."""
    if device_map is not None:
        total = _cpu_available()
        if torch.cuda.is_available():
            total += sum(torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count()))
        return total
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device.index if device.index is not None else torch.cuda.current_device())[0]
    return _cpu_available()


def _cpu_available() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # psutil is optional; Linux has the same figure in /proc/meminfo
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
        raise


def check_fits(estimate: MemoryEstimate, available: int, what: str, device: str = "cpu") -> None:
    """Raise :class:`InsufficientMemoryError` naming what is needed and what is free, with what to try."""
    if estimate.total_bytes <= available:
        return
    hints = []
    if estimate.bytes_per_parameter > 2:
        hints.append(f"load in bfloat16 (about {estimate_memory(estimate.parameters, torch.bfloat16).total_bytes / GIB:.1f} GiB: "
                     "dtype=torch.bfloat16 in Python, --dtype bfloat16 in the CLI and the app)")
    if str(device).startswith("cpu"):
        hints.append("use a GPU (device='cuda' or device_map='auto')")
    hint = "; ".join(hints) or "free some memory or use a machine with more"
    raise InsufficientMemoryError(
        f"{what} needs about {estimate.total_bytes / GIB:.1f} GiB on {device} ({estimate.parameters / 1e9:.2f}B "
        f"parameters x {estimate.bytes_per_parameter:g} bytes + {estimate.overhead_bytes / GIB:.1f} GiB margin) "
        f"but only {available / GIB:.1f} GiB is available; {hint}")


def check_model_fits(path: str | Path, dtype: torch.dtype | None, device: str | torch.device = "cpu",
                     device_map=None, trust_remote_code: bool = False) -> MemoryEstimate:
    """Estimate the memory of the model directory ``path`` loaded in ``dtype`` (None: as stored) and refuse
    with :class:`InsufficientMemoryError` when the target has less free. Reads headers and config only."""
    stored = stored_parameters(path)
    if stored is None:  # weights in another format: build the model from its config on the meta device
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
        parameters, stored_bytes = count_parameters(config, trust_remote_code), None
    else:
        parameters, stored_bytes = stored
    estimate = estimate_memory(parameters, dtype, stored_bytes)
    target = "the GPUs and CPU (device_map)" if device_map is not None else str(device)
    check_fits(estimate, available_memory(device, device_map), str(path), target)
    return estimate


@dataclass(frozen=True)
class TrainingEstimate:
    """Memory to train a model: weights, gradients and AdamW's two moments (all fp32: 16 bytes a parameter, or
    4 for the frozen weights and 16 for the trained ones with LoRA), and the activations kept for backward."""

    parameters: int
    state_bytes: int
    activation_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.state_bytes + self.activation_bytes + OVERHEAD_FIXED_BYTES


def _config_dims(config) -> tuple[int, int, int, int, int]:
    """(hidden, layers, heads, intermediate, vocabulary) of a transformers config, whatever the family names them."""
    def first(*names, default=None):
        return next((getattr(config, n) for n in names if getattr(config, n, None)), default)

    hidden = first("hidden_size", "d_model", "n_embd")
    return (hidden, first("num_hidden_layers", "n_layers", "n_layer"), first("num_attention_heads", "n_heads", "n_head"),
            first("intermediate_size", "mlp_hidden_size", default=4 * hidden), first("vocab_size", "embedding_size"))


def estimate_training_memory(config, batch_size: int, seq_len: int, parameters: int | None = None,
                             trained_parameters: int | None = None, activation_bytes: int = 4) -> TrainingEstimate:
    """An upper-end estimate of training memory for ``batch_size`` sequences of ``seq_len`` tokens.

    Activations per layer follow Korthikanti et al. (2022, "Reducing Activation Recomputation in Large
    Transformer Models"): about s b (34 h + 5 a s) bytes in 16-bit; here scaled to ``activation_bytes`` a value
    (4: fp32, 2: bf16 autocast) and with the MLP's width (SwiGLU keeps three intermediate tensors), plus the
    logits and their gradient over the vocabulary (three copies of b s V). It errs high: for the small preset at
    batch 32 x 256 tokens in fp32 it gives 3.6 GiB (1 GiB of it margin) where `llada-play train` peaked at
    2.2 GiB resident (measured 2026-12-02); a refusal needs margin, not precision."""
    hidden, layers, heads, intermediate, vocab = _config_dims(config)
    parameters = parameters if parameters is not None else count_parameters(config)
    trained = parameters if trained_parameters is None else trained_parameters
    state = 4 * parameters + 12 * trained  # weights, and for each trained one its gradient and two moments
    tokens = batch_size * seq_len
    per_layer = tokens * (34 * hidden + 3 * 2 * intermediate + 5 * heads * seq_len) * activation_bytes / 2
    logits = 3 * tokens * vocab * 4
    return TrainingEstimate(parameters, int(state), int(layers * per_layer + logits))


def check_training_fits(estimate: TrainingEstimate, available: int, what: str, device: str = "cpu") -> None:
    """Raise :class:`InsufficientMemoryError` with both figures when training would not fit."""
    if estimate.total_bytes <= available:
        return
    raise InsufficientMemoryError(
        f"training {what} needs about {estimate.total_bytes / GIB:.1f} GiB on {device} (weights, gradients and "
        f"AdamW state of {estimate.parameters / 1e6:,.1f}M parameters {estimate.state_bytes / GIB:.1f} GiB, "
        f"activations {estimate.activation_bytes / GIB:.1f} GiB) but only {available / GIB:.1f} GiB is available; "
        "use a smaller preset, batch or seq_len, LoRA (--lora-rank) for SFT, or a GPU")
