import json

import pytest
import torch
from safetensors.torch import save_file

from llada_play import LladaForMaskedLM, config_from_preset
from llada_play.model.checkpoint import CheckpointError, atomic_directory, load_model, save_model
from llada_play.model.tokenizer import special_token_ids, train_bpe_tokenizer

CORPUS = ["HAMLET:\nTo be, or not to be, that is the question.\n", "OPHELIA:\nGood my lord, how does your honour?\n"]


@pytest.fixture
def saved(tiny_model, char_tokenizer, tmp_path):
    path = save_model(tiny_model, char_tokenizer, tmp_path / "model")
    return path


def test_save_and_load_model_with_tokenizer(saved, tiny_model):
    model, tokenizer = load_model(saved)
    ids = torch.randint(0, 60, (1, 12))
    assert torch.equal(model(ids).logits, tiny_model(ids).logits)
    assert tokenizer.mask_token_id == model.config.mask_token_id
    assert tokenizer.decode(tokenizer("To be.").input_ids) == "To be."


def test_save_is_atomic_and_replaces_an_old_directory(saved, tiny_model, char_tokenizer):
    save_model(tiny_model, char_tokenizer, saved)  # overwrite
    leftovers = [p.name for p in saved.parent.iterdir() if p.name != saved.name]
    assert leftovers == []

    class Broken(torch.nn.Module):
        def save_pretrained(self, path):
            (path / "partial").write_text("half")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_model(Broken(), None, saved)
    assert (saved / "model.safetensors").exists() and not (saved / "partial").exists()
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_atomic_directory_stages_next_to_the_target_and_publishes_readable(tmp_path):
    import os
    import stat

    target = tmp_path / "out" / "step-0000001"
    with atomic_directory(target) as staging:
        assert staging.parent == target.parent and staging.name.startswith(".") and not target.exists()
        (staging / "a.txt").write_text("first")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
    assert stat.S_IMODE((target / "a.txt").stat().st_mode) == 0o666 & ~umask
    with pytest.raises(KeyboardInterrupt), atomic_directory(target) as staging:
        (staging / "a.txt").write_text("second")
        raise KeyboardInterrupt
    assert (target / "a.txt").read_text() == "first"
    with atomic_directory(target) as staging:
        (staging / "b.txt").write_text("third")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]  # replaced as a whole
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no staging or moved-aside copy left


def test_missing_files_are_named(saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors is missing"):
        load_model(saved)
    (saved / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json is missing"):
        load_model(saved)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(saved / "nowhere")


def test_corrupt_weights_are_named(saved):
    (saved / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match=r"model\.safetensors is not a valid safetensors file"):
        load_model(saved)


def test_corrupt_config_is_named(saved):
    (saved / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json cannot be read"):
        load_model(saved)


def test_mismatched_shapes_are_named(saved):
    config = json.loads((saved / "config.json").read_text())
    config["intermediate_size"] += 8
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensor .*mlp.* has shape"):
        load_model(saved)


def test_missing_tensor_is_named(saved):
    from safetensors.torch import load_file
    tensors = load_file(saved / "model.safetensors")
    tensors.pop("model.norm.weight")
    save_file(tensors, saved / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"lacks the tensor model\.norm\.weight"):
        load_model(saved)


def test_tokenizer_model_mismatch_is_named(tmp_path, char_tokenizer):
    big = train_bpe_tokenizer(CORPUS * 20, vocab_size=300)
    model = LladaForMaskedLM(config_from_preset("tiny", **special_token_ids(char_tokenizer)))
    path = save_model(model, big, tmp_path / "m")
    with pytest.raises(CheckpointError, match=r"tokenizer\.json has \d+ tokens but the model's vocabulary"):
        load_model(path)


def test_bpe_tokenizer_round_trip_and_specials(tmp_path):
    tok = train_bpe_tokenizer(CORPUS * 20, vocab_size=300)
    text = "HAMLET:\nTo be, or not to be?"
    assert tok.decode(tok(text).input_ids) == text
    ids = special_token_ids(tok)
    assert len({ids["mask_token_id"], ids["eos_token_id"], ids["pad_token_id"]}) == 3
    assert tok.convert_ids_to_tokens(ids["mask_token_id"]) == "<|mdm_mask|>"
    chat = tok.apply_chat_template([{"role": "user", "content": "Who?"}], add_generation_prompt=True, tokenize=False)
    assert chat == "<|user|>\nWho?<|eot_id|>\n<|assistant|>\n"
    # special tokens are single ids
    assert len(tok("<|user|>", add_special_tokens=False).input_ids) == 1
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(text).input_ids == tok(text).input_ids and again.chat_template == tok.chat_template
