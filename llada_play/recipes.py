"""End-to-end runs that the CLI, the app, the notebooks and cluster jobs share: pre-train on a corpus,
fine-tune on prompt/response rows, evaluate a model. Each writes its checkpoints, metrics, final model and a
summary.

The settings of each run beside its :class:`TrainConfig` are dataclasses too (:class:`PretrainOptions`,
:class:`SFTOptions`, :class:`EvalConfig`), so that the command line's flags and a job's options come from their
fields (:mod:`llada_play.flags`, :mod:`llada_play.runs`).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch

from .training import distributed
from .model.adapters import context_length_of, lora_target_modules, resolve_mask_id
from .model.checkpoint import default_model_path, load_model, resolve_model_path, save_model
from .model.config import config_from_preset
from .training.data import PackedBatches, SFTBatches, load_sft_rows, pack_tokens, read_corpus, split_documents
from .training.evaluation import autoregressive_eval, masked_token_loss, unigram_cross_entropy
from .model.modeling import LladaForMaskedLM
from .model.tokenizer import special_token_ids, train_bpe_tokenizer
from .training.trainer import TrainConfig, resolve_precision, train
from .validation import refuse_non_finite


SHIPPED_SFT = Path(__file__).resolve().parent.parent / "data" / "sft"


@dataclass
class PretrainOptions:
    """:func:`run_pretraining`'s settings beside its TrainConfig."""

    corpus: str  # a .txt file or a directory of .txt files
    preset: str = "small"  # model shape: tiny, mini, small...
    vocab_size: int = 4096  # the BPE tokenizer trained on the corpus
    seq_len: int = 256  # tokens per training window
    batch_size: int = 32  # windows per batch (the global batch, split between processes)
    held_out_fraction: float = 0.05  # share of the documents held out
    tokenizer_dir: str | None = None  # reuse this tokenizer directory instead of training one
    eval_batches: int = 20  # held-out batches scored before and after training
    split_seed: int = 0  # seed of the held-out split

    def __post_init__(self):
        refuse_non_finite(self)
        if not 0 < self.held_out_fraction < 1:
            raise ValueError(f"held_out_fraction must be in (0, 1), got {self.held_out_fraction}")


@dataclass
class SFTOptions:
    """:func:`run_sft`'s settings beside its TrainConfig (the command line's defaults)."""

    model_dir: str | None = None  # model directory or cached hub id (default: the shipped model)
    data: str = str(SHIPPED_SFT / "arithmetic_train.jsonl")  # rows (.jsonl/.json/.csv/.parquet): prompt+response
    eval_data: str | None = None  # held-out rows answered before and after training
    batch_size: int = 32  # rows per batch
    seq_len: int | None = None  # pad/cut length (default: the longest row)
    on_error: Literal["stop", "skip"] = "stop"  # what a malformed row does
    lora_rank: int = 0  # train LoRA adapters of this rank (peft) instead of all weights
    lora_alpha: int = 16  # LoRA scaling numerator
    merge_lora: bool = True  # also save the model with the adapters merged (off: OUT/adapter only)
    eval_limit: int = 200  # held-out rows answered at most
    trust_remote_code: bool = False  # allow a checkpoint that ships its own Python code (not LLaDA or Dream)
    dtype: str = "float32"  # weights dtype: float32, bfloat16 (halves memory; LLaDA-8B), float16, stored


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


def check_training_memory(model_config, batch_size: int, seq_len: int, config: TrainConfig, what: str,
                          parameters: int | None = None, trained: int | None = None) -> None:
    """Refuse in one line, with the estimate and what is free, a run that would not fit (model/memory.py)."""
    from .model.memory import available_memory, check_training_fits, estimate_training_memory

    device = config.device.split(":")[0] if config.device.startswith("cuda") else config.device
    bf16 = resolve_precision(config, torch.device(config.device)) is not None
    estimate = estimate_training_memory(model_config, batch_size, seq_len, parameters, trained,
                                        activation_bytes=2 if bf16 else 4)
    check_training_fits(estimate, available_memory(config.device), what, device)


