"""Real checkpoints without downloads: remote code written for transformers 4.x, a BERT masked LM as a denoiser,
the Dream logit shift, the memory estimate, the chat template round trip and LoRA on a LLaDA checkpoint."""
import json

import pytest
import torch

from llada_play import TraceRecorder, config_from_preset, generate
from llada_play.model.adapters import as_denoiser, family_of, shift_logits_right
from llada_play.model.checkpoint import CheckpointError, load_model, save_model
from llada_play.model.text import decode_generation, encode_prompt, stop_token_ids
from tests.published_layouts import llada_like_model, write_llada_checkpoint
from tests.published_layouts import llada_tokenizer as published_llada_tokenizer

# Remote code written for transformers 4.x, with the traits that break published diffusion-LM code under
# transformers 5 (this project's own code, not a copy): __init__ never calls post_init(), tie_weights(self)
# takes no keywords, forward reads config.use_cache, and a rotary module gets its frequencies from
# ROPE_INIT_FUNCTIONS["default"] into a buffer that is not saved, and its GenerationConfig's validate(self)
# takes no keywords (Dream's traits).
LEGACY_CONFIG_CODE = '''
from transformers import PretrainedConfig

class LegacyConfig(PretrainedConfig):
    model_type = "legacy_denoiser"
    def __init__(self, vocab_size=96, hidden_size=16, num_attention_heads=2, rope_theta=10000.0,
                 mask_token_id=None, max_position_embeddings=64, **kw):
        self.vocab_size, self.hidden_size, self.num_attention_heads = vocab_size, hidden_size, num_attention_heads
        self.rope_theta, self.mask_token_id = rope_theta, mask_token_id
        self.max_position_embeddings = max_position_embeddings
        super().__init__(**kw)
'''
LEGACY_MODEL_CODE = '''
import torch
from torch import nn
from transformers import GenerationConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from .configuration_legacy import LegacyConfig

class LegacyGenerationConfig(GenerationConfig):
    def validate(self):
        pass

class Rotary(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config, self.rope_kwargs = config, {}
        self.rope_init_fn = ROPE_INIT_FUNCTIONS["default"]
        inv_freq, self.attention_scaling = self.rope_init_fn(config, None)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

class LegacyModel(PreTrainedModel):
    config_class = LegacyConfig
    def __init__(self, config):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.rotary = Rotary(config)
        self.head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def tie_weights(self):
        pass

    @classmethod
    def from_pretrained(cls, path, *args, **kwargs):
        model = super().from_pretrained(path, *args, **kwargs)
        model.generation_config = LegacyGenerationConfig.from_pretrained(path)
        return model

    def forward(self, input_ids, attention_mask=None, **kw):
        assert self.config.use_cache is False
        positions = torch.arange(input_ids.shape[1], dtype=torch.float)[:, None]
        phase = torch.cos(positions * self.rotary.inv_freq).repeat(1, 4)
        return MaskedLMOutput(logits=self.head(self.embed(input_ids) * phase))
'''


def write_legacy_checkpoint(directory, tokenizer):
    """The code files above beside weights written from plain tensors (the legacy class cannot be built and
    saved under transformers 5, which is the point)."""
    from safetensors.torch import save_file

    directory.mkdir()
    (directory / "configuration_legacy.py").write_text(LEGACY_CONFIG_CODE)
    (directory / "modeling_legacy.py").write_text(LEGACY_MODEL_CODE)
    g = torch.Generator().manual_seed(0)
    vocab = len(tokenizer)
    weights = {"embed.weight": torch.randn(vocab, 16, generator=g), "head.weight": torch.randn(vocab, 16, generator=g)}
    save_file(weights, directory / "model.safetensors", metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps({
        "model_type": "legacy_denoiser", "vocab_size": vocab, "hidden_size": 16, "num_attention_heads": 2,
        "rope_theta": 10000.0, "mask_token_id": tokenizer.mask_token_id, "eos_token_id": tokenizer.eos_token_id,
        "max_position_embeddings": 64, "auto_map": {"AutoConfig": "configuration_legacy.LegacyConfig",
                                                    "AutoModel": "modeling_legacy.LegacyModel"}}))
    (directory / "generation_config.json").write_text(json.dumps({"max_new_tokens": 8}))
    tokenizer.save_pretrained(directory)
    return directory, weights


