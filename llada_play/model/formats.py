"""Published checkpoint layouts, read natively: LLaDA's and Dream's config keys and weight names.

A checkpoint whose ``config.json`` says ``model_type: "llada"`` (GSAI-ML LLaDA-8B Base/Instruct, LLaDA 1.5) or
``"Dream"`` (Dream-org Dream-v0) holds the network of this project's :class:`LladaForMaskedLM` under other
names. Reading one translates its config (refusing, by name, an option the native model does not implement)
and renames its weights, one safetensors tensor at a time; no Python file of the checkpoint is imported, so
``trust_remote_code`` is not needed. Writing a layout (:func:`export_checkpoint`) reads the same tables
backwards: the tests build their fixtures with it, and the files open with the published code.
"""
from __future__ import annotations

import functools
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import LladaConfig


class LayoutError(ValueError):
    """A checkpoint in a published layout that the native model cannot read (the message says why)."""


@dataclass(frozen=True)
class Layout:
    """One published layout: how its config maps to :class:`LladaConfig` and its weights to ours.

    ``weights`` pairs a published tensor name with the native one; ``{n}`` is a layer index and ``{p}`` is
    ``weight`` or ``bias``."""

    name: str
    model_types: tuple[str, ...]
    weights: tuple[tuple[str, str], ...]
    read_config: Callable[[dict, Path], dict]
    write_config: Callable[[LladaConfig], dict]
    # A tokenizer class of this project's dependencies that reads the published tokenizer files, used when
    # the checkpoint names a tokenizer class of its own code (Dream's DreamTokenizer is Qwen2's tokenizer).
    tokenizer_fallback: str | None = None

    def rename(self, name: str, to_native: bool = True) -> str | None:
        """The other layout's name for tensor ``name``, or None when the layout has no such tensor."""
        for pattern, target in _name_patterns(self.weights, to_native):
            match = pattern.match(name)
            if match:
                return target.format(**match.groupdict())
        return None


@functools.cache
def _name_patterns(weights: tuple[tuple[str, str], ...], to_native: bool) -> list[tuple[re.Pattern, str]]:
    """(compiled source pattern, target template) per pair of names, in the direction asked."""
    pairs = []
    for published, native in weights:
        source, target = (published, native) if to_native else (native, published)
        regex = re.escape(source).replace(r"\{n\}", r"(?P<n>\d+)").replace(r"\{p\}", r"(?P<p>weight|bias)")
        pairs.append((re.compile(f"^{regex}$"), target))
    return pairs


def _check_options(raw: dict, defaults: dict, supported: dict[str, Callable], config_file: Path) -> dict:
    """``raw`` with the published defaults filled in; raises :class:`LayoutError` naming the first option
    whose value the native model does not implement."""
    values = {**defaults, **raw}
    for key, (accepts, implemented) in supported.items():
        if not accepts(values.get(key)):
            raise LayoutError(f"{config_file}: {key}={values.get(key)!r} is not implemented by llada-play's native "
                              f"model (it implements {implemented})")
    return values


# LLaDA's ModelConfig defaults (configuration_llada.py), used for keys a config.json leaves out.
LLADA_DEFAULTS = dict(d_model=768, n_heads=12, n_kv_heads=None, n_layers=12, mlp_ratio=4, mlp_hidden_size=None,
                      activation_type="swiglu", block_type="sequential", block_group_size=1, alibi=False, rope=False,
                      multi_query_attention=None, attention_layer_norm=False, input_emb_norm=False,
                      layer_norm_type="default", layer_norm_with_affine=True, rms_norm_eps=1e-5,
                      max_sequence_length=1024, rope_theta=10000.0, include_qkv_bias=False, include_bias=False,
                      bias_for_layer_norm=None, scale_logits=False, vocab_size=50257, embedding_size=50304,
                      weight_tying=True, eos_token_id=50256, pad_token_id=50256, mask_token_id=126336)
