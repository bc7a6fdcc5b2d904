"""End-to-end runs that the CLI, the app, the notebooks and cluster jobs share: pre-train on a corpus,
fine-tune on prompt/response rows. Each writes its checkpoints, metrics, final model and a summary."""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from .checkpoint import load_model, save_model
from .config import config_from_preset
from .data import PackedBatches, SFTBatches, load_sft_rows, pack_tokens, read_corpus, split_documents
from .evaluation import autoregressive_eval, masked_token_loss, unigram_cross_entropy
from .modeling import LladaForMaskedLM
from .tokenizer import special_token_ids, train_bpe_tokenizer
from .training import TrainConfig, train


def _tokenizer_for_run(out: Path, tokenizer_dir, train_texts, vocab_size, context):
    from transformers import AutoTokenizer

    own = out / "tokenizer"
    if tokenizer_dir is not None:
        return AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    if (own / "tokenizer.json").exists():  # resuming, or a second objective on the same data
        return AutoTokenizer.from_pretrained(own, local_files_only=True)
    tokenizer = train_bpe_tokenizer(train_texts, vocab_size=vocab_size, model_max_length=context)
    tokenizer.save_pretrained(own)
    return tokenizer


def run_pretraining(corpus, config: TrainConfig, preset: str = "small", vocab_size: int = 4096,
                    seq_len: int = 256, batch_size: int = 32, held_out_fraction: float = 0.05,
                    tokenizer_dir=None, eval_batches: int = 20, resume: bool = False, hooks=None,
                    split_seed: int = 0) -> dict:
    """Pre-train (``config.objective`` pretrain, or autoregressive for the causal twin) a preset on a corpus
    of plain-text documents, holding out whole documents for evaluation."""
    started = time.perf_counter()
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_docs, val_docs = split_documents(read_corpus(corpus), held_out_fraction, seed=split_seed)
    from .config import PRESETS

    context = PRESETS.get(preset, {}).get("max_position_embeddings", 512)
    if seq_len > context:
        raise ValueError(f"seq_len {seq_len} is above the {preset} preset's context of {context}")
    tokenizer = _tokenizer_for_run(out, tokenizer_dir, list(train_docs.values()), vocab_size, context)
    train_tokens = pack_tokens(tokenizer, train_docs.values(), seq_len)
    val_tokens = pack_tokens(tokenizer, val_docs.values(), seq_len)
    causal = config.objective == "autoregressive"
    torch.manual_seed(config.seed)
    model = LladaForMaskedLM(config_from_preset(preset, causal=causal, **special_token_ids(tokenizer)))
    result = train(model, PackedBatches(train_tokens, seq_len, batch_size), config, tokenizer=tokenizer,
                   hooks=hooks, resume=resume)
    val = PackedBatches(val_tokens, seq_len, batch_size).fixed_batches(eval_batches)
    trn = PackedBatches(train_tokens, seq_len, batch_size).fixed_batches(eval_batches)
    if causal:
        metrics = {"held_out": autoregressive_eval(model, val), "train": autoregressive_eval(model, trn)}
    else:
        mask_id = model.config.mask_token_id
        metrics = {"held_out": masked_token_loss(model, val, mask_id), "train": masked_token_loss(model, trn, mask_id)}
    metrics["unigram_held_out"] = unigram_cross_entropy(train_tokens, val_tokens, len(tokenizer))
    final = save_model(model, tokenizer, out / "final")
    summary = {
        "objective": config.objective, "preset": preset, "parameters": sum(p.numel() for p in model.parameters()),
        "train_documents": sorted(train_docs), "held_out_documents": sorted(val_docs),
        "train_tokens": len(train_tokens), "held_out_tokens": len(val_tokens), "seq_len": seq_len,
        "batch_size": batch_size, "steps": result.steps, "tokens_seen": result.steps * batch_size * seq_len * config.grad_accum,
        "final_train_loss": result.final_loss, "wall_time_s": round(time.perf_counter() - started, 1),
        "metrics": metrics, "final_model": str(final), "config": asdict(config),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def run_sft(model_dir, data, config: TrainConfig, batch_size: int = 16, seq_len: int | None = None,
            on_error: str = "stop", lora_rank: int = 0, lora_alpha: int = 16, resume: bool = False,
            hooks=None) -> dict:
    """Fine-tune a model directory on prompt/response rows (SFT for diffusion, response-only next-token loss
    when ``config.objective`` is autoregressive). With ``lora_rank`` > 0 only LoRA adapters train (peft);
    they are merged into the saved final model."""
    started = time.perf_counter()
    model, tokenizer = load_model(model_dir)
    if tokenizer is None:
        raise ValueError(f"{model_dir} has no tokenizer; SFT needs one to encode the rows")
    conversations = load_sft_rows(data, on_error=on_error)
    batches = SFTBatches.from_conversations(tokenizer, conversations, batch_size, seq_len,
                                            context_length=model.config.max_position_embeddings)
    trainable = model
    if lora_rank > 0:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=lora_rank, lora_alpha=lora_alpha, lora_dropout=0.0,
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
        trainable = get_peft_model(model, lora)
    result = train(trainable, batches, config, tokenizer=tokenizer, mask_id=model.config.mask_token_id,
                   hooks=hooks, resume=resume)
    if lora_rank > 0:
        model = trainable.merge_and_unload()
    final = save_model(model, tokenizer, Path(config.output_dir) / "final")
    summary = {"objective": config.objective, "rows": len(conversations), "seq_len": batches.input_ids.shape[1],
               "steps": result.steps, "final_train_loss": result.final_loss, "lora_rank": lora_rank,
               "wall_time_s": round(time.perf_counter() - started, 1), "final_model": str(final),
               "config": asdict(config)}
    (Path(config.output_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
