"""Configuration of the LLaDA-style mask predictor, with named presets."""
from __future__ import annotations

from transformers import PretrainedConfig


class LladaConfig(PretrainedConfig):
    """Shapes and special ids of a LLaDA-style Transformer.

    The same network serves as a masked-diffusion mask predictor (``causal=False``, the default) and as an
    autoregressive baseline of identical size (``causal=True``).

    Options that published checkpoints need (see ``formats.py``), all off by default:
      num_key_value_heads: grouped-query attention when smaller than ``num_attention_heads`` (Dream).
      attention_bias: biases on the query/key/value projections (Dream, from Qwen2).
      positions_skip_padding: with left padding, real tokens start at position 0 (this project, Dream);
        ``False`` keeps absolute positions 0..n-1 whatever the padding, as LLaDA's published code does.
      next_token_logits: the logits at position i predict the token at i + 1 (Dream, converted from an
        autoregressive model); the sampler and losses shift them back (``adapters.Denoiser``).
      source_layout: the published layout the weights were read from ("llada", "dream"), for display only.
      token_editing: the edit ratio the model was trained with (LLaDA 2.1's token editing: visible tokens
        corrupted and restored, ``TrainConfig.edit_ratio``); 0 for a model trained only on masked positions,
        whose predictions at visible positions were never trained, so a sampler should not let it edit.
    """

    model_type = "llada_play"

    def __init__(
        self,
        vocab_size: int = 4096,
        hidden_size: int = 256,
        num_hidden_layers: int = 6,
        num_attention_heads: int = 8,
        intermediate_size: int = 688,
        max_position_embeddings: int = 512,
        rms_norm_eps: float = 1e-5,
        rope_theta: float = 10000.0,
        initializer_range: float = 0.02,
        mask_token_id: int = 0,
        pad_token_id: int | None = None,
        eos_token_id: int | None = None,
        bos_token_id: int | None = None,
        causal: bool = False,
        tie_word_embeddings: bool = False,
        num_key_value_heads: int | None = None,
        attention_bias: bool = False,
        positions_skip_padding: bool = True,
        next_token_logits: bool = False,
        source_layout: str | None = None,
        token_editing: float = 0.0,
        **kwargs,
    ):
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size ({hidden_size}) must be divisible by num_attention_heads ({num_attention_heads})"
            )
        if (hidden_size // num_attention_heads) % 2:
            raise ValueError(f"head dimension ({hidden_size // num_attention_heads}) must be even for rotary embeddings")
        num_key_value_heads = num_attention_heads if num_key_value_heads is None else num_key_value_heads
        if num_key_value_heads <= 0 or num_attention_heads % num_key_value_heads:
            raise ValueError(f"num_attention_heads ({num_attention_heads}) must be a multiple of "
                             f"num_key_value_heads ({num_key_value_heads})")
        if not 0 <= mask_token_id < vocab_size:
            raise ValueError(f"mask_token_id {mask_token_id} is outside the vocabulary [0, {vocab_size})")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        self.initializer_range = initializer_range
        self.mask_token_id = mask_token_id
        self.causal = causal
        self.num_key_value_heads = num_key_value_heads
        self.attention_bias = attention_bias
        self.positions_skip_padding = positions_skip_padding
        self.next_token_logits = next_token_logits
        self.source_layout = source_layout
        self.token_editing = float(token_editing)
        super().__init__(
            pad_token_id=pad_token_id,
            eos_token_id=eos_token_id,
            bos_token_id=bos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


# Shapes only; special ids and the vocabulary size come from the tokenizer the model is paired with.
PRESETS: dict[str, dict] = {
    # For unit tests: instantiates in milliseconds.
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=176,
                 max_position_embeddings=256),
    # Between the two: 1.8M parameters with a 4096-token vocabulary; fast experiments (notebook 05, reversal --quick).
    "mini": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=344,
                 max_position_embeddings=512),
    # The default CPU model: a few million parameters, trains on Shakespeare in minutes on two cores.
    "small": dict(hidden_size=256, num_hidden_layers=6, num_attention_heads=8, intermediate_size=688,
                  max_position_embeddings=512),
    # LLaDA-8B's published shapes (Nie et al., 2025, Table 5): the layout, not something to instantiate on a CPU.
    "llada-8b": dict(vocab_size=126464, hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                     intermediate_size=12288, max_position_embeddings=4096, rope_theta=500000.0,
                     mask_token_id=126336, eos_token_id=126081, rms_norm_eps=1e-5),
}


def config_from_preset(name: str, **overrides) -> LladaConfig:
    """Build a :class:`LladaConfig` from a preset name, with keyword overrides (vocab size, special ids...)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return LladaConfig(**{**PRESETS[name], **overrides})
