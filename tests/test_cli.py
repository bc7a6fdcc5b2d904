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


# ---- one rule from settings to flags, and the commands the documents give -------------------------------

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def documented_commands(path) -> list[list[str]]:
    """Every ``llada-play ...`` / ``python -m llada_play...`` line of the file's bash blocks, as argv."""
    import re
    import shlex

    commands = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(), re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["llada-play"]:
                commands.append(words[1:])
            elif words[:2] == ["python", "-m"] and words[2].startswith("llada_play"):
                commands.append(words[2:])
    return commands


@pytest.mark.parametrize("document", ["README.md", "MODEL_CARD.md", "data/masking_ratio/README.md"])
def test_the_documented_command_lines_parse_into_valid_settings(document):
    """Each documented command parses, and its settings pass their dataclasses' checks (nothing is run)."""
    from llada_play import runs
    from llada_play.cli import build_parser, cluster_config_from_args
    from llada_play.diffusion.sampler_config import sampler_config_from_args
    from llada_play.experiments.masking_ratio import MaskingRatioConfig
    from llada_play.flags import parse_config

    commands = documented_commands(ROOT / document)
    assert commands, f"no commands found in {document}"
    for argv in commands:
        if argv[0] == "llada_play.experiments.masking_ratio":
            assert parse_config(MaskingRatioConfig, argv[1:]).steps > 0
            continue
        args = build_parser().parse_args(argv)
        if argv[0] == "sample":
            sampler_config_from_args(args)
        elif argv[0] == "submit":
            cluster_config_from_args(args)
            run, _, (config, _) = runs.parse_command(args.training[1:])
            assert config.output_dir
        else:
            runs.find(argv[0]).settings(args)


def test_renamed_flags_stay_as_aliases_that_say_so():
    from llada_play.cli import build_parser
    from llada_play.runs import RUNS, build_parser as run_parser

    parser = build_parser()
    train = parser.parse_args(["train", "--data", "d", "--out", "runs/x", "--steps", "12", "--warmup", "4",
                               "--autoregressive", "--held-out", "0.3", "--no-progress"])
    config, options = RUNS["train"].settings(train)
    assert (config.output_dir, config.max_steps, config.warmup_steps, config.objective, config.progress) == (
        "runs/x", 12, 4, "autoregressive", False)
    assert options["corpus"] == "d" and options["held_out_fraction"] == 0.3
    assert config.lr == 1e-3 and RUNS["train"].settings(parser.parse_args(
        ["train", "--data", "d", "--out", "o"]))[0].max_steps == 2000  # the command's own defaults
    train_help = run_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for alias, flag in [("--steps", "--max-steps"), ("--out", "--output-dir"), ("--data", "--corpus")]:
        assert f"alias of {flag}" in " ".join(train_help.split()), alias
    sft = parser.parse_args(["sft", "--out", "o", "--model", "m", "--no-merge", "--dtype", "bfloat16"])
    options = RUNS["sft"].settings(sft)[1]
    assert (options["model_dir"], options["merge_lora"], options["dtype"]) == ("m", False, "bfloat16")
    with pytest.raises(SystemExit):  # one spelling at a time
        parser.parse_args(["train", "--data", "d", "--out", "a", "--output-dir", "b"])


def test_every_runs_flags_are_its_settings_fields():
    from dataclasses import fields

    from llada_play.runs import RUNS, build_parser

    parser = build_parser()
    listed = " ".join(parser.format_help().split())
    choices = parser._subparsers._group_actions[0].choices
    for name, run in RUNS.items():
        assert " ".join(run.help.split()) in listed, name
        text = choices[name].format_help()
        for cls in filter(None, (run.config, run.options)):
            for f in fields(cls):
                assert "--" + f.name.replace("_", "-") in text, (name, f.name)


def test_the_masking_ratio_module_takes_the_commands_flags():
    """python -m llada_play.experiments.masking_ratio is a thin alias: the same flags as llada-play masking-ratio."""
    import argparse

    from llada_play.experiments.masking_ratio import MaskingRatioConfig
    from llada_play.flags import add_config_arguments
    from llada_play.runs import RUNS, build_parser

    alone = argparse.ArgumentParser()
    add_config_arguments(alone, MaskingRatioConfig)
    flags = {s for a in alone._actions for s in a.option_strings} - {"-h", "--help"}
    command = build_parser()._subparsers._group_actions[0].choices["masking-ratio"]
    assert flags <= {s for a in command._actions for s in a.option_strings}
    args = build_parser().parse_args(["masking-ratio", "--steps", "7", "--seeds", "3", "--no-progress"])
    config, _ = RUNS["masking-ratio"].settings(args)
    assert (config.steps, config.seeds, config.progress) == (7, 3, False)


def test_flags_follow_the_annotations_and_round_trip():
    import argparse
    from dataclasses import dataclass, field
    from typing import Literal

    from llada_play.flags import add_config_arguments, config_from_args, config_to_argv

    @dataclass
    class Settings:
        name: str  # what it is called
        count: int = 3  # how many
        ratio: float | None = None  # a share, or none
        kind: Literal["a", "b"] = "a"
        fast: bool = True  # go fast
        seeds: list[int] = field(default_factory=lambda: [0, 1])
        pair: tuple[int, ...] | None = None
        extra: dict[str, str] = field(default_factory=dict)
        lines: list[str] = field(default_factory=list, metadata={"help": "a line (repeatable)"})

    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Settings, aliases={"--n": "count", "--slow": ("fast", False)},
                         overrides={"lines": {"repeat": True}})
    text = " ".join(parser.format_help().split())
    assert "--count N how many (default 3)" in text and "--fast, --no-fast go fast (default on)" in text
    assert "--slow alias of --no-fast" in text and "--n N alias of --count" in text and "{a,b}" in text
    assert "a line (repeatable)" in text
    args = parser.parse_args(["--name", "x", "--n", "5", "--ratio", "0.5", "--kind", "b", "--slow", "--seeds", "3,4",
                              "--seeds", "5", "--pair", "1", "2", "--extra", "k=v", "--lines", "a, b", "--lines", "c"])
    value = config_from_args(Settings, args)
    assert value == Settings("x", 5, 0.5, "b", False, [3, 4, 5], (1, 2), {"k": "v"}, ["a, b", "c"])
    assert config_from_args(Settings, parser.parse_args(["--name", "y", "--ratio", "none"])) == Settings("y")
    assert config_from_args(Settings, parser.parse_args(config_to_argv(value))) == value
    for bad in (["--count", "2"], ["--name", "x", "--kind", "c"], ["--name", "x", "--seeds", "a"],
                ["--name", "x", "--extra", "novalue"], ["--name", "x", "--n", "1", "--count", "2"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
