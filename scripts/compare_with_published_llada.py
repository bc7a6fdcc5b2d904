"""Compare llada-play with LLaDA's published code, on a small random model in LLaDA's layout.

You supply the published files (they are not part of this project):
  --code DIR        a directory with LLaDA's configuration_llada.py and modeling_llada.py (from a LLaDA-8B
                    checkpoint)
  --generate FILE   LLaDA's generate.py (from its GitHub repository); optional

The script writes a checkpoint with llada-play's own exporter (LLaDA's config keys, tensor names, vocabulary
size 126,464 and special ids), copies the code files beside it, and then reports
  1. the largest logit difference between llada-play's native reader and the published modelling code
     (opened with trust_remote_code through llada-play's transformers 5 fixes), without and with padding;
  2. with --generate: whether llada-play's generate() returns the same tokens as LLaDA's generate() at
     temperature 0 for several settings (blocks, CFG, left-padded batch, logits_eos_inf,
     confidence_eos_eot_inf), called the way LLaDA's README calls it.
Everything runs on the CPU in float32 and takes about a minute.
"""
from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from llada_play import generate
from llada_play.model.checkpoint import load_model
from llada_play.model.config import LladaConfig
from llada_play.model.formats import export_checkpoint
from llada_play.model.modeling import LladaForMaskedLM

MASK, EOS, EOT, VOCAB = 126336, 126081, 126348, 126464


def tiny_llada(kv_heads: int) -> LladaForMaskedLM:
    config = LladaConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=kv_heads, intermediate_size=96, max_position_embeddings=256,
                         rope_theta=500000.0, mask_token_id=MASK, eos_token_id=EOS, pad_token_id=EOS,
                         positions_skip_padding=False)
    torch.manual_seed(0)
    model = LladaForMaskedLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
        model.lm_head.weight[MASK] = 0  # a trained LLaDA never predicts [MASK]
        model.lm_head.weight[[EOS, EOT]] *= 4  # so that end-of-text and end-of-turn come up
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, required=True)
    parser.add_argument("--generate", type=Path)
    parser.add_argument("--kv-heads", type=int, default=4, help="4: LLaDA-8B's full heads; 2: grouped")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="llada-compare-"))
    try:
        path = export_checkpoint(tiny_llada(args.kv_heads), None, work / "tiny-llada", "llada")
        for name in ("configuration_llada.py", "modeling_llada.py"):
            shutil.copy(args.code / name, path / name)
        native, _ = load_model(path)
        native.config.eot_token_id = EOT
        published, _ = load_model(path, trust_remote_code=True, native=False)
        torch.manual_seed(1)
        ids = torch.randint(0, 126000, (3, 40))
        mask = torch.ones_like(ids)
        mask[1, :7], mask[2, :15] = 0, 0
        with torch.no_grad():
            plain = (native(ids).logits - published(ids).logits).abs().max().item()
            padded = ((native(ids, attention_mask=mask).logits - published(ids, attention_mask=mask).logits).abs()
                      [mask.bool()].max().item())
        print(f"logits, native vs published code: max |diff| {plain:.2e} (no padding), {padded:.2e} (left padding)")
        if args.generate is None:
            return 0
        spec = importlib.util.spec_from_file_location("llada_generate", args.generate)
        official = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(official)
        prompt, attention = ids[:, :12].clone(), mask[:, :12].clone()
        prompt[~attention.bool()] = EOS  # LLaDA pads with <|endoftext|>
        cases = {
            "one block, 32 steps": dict(steps=32, gen_length=32, block_length=32),
            "4 blocks": dict(steps=32, gen_length=32, block_length=8),
            "2 tokens per step": dict(steps=16, gen_length=32, block_length=8),
            "cfg_scale 1.5": dict(steps=16, gen_length=32, block_length=8, cfg_scale=1.5),
            "logits_eos_inf": dict(steps=32, gen_length=32, block_length=8, logits_eos_inf=True),
            "confidence_eos_eot_inf": dict(steps=16, gen_length=32, block_length=8, confidence_eos_eot_inf=True),
        }
        same = 0
        for name, kw in cases.items():
            theirs = official.generate(published, prompt, attention, mask_id=MASK, **kw)
            ours = generate(native, prompt, attention, mask_id=MASK, **kw)
            equal = torch.equal(theirs, ours)
            same += equal
            diff = (theirs != ours).sum().item()
            print(f"generate, {name:24s}: {'same tokens' if equal else f'{diff} of {ours.numel()} tokens differ'}")
        print(f"{same}/{len(cases)} settings give the same tokens")
        return 0 if same == len(cases) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