def _check_sft_memory(model_dir, config: TrainConfig, conversations, batch_size: int, seq_len: int | None,
                      lora_rank: int) -> None:
    """Training memory of an SFT run, from the model directory's config and weight headers (nothing loads).
    Without ``seq_len`` the rows are not tokenized yet: their characters bound their tokens."""
    from types import SimpleNamespace

    from .model.memory import _config_dims, stored_parameters

    path = resolve_model_path(model_dir) if model_dir is not None else default_model_path()
    try:  # the raw config.json, whatever the family (LLaDA's names its sizes otherwise; no code is run)
        shape = SimpleNamespace(**json.loads((path / "config.json").read_text(encoding="utf-8")))
        hidden, layers, heads, intermediate, vocab = _config_dims(shape)
    except (OSError, ValueError, TypeError):
        return  # load_model says what is wrong with the directory
    if not all((hidden, layers, heads, vocab)):
        return  # sizes under names not known here: nothing to estimate from
    stored = stored_parameters(path)
    # weights in another format: about 12 h^2 a layer plus the embeddings and the output layer
    parameters = stored[0] if stored else 12 * layers * hidden ** 2 + 2 * vocab * hidden
    trained = None
    if lora_rank > 0 and parameters:  # adapters on every linear layer: about 2 r / hidden of the weights
        trained = int(parameters * 2 * lora_rank / hidden)
    context = getattr(shape, "max_position_embeddings", None) or getattr(shape, "max_sequence_length", None) or 512
    # no row has more tokens than characters, plus the chat template's own tokens (under 32 in every template here)
    longest = max(sum(len(m["content"]) for m in messages) for messages in conversations) + 32
    length = seq_len or min(context, longest)
    check_training_memory(shape, batch_size, length, config, str(model_dir or "the shipped model"), parameters,
                          trained)


def run_pretraining(corpus, config: TrainConfig, preset: str = "small", vocab_size: int = 4096,
                    seq_len: int = 256, batch_size: int = 32, held_out_fraction: float = 0.05,
                    tokenizer_dir=None, eval_batches: int = 20, resume: bool = False, hooks=None,
                    split_seed: int = 0) -> dict:
    """Pre-train (``config.objective`` pretrain, or autoregressive for the causal twin) a preset on a corpus
    of plain-text documents, holding out whole documents for evaluation."""
    started = time.perf_counter()
    # refused before any tokenizer training or folder: the preset, the length, and whether training fits
    shape = config_from_preset(preset, vocab_size=vocab_size, mask_token_id=0, eos_token_id=0)  # ids: the tokenizer's, later
    context = shape.max_position_embeddings
    if seq_len > context:
        raise ValueError(f"seq_len {seq_len} is above the {preset} preset's context of {context}")
    check_training_memory(shape, batch_size, seq_len, config, f"the {preset} preset")
    train_docs, val_docs = split_documents(read_corpus(corpus), held_out_fraction, seed=split_seed)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = distributed.init_distributed(config.device, config.ddp_backend)
    with distributed.main_process_first():  # rank 0 trains and saves the tokenizer, the others load it
        tokenizer = _tokenizer_for_run(out, tokenizer_dir, list(train_docs.values()), vocab_size, context)
    train_tokens = pack_tokens(tokenizer, train_docs.values(), seq_len)
    val_tokens = pack_tokens(tokenizer, val_docs.values(), seq_len)
    causal = config.objective == "autoregressive"
    torch.manual_seed(config.seed)
    model = LladaForMaskedLM(config_from_preset(preset, causal=causal, **special_token_ids(tokenizer)))
    val = PackedBatches(val_tokens, seq_len, batch_size).fixed_batches(eval_batches)
    trn = PackedBatches(train_tokens, seq_len, batch_size).fixed_batches(eval_batches)

    def evaluate(batches):
        model.eval()
        if causal:
            return autoregressive_eval(model, batches)
        return masked_token_loss(model, batches, model.config.mask_token_id)

    initial = evaluate(val) if env.is_main else None
    result = train(model, PackedBatches(train_tokens, seq_len, batch_size), config, tokenizer=tokenizer,
                   hooks=hooks, resume=resume)
    if not env.is_main:  # rank 0 evaluates and writes the final model
        return {"rank": env.rank, "steps": result.steps, "final_train_loss": result.final_loss}
    metrics = {"held_out_before_training": initial, "held_out": evaluate(val), "train": evaluate(trn)}
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


def _answer_eval(model, tokenizer, conversations, causal: bool) -> dict:
    from .training.evaluation import answer_accuracy

    if causal:
        from .training.evaluation import autoregressive_answer_accuracy

        return autoregressive_answer_accuracy(model, tokenizer, conversations)
    return answer_accuracy(model, tokenizer, conversations)


