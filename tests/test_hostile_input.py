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
    (["--prompt", "hi", "--trace", "{tmp}"], "is a folder; name a file"),
    (["--prompt", "hi", "--trace", "{tmp}/missing/trace.json"], "does not exist"),
]


@pytest.mark.parametrize("flags, message", SAMPLE_CASES, ids=[" ".join(f) for f, _ in SAMPLE_CASES])
def test_sample_refuses_in_one_line(model_dir, tmp_path, capsys, flags, message):
    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    assert main([*SAMPLE, "--model", model_dir, *flags]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing was generated: refused before the work
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llada-play: error: ") and message in lines[0], captured.err
    assert "Traceback" not in captured.err