LLADA_SUPPORTED = {
    "block_type": (lambda v: v == "llama", "'llama'"),
    "block_group_size": (lambda v: v == 1, "1"),
    "activation_type": (lambda v: v == "silu", "'silu' (SwiGLU through ff_proj and up_proj)"),
    "layer_norm_type": (lambda v: v == "rms", "'rms'"),
    "layer_norm_with_affine": (lambda v: v is True, "true"),
    "bias_for_layer_norm": (lambda v: not v, "false"),
    "include_bias": (lambda v: not v, "false; include_qkv_bias is supported"),
    "rope": (lambda v: v is True, "true"),
    "alibi": (lambda v: not v, "false"),
    "attention_layer_norm": (lambda v: not v, "false"),
    "scale_logits": (lambda v: not v, "false"),
    "input_emb_norm": (lambda v: not v, "false"),
    "clip_qkv": (lambda v: v is None, "null"),
}


def _llada_kv_heads(values: dict) -> int:
    if values.get("multi_query_attention"):
        return 1
    return values["n_kv_heads"] if values.get("n_kv_heads") is not None else values["n_heads"]


def read_llada_config(raw: dict, config_file: Path) -> dict:
    v = _check_options(raw, LLADA_DEFAULTS, LLADA_SUPPORTED, config_file)
    return dict(vocab_size=v["embedding_size"] or v["vocab_size"], hidden_size=v["d_model"],
                num_hidden_layers=v["n_layers"], num_attention_heads=v["n_heads"],
                num_key_value_heads=_llada_kv_heads(v),
                intermediate_size=v["mlp_hidden_size"] or v["mlp_ratio"] * v["d_model"],
                max_position_embeddings=v["max_sequence_length"], rms_norm_eps=v["rms_norm_eps"],
                rope_theta=v["rope_theta"], mask_token_id=v["mask_token_id"], eos_token_id=v["eos_token_id"],
                pad_token_id=v["pad_token_id"], tie_word_embeddings=bool(v["weight_tying"]),
                attention_bias=bool(v["include_qkv_bias"]), positions_skip_padding=False, source_layout="llada")


def write_llada_config(c: LladaConfig) -> dict:
    """config.json as GSAI-ML/LLaDA-8B-Instruct lays it out (same keys), with this model's shapes."""
    return {
        "activation_type": "silu", "alibi": False, "alibi_bias_max": 8.0, "architectures": ["LLaDAModelLM"],
        "attention_dropout": 0.0, "attention_layer_norm": False, "attention_layer_norm_with_affine": True,
        "auto_map": {"AutoConfig": "configuration_llada.LLaDAConfig",
                     "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM", "AutoModel": "modeling_llada.LLaDAModelLM"},
        "bias_for_layer_norm": False, "block_group_size": 1, "block_type": "llama", "d_model": c.hidden_size,
        "embedding_dropout": 0.0, "embedding_size": c.vocab_size, "eos_token_id": c.eos_token_id,
        "flash_attention": False, "include_bias": False, "include_qkv_bias": c.attention_bias,
        "init_cutoff_factor": None, "init_device": "meta", "init_fn": "mitchell", "init_std": 0.02,
        "input_emb_norm": False, "layer_norm_type": "rms", "layer_norm_with_affine": True,
        "mask_token_id": c.mask_token_id, "max_sequence_length": c.max_position_embeddings,
        "mlp_hidden_size": c.intermediate_size, "mlp_ratio": 4, "model_type": "llada", "multi_query_attention": None,
        "n_heads": c.num_attention_heads, "n_kv_heads": c.num_key_value_heads, "n_layers": c.num_hidden_layers,
        "pad_token_id": c.pad_token_id if c.pad_token_id is not None else c.eos_token_id,
        "precision": "amp_bf16", "residual_dropout": 0.0, "rms_norm_eps": c.rms_norm_eps, "rope": True,
        "rope_full_precision": True, "rope_theta": c.rope_theta, "scale_logits": False,
        "transformers_version": "4.46.3", "use_cache": False, "vocab_size": c.vocab_size,
        "weight_tying": bool(c.tie_word_embeddings),
    }


