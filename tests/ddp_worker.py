"""Trains the tiny model on a fixed text for the DDP tests; run as one process or under torchrun.

    python tests/ddp_worker.py OUT_DIR OBJECTIVE STEPS [--resume] [--die-at N]

``--die-at N`` kills rank 0 with SIGKILL after step N (a preempted node).
"""
import os
import signal
import string
import sys

import torch

from llada_play import LladaForMaskedLM, config_from_preset
from llada_play.training.data import PackedBatches, SFTBatches
from llada_play.model.tokenizer import build_char_tokenizer, special_token_ids
from llada_play.training.trainer import TrainConfig, train

TEXT = ("HAMLET:\nTo be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer.\n"
        "OPHELIA:\nGood my lord, how does your honour for this many a day?\n") * 30


def main(out: str, objective: str, steps: int, resume: bool, die_at: int | None) -> None:
    torch.set_num_threads(1)
    tokenizer = build_char_tokenizer(string.ascii_letters + string.digits + " .,:;!?'\n-+=", model_max_length=256)
    torch.manual_seed(0)
    model = LladaForMaskedLM(config_from_preset("tiny", causal=objective == "autoregressive",
                                                **special_token_ids(tokenizer)))
    if objective == "sft":
        rows = [[{"role": "user", "content": f"{a}+{b}="}, {"role": "assistant", "content": str(a + b)}]
                for a in range(10) for b in range(10)]
        batches = SFTBatches.from_conversations(tokenizer, rows, batch_size=8, chat=False)
    else:
        batches = PackedBatches(torch.tensor(tokenizer(TEXT).input_ids), 32, 8)
    config = TrainConfig(objective=objective, output_dir=out, max_steps=steps, warmup_steps=2, lr=3e-3,
                         log_every=1, save_every=4, keep_last=5, progress=False, precision="fp32", grad_accum=2)

    def die(record):
        if record.step == die_at and os.environ.get("RANK", "0") == "0":
            os.kill(os.getpid(), signal.SIGKILL)

    train(model, batches, config, tokenizer=tokenizer, resume=resume, hooks=die)


if __name__ == "__main__":
    args = sys.argv[1:]
    die_at = int(args[args.index("--die-at") + 1]) if "--die-at" in args else None
    main(args[0], args[1], int(args[2]), "--resume" in args, die_at)
