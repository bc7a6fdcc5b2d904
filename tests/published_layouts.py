"""Fixtures in LLaDA's and Dream's published layouts, written by this project's own exporter.

The directories look like GSAI-ML/LLaDA-8B-Instruct and Dream-org/Dream-v0-Instruct-7B: their config.json
keys (with ``auto_map``), tensor names, tokenizer special tokens and chat format, and code files beside them.
The code files here only raise when imported, so a test that opens the directory proves that none of the
checkpoint's Python ran.
"""
import json
import string
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from llada_play.model.config import LladaConfig
from llada_play.model.formats import export_checkpoint
from llada_play.model.modeling import LladaForMaskedLM
from llada_play.model.tokenizer import build_char_tokenizer

ALPHABET = string.ascii_letters + string.digits + " .,:;!?'\n-+="
RAISES = "raise RuntimeError('the checkpoint's own code was imported')\n"
# LLaDA-Instruct's chat format (Llama 3 style headers, end of turn <|eot_id|>), written for these tests.
LLADA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def llada_tokenizer():
    """Characters plus LLaDA's special tokens by name: <|startoftext|> (bos), <|endoftext|> (eos and pad),
    <|mdm_mask|> (known to the tokenizer but not declared its mask token, as in LLaDA's tokenizer_config),
    the chat headers and <|eot_id|>."""
    tok = build_char_tokenizer(ALPHABET, model_max_length=256)
    tok.add_special_tokens({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                            "additional_special_tokens": ["<|mdm_mask|>", "<|start_header_id|>", "<|end_header_id|>",
                                                          "<|eot_id|>"]})
    tok.mask_token = None
    tok.chat_template = LLADA_CHAT_TEMPLATE
    return tok


def random_weights(model, std: float = 0.3, seed: int = 0):
    """Larger than the initial 0.02 so that logits differ clearly from position to position."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std + (1.0 if p.dim() == 1 else 0.0))
    return model


def llada_like_model(tokenizer, kv_heads: int = 2, tied: bool = False, padded_vocab: int = 128) -> LladaForMaskedLM:
    """LLaDA-8B's options at toy size: absolute positions, RoPE theta 500000, untied output, an embedding
    table padded past the tokenizer (LLaDA pads 126,464 rows), grouped key/value heads when asked."""
    config = LladaConfig(vocab_size=padded_vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=kv_heads, intermediate_size=48, max_position_embeddings=96,
                         rope_theta=500000.0, mask_token_id=tokenizer.convert_tokens_to_ids("<|mdm_mask|>"),
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=tied, positions_skip_padding=False)
    return random_weights(LladaForMaskedLM(config)).eval()


def write_llada_checkpoint(directory: Path, model, tokenizer) -> Path:
    export_checkpoint(model, tokenizer, directory, "llada")
    for name in ("configuration_llada.py", "modeling_llada.py"):
        (directory / name).write_text(RAISES)
    return directory


def dream_tokenizer_files(directory: Path) -> None:
    """A byte-level BPE with Qwen2's file names (vocab.json, merges.txt) and Dream's special tokens, whose
    tokenizer_config names Dream's own tokenizer class through auto_map, as Dream's does."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|mask|>"])
    tok.train_from_iterator(["what is two plus two? it is four. the cat sat on the mat."] * 20, trainer)
    directory.mkdir(parents=True, exist_ok=True)
    tok.model.save(str(directory))
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "auto_map": {"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]},
        "tokenizer_class": "DreamTokenizer", "bos_token": None, "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "mask_token": "<|mask|>", "model_max_length": 256,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"]}))
    (directory / "tokenization_dream.py").write_text(RAISES)


def write_dream_checkpoint(directory: Path, kv_heads: int = 1) -> tuple[Path, LladaForMaskedLM]:
    """Dream's options at toy size: q/k/v biases, grouped key/value heads, next-token logits."""
    dream_tokenizer_files(directory)
    vocab = json.loads((directory / "vocab.json").read_text())
    config = LladaConfig(vocab_size=320, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=kv_heads, intermediate_size=48, max_position_embeddings=96,
                         rope_theta=1000000.0, rms_norm_eps=1e-6, mask_token_id=vocab["<|mask|>"],
                         eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"],
                         bos_token_id=vocab["<|endoftext|>"], attention_bias=True, next_token_logits=True)
    model = random_weights(LladaForMaskedLM(config)).eval()
    export_checkpoint(model, None, directory, "dream")
    (directory / "generation_config.json").write_text(json.dumps({  # Dream ships its sampler's defaults
        "bos_token_id": config.bos_token_id, "eos_token_id": config.eos_token_id, "pad_token_id": config.pad_token_id,
        "mask_token_id": config.mask_token_id, "max_new_tokens": 32, "steps": 32, "alg": "entropy",
        "temperature": 0.0, "top_p": None, "top_k": None, "alg_temp": 0.0, "eps": 1e-3}))
    for name in ("configuration_dream.py", "modeling_dream.py", "generation_utils.py"):
        (directory / name).write_text(RAISES)
    return directory, model
