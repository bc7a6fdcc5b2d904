"""LLaDA and Dream checkpoints in their published layouts open natively: no remote code, same logits as the
model they were written from, options the native model lacks refused by name, shards and memory checked."""
import json

import pytest
import torch

from llada_play import generate
from llada_play.model.adapters import as_denoiser
from llada_play.model.checkpoint import CheckpointError, load_model
from llada_play.cli import main
from llada_play.model.text import encode_prompt
from tests.published_layouts import (llada_like_model, llada_tokenizer, write_dream_checkpoint,
                                     write_llada_checkpoint)


@pytest.fixture(scope="module")
def llada(tmp_path_factory):
    tok = llada_tokenizer()
    model = llada_like_model(tok)
    return write_llada_checkpoint(tmp_path_factory.mktemp("ckpt") / "LLaDA-8B-Instruct-tiny", model, tok), model


def logits(model, ids, mask=None):
    with torch.no_grad():
        return model(ids, attention_mask=mask).logits


def test_llada_layout_is_llada_s_config_keys_and_tensor_names(llada):
    from safetensors import safe_open

    path, model = llada
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "llada" and config["auto_map"]["AutoModel"] == "modeling_llada.LLaDAModelLM"
    assert (config["d_model"], config["n_layers"], config["n_heads"], config["n_kv_heads"]) == (32, 2, 4, 2)
    assert config["embedding_size"] == 128 and config["weight_tying"] is False and config["rope_theta"] == 500000.0
    with safe_open(path / "model.safetensors", "pt") as f:
        names = set(f.keys())
    assert {"model.transformer.wte.weight", "model.transformer.blocks.1.attn_out.weight",
            "model.transformer.blocks.0.ff_proj.weight", "model.transformer.blocks.0.up_proj.weight",
            "model.transformer.blocks.0.ff_out.weight", "model.transformer.ln_f.weight",
            "model.transformer.ff_out.weight"} <= names
    assert not any(n.startswith("model.layers") or n.startswith("lm_head") for n in names)


def test_llada_opens_natively_without_its_code_and_gives_the_same_logits(llada):
    path, source = llada
    model, tokenizer = load_model(path)  # no trust_remote_code: the code files would raise if imported
    assert type(model).__name__ == "LladaForMaskedLM" and model.config.source_layout == "llada"
    assert model.config.num_key_value_heads == 2 and not model.config.tie_word_embeddings
    ids = torch.randint(0, len(tokenizer), (2, 20), generator=torch.Generator().manual_seed(0))
    assert torch.equal(logits(model, ids), logits(source, ids))
    # LLaDA keeps absolute positions under left padding; so does the model read from its layout
    mask = torch.ones_like(ids)
    mask[1, :6] = 0
    assert torch.equal(logits(model, ids, mask), logits(source, ids, mask))
    assert model.config.positions_skip_padding is False
    # the tokenizer's <|mdm_mask|> becomes its mask token; <|eot_id|> is recorded for the sampler
    assert tokenizer.mask_token == "<|mdm_mask|>" and tokenizer.mask_token_id == model.config.mask_token_id
    assert as_denoiser(model).end_of_turn_ids == (tokenizer.convert_tokens_to_ids("<|eot_id|>"),)


def test_llada_chats_through_the_sampler_and_the_cli_without_trust_remote_code(llada, capsys):
    path, _ = llada
    model, tokenizer = load_model(path)
    prompt = encode_prompt(tokenizer, "hi", chat=True)
    assert tokenizer.decode(prompt[0]).startswith("<|startoftext|><|start_header_id|>user<|end_header_id|>")
    out = generate(model, prompt, None, steps=8, gen_length=16, block_length=8)
    assert (out != model.config.mask_token_id).all()
    assert main(["sample", "--model", str(path), "--prompt", "hi", "--steps", "8", "--gen-length", "16",
                 "--block-length", "8"]) == 0


