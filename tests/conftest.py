import os
import string
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# as app.py does: spinning OpenMP threads make torch 10x slower whenever another process (the app under test,
# Chromium) is busy on this 2-core machine
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest
import torch
from torch import nn

from llada_play import LladaForMaskedLM, config_from_preset
from llada_play.model.tokenizer import build_char_tokenizer, special_token_ids

ALPHABET = string.ascii_letters + string.digits + " .,:;!?'\n-+="


@pytest.fixture(scope="session")
def char_tokenizer():
    return build_char_tokenizer(ALPHABET, model_max_length=256)


@pytest.fixture
def tiny_model(char_tokenizer):
    torch.manual_seed(0)
    config = config_from_preset("tiny", **special_token_ids(char_tokenizer))
    return LladaForMaskedLM(config).eval()


class TableModel(nn.Module):
    """Returns the same hand-built logits table (length, vocab) whatever the input; records its inputs."""

    def __init__(self, table: torch.Tensor, mask_id: int):
        super().__init__()
        self.table = table
        self.config = SimpleNamespace(mask_token_id=mask_id, vocab_size=table.shape[-1])
        self.calls = []

    def forward(self, input_ids, attention_mask=None):
        self.calls.append(input_ids.clone())
        return SimpleNamespace(logits=self.table[: input_ids.shape[1]].expand(input_ids.shape[0], -1, -1).clone())


class PerRowModel(nn.Module):
    """Rows whose first prompt token is 5 are sure of end-of-text everywhere; other rows of token 11. Records
    the batch size of every forward pass (to see finished rows leave the batch)."""

    def __init__(self, mask_id: int = 3, vocab: int = 40, eos: int = 1):
        super().__init__()
        self.config = SimpleNamespace(mask_token_id=mask_id, vocab_size=vocab, eos_token_id=eos)
        self.batch_sizes = []

    def forward(self, input_ids, attention_mask=None):
        self.batch_sizes.append(input_ids.shape[0])
        logits = torch.zeros(*input_ids.shape, self.config.vocab_size)
        ends = input_ids[:, 0] == 5
        logits[ends, :, self.config.eos_token_id] = 30
        logits[~ends, :, 11] = 30
        return SimpleNamespace(logits=logits)


def oracle_table(target: list[int], vocab: int, strength: float = 30.0) -> torch.Tensor:
    """Logits that put (almost) all mass on target[i] at position i."""
    table = torch.zeros(len(target), vocab)
    table[torch.arange(len(target)), torch.tensor(target)] = strength
    return table


@pytest.fixture
def table_model():
    return TableModel


# Runs the CLI in a child process that SIGKILLs itself when the loop is about to write the checkpoint of step
# KILL_AT (the rows logged since the previous checkpoint are on disk, their weights are not): a kill at a
# known step, where polling for a checkpoint from outside races a run that takes milliseconds per step.
_KILLED_CLI = """
import os, signal, sys
from llada_play.training import trainer as training
from llada_play.cli import main

save, kill_at = training.save_training_state, int(os.environ["KILL_AT"])

def save_or_die(output_dir, step, *args, **kwargs):
    if step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return save(output_dir, step, *args, **kwargs)

training.save_training_state = save_or_die
sys.exit(main(sys.argv[1:]))
"""


def run_cli_killed_at(args: list[str], step: int) -> int:
    """Run ``llada-play ARGS`` in a child process killed (SIGKILL) as it saves step ``step``; its return code."""
    import subprocess
    import sys

    env = {**os.environ, "KILL_AT": str(step), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-c", _KILLED_CLI, *args], env=env, capture_output=True,
                          timeout=300).returncode
