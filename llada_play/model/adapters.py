"""One interface for every denoiser: "input ids (+ attention mask) -> logits" plus the mask id.

The sampler, the losses and the training loop only need that. What differs between model families — where
the mask id lives, which config key holds the context length, whether logits must be shifted, which linear
layers LoRA should adapt — is written once here, in :data:`FAMILIES`, and nowhere else.

Families:
  llada_play  this project's model (``LladaForMaskedLM``).
  llada       GSAI-ML LLaDA-8B Base/Instruct and LLaDA 1.5, loaded with their own (remote) code.
  dream       Dream-org Dream-v0 (converted from an autoregressive model: logits at i predict token i+1).
  masked_lm   any ``transformers`` masked LM (BERT, RoBERTa, ModernBERT...): mask token from the tokenizer.
  module      any other module whose forward takes input ids and returns logits (tests, your own).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .kv_cache import BlockKVCache

ATTENTION_AND_MLP = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Family:
    """What is particular to one kind of checkpoint."""

    name: str
    # Models converted from autoregressive ones keep predicting the *next* token at each position.
    shift_logits: bool = False
    # Config attributes that hold the context length, tried in order.
    context_keys: tuple[str, ...] = ("max_position_embeddings",)
    # peft ``target_modules``: names of the linear layers to adapt, a regular expression over module paths,
    # or "all-linear".
    lora_targets: tuple[str, ...] | str = "all-linear"
    # Used only when neither the caller, the config nor the tokenizer names a mask id.
    default_mask_id: int | None = None
    # Whether the model's forward takes ``block_cache``/``window`` (the Fast-dLLM cache of kv_cache.py).
    block_cache: bool = False


FAMILIES: dict[str, Family] = {
    "llada_play": Family("llada_play", lora_targets=ATTENTION_AND_MLP, block_cache=True),
    # LLaDA's remote code (modeling_llada.py) names a block's projections q/k/v_proj, attn_out, ff_proj,
    # up_proj, ff_out; its output head is also called ff_out, so the pattern keeps to the blocks.
    "llada": Family("llada", context_keys=("max_sequence_length", "max_position_embeddings"),
                    lora_targets=r".*\.blocks\.\d+\.(q_proj|k_proj|v_proj|attn_out|ff_proj|up_proj|ff_out)",
                    default_mask_id=126336),
    "dream": Family("dream", shift_logits=True, lora_targets=ATTENTION_AND_MLP, default_mask_id=151666),
    "masked_lm": Family("masked_lm"),
    "module": Family("module"),
}

# config.model_type (lower case) -> family; anything else with a masked-LM head is "masked_lm".
MODEL_TYPES = {"llada_play": "llada_play", "llada": "llada", "dream": "dream"}


def logits_of(output) -> torch.Tensor:
    """Accept a model output with ``.logits`` or a bare logits tensor."""
    return output if isinstance(output, torch.Tensor) else output.logits


def family_of(model) -> Family:
    """The family of a model, from its config's ``model_type`` (and its class for other masked LMs)."""
    model_type = str(getattr(getattr(model, "config", None), "model_type", "") or "").lower()
    if model_type in MODEL_TYPES:
        return FAMILIES[MODEL_TYPES[model_type]]
    base = getattr(model, "get_base_model", lambda: model)()  # a peft wrapper around a masked LM
    if type(base).__name__.endswith("ForMaskedLM"):
        return FAMILIES["masked_lm"]
    return FAMILIES["module"]


def shift_logits_right(logits: torch.Tensor) -> torch.Tensor:
    """Align next-token logits with the positions they fill: position i takes what i - 1 predicted.

    Position 0 keeps its own logits (nothing precedes it; it is a prompt token in practice)."""
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


def _config_value(model, name: str):
    return getattr(getattr(model, "config", None), name, None)


def _eos_ids(value) -> tuple[int, ...]:
    if value is None:
        return ()
    return (int(value),) if isinstance(value, int) else tuple(int(v) for v in value)