# DreamConfig defaults (configuration_dream.py), used for keys a config.json leaves out.
DREAM_DEFAULTS = dict(vocab_size=151936, hidden_size=4096, intermediate_size=22016, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32, hidden_act="silu", max_position_embeddings=32768,
                      rms_norm_eps=1e-6, tie_word_embeddings=False, rope_theta=10000.0, rope_scaling=None,
                      use_sliding_window=False, mask_token_id=151666, pad_token_id=151643, eos_token_id=None,
                      bos_token_id=None)
DREAM_SUPPORTED = {
    "hidden_act": (lambda v: v == "silu", "'silu'"),
    "rope_scaling": (lambda v: v is None, "null (plain RoPE)"),
    "use_sliding_window": (lambda v: not v, "false (full attention)"),
}


def read_dream_config(raw: dict, config_file: Path) -> dict:
    v = _check_options(raw, DREAM_DEFAULTS, DREAM_SUPPORTED, config_file)
    return dict(vocab_size=v["vocab_size"], hidden_size=v["hidden_size"], num_hidden_layers=v["num_hidden_layers"],
                num_attention_heads=v["num_attention_heads"],
                num_key_value_heads=v["num_key_value_heads"] or v["num_attention_heads"],
                intermediate_size=v["intermediate_size"], max_position_embeddings=v["max_position_embeddings"],
                rms_norm_eps=v["rms_norm_eps"], rope_theta=v["rope_theta"], mask_token_id=v["mask_token_id"],
                eos_token_id=v["eos_token_id"], pad_token_id=v["pad_token_id"], bos_token_id=v["bos_token_id"],
                tie_word_embeddings=bool(v["tie_word_embeddings"]), attention_bias=True, next_token_logits=True,
                positions_skip_padding=True, source_layout="dream")


def write_dream_config(c: LladaConfig) -> dict:
    """config.json as Dream-org/Dream-v0-Instruct-7B lays it out (same keys), with this model's shapes."""
    return {
        "architectures": ["DreamModel"], "attention_dropout": 0.0,
        "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
        "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id, "hidden_act": "silu",
        "hidden_size": c.hidden_size, "initializer_range": 0.02, "intermediate_size": c.intermediate_size,
        "mask_token_id": c.mask_token_id, "max_position_embeddings": c.max_position_embeddings,
        "max_window_layers": c.num_hidden_layers, "model_type": "Dream", "num_attention_heads": c.num_attention_heads,
        "num_hidden_layers": c.num_hidden_layers, "num_key_value_heads": c.num_key_value_heads,
        "pad_token_id": c.pad_token_id, "rms_norm_eps": c.rms_norm_eps, "rope_scaling": None,
        "rope_theta": c.rope_theta, "sliding_window": None, "tie_word_embeddings": bool(c.tie_word_embeddings),
        "torch_dtype": "float32", "transformers_version": "4.46.2", "use_cache": False,
        "use_sliding_window": False, "vocab_size": c.vocab_size,
    }


