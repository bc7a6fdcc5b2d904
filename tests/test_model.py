import json

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from llada_play import LladaConfig, LladaForMaskedLM, LladaModel, config_from_preset
from llada_play.model.config import PRESETS


def test_presets_have_expected_shapes():
    assert set(PRESETS) >= {"tiny", "small", "llada-8b"}
    c = config_from_preset("llada-8b")
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size) == (32, 4096, 32, 12288)
    assert (c.vocab_size, c.mask_token_id) == (126464, 126336)
    with torch.device("meta"):
        n = sum(p.numel() for p in LladaForMaskedLM(c).parameters())
    assert abs(n / 8.02e9 - 1) < 0.01


def expected_parameters(c: LladaConfig) -> int:
    """The parameter count of ``LladaForMaskedLM(c)`` from its config: the embeddings; per layer the query/
    key/value/output projections (with biases on q/k/v when ``attention_bias``), the SwiGLU's gate/up/down
    matrices and two RMSNorm weights; the final norm; and the head unless it is tied to the embeddings."""
    d, kv = c.hidden_size, c.num_key_value_heads * c.head_dim
    attention = d * d + 2 * d * kv + d * d + ((d + 2 * kv) if c.attention_bias else 0)
    per_layer = attention + 3 * d * c.intermediate_size + 2 * d
    head = 0 if c.tie_word_embeddings else c.vocab_size * d
    return c.vocab_size * d + c.num_hidden_layers * per_layer + d + head


def test_small_preset_is_a_few_million_parameters():
    c = config_from_preset("small", vocab_size=4096, mask_token_id=2)
    n = sum(p.numel() for p in LladaForMaskedLM(c).parameters())
    # 4096*256 embeddings + 6 layers * (4*256*256 + 3*256*688 + 2*256) + 256 + a 4096*256 head
    assert n == expected_parameters(c) == 6_843_648


@pytest.mark.parametrize("options", [dict(tie_word_embeddings=True),
                                     dict(num_key_value_heads=2, attention_bias=True)], ids=["tied", "gqa-bias"])
def test_parameter_count_follows_the_config(options):
    c = config_from_preset("tiny", vocab_size=100, mask_token_id=2, **options)
    n = sum(p.numel() for p in LladaForMaskedLM(c).parameters())  # a tied head is one tensor, counted once
    assert n == expected_parameters(c)


def test_architecture_parts(tiny_model):
    names = {type(m).__name__ for m in tiny_model.modules()}
    assert {"LladaRMSNorm", "LladaMLP", "LladaAttention"} <= names
    attn = tiny_model.model.layers[0].attn
    # full multi-head attention: as many key/value heads as query heads
    assert attn.k_proj.weight.shape == attn.q_proj.weight.shape == attn.v_proj.weight.shape
    assert not any("time" in n for n, _ in tiny_model.named_parameters())


def test_bad_preset_and_config():
    with pytest.raises(ValueError, match="unknown preset"):
        config_from_preset("huge")
    with pytest.raises(ValueError, match="divisible"):
        LladaConfig(hidden_size=30, num_attention_heads=4)
    with pytest.raises(ValueError, match="mask_token_id"):
        LladaConfig(vocab_size=10, mask_token_id=10)


def test_bidirectional_sees_the_future_and_causal_does_not(char_tokenizer):
    torch.manual_seed(0)
    ids = torch.randint(10, 40, (1, 12))
    changed = ids.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % 40 + 10
    for causal in (False, True):
        config = config_from_preset("tiny", vocab_size=len(char_tokenizer), mask_token_id=2, causal=causal)
        model = LladaForMaskedLM(config).eval()
        a, b = model(ids).logits[0, :8], model(changed).logits[0, :8]
        if causal:
            torch.testing.assert_close(a, b)
        else:
            assert (a - b).abs().max() > 1e-4


def test_padding_does_not_change_real_positions(tiny_model):
    torch.manual_seed(1)
    ids = torch.randint(10, 40, (1, 7))
    pad = tiny_model.config.pad_token_id
    padded = torch.cat([torch.full((1, 3), pad), ids], 1)
    mask = torch.tensor([[0, 0, 0] + [1] * 7])
    model = tiny_model.double()
    torch.testing.assert_close(model(padded, attention_mask=mask).logits[:, 3:], model(ids).logits)
    causal = LladaForMaskedLM(config_from_preset("tiny", vocab_size=tiny_model.config.vocab_size,
                                                 mask_token_id=2, causal=True)).double().eval()
    out = causal(padded, attention_mask=mask).logits
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[:, 3:], causal(ids).logits)


def test_save_load_round_trip_gives_identical_logits(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "llada_play"
    ids = torch.randint(0, tiny_model.config.vocab_size, (2, 16))
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path, local_files_only=True).eval()
    assert isinstance(loaded, LladaForMaskedLM)
    assert torch.equal(loaded(ids).logits, tiny_model(ids).logits)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), LladaConfig)
    assert isinstance(AutoModel.from_pretrained(tmp_path), LladaModel)


def test_context_length_is_enforced(tiny_model):
    n = tiny_model.config.max_position_embeddings + 1
    with pytest.raises(ValueError, match="exceeds the model's context"):
        tiny_model(torch.zeros(1, n, dtype=torch.long))


def test_labels_give_masked_lm_loss(tiny_model):
    ids = torch.randint(10, 40, (2, 9))
    labels = torch.full_like(ids, -100)
    labels[:, 3] = ids[:, 3]
    out = tiny_model(ids, labels=labels)
    expected = torch.nn.functional.cross_entropy(out.logits[:, 3], ids[:, 3])
    torch.testing.assert_close(out.loss, expected)