def test_tied_llada_weights_and_shards_load_and_a_missing_shard_is_named(tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    tok = llada_tokenizer()
    source = llada_like_model(tok, kv_heads=4, tied=True)
    path = write_llada_checkpoint(tmp_path / "tied", source, tok)
    tensors = load_file(path / "model.safetensors")
    assert "model.transformer.ff_out.weight" not in tensors  # weight_tying: the output head is the embedding
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for file, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, path / file, metadata={"format": "pt"})
    (path / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: f for f, keys in shards.items() for k in keys}}))
    (path / "model.safetensors").unlink()
    model, _ = load_model(path)
    ids = torch.randint(0, len(tok), (1, 12))
    assert torch.equal(logits(model, ids), logits(source, ids))
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    (path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model-00002-of-00002\.safetensors is missing \(named in"):
        load_model(path)
    capsys.readouterr()
    assert main(["sample", "--model", str(path), "--prompt", "hi"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("llada-play: error:") and "model-00002-of-00002.safetensors is missing" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("key,value", [("block_type", "sequential"), ("scale_logits", True), ("alibi", True),
                                       ("layer_norm_type", "default"), ("include_bias", True)])
def test_a_llada_option_the_native_model_lacks_is_refused_by_name(tmp_path, key, value):
    tok = llada_tokenizer()
    path = write_llada_checkpoint(tmp_path / "m", llada_like_model(tok), tok)
    config = json.loads((path / "config.json").read_text())
    config[key] = value
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=rf"{key}={value!r} is not implemented by llada-play's native model"):
        load_model(path)


def test_a_tensor_outside_the_layout_or_of_the_wrong_shape_is_named(tmp_path):
    from safetensors.torch import load_file, save_file

    tok = llada_tokenizer()
    path = write_llada_checkpoint(tmp_path / "m", llada_like_model(tok), tok)
    tensors = load_file(path / "model.safetensors")
    save_file({**tensors, "model.transformer.wpe.weight": torch.zeros(4, 32)}, path / "model.safetensors")
    with pytest.raises(CheckpointError, match="tensor model.transformer.wpe.weight is not part of llada's layout"):
        load_model(path)
    tensors["model.transformer.blocks.0.k_proj.weight"] = torch.zeros(32, 32)
    save_file(tensors, path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"tensor model.transformer.blocks.0.k_proj.weight has shape \(32, 32\)"):
        load_model(path)


def test_the_memory_check_runs_before_a_native_load(llada, monkeypatch):
    from llada_play.model import memory

    path, _ = llada
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu", device_map=None: 1024)
    monkeypatch.setattr("llada_play.model.checkpoint.load_weights", lambda *a, **k: pytest.fail("weights were read"))
    with pytest.raises(memory.InsufficientMemoryError, match="only 0.0 GiB is available"):
        load_model(path)


def test_a_device_map_places_the_native_model(llada):
    path, source = llada
    model, _ = load_model(path, device_map={"": "cpu"}, dtype=torch.bfloat16)
    assert model.model.embed_tokens.weight.dtype == torch.bfloat16
    ids = torch.randint(0, 80, (1, 10))
    assert torch.allclose(logits(model, ids).float(), logits(source, ids), atol=0.5)


def test_dream_opens_natively_with_its_tokenizer_and_samples_like_the_source(tmp_path):
    path, source = write_dream_checkpoint(tmp_path / "Dream-v0-Instruct-tiny")
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "Dream" and config["num_key_value_heads"] == 1
    model, tokenizer = load_model(path)  # Dream's tokenization_dream.py would raise: Qwen2's tokenizer reads it
    assert type(tokenizer).__name__ == "Qwen2Tokenizer" and tokenizer.mask_token == "<|mask|>"
    assert model.config.source_layout == "dream" and model.config.next_token_logits
    ids = tokenizer("what is two plus two?", return_tensors="pt").input_ids
    assert torch.equal(logits(model, ids), logits(source, ids))
    denoiser = as_denoiser(model)
    assert denoiser.shift_logits and torch.equal(denoiser(ids)[:, 1:], logits(source, ids)[:, :-1])
    out = generate(model, ids, None, steps=8, gen_length=16, block_length=8)
    assert torch.equal(out, generate(source, ids, None, steps=8, gen_length=16, block_length=8))
    # the block cache recomputes one position more for next-token logits: refreshed every step it is exact
    cached = generate(model, ids, steps=8, gen_length=16, block_length=8, cache="dual", cache_refresh_every=1)
    assert torch.equal(cached, out)
    assert torch.equal(generate(model, ids, steps=8, gen_length=16, block_length=8, cache="prefix",
                                cache_refresh_every=1), out)


def test_a_dream_option_the_native_model_lacks_is_refused_by_name(tmp_path):
    path, _ = write_dream_checkpoint(tmp_path / "d")
    config = json.loads((path / "config.json").read_text())
    config["use_sliding_window"] = True
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="use_sliding_window=True is not implemented"):
        load_model(path)