class Denoiser:
    """A model seen as a denoiser: ``denoiser(ids, attention_mask=None) -> logits`` (batch, length, vocab),
    aligned so that the logits at position i predict the token at i, plus the ids the sampler needs."""

    def __init__(self, model, family: Family, mask_id: int, eos_token_ids: tuple[int, ...],
                 vocab_size: int | None, context_length: int | None, shift_logits: bool | None = None):
        self.model = model
        self.family = family
        # Dream read natively is this project's model with next-token logits (config.next_token_logits)
        self.shift_logits = (family.shift_logits or bool(_config_value(model, "next_token_logits"))
                             if shift_logits is None else shift_logits)
        self.mask_id = mask_id
        self.eos_token_ids = eos_token_ids
        self.vocab_size = vocab_size
        self.context_length = context_length
        # end-of-turn (LLaDA-Instruct's <|eot_id|>), recorded in the config when a checkpoint is read natively
        self.end_of_turn_ids = _eos_ids(_config_value(model, "eot_token_id"))

    def __call__(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None,
                 block_cache: BlockKVCache | None = None, window: tuple[int, int] | None = None) -> torch.Tensor:
        """Logits for the whole canvas; with ``block_cache`` a full pass that also fills it, and with ``window``
        as well the logits of positions ``[start, stop)`` only, recomputed against the cached rest."""
        if block_cache is not None:
            return self._cached_call(input_ids, attention_mask, block_cache, window)
        # Only pass a mask when there is padding, so that user modules without the argument work too.
        out = self.model(input_ids) if attention_mask is None else self.model(input_ids, attention_mask=attention_mask)
        logits = logits_of(out)
        return shift_logits_right(logits) if self.shift_logits else logits

    @property
    def supports_block_cache(self) -> bool:
        return self.family.block_cache

    def new_block_cache(self) -> BlockKVCache:
        """An empty cache for this model, or a ValueError naming the family when it has none."""
        if not self.supports_block_cache:
            raise ValueError(f"the block KV cache needs a model whose forward takes a block cache (this "
                             f"project's LladaForMaskedLM); {type(self.model).__name__} (family "
                             f"{self.family.name!r}) has none: use cache=None")
        return BlockKVCache(self.model.config.num_hidden_layers)

    def _cached_call(self, input_ids, attention_mask, block_cache, window) -> torch.Tensor:
        if not self.supports_block_cache:
            self.new_block_cache()  # raises the family's error
        if window is None:
            logits = logits_of(self.model(input_ids, attention_mask=attention_mask, block_cache=block_cache))
            return shift_logits_right(logits) if self.shift_logits else logits
        start, stop = window
        # With next-token logits, position start's come from start - 1: recompute one position more.
        first = max(start - 1, 0) if self.shift_logits else start
        logits = logits_of(self.model(input_ids[:, first:stop], attention_mask=attention_mask,
                                      block_cache=block_cache, window=(first, stop)))
        if not self.shift_logits:
            return logits
        return shift_logits_right(logits) if first == start else logits[:, :-1]

    @property
    def device(self) -> torch.device:
        try:
            return next(self.model.parameters()).device
        except (AttributeError, StopIteration):
            return torch.device("cpu")

    def __repr__(self) -> str:
        return f"Denoiser({type(self.model).__name__}, family={self.family.name}, mask_id={self.mask_id})"


def resolve_mask_id(model, mask_id: int | None = None, tokenizer=None) -> int:
    """The mask id: explicit, else the config's ``mask_token_id``, else the tokenizer's mask token, else the
    family's published one. Raises ValueError when there is none or it lies outside the vocabulary."""
    if mask_id is None:
        mask_id = _config_value(model, "mask_token_id")
    if mask_id is None and tokenizer is not None:
        mask_id = getattr(tokenizer, "mask_token_id", None)
    if mask_id is None:
        mask_id = family_of(model).default_mask_id
    if mask_id is None:
        raise ValueError("no mask id: pass mask_id=..., or use a model whose config (or tokenizer) has a mask token")
    vocab_size = _config_value(model, "vocab_size")
    if vocab_size is not None and not 0 <= mask_id < vocab_size:
        raise ValueError(f"mask id {mask_id} is missing from the model's vocabulary of {vocab_size} tokens")
    return int(mask_id)


def context_length_of(model) -> int | None:
    for key in family_of(model).context_keys:
        value = _config_value(model, key)
        if value is not None:
            return int(value)
    return None


def as_denoiser(model, mask_id: int | None = None, tokenizer=None) -> Denoiser:
    """Wrap any supported model (returned unchanged when it already is a :class:`Denoiser`, with ``mask_id``
    overriding its mask id when given)."""
    if isinstance(model, Denoiser):
        if mask_id is None or mask_id == model.mask_id:
            return model
        model = model.model
    family = family_of(model)
    return Denoiser(model, family, resolve_mask_id(model, mask_id, tokenizer),
                    _eos_ids(_config_value(model, "eos_token_id")), _config_value(model, "vocab_size"),
                    context_length_of(model))


def supports_block_cache(model) -> bool:
    """Whether ``model`` (or the model a :class:`Denoiser` wraps) takes the block KV cache: its family says."""
    return model.supports_block_cache if isinstance(model, Denoiser) else family_of(model).block_cache


def lora_target_modules(model) -> tuple[str, ...] | str:
    """The peft ``target_modules`` for this model's family."""
    return family_of(model).lora_targets


def adopt_tokenizer_mask_id(model, tokenizer) -> None:
    """Masked LMs such as BERT keep their mask token in the tokenizer only; copy it into the config so that
    everything that reads ``model.config.mask_token_id`` (sampler, training, app) finds it."""
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "mask_token_id", None) is None:
        mask_id = getattr(tokenizer, "mask_token_id", None)
        if mask_id is None:
            mask_id = family_of(model).default_mask_id
        if mask_id is not None:
            config.mask_token_id = mask_id
