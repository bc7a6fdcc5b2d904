"""Real checkpoints without downloads: a LLaDA-shaped model with its own code, a BERT masked LM as a denoiser,
the Dream logit shift, the memory estimate, the chat template round trip and LoRA on the remote-code model."""
import json

import pytest
import torch

from llada_play import TraceRecorder, config_from_preset, generate
from llada_play.adapters import as_denoiser, family_of, shift_logits_right
from llada_play.checkpoint import CheckpointError, load_model, save_model
from llada_play.text import decode_generation, encode_prompt, stop_token_ids
from llada_play.tokenizer import build_char_tokenizer
from tests.conftest import ALPHABET
from tests.remote_code import write_remote_code_model

# A miniature of LLaDA's remote code: model_type "llada", context in max_sequence_length, the module names of
# modeling_llada.py (model.transformer.blocks.N.{q_proj,...,ff_out}, and an output head also called ff_out).
CONFIG_CODE = '''
from transformers import PretrainedConfig

class LLaDAConfig(PretrainedConfig):
    model_type = "llada"
    def __init__(self, vocab_size=96, d_model=32, n_heads=2, n_layers=2, mlp_hidden_size=64,
                 max_sequence_length=64, mask_token_id=None, **kw):
        self.vocab_size, self.d_model, self.n_heads, self.n_layers = vocab_size, d_model, n_heads, n_layers
        self.mlp_hidden_size, self.max_sequence_length, self.mask_token_id = mlp_hidden_size, max_sequence_length, mask_token_id
        super().__init__(**kw)
'''
MODEL_CODE = '''
import torch
from torch import nn
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast
from .configuration_llada import LLaDAConfig

class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_heads = c.n_heads
        self.attn_norm, self.ff_norm = nn.RMSNorm(c.d_model), nn.RMSNorm(c.d_model)
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(c.d_model, c.d_model, bias=False) for _ in range(3))
        self.attn_out = nn.Linear(c.d_model, c.d_model, bias=False)
        self.ff_proj = nn.Linear(c.d_model, c.mlp_hidden_size, bias=False)
        self.up_proj = nn.Linear(c.d_model, c.mlp_hidden_size, bias=False)
        self.ff_out = nn.Linear(c.mlp_hidden_size, c.d_model, bias=False)

    def forward(self, x, bias):
        b, n, d = x.shape
        h = self.attn_norm(x)
        q, k, v = (p(h).view(b, n, self.n_heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        x = x + self.attn_out(att.transpose(1, 2).reshape(b, n, d))
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))

class LLaDAModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(c.vocab_size, c.d_model), wpe=nn.Embedding(c.max_sequence_length, c.d_model),
            blocks=nn.ModuleList(Block(c) for _ in range(c.n_layers)), ln_f=nn.RMSNorm(c.d_model),
            ff_out=nn.Linear(c.d_model, c.vocab_size, bias=False)))

class LLaDAModelLM(PreTrainedModel):
    config_class = LLaDAConfig
    base_model_prefix = "model"
    def __init__(self, config):
        super().__init__(config)
        self.model = LLaDAModel(config)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, **kw):
        t = self.model.transformer
        x = t.wte(input_ids) + t.wpe(torch.arange(input_ids.shape[1], device=input_ids.device))
        bias = None if attention_mask is None else attention_mask[:, None, None, :].bool()
        for block in t.blocks:
            x = block(x, bias)
        return CausalLMOutputWithPast(logits=t.ff_out(t.ln_f(x)))
'''
# LLaDA-Instruct's chat format (Llama 3 style headers, end of turn <|eot_id|>), written for this test.
LLADA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def llada_tokenizer():
    tok = build_char_tokenizer(ALPHABET, model_max_length=256)
    tok.add_special_tokens({"bos_token": "<|startoftext|>",
                            "additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>"]})
    tok.chat_template = LLADA_CHAT_TEMPLATE
    return tok


@pytest.fixture
def llada_dir(tmp_path, llada_tokenizer):
    """A directory laid out like GSAI-ML/LLaDA-8B-Instruct, with the code files written by this test."""
    d = write_remote_code_model(
        tmp_path / "tiny-llada", {"configuration_llada": CONFIG_CODE, "modeling_llada": MODEL_CODE},
        "configuration_llada.LLaDAConfig", "modeling_llada.LLaDAModelLM", vocab_size=len(llada_tokenizer),
        mask_token_id=llada_tokenizer.mask_token_id, eos_token_id=llada_tokenizer.eos_token_id)
    llada_tokenizer.save_pretrained(d)
    return d


