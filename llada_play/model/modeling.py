"""The LLaDA-style mask predictor: a pre-norm Transformer with RMSNorm, SwiGLU, RoPE and full attention.

There is no time embedding: the network infers how much of its input is masked from the input itself. With
``config.causal`` the same weights layout becomes a left-to-right language model (the autoregressive twin).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, MaskedLMOutput

from .config import LladaConfig
from .kv_cache import BlockKVCache


class LladaRMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in float32 so that bf16 activations do not lose the small variance terms.
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def rotary_tables(position_ids: torch.Tensor, head_dim: int, theta: float):
    """float32 cos/sin tables of shape (batch, 1, seq, head_dim) for the given positions."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32) / head_dim))
    angles = position_ids.float()[..., None] * inv_freq  # (batch, seq, head_dim/2)
    angles = torch.cat([angles, angles], dim=-1)[:, None]
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (i, i + head_dim/2) in float32, whatever the weights' dtype (LLaDA's rope_full_precision)."""
    x32 = x.float()
    half = x.shape[-1] // 2
    rotated = torch.cat([-x32[..., half:], x32[..., :half]], dim=-1)
    return (x32 * cos + rotated * sin).to(x.dtype)


class LladaAttention(nn.Module):
    """Multi-head self-attention; grouped-query when there are fewer key/value heads than query heads
    (LLaDA-8B has one per query head, Dream-7B one per seven)."""

    def __init__(self, config: LladaConfig, layer_index: int = 0):
        super().__init__()
        self.layer_index = layer_index  # its slot in a BlockKVCache
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        kv_size = self.num_kv_heads * self.head_dim
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.attention_bias)
        self.k_proj = nn.Linear(config.hidden_size, kv_size, bias=config.attention_bias)
        self.v_proj = nn.Linear(config.hidden_size, kv_size, bias=config.attention_bias)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)

    def forward(self, x, cos, sin, attn_mask, is_causal: bool, block_cache: BlockKVCache | None = None,
                window: tuple[int, int] | None = None):
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = (proj(x).view(b, n, self.num_kv_heads, self.head_dim).transpose(1, 2)
                for proj in (self.k_proj, self.v_proj))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if block_cache is not None:  # the cache keeps the un-repeated key/value heads
            k, v = block_cache.update(self.layer_index, k, v, window)
        if self.num_kv_heads != self.num_heads:
            k = k.repeat_interleave(self.num_heads // self.num_kv_heads, dim=1)
            v = v.repeat_interleave(self.num_heads // self.num_kv_heads, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
        return self.o_proj(out.transpose(1, 2).reshape(b, n, -1))


class LladaMLP(nn.Module):
    """SwiGLU feed-forward."""

    def __init__(self, config: LladaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LladaBlock(nn.Module):
    def __init__(self, config: LladaConfig, layer_index: int = 0):
        super().__init__()
        self.attn_norm = LladaRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.attn = LladaAttention(config, layer_index)
        self.mlp_norm = LladaRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = LladaMLP(config)

    def forward(self, x, cos, sin, attn_mask, is_causal, block_cache=None, window=None):
        x = x + self.attn(self.attn_norm(x), cos, sin, attn_mask, is_causal, block_cache, window)
        return x + self.mlp(self.mlp_norm(x))


class LladaPreTrainedModel(PreTrainedModel):
    config_class = LladaConfig
    base_model_prefix = "model"
    _no_split_modules = ["LladaBlock"]
    supports_gradient_checkpointing = False
    _supports_sdpa = True


def build_attention_mask(attention_mask: torch.Tensor | None, seq_len: int, causal: bool, device) -> tuple:
    """Turn a (batch, seq) padding mask into what SDPA takes; returns (attn_mask, is_causal)."""
    if attention_mask is None:
        return None, causal
    keys = attention_mask.bool()[:, None, None, :]  # (batch, 1, 1, seq): which keys may be attended to
    if not causal:
        return keys, False
    future = torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()
    # A query on a left-pad position would see no key at all (NaN); letting it see itself keeps outputs finite.
    return (keys & future) | torch.eye(seq_len, dtype=torch.bool, device=device), False


def build_window_attention_mask(attention_mask: torch.Tensor | None, window: tuple[int, int], length: int,
                                causal: bool, device) -> torch.Tensor | None:
    """What SDPA takes when queries ``window`` attend to keys at all ``length`` positions (cached pass)."""
    if attention_mask is None and not causal:
        return None
    start, stop = window
    allowed = torch.ones(1, 1, stop - start, length, dtype=torch.bool, device=device)
    if attention_mask is not None:
        allowed = allowed & attention_mask.bool()[:, None, None, :]
    if causal:
        queries = torch.arange(start, stop, device=device)[:, None]
        keys = torch.arange(length, device=device)[None]
        allowed = (allowed & (keys <= queries)) | (keys == queries)
    return allowed


class LladaModel(LladaPreTrainedModel):
    """The Transformer trunk: token ids in, final normalised hidden states out."""

    def __init__(self, config: LladaConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(LladaBlock(config, i) for i in range(config.num_hidden_layers))
        self.norm = LladaRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def default_positions(self, attention_mask: torch.Tensor | None, batch: int, length: int, device):
        """0..length-1; with left padding and ``positions_skip_padding``, real tokens start at position 0
        whatever the padding before them (LLaDA's published code keeps absolute positions instead)."""
        if attention_mask is None or not self.config.positions_skip_padding:
            return torch.arange(length, device=device).expand(batch, length)
        return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)

    def forward(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.LongTensor | None = None, block_cache: BlockKVCache | None = None,
                window: tuple[int, int] | None = None, **kwargs) -> BaseModelOutput:
        """With ``block_cache`` and no ``window``: a full pass that also fills the cache. With both:
        ``input_ids`` are the tokens at positions ``window = (start, stop)`` only, ``attention_mask`` still
        covers the whole canvas, and the other positions' keys/values come from the cache (approximate)."""
        if window is not None:
            return self._windowed_forward(input_ids, attention_mask, position_ids, block_cache, window)
        b, n = input_ids.shape
        if n > self.config.max_position_embeddings:
            raise ValueError(f"sequence length {n} exceeds the model's context of "
                             f"{self.config.max_position_embeddings} positions")
        if position_ids is None:
            position_ids = self.default_positions(attention_mask, b, n, input_ids.device)
        x = self.embed_tokens(input_ids)
        cos, sin = rotary_tables(position_ids, self.config.head_dim, self.config.rope_theta)
        attn_mask, is_causal = build_attention_mask(attention_mask, n, self.config.causal, input_ids.device)
        for layer in self.layers:
            x = layer(x, cos, sin, attn_mask, is_causal, block_cache)
        return BaseModelOutput(last_hidden_state=self.norm(x))

    def _windowed_forward(self, input_ids, attention_mask, position_ids, block_cache, window) -> BaseModelOutput:
        if block_cache is None or not block_cache.filled:
            raise ValueError("a windowed pass needs a block_cache filled by a full pass first")
        length, (start, stop) = block_cache.length, window
        if not 0 <= start < stop <= length or input_ids.shape[1] != stop - start:
            raise ValueError(f"window {window} does not fit {input_ids.shape[1]} tokens into the cached "
                             f"canvas of {length}")
        if position_ids is None:
            position_ids = self.default_positions(attention_mask, input_ids.shape[0], length,
                                                  input_ids.device)[:, start:stop]
        x = self.embed_tokens(input_ids)
        cos, sin = rotary_tables(position_ids, self.config.head_dim, self.config.rope_theta)
        attn_mask = build_window_attention_mask(attention_mask, window, length, self.config.causal, input_ids.device)
        for layer in self.layers:
            x = layer(x, cos, sin, attn_mask, False, block_cache, window)
        return BaseModelOutput(last_hidden_state=self.norm(x))


class LladaForMaskedLM(LladaPreTrainedModel):
    """Mask predictor: logits over the vocabulary at every position (next-token logits when causal)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: LladaConfig):
        super().__init__(config)
        self.model = LladaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, value):
        self.lm_head = value

    @property
    def mask_token_id(self) -> int:
        return self.config.mask_token_id

    def forward(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.LongTensor | None = None, labels: torch.LongTensor | None = None,
                block_cache: BlockKVCache | None = None, window: tuple[int, int] | None = None,
                **kwargs) -> MaskedLMOutput:
        """``block_cache``/``window``: see :meth:`LladaModel.forward`; logits then cover the window only."""
        hidden = self.model(input_ids, attention_mask=attention_mask, position_ids=position_ids,
                            block_cache=block_cache, window=window).last_hidden_state
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            # Plain cross-entropy on labelled positions (-100 elsewhere); the diffusion losses live in losses.py.
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
        return MaskedLMOutput(loss=loss, logits=logits)


AutoConfig.register(LladaConfig.model_type, LladaConfig, exist_ok=True)
AutoModel.register(LladaConfig, LladaModel, exist_ok=True)
AutoModelForMaskedLM.register(LladaConfig, LladaForMaskedLM, exist_ok=True)
