"""The shipped default model: it loads offline, writes Shakespeare-like text, and its training command works."""
import json
import re
import subprocess
import sys
from pathlib import Path

import torch

from llada_play import generate
from llada_play.model.checkpoint import DEFAULT_MODEL_DIR, load_model
from llada_play.model.text import decode_generation, encode_prompt

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_model_loads_and_is_small():
    size = sum(f.stat().st_size for f in DEFAULT_MODEL_DIR.iterdir())
    assert size <= 25 * 2**20
    model, tokenizer = load_model()
    assert model.config.model_type == "llada_play" and not model.config.causal
    assert 2e6 < sum(p.numel() for p in model.parameters()) < 10e6
    assert tokenizer.mask_token_id == model.config.mask_token_id and len(tokenizer) == model.config.vocab_size


def test_shipped_model_writes_words_and_lines():
    model, tokenizer = load_model()
    prompt = encode_prompt(tokenizer, "KING.\n")
    out = generate(model, prompt, steps=64, gen_length=64, block_length=32)
    text = decode_generation(tokenizer, out[0], prompt.shape[1])
    words = re.findall(r"[A-Za-z']+", text)
    common = {"the", "and", "i", "to", "of", "a", "my", "you", "that", "in", "is", "not", "with", "me", "it", "be",
              "your", "his", "this", "for", "thou", "thee", "lord", "o", "will", "have", "so", "what", "but", "he"}
    assert len(words) >= 10, text
    assert sum(w.lower() in common for w in words) >= 3, text
    assert "\n" in text, text


def test_retraining_with_the_model_card_command_reduces_the_loss(tmp_path):
    """The card's exact command, shortened to a few steps (and a few held-out batches to score), runs and lowers
    the held-out loss."""
    card = (ROOT / "MODEL_CARD.md").read_text()
    command = re.search(r"```bash\n(llada-play train [^`]*?)\n```", card, re.S).group(1)
    args = command.replace("\\\n", " ").split()[1:]
    for flag, value in (("--steps", "6"), ("--out", str(tmp_path / "run")), ("--warmup", "2")):
        i = args.index(flag)
        args[i + 1] = value
    args += ["--eval-batches", "4"]  # 20 by default: scored three times, they took longer than the training
    subprocess.run([sys.executable, "-m", "llada_play.cli", *args, "--no-progress"], check=True, cwd=ROOT,
                   capture_output=True, timeout=900)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    before = summary["metrics"]["held_out_before_training"]["masked_token_loss"]
    after = summary["metrics"]["held_out"]["masked_token_loss"]
    assert after < before - 0.5, (before, after)
