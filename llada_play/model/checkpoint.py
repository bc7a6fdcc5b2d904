"""Loading and saving model + tokenizer directories, with checks that name the faulty file."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

from .adapters import adopt_tokenizer_mask_id
from .config import LladaConfig
from .errors import CheckpointError  # in errors.py so that remote_code can raise it without a cycle
from .formats import Layout, LayoutError, check_tensors, layout_of, load_weights, native_config
from .text import end_of_turn_id

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "default_model"
# The default model's autoregressive twin (same shape, tokenizer, data and budget; causal attention): the
# baseline of the reversal-curse experiment when it starts from pre-trained models.
DEFAULT_AR_MODEL_DIR = Path(__file__).resolve().parent.parent / "default_ar_model"
# The default model after `llada-play sft` on the shipped arithmetic rows (defaults: 1000 steps): a model with a
# task that has ground truth, for comparing samplers (notebook 02, benchmarks/fast_decoding.py).
ARITHMETIC_MODEL_DIR = Path(__file__).resolve().parent.parent / "arithmetic_model"
# The trained models of the reversal-curse experiment's long run (seed 0, mini preset), kept beside its results in
# the repository (data/reversal/README.md); absent from an installed package.
REVERSAL_MODELS_DIR = Path(__file__).resolve().parents[2] / "data" / "reversal" / "results" / "long-models" / "seed0"
# The Sudoku pair of `llada-play puzzle` (seed 0 of the measured run, data/puzzle/README.md); repository only.
PUZZLE_MODELS_DIR = Path(__file__).resolve().parents[2] / "data" / "puzzle" / "seed0"
# The in-context-learning pair (seed 1 of the measured run, data/icl/README.md says why that seed); repository only.
ICL_MODELS_DIR = Path(__file__).resolve().parents[2] / "data" / "icl" / "seed1"
# The arithmetic SFT again with token editing (edit ratio 0.1, data/sft/editing/README.md); repository only.
ARITHMETIC_EDITING_MODEL_DIR = Path(__file__).resolve().parents[2] / "data" / "sft" / "editing" / "final"
# Every model the project ships, by display name (the app's Model tab lists these names). A new shipped model
# (e.g. the puzzle pair) is one more line here; only directories present on disk are listed.
_SHIPPED_CANDIDATES: dict[str, Path] = {
    "Shakespeare, diffusion (default)": DEFAULT_MODEL_DIR,
    "Shakespeare, autoregressive twin": DEFAULT_AR_MODEL_DIR,
    "Arithmetic (SFT of the default)": ARITHMETIC_MODEL_DIR,
    "Reversal curse, diffusion (seed 0)": REVERSAL_MODELS_DIR / "diffusion",
    "Reversal curse, autoregressive (seed 0)": REVERSAL_MODELS_DIR / "autoregressive",
    "Sudoku 6x6, diffusion (seed 0)": PUZZLE_MODELS_DIR / "diffusion" / "final",
    "Sudoku 6x6, autoregressive twin (seed 0)": PUZZLE_MODELS_DIR / "autoregressive" / "final",
    "Sudoku 6x6, diffusion that edits (seed 0)": PUZZLE_MODELS_DIR.parent / "editing" / "seed0" / "diffusion" / "final",
    "Arithmetic that edits (SFT of the default, edit ratio 0.1)": ARITHMETIC_EDITING_MODEL_DIR,
    "Few-shot, diffusion (seed 1)": ICL_MODELS_DIR / "diffusion" / "final",
    "Few-shot, autoregressive twin (seed 1)": ICL_MODELS_DIR / "autoregressive" / "final",
}
SHIPPED_MODELS: dict[str, Path] = {name: path for name, path in _SHIPPED_CANDIDATES.items()
                                   if (path / "config.json").exists()}
# Names for the weights dtype in the CLI and the app; "stored" keeps what the files hold.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "stored": None}
# ...and "auto", which picks one for the device (dtype_named).
DTYPE_NAMES = sorted([*DTYPES, "auto"])


def native_bfloat16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` multiplies bfloat16 in hardware: a GPU that supports it, or a CPU with AVX512-BF16 or
    AMX (there a bf16 forward pass of the default model takes 3.2 ms against 6.9 ms in fp32, measured on the
    2-core test machine; CPUs without them emulate bf16 and run it slower than fp32)."""
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if kind != "cpu":
        return False
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check is not None and check() for check in checks)


def dtype_named(name: str, device: str | torch.device = "cpu") -> torch.dtype | None:
    """The dtype of a ``--dtype`` name; "auto" is bfloat16 where the device computes it natively, else float32."""
    if name == "auto":
        return torch.bfloat16 if native_bfloat16(device) else torch.float32
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}: choose one of {', '.join(DTYPE_NAMES)}")
    return DTYPES[name]


