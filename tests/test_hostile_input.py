"""Bad input, tried as a careless or hostile user would (issue 27): every case gets one line naming what is wrong,
exit code 2, and no traceback, before any work is done."""
import pytest

from llada_play.cli import main
from llada_play.model.checkpoint import save_model

SAMPLE = ["sample", "--steps", "4", "--gen-length", "8", "--block-length", "8"]


@pytest.fixture
def model_dir(tiny_model, char_tokenizer, tmp_path):
    return str(save_model(tiny_model, char_tokenizer, tmp_path / "m"))


SAMPLE_CASES = [  # (flags after `sample --model M`, a piece of the one line)
    (["--prompt", "hi", "--temperature", "nan"], "temperature must be a finite number, got nan"),
    (["--prompt", "hi", "--temperature", "inf"], "temperature must be a finite number, got inf"),
    (["--prompt", "hi", "--cfg-scale", "nan"], "cfg_scale must be a finite number, got nan"),
    (["--prompt", "hi", "--seed", "99999999999999999999999"], "seed must be in [0, 2**63)"),
    (["--prompt", "hi", "--eos-token-ids", "99999999", "-5"], "eos_token_ids [99999999, -5] are outside the model's "
                                                               "vocabulary"),
    (["--prompt", "ab\udcffc"], "the prompt is not valid UTF-8 text: the character at position 2"),
    (["--prompt", "   "], "the prompt is empty"),
    (["--prompt", "x" * 100_000], "the prompt has 100,000 characters: more than the model's context of 256 tokens"),
    (["--prompt", "hi", "--trace", "{tmp}"], "is a folder; name a file"),
    (["--prompt", "hi", "--trace", "{tmp}/missing/trace.json"], "does not exist"),
]


