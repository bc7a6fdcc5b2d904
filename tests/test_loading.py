"""Loading beyond the project's own checkpoints: custom code (opt-in), other masked LMs, the hub cache."""
import os

import pytest
import torch

from llada_play import generate
from llada_play.model.checkpoint import CheckpointError, load_model
from tests.remote_code import write_remote_code_model

CONFIG_CODE = '''
from transformers import PretrainedConfig

class ToyConfig(PretrainedConfig):
    model_type = "toy_denoiser"
    def __init__(self, vocab_size=32, hidden=16, mask_token_id=31, **kw):
        self.vocab_size, self.hidden, self.mask_token_id = vocab_size, hidden, mask_token_id
        super().__init__(**kw)
'''
MODEL_CODE = '''
import torch
from transformers import PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput
from .configuration_toy import ToyConfig

class ToyModel(PreTrainedModel):
    config_class = ToyConfig
    def __init__(self, config):
        super().__init__(config)
        self.embed = torch.nn.Embedding(config.vocab_size, config.hidden)
        self.head = torch.nn.Linear(config.hidden, config.vocab_size)
        self.post_init()
    def forward(self, input_ids, attention_mask=None, **kw):
        h = self.embed(input_ids)
        return MaskedLMOutput(logits=self.head(h + h.mean(1, keepdim=True)))
'''


@pytest.fixture
def custom_code_dir(tmp_path):
    return write_remote_code_model(tmp_path / "toy", {"configuration_toy": CONFIG_CODE, "modeling_toy": MODEL_CODE},
                                   "configuration_toy.ToyConfig", "modeling_toy.ToyModel")


def test_custom_code_is_refused_without_opt_in_and_runs_with_it(custom_code_dir):
    with pytest.raises(CheckpointError, match="needs its own Python code"):
        load_model(custom_code_dir)
    model, tokenizer = load_model(custom_code_dir, trust_remote_code=True)
    assert type(model).__name__ == "ToyModel" and tokenizer is None
    out = generate(model, torch.tensor([[1, 2, 3]]), steps=4, gen_length=8, block_length=4)
    assert out.shape == (1, 11) and (out != 31).all()


def test_a_bert_directory_loads_with_its_mask_token(tmp_path, char_tokenizer):
    from transformers import BertConfig, BertForMaskedLM
    bert = BertForMaskedLM(BertConfig(vocab_size=len(char_tokenizer), hidden_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=64, max_position_embeddings=64))
    bert.save_pretrained(tmp_path / "bert")
    char_tokenizer.save_pretrained(tmp_path / "bert")
    model, tokenizer = load_model(tmp_path / "bert")
    assert model.config.mask_token_id == tokenizer.mask_token_id
    out = generate(model, torch.tensor([tokenizer("ab").input_ids]), steps=4, gen_length=4, block_length=4)
    assert (out != tokenizer.mask_token_id).all()


def test_hub_ids_come_from_the_local_cache_only(tmp_path, monkeypatch, tiny_model, char_tokenizer):
    from llada_play.model.checkpoint import save_model
    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--tiny-llada" / "snapshots" / ("a" * 40)
    save_model(tiny_model, char_tokenizer, snapshot)
    (cache / "models--someone--tiny-llada" / "refs").mkdir()
    (cache / "models--someone--tiny-llada" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    model, tokenizer = load_model("someone/tiny-llada")
    ids = torch.randint(0, 60, (1, 5))
    assert torch.equal(model(ids).logits, tiny_model(ids).logits)
    with pytest.raises(CheckpointError, match="not in the local Hugging Face cache|neither a directory"):
        load_model("someone/not-cached")


def test_app_refuses_custom_code_unless_started_with_the_flag(custom_code_dir):
    from gradio_client import Client

    from tests.browser import running_app
    with running_app("--model", str(custom_code_dir)) as url:
        client = Client(url, verbose=False)
        with pytest.raises(Exception, match="needs its own Python code"):
            client.predict(str(custom_code_dir), api_name="/load_model")


def test_auto_dtype_is_bfloat16_only_where_the_hardware_computes_it(monkeypatch):
    from llada_play.model import checkpoint

    monkeypatch.setattr(checkpoint, "native_bfloat16", lambda device="cpu": True)
    assert checkpoint.dtype_named("auto") == torch.bfloat16
    monkeypatch.setattr(checkpoint, "native_bfloat16", lambda device="cpu": False)
    assert checkpoint.dtype_named("auto") == torch.float32
    assert checkpoint.dtype_named("float16") == torch.float16 and checkpoint.dtype_named("stored") is None
    with pytest.raises(ValueError, match="unknown dtype 'half'"):
        checkpoint.dtype_named("half")


def test_native_bfloat16_reads_the_processor():
    from llada_play.model.checkpoint import native_bfloat16

    flags = open("/proc/cpuinfo").read().split() if os.path.exists("/proc/cpuinfo") else []
    if flags:
        assert native_bfloat16("cpu") == ("avx512_bf16" in flags or "amx_tile" in flags)
    assert native_bfloat16("meta") is False


def test_the_app_says_which_dtype_it_runs(tmp_path):
    from llada_play.ui.registry import DEFAULT_KEY, ModelRegistry

    assert "bfloat16" in ModelRegistry(None, None, dtype=torch.bfloat16).describe(DEFAULT_KEY)
    assert "float32" in ModelRegistry(None, None).describe(DEFAULT_KEY)