def default_model_path() -> Path:
    """The shipped default model (Shakespeare, small preset)."""
    if not (DEFAULT_MODEL_DIR / "config.json").exists():
        raise CheckpointError(f"the default model is not in {DEFAULT_MODEL_DIR}; pass a model directory instead")
    return DEFAULT_MODEL_DIR


def check_checkpoint(path: str | Path) -> LladaConfig:
    """Verify that ``path`` holds a loadable llada-play model; raise :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"model directory {path} does not exist")
    config_file = path / "config.json"
    if not config_file.exists():
        raise CheckpointError(f"{config_file} is missing")
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{config_file} cannot be read: {err}") from err
    if not isinstance(config, LladaConfig):
        return config  # another architecture: transformers does its own checks
    try:
        check_tensors(path, config)
    except LayoutError as err:
        raise CheckpointError(str(err)) from None
    tokenizer_file = path / "tokenizer.json"
    if tokenizer_file.exists():
        tokenizer = AutoTokenizer.from_pretrained(path)
        if len(tokenizer) > config.vocab_size:
            raise CheckpointError(f"{tokenizer_file} has {len(tokenizer)} tokens but the model's vocabulary "
                                  f"({config_file}) has {config.vocab_size}")
        if tokenizer.mask_token_id is not None and tokenizer.mask_token_id != config.mask_token_id:
            raise CheckpointError(f"{tokenizer_file} has mask id {tokenizer.mask_token_id} but {config_file} "
                                  f"says {config.mask_token_id}")
    return config


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A local directory as is; otherwise a hub id looked up in the local Hugging Face cache only (nothing is
    ever downloaded)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    name = str(name_or_path)
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(name, local_files_only=True))
        except Exception as err:  # the hub client raises several kinds for "not cached"
            raise CheckpointError(f"{name} is neither a directory nor a model in the local Hugging Face cache "
                                  f"(downloads are off): {type(err).__name__}") from err
    raise CheckpointError(f"model directory {path} does not exist")


# Auto classes tried, in order, for a checkpoint that ships its own code (LLaDA's registers AutoModel).
REMOTE_AUTO_CLASSES = ("AutoModelForMaskedLM", "AutoModel", "AutoModelForCausalLM")


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu",
               dtype: torch.dtype | None = torch.float32, trust_remote_code: bool = False, device_map=None,
               check_memory: bool = True, native: bool = True):
    """Load (model, tokenizer) from a directory or a cached hub id (the shipped default when ``path`` is None),
    offline.

    Weights are cast to ``dtype`` (float32 by default: checkpoints may be stored in bf16 to stay small);
    ``None`` keeps the stored dtype (use ``torch.bfloat16`` for LLaDA-8B). The tokenizer is ``None`` when the
    directory has none. LLaDA (``model_type: "llada"``) and Dream (``"Dream"``) checkpoints are read natively
    into :class:`LladaForMaskedLM` (``formats.py``): their own Python files are never run, so they need no
    ``trust_remote_code`` (``native=False`` runs their code instead, for comparisons). Any other checkpoint
    that ships its own code (``auto_map`` in config.json) is refused unless ``trust_remote_code``.
    ``device_map`` (e.g. "auto", needs accelerate) spreads a large model over the GPUs and the CPU instead of
    moving it to ``device``. With ``check_memory``, the memory the model needs is estimated from its files
    before anything loads, and loading is refused when it does not fit. A directory of LoRA adapters
    (``adapter_config.json``, as ``run_sft`` writes) loads its base model with the adapters attached.
    Every failure is a :class:`CheckpointError` (or ``InsufficientMemoryError``) with a one-line message.
    """
    path = default_model_path() if path is None else resolve_model_path(path)
    if (path / "adapter_config.json").exists():
        return _load_with_adapters(path, device, dtype, trust_remote_code, device_map, check_memory)
    config_file = path / "config.json"
    if not config_file.exists():
        raise CheckpointError(f"{config_file} is missing")
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
        auto_map = raw.get("auto_map") or {}
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{config_file} is not UTF-8 text (byte {err.object[err.start]:#04x} at offset "
                              f"{err.start})") from err
    except (json.JSONDecodeError, AttributeError) as err:
        raise CheckpointError(f"{config_file} cannot be read: {err}") from err
    layout = layout_of(raw) if native else None
    try:
        if layout is not None:
            return _load_native(path, native_config(raw, layout, config_file), layout, device, dtype, device_map,
                                check_memory)
        return _load_with_transformers(path, auto_map, device, dtype, trust_remote_code, device_map, check_memory)
    except LayoutError as err:
        raise CheckpointError(str(err)) from None
    except (OSError, KeyError, AttributeError, TypeError, RuntimeError) as err:  # a broken file, one line
        raise CheckpointError(f"{path} cannot be loaded: {type(err).__name__}: "
                              f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}") from err


def _load_native(path: Path, config: LladaConfig, layout: Layout, device, dtype, device_map, check_memory):
    tensors = check_tensors(path, config, layout)  # every shard and tensor there, before the memory check
    if check_memory:
        from .memory import check_model_fits

        check_model_fits(path, dtype, device, device_map)
    model = load_weights(tensors, config, dtype, device, device_map)
    tokenizer = _load_tokenizer(path, layout, trust_remote_code=False)
    if tokenizer is not None:
        if len(tokenizer) > config.vocab_size:
            raise CheckpointError(f"{path}: the tokenizer has {len(tokenizer)} tokens but the model's vocabulary "
                                  f"has {config.vocab_size}")
        if tokenizer.mask_token_id is None and config.mask_token_id < len(tokenizer):
            # LLaDA's tokenizer knows <|mdm_mask|> but does not call it the mask token
            tokenizer.mask_token = tokenizer.convert_ids_to_tokens(config.mask_token_id)
        end_of_turn = end_of_turn_id(tokenizer)
        if end_of_turn is not None:  # LLaDA-Instruct ends its answers with it (generate's confidence_eos_eot_inf)
            model.config.eot_token_id = end_of_turn
    return model, tokenizer


def _load_tokenizer(path: Path, layout: Layout | None, trust_remote_code: bool):
    if not ((path / "tokenizer.json").exists() or (path / "tokenizer_config.json").exists()):
        return None
    if layout is not None:  # the class by name: AutoTokenizer would read config.json's foreign model_type
        import transformers

        try:
            settings = json.loads((path / "tokenizer_config.json").read_text())
        except (OSError, json.JSONDecodeError):
            settings = {}
        name = settings.get("tokenizer_class") or "PreTrainedTokenizerFast"
        if settings.get("auto_map") and layout.tokenizer_fallback:  # a class of the checkpoint's own code
            name = layout.tokenizer_fallback
        if hasattr(transformers, name):
            return getattr(transformers, name).from_pretrained(path, local_files_only=True)
    return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)


def _load_with_transformers(path: Path, auto_map: dict, device, dtype, trust_remote_code, device_map,
                            check_memory):
    if auto_map and not trust_remote_code:
        raise CheckpointError(f"{path} needs its own Python code (auto_map in config.json); it is only "
                              "run when you allow it: trust_remote_code=True in Python, --trust-remote-code in "
                              "the CLI and the app")
    if not auto_map:
        check_checkpoint(path)
    if check_memory:
        from .memory import check_model_fits

        check_model_fits(path, dtype, device, device_map, trust_remote_code)
    placement = {} if device_map is None else {"device_map": device_map}
    if auto_map:
        from .remote_code import load_remote_model

        name = next((n for n in REMOTE_AUTO_CLASSES if n in auto_map), None)
        if name is None:
            raise CheckpointError(f"{path / 'config.json'}: auto_map names none of {REMOTE_AUTO_CLASSES}")
        model = load_remote_model(path, name, auto_map[name], dtype=dtype, **placement)
    else:
        model = AutoModelForMaskedLM.from_pretrained(path, dtype=dtype, local_files_only=True, **placement)
    model = (model if device_map is not None else model.to(device)).eval()
    tokenizer = _load_tokenizer(path, None, trust_remote_code)
    adopt_tokenizer_mask_id(model, tokenizer)
    return model, tokenizer


def _load_with_adapters(path: Path, device, dtype, trust_remote_code, device_map, check_memory):
    from peft import PeftModel

    try:
        base = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
    except (json.JSONDecodeError, KeyError) as err:
        raise CheckpointError(f"{path / 'adapter_config.json'} does not name its base model: {err}") from err
    if not base:
        raise CheckpointError(f"{path / 'adapter_config.json'} does not name its base model")
    model, tokenizer = load_model(base, device, dtype, trust_remote_code, device_map, check_memory)
    model = PeftModel.from_pretrained(model, path, is_trainable=False).eval()
    if (path / "tokenizer_config.json").exists():
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
    return model, tokenizer


def _publish_permissions(staging: Path) -> None:
    """Give a staging directory made by mkdtemp (mode 0700) the usual permissions before it is renamed into
    place, so that other users can read what was saved."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    for f in staging.iterdir():
        if f.is_file():
            os.chmod(f, 0o666 & ~umask)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a fresh staging directory next to ``path`` to write into; on success it replaces ``path`` (moving an
    existing one aside first), so that a reader sees the old directory or the complete new one, never a
    half-written one. On error the staging directory is removed and ``path`` is left as it was. Staging
    directories are hidden (a leading dot), so that listings of complete directories never see them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield staging
        _publish_permissions(staging)
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(staging, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def save_model(model, tokenizer, path: str | Path) -> Path:
    """Write model (safetensors) and tokenizer to ``path`` atomically (see :func:`atomic_directory`)."""
    path = Path(path)
    with atomic_directory(path) as staging:
        model.save_pretrained(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
    return path