@pytest.mark.parametrize("flags, message", SAMPLE_CASES, ids=[" ".join(f)[:40] for f, _ in SAMPLE_CASES])
def test_sample_refuses_in_one_line(model_dir, tmp_path, capsys, flags, message):
    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    assert main([*SAMPLE, "--model", model_dir, *flags]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing was generated: refused before the work
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llada-play: error: ") and message in lines[0], captured.err
    assert "Traceback" not in captured.err


SFT_CASES = [  # (file name, its bytes, a piece of the one line)
    ("role-null.jsonl", b'{"messages": [{"role": null, "content": "a"}, {"role": "assistant", "content": "b"}]}\n',
     "line 1: message 1: role must be one of ['system', 'user', 'assistant'], got None"),
    ("role-5.jsonl", b'{"messages": [{"role": 5, "content": "a"}, {"role": "assistant", "content": "b"}]}\n',
     "line 1: message 1: role must be one of ['system', 'user', 'assistant'], got 5"),
    ("content-list.jsonl", b'{"prompt": "a", "response": "b"}\n{"prompt": ["a"], "response": "b"}\n',
     "line 2: prompt must be text, got list"),
    ("latin1.jsonl", b'{"prompt": "a", "response": "b"}\n{"prompt": "caf\xe9", "response": "b"}\n',
     "is not UTF-8 text (line 2: byte 0xe9 at column 16)"),
    ("broken.json", b'[{"prompt": "a", "response": "b"},\n', "not a valid JSON array (line 2, column 1"),
    ("huge.jsonl", b'{"prompt": "a", "response": "b"}\n{"prompt": "a", "response": "' + b"x" * 2_000_000 + b'"}\n',
     "row 2 has 2,000,001 characters: more than 512 tokens can hold"),
]


@pytest.mark.parametrize("name, data, message", SFT_CASES, ids=[n for n, _, _ in SFT_CASES])
def test_sft_refuses_bad_rows_in_one_line_before_any_folder_is_made(tmp_path, capsys, name, data, message):
    (tmp_path / name).write_bytes(data)
    out = tmp_path / "run"
    assert main(["sft", "--data", str(tmp_path / name), "--out", str(out), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llada-play: error: ") and message in lines[0], err
    assert str(tmp_path / name) in lines[0] or name == "huge.jsonl"  # the file is named (the huge row: its number)
    assert "Traceback" not in err and not out.exists()


def test_training_that_cannot_fit_is_refused_with_both_figures_before_any_work(tmp_path, capsys, monkeypatch):
    """`train --preset llada-8b` on a CPU, an SFT batch far too large, an unknown preset: one line each, before
    a tokenizer is trained or a folder made (they used to allocate 9.5 GB, or train a tokenizer for 10 s)."""
    from llada_play.model import memory

    monkeypatch.setattr(memory, "available_memory", lambda device="cpu", device_map=None: 8 * memory.GIB)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("To be, or not to be.\n" * 50)
    cases = [(["train", "--data", str(corpus), "--preset", "llada-8b", "--steps", "1"],
              r"training the llada-8b preset needs about \d+\.\d GiB on cpu .* but only 8\.0 GiB is available"),
             (["sft", "--steps", "1", "--batch-size", "100000"],
              r"training the shipped model needs about \d+\.\d GiB on cpu .* but only 8\.0 GiB is available"),
             (["train", "--data", str(corpus), "--preset", "huge9", "--steps", "1"], r"unknown preset 'huge9'")]
    import re

    for flags, pattern in cases:
        out = tmp_path / "run"
        assert main([*flags, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and re.search(pattern, err), err
        assert not out.exists()


def test_the_training_estimate_counts_state_and_activations():
    from llada_play.model.config import config_from_preset
    from llada_play.model.memory import estimate_training_memory

    config = config_from_preset("small")
    full = estimate_training_memory(config, 32, 256)
    assert full.state_bytes == 16 * full.parameters  # fp32 weights, gradients, two AdamW moments
    lora = estimate_training_memory(config, 32, 256, trained_parameters=1000)
    assert lora.state_bytes == 4 * full.parameters + 12 * 1000
    assert estimate_training_memory(config, 64, 256).activation_bytes == 2 * full.activation_bytes
    # autocast keeps half the bytes a value, the logits excepted (fp32 for the loss)
    assert estimate_training_memory(config, 32, 256, activation_bytes=2).activation_bytes < full.activation_bytes


def test_a_corpus_of_random_bytes_is_refused_naming_the_file(tmp_path, capsys):
    import random

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text("To be, or not to be: that is the question.\n" * 20)
    (corpus / "noise.txt").write_bytes(random.Random(0).randbytes(20_000))
    assert main(["train", "--data", str(corpus), "--out", str(tmp_path / "run"), "--preset", "tiny",
                 "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"corpus file {corpus / 'noise.txt'} is not UTF-8 text" in err
    assert not (tmp_path / "run").exists()


def test_a_config_that_is_not_utf8_is_refused_naming_the_file(model_dir, capsys):
    from pathlib import Path

    config = Path(model_dir) / "config.json"
    config.write_bytes(b'{"model_type": "\xff"}')
    assert main([*SAMPLE, "--model", model_dir, "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"llada-play: error: {config} is not UTF-8 text (byte 0xff at offset 16)"


def test_the_app_refuses_what_the_sliders_would_not_send_over_raw_http():
    """NaN in the temperature or CFG slot, a null prompt: refused by the library's own checks in one line (the
    sliders' range check lets NaN through), not "Done" over all-pad text."""
    import json

    import httpx

    from tests.browser import running_app

    def denoise(url, data):
        body = json.dumps({"data": data})  # json.dumps writes NaN as the JavaScript literal, as a raw client may
        event = httpx.post(f"{url}gradio_api/call/denoise", content=body, timeout=30,
                           headers={"content-type": "application/json"}).json()["event_id"]
        with httpx.stream("GET", f"{url}gradio_api/call/denoise/{event}", timeout=120) as stream:
            return "".join(stream.iter_text())

    # the endpoint's inputs in order, the page's pace last (a raw client sends every one; gradio_client fills
    # the defaults of those it leaves out)
    defaults = ["Romeo.\n", False, "", 16, 16, 16, 1.0, 0.0, "low_confidence", 0.0, 0, "", "off", 0.05, 0, 0.0]
    with running_app("--dtype", "float32") as url:
        for slot, value, message in [(6, float("nan"), "temperature must be a finite number, got nan"),
                                     (7, float("nan"), "cfg_scale must be a finite number, got nan"),
                                     (7, float("inf"), "Value inf is greater than maximum value 5"),  # the slider's
                                     (0, None, "the prompt must be text, got NoneType")]:
            data = list(defaults)
            data[slot] = value
            answer = denoise(url, data)
            assert "event: error" in answer and message in answer, answer


@pytest.mark.parametrize("make, field", [
    (lambda: __import__("llada_play.training.trainer", fromlist=["TrainConfig"]).TrainConfig(lr=float("nan")), "lr"),
    (lambda: __import__("llada_play.training.trainer", fromlist=["TrainConfig"]).TrainConfig(grad_clip=float("inf")),
     "grad_clip"),
    (lambda: __import__("llada_play.experiments.puzzle", fromlist=["PuzzleConfig"]).PuzzleConfig(lr=float("nan")),
     "lr"),
    (lambda: __import__("llada_play.experiments.reversal_experiment", fromlist=["ReversalConfig"]).ReversalConfig(
        lr=float("-inf")), "lr"),
])
def test_every_config_refuses_nan_and_infinity_by_field_name(make, field):
    with pytest.raises(ValueError, match=rf"^{field} must be a finite number, got -?(nan|inf)$"):
        make()


def test_training_flags_refuse_nan_in_one_line(tmp_path, capsys):
    assert main(["sft", "--out", str(tmp_path / "run"), "--lr", "nan", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "llada-play: error: lr must be a finite number, got nan" and not (tmp_path / "run").exists()


def test_pretraining_options_refuse_a_held_out_share_that_is_not_a_share(tmp_path, capsys):
    for value, message in [("nan", "held_out_fraction must be a finite number, got nan"),
                           ("1.5", "held_out_fraction must be in (0, 1), got 1.5")]:
        assert main(["train", "--data", "data/shakespeare", "--out", str(tmp_path / "run"), "--preset", "tiny",
                     "--held-out-fraction", value]) == 2
        assert capsys.readouterr().err.strip() == f"llada-play: error: {message}"