LAYOUTS: dict[str, Layout] = {
    "llada": Layout(
        "llada", ("llada",),
        weights=(
            ("model.transformer.wte.weight", "model.embed_tokens.weight"),
            ("model.transformer.blocks.{n}.attn_norm.weight", "model.layers.{n}.attn_norm.weight"),
            ("model.transformer.blocks.{n}.q_proj.{p}", "model.layers.{n}.attn.q_proj.{p}"),
            ("model.transformer.blocks.{n}.k_proj.{p}", "model.layers.{n}.attn.k_proj.{p}"),
            ("model.transformer.blocks.{n}.v_proj.{p}", "model.layers.{n}.attn.v_proj.{p}"),
            ("model.transformer.blocks.{n}.attn_out.weight", "model.layers.{n}.attn.o_proj.weight"),
            ("model.transformer.blocks.{n}.ff_norm.weight", "model.layers.{n}.mlp_norm.weight"),
            ("model.transformer.blocks.{n}.ff_proj.weight", "model.layers.{n}.mlp.gate_proj.weight"),
            ("model.transformer.blocks.{n}.up_proj.weight", "model.layers.{n}.mlp.up_proj.weight"),
            ("model.transformer.blocks.{n}.ff_out.weight", "model.layers.{n}.mlp.down_proj.weight"),
            ("model.transformer.ln_f.weight", "model.norm.weight"),
            ("model.transformer.ff_out.weight", "lm_head.weight"),
        ),
        read_config=read_llada_config, write_config=write_llada_config),
    "dream": Layout(
        "dream", ("dream",),
        weights=(
            ("model.embed_tokens.weight", "model.embed_tokens.weight"),
            ("model.layers.{n}.input_layernorm.weight", "model.layers.{n}.attn_norm.weight"),
            ("model.layers.{n}.self_attn.q_proj.{p}", "model.layers.{n}.attn.q_proj.{p}"),
            ("model.layers.{n}.self_attn.k_proj.{p}", "model.layers.{n}.attn.k_proj.{p}"),
            ("model.layers.{n}.self_attn.v_proj.{p}", "model.layers.{n}.attn.v_proj.{p}"),
            ("model.layers.{n}.self_attn.o_proj.weight", "model.layers.{n}.attn.o_proj.weight"),
            ("model.layers.{n}.post_attention_layernorm.weight", "model.layers.{n}.mlp_norm.weight"),
            ("model.layers.{n}.mlp.gate_proj.weight", "model.layers.{n}.mlp.gate_proj.weight"),
            ("model.layers.{n}.mlp.up_proj.weight", "model.layers.{n}.mlp.up_proj.weight"),
            ("model.layers.{n}.mlp.down_proj.weight", "model.layers.{n}.mlp.down_proj.weight"),
            ("model.norm.weight", "model.norm.weight"),
            ("lm_head.weight", "lm_head.weight"),
        ),
        read_config=read_dream_config, write_config=write_dream_config, tokenizer_fallback="Qwen2Tokenizer"),
}


def layout_of(config: dict) -> Layout | None:
    """The published layout a parsed config.json describes (by ``model_type``), or None for any other."""
    model_type = str(config.get("model_type", "")).lower()
    return next((layout for layout in LAYOUTS.values() if model_type in layout.model_types), None)


def native_config(raw: dict, layout: Layout, config_file: Path) -> LladaConfig:
    """The native config for a parsed config.json in ``layout``; :class:`LayoutError` names what is wrong."""
    try:
        return LladaConfig(**layout.read_config(raw, config_file))
    except (TypeError, ValueError) as err:
        raise LayoutError(f"{config_file}: {err}") from err


def weight_files(path: Path) -> list[Path]:
    """The safetensors files of a checkpoint: the shards its index names, or model.safetensors."""
    index = path / "model.safetensors.index.json"
    if index.exists():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError) as err:
            raise LayoutError(f"{index} is not a valid safetensors index: {err}") from err
        return [path / s for s in shards]
    return [path / "model.safetensors"]


def expected_tensors(config: LladaConfig) -> dict[str, tuple[int, ...]]:
    """Native tensor names and shapes for ``config`` (the output head left out when it is tied)."""
    from .modeling import LladaForMaskedLM

    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in LladaForMaskedLM(config).state_dict().items()}
    if config.tie_word_embeddings:
        shapes.pop("lm_head.weight", None)
    return shapes


def stored_tensors(path: Path, layout: Layout | None = None) -> dict[str, tuple[tuple[int, ...], Path, str]]:
    """{native name: (shape, file, stored name)} from the safetensors headers alone; a tensor the layout
    does not know is refused by name."""
    from safetensors import SafetensorError, safe_open

    found = {}
    for file in weight_files(path):
        if not file.exists():
            raise LayoutError(f"{file} is missing" + (" (named in model.safetensors.index.json)"
                                                      if file.name != "model.safetensors" else ""))
        try:
            with safe_open(file, framework="pt") as f:
                for key in f.keys():
                    native = key if layout is None else layout.rename(key)
                    if native is None:
                        raise LayoutError(f"{file}: tensor {key} is not part of {layout.name}'s layout as llada-play "
                                          "reads it")
                    found[native] = (tuple(f.get_slice(key).get_shape()), file, key)
        except LayoutError:
            raise
        except (SafetensorError, OSError, ValueError) as err:
            raise LayoutError(f"{file} is not a valid safetensors file: {err}") from err
    return found