def run_sft(model_dir, data, config: TrainConfig, batch_size: int = 16, seq_len: int | None = None,
            on_error: str = "stop", lora_rank: int = 0, lora_alpha: int = 16, resume: bool = False,
            hooks=None, eval_data=None, eval_limit: int = 200, trust_remote_code: bool = False,
            dtype: torch.dtype | str | None = torch.float32, merge_lora: bool = True) -> dict:
    """Fine-tune a model directory on prompt/response rows (SFT for diffusion, response-only next-token loss
    when ``config.objective`` is autoregressive). With ``eval_data``, held-out prompts are answered before and
    after training and the exact-match accuracies are reported side by side.

    With ``lora_rank`` > 0 only LoRA adapters train (peft), on the linear layers the model's family names
    (see ``adapters.FAMILIES``); the adapters are written to ``<output_dir>/adapter`` (``load_model`` opens
    that directory with its base model) and, unless ``merge_lora`` is False, merged into the saved final
    model. Large models: ``dtype=torch.bfloat16`` with ``config.device="cuda"`` loads the weights in bf16
    straight onto the GPU; ``trust_remote_code`` is needed for checkpoints with their own code (LLaDA-8B)."""
    started = time.perf_counter()
    if isinstance(dtype, str):  # a name, as the command line and jobs give it
        from .model.checkpoint import DTYPES

        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; choose one of {sorted(DTYPES)}")
        dtype = DTYPES[dtype]
    if lora_rank <= 0 and not merge_lora:
        raise ValueError("merge_lora=False only applies to LoRA runs (lora_rank > 0)")
    conversations = load_sft_rows(data, on_error=on_error)  # bad rows are refused before the model loads
    held_out = load_sft_rows(eval_data, on_error=on_error)[:eval_limit] if eval_data else None
    _check_sft_memory(model_dir, config, conversations, batch_size, seq_len, lora_rank)
    env = distributed.init_distributed(config.device, config.ddp_backend)
    model, tokenizer = load_model(model_dir, device=config.device, dtype=dtype, trust_remote_code=trust_remote_code)
    if tokenizer is None:
        raise ValueError(f"{model_dir} has no tokenizer; SFT needs one to encode the rows")
    causal = bool(getattr(model.config, "causal", False))
    if causal != (config.objective == "autoregressive"):
        raise ValueError(f"objective {config.objective!r} does not fit a {'causal' if causal else 'bidirectional'} "
                         f"model ({model_dir})")
    held_out = held_out if env.is_main else None  # rank 0 evaluates
    before = _answer_eval(model, tokenizer, held_out, causal) if held_out else None
    batches = SFTBatches.from_conversations(tokenizer, conversations, batch_size, seq_len,
                                            context_length=context_length_of(model))
    trainable = model
    if lora_rank > 0:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=lora_rank, lora_alpha=lora_alpha, lora_dropout=0.0,
                          target_modules=lora_target_modules(model))
        torch.manual_seed(config.seed)  # the adapters' random init is part of the run: same seed, same run
        trainable = get_peft_model(model, lora)
        # so that the saved adapter_config.json points at the base this run started from
        trainable.peft_config["default"].base_model_name_or_path = str(
            default_model_path() if model_dir is None else resolve_model_path(model_dir))
    result = train(trainable, batches, config, tokenizer=tokenizer, mask_id=resolve_mask_id(model, None, tokenizer),
                   hooks=hooks, resume=resume)
    if not env.is_main:  # rank 0 evaluates and writes the final model
        return {"rank": env.rank, "steps": result.steps, "final_train_loss": result.final_loss}
    out = Path(config.output_dir)
    summary = {"objective": config.objective, "rows": len(conversations), "seq_len": batches.input_ids.shape[1],
               "steps": result.steps, "final_train_loss": result.final_loss, "lora_rank": lora_rank}
    if lora_rank > 0:
        summary["adapter"] = str(save_model(trainable, tokenizer, out / "adapter"))
        summary["trainable_parameters"] = sum(p.numel() for p in trainable.parameters() if p.requires_grad)
        model = trainable.merge_and_unload() if merge_lora else trainable
    final = save_model(model, tokenizer, out / "final") if merge_lora else Path(summary["adapter"])
    summary.update({"wall_time_s": round(time.perf_counter() - started, 1), "final_model": str(final),
                    "config": asdict(config)})
    if held_out:
        after = _answer_eval(model, tokenizer, held_out, causal)
        summary["held_out_accuracy"] = {"before": before, "after": after}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def run_evaluation(model_dir, data, seq_len: int = 256, batches: int = 20, batch_size: int = 16,
                   mc_samples: int = 64, rows: int = 50, samples: int = 3, sample_length: int = 64,
                   seed: int = 0) -> dict:
    """Evaluate a model directory on held-out data.

    Plain text (a .txt file or a directory): masked-token loss and the NELBO per token on fixed windows
    (next-token loss for causal models). SFT rows (.jsonl/.json/.csv/.parquet): the Monte-Carlo bound on
    log p(response | prompt) per row and the exact-match accuracy of generated answers. Both also print a
    few sample generations.
    """
    from .training.evaluation import answer_accuracy, autoregressive_answer_accuracy
    from .diffusion.losses import autoregressive_log_likelihood, mc_log_likelihood
    from .diffusion.autoregressive import generate_autoregressive
    from .diffusion.sampling import generate
    from .model.text import decode_generation

    model, tokenizer = load_model(model_dir)
    if tokenizer is None:
        raise ValueError(f"{model_dir} has no tokenizer")
    causal = bool(getattr(model.config, "causal", False))
    path = Path(data)
    result: dict = {"model": str(model_dir), "data": str(path), "causal": causal}
    g = torch.Generator().manual_seed(seed)
    if path.is_dir() or path.suffix == ".txt":
        texts = list(read_corpus(path).values())
        tokens = pack_tokens(tokenizer, texts, seq_len)
        fixed = PackedBatches(tokens, seq_len, batch_size).fixed_batches(batches, seed=seed)
        result["metrics"] = (autoregressive_eval(model, fixed) if causal
                             else masked_token_loss(model, fixed, model.config.mask_token_id, seed=seed))
        starts = torch.randint(0, len(tokens) - 32, (samples,), generator=g).tolist()
        prompts = [tokens[s:s + 32][None] for s in starts]
    else:
        conversations = load_sft_rows(path)[:rows]
        scores = []
        for conv in conversations:
            p, r = encode_data_pair(tokenizer, conv)
            if causal:
                scores.append(autoregressive_log_likelihood(model, p, r))
            else:
                scores.append(mc_log_likelihood(model, p, r, model.config.mask_token_id, mc_samples,
                                                min(mc_samples, 16), generator=g))
        result["metrics"] = {"mean_log_likelihood" + ("" if causal else "_bound"): sum(scores) / len(scores)}
        acc = (autoregressive_answer_accuracy(model, tokenizer, conversations) if causal
               else answer_accuracy(model, tokenizer, conversations))
        result["metrics"].update(acc)
        prompts = [encode_data_pair(tokenizer, c)[0][None] for c in conversations[:samples]]
    result["samples"] = []
    for prompt in prompts:
        if causal:
            out = generate_autoregressive(model, prompt, sample_length)
        else:
            out = generate(model, prompt, steps=sample_length, gen_length=sample_length, block_length=32, seed=seed)
        result["samples"].append({"prompt": tokenizer.decode(prompt[0]),
                                  "generation": decode_generation(tokenizer, out[0], prompt.shape[1], False)})
    return result


