import json

import pytest
import torch
from safetensors.torch import load_file

from llada_play.checkpoint import load_model, save_model
from llada_play.recipes import run_sft
from llada_play.training import TrainConfig


@pytest.fixture
def sft_files(tmp_path):
    rows = [{"prompt": f"{a}+{b}=", "response": str(a + b)} for a in range(6) for b in range(6)]
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows[:30]))
    test.write_text("".join(json.dumps(r) + "\n" for r in rows[30:]))
    return train, test


@pytest.fixture
def model_dir(tiny_model, char_tokenizer, tmp_path):
    return save_model(tiny_model, char_tokenizer, tmp_path / "base")


def test_sft_reports_accuracy_before_and_after(model_dir, sft_files, tmp_path):
    train, test = sft_files
    config = TrainConfig(objective="sft", output_dir=str(tmp_path / "run"), max_steps=6, warmup_steps=1,
                         progress=False)
    summary = run_sft(model_dir, train, config, batch_size=8, eval_data=test)
    acc = summary["held_out_accuracy"]
    assert set(acc) == {"before", "after"} and acc["after"]["n"] == 6
    assert 0 <= acc["after"]["accuracy"] <= 1
    model, tokenizer = load_model(summary["final_model"])
    assert tokenizer is not None and summary["steps"] == 6


def test_lora_trains_only_adapters_and_merges(model_dir, sft_files, tmp_path):
    train, _ = sft_files
    base = load_file(model_dir / "model.safetensors")
    changed_during = []

    def hook(record):
        changed_during.append(record.step)

    config = TrainConfig(objective="sft", output_dir=str(tmp_path / "lora"), max_steps=5, warmup_steps=1, lr=1e-2,
                         progress=False)
    summary = run_sft(model_dir, train, config, batch_size=8, lora_rank=4, hooks=hook)
    merged = load_file(tmp_path / "lora" / "final" / "model.safetensors")
    assert set(merged) == set(base)  # a plain model again: adapters merged away
    assert not torch.equal(merged["model.layers.0.attn.q_proj.weight"], base["model.layers.0.attn.q_proj.weight"])
    # LoRA leaves the embeddings and norms untouched
    assert torch.equal(merged["model.embed_tokens.weight"], base["model.embed_tokens.weight"])
    assert torch.equal(merged["model.norm.weight"], base["model.norm.weight"])
    assert changed_during == [1, 2, 3, 4, 5] and summary["lora_rank"] == 4


def test_sft_refuses_a_mismatched_objective(model_dir, sft_files, tmp_path):
    train, _ = sft_files
    config = TrainConfig(objective="autoregressive", output_dir=str(tmp_path / "x"), max_steps=1, warmup_steps=1,
                         progress=False)
    with pytest.raises(ValueError, match="does not fit a bidirectional model"):
        run_sft(model_dir, train, config)


def test_sft_refuses_a_tokenizer_larger_than_the_model(tmp_path, char_tokenizer, sft_files):
    from llada_play import LladaForMaskedLM, config_from_preset
    small = LladaForMaskedLM(config_from_preset("tiny", vocab_size=len(char_tokenizer) - 5,
                                                mask_token_id=char_tokenizer.mask_token_id))
    small.save_pretrained(tmp_path / "m")
    char_tokenizer.save_pretrained(tmp_path / "m")
    config = TrainConfig(objective="sft", output_dir=str(tmp_path / "x"), max_steps=1, warmup_steps=1, progress=False)
    with pytest.raises(ValueError, match=r"tokenizer\.json has \d+ tokens but the model's vocabulary"):
        run_sft(tmp_path / "m", sft_files[0], config)


def test_pretraining_refuses_a_sequence_longer_than_the_context(tmp_path):
    from llada_play.recipes import run_pretraining
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text("abc " * 100)
    (corpus / "b.txt").write_text("def " * 100)
    config = TrainConfig(output_dir=str(tmp_path / "r"), max_steps=1, warmup_steps=1, progress=False)
    with pytest.raises(ValueError, match="seq_len 1024 is above the tiny preset's context of 256"):
        run_pretraining(corpus, config, preset="tiny", seq_len=1024)