def test_llada_style_remote_code_needs_the_opt_in_then_chats_through_the_sampler(llada_dir, llada_tokenizer):
    with pytest.raises(CheckpointError, match="needs its own Python code"):
        load_model(llada_dir)
    model, tokenizer = load_model(llada_dir, trust_remote_code=True)
    assert type(model).__name__ == "LLaDAModelLM" and family_of(model).name == "llada"
    denoiser = as_denoiser(model)
    assert denoiser.mask_id == tokenizer.mask_token_id and denoiser.context_length == 64
    prompt = encode_prompt(tokenizer, "hi", chat=True)
    assert tokenizer.decode(prompt[0]).startswith("<|startoftext|><|start_header_id|>user<|end_header_id|>")
    eos = sorted(stop_token_ids(tokenizer))
    recorder = TraceRecorder(tokenizer)
    out = generate(model, prompt, steps=8, gen_length=16, block_length=8, eos_last=True, eos_token_ids=eos,
                   hooks=recorder)
    assert out.shape == (1, prompt.shape[1] + 16) and (out != tokenizer.mask_token_id).all()
    assert len(recorder.trace().steps) == 8
    # the context comes from LLaDA's max_sequence_length: 64 tokens
    with pytest.raises(ValueError, match="context of 64"):
        generate(model, prompt, steps=8, gen_length=64, block_length=64)


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

    from llada_play.trace import Trace
    from llada_play.viz import trace_step_html

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
    from llada_play.memory import GIB, count_parameters, estimate_memory

    parameters = count_parameters(config_from_preset("llada-8b"))
    assert abs(parameters - 8.02e9) / 8.02e9 < 0.01
    bf16 = estimate_memory(parameters, torch.bfloat16)
    assert bf16.weight_bytes == 2 * parameters
    assert estimate_memory(parameters, torch.float32).weight_bytes == 4 * parameters
    assert 14.9 < bf16.weight_bytes / GIB < 15.0  # 8.02e9 x 2 bytes
    assert bf16.total_bytes > bf16.weight_bytes


def test_parameters_of_other_architectures_are_counted_without_allocating_them():
    from transformers import BertConfig, BertForMaskedLM

    from llada_play.memory import count_parameters

    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64)
    assert count_parameters(config) == sum(p.numel() for p in BertForMaskedLM(config).parameters())


def test_loading_is_refused_before_it_starts_when_memory_is_short(tmp_path, tiny_model, char_tokenizer, monkeypatch):
    from llada_play import memory

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


def test_lora_on_the_remote_code_model_trains_saves_loads_and_merges(llada_dir, tmp_path):
    from safetensors.torch import load_file

    from llada_play.cli import main
    from llada_play.losses import mc_log_likelihood
    from llada_play.recipes import encode_data_pair, run_sft
    from llada_play.training import TrainConfig

    rows = [{"prompt": f"{a}+{b}=", "response": str(a + b)} for a in range(5) for b in range(5)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = TrainConfig(objective="sft", output_dir=str(tmp_path / "lora"), max_steps=80, warmup_steps=1, lr=2e-2,
                         log_every=1, progress=False)
    summary = run_sft(llada_dir, data, config, batch_size=25, lora_rank=4, trust_remote_code=True)
    losses = [row["loss"] for row in map(json.loads, (tmp_path / "lora" / "metrics.jsonl").read_text().splitlines())]
    assert sum(losses[-10:]) < sum(losses[:10])  # the adapters learn (the per-step loss is noisy: random masks)
    adapter = tmp_path / "lora" / "adapter"
    saved = load_file(adapter / "adapter_model.safetensors")
    # LLaDA's block projections are adapted, not its output head (also called ff_out)
    assert any(".blocks.0.attn_out." in k for k in saved) and any(".blocks.1.ff_out." in k for k in saved)
    assert not any("transformer.ff_out" in k for k in saved)
    with_adapters, _ = load_model(adapter, trust_remote_code=True)
    merged, _ = load_model(summary["final_model"], trust_remote_code=True)
    base, _ = load_model(llada_dir, trust_remote_code=True)
    ids = torch.randint(0, 60, (2, 12))
    with torch.no_grad():
        assert torch.allclose(with_adapters(ids).logits, merged(ids).logits, atol=1e-5)
        assert not torch.allclose(base(ids).logits, merged(ids).logits, atol=1e-3)
    # the same masks score the answers much better after training (LLaDA's Monte-Carlo bound, fixed seed)
    tok = load_model(llada_dir, trust_remote_code=True)[1]

    def mean_bound(model):
        g = torch.Generator().manual_seed(0)
        pairs = [encode_data_pair(tok, [{"role": "user", "content": r["prompt"]},
                                      {"role": "assistant", "content": r["response"]}]) for r in rows[:8]]
        return sum(mc_log_likelihood(model, p, r, tok.mask_token_id, 16, 16, g) for p, r in pairs) / len(pairs)

    before, after = mean_bound(base), mean_bound(merged)
    assert after > before + 0.5, (before, after)  # measured: -13.10 -> -11.93 nats
    # the same run from the command line, adapters only
    assert main(["sft", "--model", str(llada_dir), "--data", str(data), "--out", str(tmp_path / "cli"),
                 "--steps", "2", "--batch-size", "5", "--lora-rank", "2", "--no-merge", "--trust-remote-code",
                 "--no-progress"]) == 0
    assert (tmp_path / "cli" / "adapter" / "adapter_config.json").exists()
    assert not (tmp_path / "cli" / "final").exists()


def test_lora_on_the_remote_code_model_resumes_exactly_after_a_kill(llada_dir, tmp_path):
    from tests.test_sft import assert_killed_lora_run_resumes_exactly, lora_cli_args

    rows = [{"prompt": f"{a}+{b}=", "response": str(a + b)} for a in range(5) for b in range(5)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def args(out):
        return lora_cli_args(llada_dir, data, out) + ["--trust-remote-code"]

    assert_killed_lora_run_resumes_exactly(args, tmp_path / "straight", tmp_path / "killed")
