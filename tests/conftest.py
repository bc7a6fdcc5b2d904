import os
import string
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest
import torch
from torch import nn

from llada_play import LladaForMaskedLM, config_from_preset
from llada_play.tokenizer import build_char_tokenizer, special_token_ids

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


def oracle_table(target: list[int], vocab: int, strength: float = 30.0) -> torch.Tensor:
    """Logits that put (almost) all mass on target[i] at position i."""
    table = torch.zeros(len(target), vocab)
    table[torch.arange(len(target)), torch.tensor(target)] = strength
    return table


@pytest.fixture
def table_model():
    return TableModel