def test_remote_code_written_for_transformers_4_opens_with_the_known_fixes(tmp_path, char_tokenizer, capsys):
    from llada_play.cli import main

    path, weights = write_legacy_checkpoint(tmp_path / "legacy", char_tokenizer)
    with pytest.raises(CheckpointError, match="needs its own Python code"):
        load_model(path)
    model, tokenizer = load_model(path, trust_remote_code=True)
    assert type(model).__name__ == "LegacyModel" and model.config.use_cache is False
    assert type(model.generation_config).__name__ == "LegacyGenerationConfig"
    # the unsaved rotary buffer holds the real frequencies, not uninitialised memory
    assert torch.allclose(model.rotary.inv_freq, 1.0 / 10000.0 ** (torch.arange(0, 8, 2).float() / 8))
    ids = torch.tensor([[5, 6, 7, 8]])
    phase = torch.cos(torch.arange(4.0)[:, None] * model.rotary.inv_freq).repeat(1, 4)
    expected = (weights["embed.weight"][ids] * phase) @ weights["head.weight"].T
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, expected, atol=1e-5)
    out = generate(model, ids, None, steps=4, gen_length=8, block_length=4)
    assert (out != tokenizer.mask_token_id).all()
    # remote code failing in any other way: one line that names the checkpoint, the error and the ways out
    path, _ = write_legacy_checkpoint(tmp_path / "broken", char_tokenizer)
    (path / "modeling_legacy.py").write_text(LEGACY_MODEL_CODE.replace("super().__init__(config)",
                                                                       "super().__init__(config); self.missing()"))
    with pytest.raises(CheckpointError, match=r"its own code \(modeling_legacy.LegacyModel\) failed under "
                                              r"transformers 5.* AttributeError: .*transformers<5"):
        load_model(path, trust_remote_code=True)
    capsys.readouterr()
    assert main(["sample", "--model", str(path), "--prompt", "ab", "--trust-remote-code"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("llada-play: error:") and len(err.splitlines()) == 1


@pytest.fixture
def llada_tokenizer():
    return published_llada_tokenizer()


@pytest.fixture
def llada_dir(tmp_path, llada_tokenizer):
    """A directory laid out like GSAI-ML/LLaDA-8B-Instruct (read natively: its code files raise if run)."""
    return write_llada_checkpoint(tmp_path / "tiny-llada", llada_like_model(llada_tokenizer), llada_tokenizer)


def test_chat_template_round_trip_strips_end_of_turn_between_turns(llada_tokenizer):
    tok = llada_tokenizer
    eot, eos = tok.convert_tokens_to_ids("<|eot_id|>"), tok.eos_token_id
    first = encode_prompt(tok, "What is 2+2?", chat=True)
    answer_ids = tok("It is 4.", add_special_tokens=False).input_ids
    # what LLaDA generates: the answer, end of turn, then end-of-text padding up to gen_length
    generated = torch.tensor([first[0].tolist() + answer_ids + [eot] + [eos] * 5])
    reply = decode_generation(tok, generated[0], first.shape[1])
    assert reply == "It is 4."
    history = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": reply}]
    second = encode_prompt(tok, history + [{"role": "user", "content": "And 3+3?"}], chat=True)[0].tolist()
    # the next prompt re-renders turn one exactly: prompt, answer, one end of turn, no end-of-text padding
    assert second[:first.shape[1] + len(answer_ids) + 1] == first[0].tolist() + answer_ids + [eot]
    assert eos not in second
    rendered = tok.decode(second)
    assert rendered.count("<|eot_id|>") == 3 and rendered.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_a_random_bert_is_a_denoiser_end_to_end(tmp_path, char_tokenizer):
    from transformers import BertConfig, BertForMaskedLM

    from llada_play.diffusion.trace import Trace
    from llada_play.ui.viz import trace_step_html

    torch.manual_seed(0)
    bert = BertForMaskedLM(BertConfig(vocab_size=len(char_tokenizer), hidden_size=32, num_hidden_layers=2,
                                      num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)).eval()
    # straight from the config: no mask id anywhere but the tokenizer
    assert bert.config.mask_token_id is None if hasattr(bert.config, "mask_token_id") else True
    with pytest.raises(ValueError, match="no mask id"):
        as_denoiser(bert)
    denoiser = as_denoiser(bert, tokenizer=char_tokenizer)
    assert denoiser.family.name == "masked_lm" and denoiser.mask_id == char_tokenizer.mask_token_id
    prompt = encode_prompt(char_tokenizer, "ab")
    recorder = TraceRecorder(char_tokenizer)
    out = generate(denoiser, prompt, steps=8, gen_length=16, block_length=8, hooks=recorder)
    assert (out != char_tokenizer.mask_token_id).all()
    trace = Trace.from_dict(json.loads(json.dumps(recorder.trace().to_dict())))
    assert trace_step_html(trace, 3).count("lp-tok lp-mask") == 16 - 3 * 2  # drawn after 3 steps of 2 commits
    # the same weights saved and reopened take the mask id from the tokenizer directory
    save_model(bert, char_tokenizer, tmp_path / "bert")
    model, tokenizer = load_model(tmp_path / "bert")
    again = generate(model, prompt, steps=8, gen_length=16, block_length=8)
    assert torch.equal(again, out)
    # and the context limit is BERT's max_position_embeddings
    with pytest.raises(ValueError, match="context of 64"):
        generate(model, prompt, steps=8, gen_length=64, block_length=64)


def test_dream_style_models_get_their_logits_shifted(table_model):
    from tests.conftest import oracle_table

    target = [5, 6, 7, 8, 9, 10]
    vocab, mask_id = 16, 15
    # an AR-converted model: the logits at position i predict the token at i + 1
    table = torch.cat([oracle_table(target[1:], vocab), torch.zeros(1, vocab)])
    model = table_model(table, mask_id)
    model.config.model_type = "Dream"
    assert family_of(model).name == "dream"
    out = generate(model, torch.tensor([target[:2]]), steps=4, gen_length=4, block_length=4)
    assert out[0].tolist() == target
    logits = torch.arange(6.0).view(1, 3, 2)
    assert shift_logits_right(logits)[0, :, 0].tolist() == [0.0, 0.0, 2.0]


def test_memory_estimate_of_the_llada_8b_preset_matches_its_parameter_count():
    from llada_play.model.memory import GIB, count_parameters, estimate_memory

    parameters = count_parameters(config_from_preset("llada-8b"))
    assert abs(parameters - 8.02e9) / 8.02e9 < 0.01
    bf16 = estimate_memory(parameters, torch.bfloat16)
    assert bf16.weight_bytes == 2 * parameters
    assert estimate_memory(parameters, torch.float32).weight_bytes == 4 * parameters
    assert 14.9 < bf16.weight_bytes / GIB < 15.0  # 8.02e9 x 2 bytes
    assert bf16.total_bytes > bf16.weight_bytes


def test_parameters_of_other_architectures_are_counted_without_allocating_them():
    from transformers import BertConfig, BertForMaskedLM

    from llada_play.model.memory import count_parameters

    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64)
    assert count_parameters(config) == sum(p.numel() for p in BertForMaskedLM(config).parameters())


def test_loading_is_refused_before_it_starts_when_memory_is_short(tmp_path, tiny_model, char_tokenizer, monkeypatch):
    from llada_play.model import memory

    path = save_model(tiny_model, char_tokenizer, tmp_path / "m")
    parameters, stored = memory.stored_parameters(path)
    assert parameters == sum(p.numel() for p in tiny_model.parameters())
    assert stored == 4 * parameters
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu", device_map=None: memory.GIB // 2)

    def no_loading(*args, **kwargs):
        raise AssertionError("weights were read before the memory check")

    from transformers import AutoModelForMaskedLM
    monkeypatch.setattr(AutoModelForMaskedLM, "from_pretrained", no_loading)
    with pytest.raises(memory.InsufficientMemoryError, match=r"needs about 1\.0 GiB on cpu .* only 0\.5 GiB is available"):
        load_model(path)
    with pytest.raises(ValueError, match="bfloat16"):
        load_model(path)
    from llada_play.cli import main
    assert main(["sample", "--model", str(path), "--prompt", "ab"]) == 2


def test_lora_on_a_llada_checkpoint_trains_saves_loads_and_merges(llada_dir, tmp_path):
    from safetensors.torch import load_file

    from llada_play.cli import main
    from llada_play.diffusion.losses import mc_log_likelihood
    from llada_play.recipes import encode_data_pair, run_sft
    from llada_play.training.trainer import TrainConfig

    rows = [{"prompt": f"{a}+{b}=", "response": str(a + b)} for a in range(5) for b in range(5)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = TrainConfig(objective="sft", output_dir=str(tmp_path / "lora"), max_steps=80, warmup_steps=1, lr=2e-2,
                         log_every=1, progress=False)
    summary = run_sft(llada_dir, data, config, batch_size=25, lora_rank=4)
    losses = [row["loss"] for row in map(json.loads, (tmp_path / "lora" / "metrics.jsonl").read_text().splitlines())]
    assert sum(losses[-10:]) < sum(losses[:10])  # the adapters learn (the per-step loss is noisy: random masks)
    adapter = tmp_path / "lora" / "adapter"
    saved = load_file(adapter / "adapter_model.safetensors")
    # read natively, LLaDA's block projections (attn_out, ff_out...) are the native attention/MLP layers that
    # LoRA adapts; its output head (also called ff_out) is not adapted
    assert any(".layers.0.attn.o_proj." in k for k in saved) and any(".layers.1.mlp.down_proj." in k for k in saved)
    assert not any("lm_head" in k for k in saved)
    with_adapters, _ = load_model(adapter)
    merged, _ = load_model(summary["final_model"])
    base, _ = load_model(llada_dir)
    ids = torch.randint(0, 60, (2, 12))
    with torch.no_grad():
        adapted, merged_logits = with_adapters(ids).logits, merged(ids).logits
        # equal up to float32 rounding, which grows with the logits' scale (|logit| up to about 8 here)
        assert (adapted - merged_logits).abs().max() <= 1e-5 * adapted.abs().max()
        assert not torch.allclose(base(ids).logits, merged(ids).logits, atol=1e-3)
    # the same masks score the answers much better after training (LLaDA's Monte-Carlo bound, fixed seed)
    tok = load_model(llada_dir)[1]

    def mean_bound(model):
        g = torch.Generator().manual_seed(0)
        pairs = [encode_data_pair(tok, [{"role": "user", "content": r["prompt"]},
                                      {"role": "assistant", "content": r["response"]}]) for r in rows[:8]]
        return sum(mc_log_likelihood(model, p, r, tok.mask_token_id, 16, 16, g) for p, r in pairs) / len(pairs)

    before, after = mean_bound(base), mean_bound(merged)
    assert after > before + 0.5, (before, after)  # measured: -13.10 -> -11.93 nats
    # the same run from the command line, adapters only
    assert main(["sft", "--model", str(llada_dir), "--data", str(data), "--out", str(tmp_path / "cli"),
                 "--steps", "2", "--batch-size", "5", "--lora-rank", "2", "--no-merge",
                 "--no-progress"]) == 0
    assert (tmp_path / "cli" / "adapter" / "adapter_config.json").exists()
    assert not (tmp_path / "cli" / "final").exists()


def test_lora_on_a_llada_checkpoint_resumes_exactly_after_a_kill(llada_dir, tmp_path):
    from tests.test_sft import assert_killed_lora_run_resumes_exactly, lora_cli_args

    rows = [{"prompt": f"{a}+{b}=", "response": str(a + b)} for a in range(5) for b in range(5)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def args(out):
        return lora_cli_args(llada_dir, data, out)

    assert_killed_lora_run_resumes_exactly(args, tmp_path / "straight", tmp_path / "killed")