def check_tensors(path: Path, config: LladaConfig, layout: Layout | None = None) -> dict:
    """Compare the stored tensors with those ``config`` implies; :class:`LayoutError` names the first
    missing, extra or misshapen one. Returns :func:`stored_tensors`."""
    found = stored_tensors(path, layout)
    config_file = path / "config.json"
    for name, shape in expected_tensors(config).items():
        stored_name = name if layout is None else layout.rename(name, to_native=False)
        if name not in found:
            raise LayoutError(f"{weight_files(path)[0]} lacks the tensor {stored_name} that {config_file} implies")
        if found[name][0] != shape:
            raise LayoutError(f"{found[name][1]}: tensor {stored_name} has shape {found[name][0]}, but "
                              f"{config_file} implies {shape}")
    return found


def load_weights(tensors: dict, config: LladaConfig, dtype: torch.dtype | None, device: str | torch.device = "cpu",
                 device_map=None):
    """Build :class:`LladaForMaskedLM` from ``config`` without allocating it, then read the tensors that
    :func:`check_tensors` found, one at a time, straight onto their device (``device``, or the one
    ``device_map`` gives their layer); each file is opened once."""
    from accelerate.utils import set_module_tensor_to_device
    from safetensors import safe_open

    from .modeling import LladaForMaskedLM

    with torch.device("meta"):
        model = LladaForMaskedLM(config)
    placement = _placement(model, device, device_map, dtype)
    by_file = sorted(tensors.items(), key=lambda item: str(item[1][1]))
    for file, entries in itertools.groupby(by_file, key=lambda item: item[1][1]):
        with safe_open(file, framework="pt", device="cpu") as f:
            for name, (_, _, stored_name) in entries:
                tensor = f.get_tensor(stored_name)
                if dtype is not None and tensor.is_floating_point():
                    tensor = tensor.to(dtype)
                set_module_tensor_to_device(model, name, _device_for(name, placement), value=tensor,
                                            dtype=tensor.dtype)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    if isinstance(placement, dict):
        from accelerate import dispatch_model

        model = dispatch_model(model, placement)
    return model.eval()


def _placement(model, device, device_map, dtype):
    if device_map is None:
        return torch.device(device)
    if isinstance(device_map, dict):
        return device_map
    from accelerate import infer_auto_device_map

    return infer_auto_device_map(model, no_split_module_classes=["LladaBlock"], dtype=dtype)


def _device_for(name: str, placement):
    if not isinstance(placement, dict):
        return placement
    prefix = max((p for p in placement if p == "" or name == p or name.startswith(p + ".")), key=len, default=None)
    if prefix is None:
        raise LayoutError(f"device_map places no module holding {name}")
    return placement[prefix]


def export_checkpoint(model, tokenizer, path: str | Path, layout: str) -> Path:
    """Write ``model`` (a :class:`LladaForMaskedLM`) and ``tokenizer`` in a published layout ("llada" or
    "dream"): that project's config.json keys and tensor names, in one model.safetensors. The code files the
    config's ``auto_map`` names are not written (they are the publisher's)."""
    from safetensors.torch import save_file

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {sorted(LAYOUTS)}")
    spec, config = LAYOUTS[layout], model.config
    if config.causal:
        raise ValueError("an autoregressive (causal) model has no place in a masked-diffusion layout")
    if layout == "dream" and not config.next_token_logits:
        raise ValueError("Dream's layout means next-token logits (next_token_logits=True); this model predicts "
                         "the token at each position")
    if layout == "llada" and config.next_token_logits:
        raise ValueError("LLaDA's layout predicts the token at each position; this model predicts the next one")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        tensors[spec.rename(name, to_native=False)] = tensor.detach().contiguous().cpu()
    if layout == "dream" and not config.attention_bias:  # Dream's q/k/v projections always carry a bias
        for i in range(config.num_hidden_layers):
            for proj, size in (("q", config.hidden_size), ("k", config.num_key_value_heads * config.head_dim),
                               ("v", config.num_key_value_heads * config.head_dim)):
                tensors[f"model.layers.{i}.self_attn.{proj}_proj.bias"] = torch.zeros(size)
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})
    (path / "config.json").write_text(json.dumps(spec.write_config(config), indent=2) + "\n")
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    return path
