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