@dataclass
class EvalConfig:
    """What :func:`evaluate` scores, and where its result goes."""

    data: str  # held-out text (.txt or a directory) or SFT rows (.jsonl...)
    model_dir: str | None = None  # model directory (default: the shipped model)
    output_dir: str | None = None  # writes evaluation.json here (a job's results and logs go here too)
    seq_len: int = 256  # text windows' length
    batches: int = 20  # fixed batches of text windows scored
    batch_size: int = 16  # text windows per batch
    mc_samples: int = 64  # Monte-Carlo samples per row for the likelihood bound
    rows: int = 50  # SFT rows scored
    samples: int = 3  # sample generations shown
    sample_length: int = 64  # tokens per sample generation
    seed: int = 0  # seed of the windows, the masks and the samples


def evaluate(config: EvalConfig, resume: bool = False) -> dict:
    """:func:`run_evaluation` with an :class:`EvalConfig`; with ``output_dir``, also written to
    ``<output_dir>/evaluation.json``. (``resume`` is accepted like every run's; an evaluation starts over.)"""
    result = run_evaluation(config.model_dir, config.data, seq_len=config.seq_len, batches=config.batches,
                            batch_size=config.batch_size, mc_samples=config.mc_samples, rows=config.rows,
                            samples=config.samples, sample_length=config.sample_length, seed=config.seed)
    if config.output_dir is not None:
        out = Path(config.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "evaluation.json").write_text(json.dumps(result, indent=2))
    return result


def encode_data_pair(tokenizer, conversation) -> tuple[torch.LongTensor, torch.LongTensor]:
    """(prompt ids, response ids) of one conversation as tensors."""
    from .training.data import encode_conversation

    p, r = encode_conversation(tokenizer, conversation)
    return torch.tensor(p), torch.tensor(r)

