import json
import subprocess
import sys

import pytest

from llada_play import SamplerConfig, Trace
from llada_play.diffusion.sampler_config import INTERACTIVE
from llada_play.model.checkpoint import save_model
from llada_play.cli import main


@pytest.fixture
def model_dir(tiny_model, char_tokenizer, tmp_path):
    return str(save_model(tiny_model, char_tokenizer, tmp_path / "m"))


def test_sample_prints_text_and_writes_a_trace(model_dir, tmp_path, capsys):
    trace = tmp_path / "t.json"
    code = main(["sample", "--prompt", "To be", "--model", model_dir, "--gen-length", "16", "--steps", "8",
                 "--block-length", "8", "--trace", str(trace), "--keep-eos"])
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("To be") and len(out) > len("To be")
    data = json.loads(trace.read_text())
    assert len(data["steps"]) == 8
    # the trace carries the flags' SamplerConfig and the prompt's tokens
    assert Trace.from_dict(data).sampler_config() == INTERACTIVE.replace(steps=8, gen_length=16, block_length=8)
    prompt = data["initial"][0][:data["prompt_length"]]
    assert "".join(data["tokens"][str(t)] for t in prompt) == "To be"


def test_sample_with_the_block_cache_and_early_exit(model_dir, tmp_path, capsys):
    trace = tmp_path / "t.json"
    args = ["sample", "--prompt", "To be", "--model", model_dir, "--gen-length", "16", "--steps", "8",
            "--block-length", "8", "--keep-eos", "--trace", str(trace)]
    assert main(args) == 0
    plain = capsys.readouterr().out
    # refreshed every step the cache is exact: the same text as without it
    assert main(args + ["--cache", "dual", "--cache-refresh-every", "1"]) == 0
    assert capsys.readouterr().out == plain
    assert json.loads(trace.read_text())["config"]["cache"] == "dual"
    assert main(args + ["--cache", "prefix", "--threshold", "0.5", "--eos-early-exit"]) == 0
    assert capsys.readouterr().out.startswith("To be")


@pytest.mark.parametrize("args,message", [
    (["--prompt", "  "], "the prompt is empty"),
    (["--prompt", "x", "--gen-length", "10", "--block-length", "4"], "must be divisible by block_length"),
    (["--prompt", "x", "--threshold", "2"], r"threshold must be in \(0, 1\]"),
    (["--prompt", "x", "--cache", "dual", "--cache-refresh-every", "0"], "cache_refresh_every must be a positive"),
])
def test_sample_bad_input_gives_one_clear_line(model_dir, capsys, args, message):
    code = main(["sample", "--model", model_dir, *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("llada-play: error:")
    assert __import__("re").search(message, err)


def test_sample_names_a_missing_model_directory(tmp_path, capsys):
    assert main(["sample", "--prompt", "x", "--model", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_console_script_runs(model_dir):
    result = subprocess.run([sys.executable, "-m", "llada_play.cli", "sample", "--prompt", "Hi", "--model", model_dir,
                             "--gen-length", "8", "--steps", "4", "--block-length", "8"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Hi")


def test_parse_constraints(char_tokenizer):
    from llada_play.model.text import parse_constraints
    pins = parse_constraints(char_tokenizer, "0: ab, 5: c")
    assert pins == {0: char_tokenizer.convert_tokens_to_ids("a"), 1: char_tokenizer.convert_tokens_to_ids("b"),
                    5: char_tokenizer.convert_tokens_to_ids(" "), 6: char_tokenizer.convert_tokens_to_ids("c")}
    assert parse_constraints(char_tokenizer, "  ") == {}
    for bad, message in (("x: ab", "should look like"), ("3", "should look like"), ("0: abc, 1: zz", "overlap"),
                         ("7: abc", "runs past")):
        with pytest.raises(ValueError, match=message):
            parse_constraints(char_tokenizer, bad, gen_length=8)


def test_eval_reports_losses_likelihood_accuracy_and_samples(model_dir, tmp_path, capsys):
    text = tmp_path / "held.txt"
    text.write_text("To be, or not to be, that is the question.\n" * 30)
    assert main(["eval", "--model", model_dir, "--data", str(text), "--seq-len", "32", "--batches", "2",
                 "--samples", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["metrics"]) == {"masked_token_loss", "nelbo_per_token"} and len(result["samples"]) == 1
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"prompt": f"{a}+{a}=", "response": str(2 * a)}) + "\n" for a in range(4)))
    assert main(["eval", "--model", model_dir, "--data", str(rows), "--mc-samples", "16", "--samples", "1"]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    assert metrics["mean_log_likelihood_bound"] < 0 and metrics["n"] == 4 and 0 <= metrics["accuracy"] <= 1


def test_sample_flags_are_the_sampler_configs_fields():
    from dataclasses import fields

    from llada_play.cli import build_parser
    from llada_play.diffusion.sampler_config import INTERACTIVE, sampler_config_from_args

    parser = build_parser()
    args = parser.parse_args(["sample", "--prompt", "x"])
    assert sampler_config_from_args(args) == INTERACTIVE
    flags = ["--" + f.name.replace("_", "-") for f in fields(SamplerConfig)]
    sample_help = parser._subparsers._group_actions[0].choices["sample"].format_help()
    assert all(flag in sample_help for flag in flags)
    args = parser.parse_args(["sample", "--prompt", "x", "--eos-token-ids", "3", "4", "--eos-last", "--cache", "dual",
                              "--threshold", "0.8", "--remasking", "margin", "--topk", "2"])
    assert sampler_config_from_args(args) == INTERACTIVE.replace(eos_token_ids=(3, 4), eos_last=True, cache="dual",
                                                                 threshold=0.8, remasking="margin", topk=2)
