import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llada_play import LladaForMaskedLM, config_from_preset
from llada_play.training.data import PackedBatches, SFTBatches
from llada_play.model.tokenizer import special_token_ids
from llada_play.training.trainer import TrainConfig, checkpoint_dirs, lr_at, train

TEXT_A = "HAMLET:\nTo be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer.\n" * 40
TEXT_B = "OPHELIA:\nGood my lord, how does your honour for this many a day?\nI humbly thank you; well.\n" * 40


@pytest.fixture
def corpus(tmp_path):
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "hamlet.txt").write_text(TEXT_A)
    (d / "ophelia.txt").write_text(TEXT_B)
    (d / "more.txt").write_text(TEXT_A[:2000] + TEXT_B[:2000])
    return d


def packed(tokenizer, seq_len=32, batch_size=4):
    ids = tokenizer(TEXT_A + TEXT_B).input_ids
    return PackedBatches(torch.tensor(ids), seq_len, batch_size)


def tiny(tokenizer, causal=False):
    torch.manual_seed(0)
    return LladaForMaskedLM(config_from_preset("tiny", causal=causal, **special_token_ids(tokenizer)))


def test_schedule_warms_up_then_decays_to_the_floor():
    c = TrainConfig(max_steps=100, warmup_steps=10, lr=1e-3, min_lr_ratio=0.1)
    assert lr_at(0, c) == pytest.approx(1e-4)
    assert lr_at(9, c) == pytest.approx(1e-3)
    assert lr_at(55, c) == pytest.approx(1e-4 + 0.5 * 9e-4)
    assert lr_at(100, c) == pytest.approx(1e-4)
    assert all(lr_at(s, c) >= lr_at(s + 1, c) for s in range(10, 100))


def test_hooks_see_every_step_and_can_stop(char_tokenizer, tmp_path):
    records = []

    def hook(record):
        records.append(record)
        if record.step == 7:
            record.stop()

    config = TrainConfig(output_dir=str(tmp_path / "run"), max_steps=50, warmup_steps=2, log_every=1, progress=False)
    result = train(tiny(char_tokenizer), packed(char_tokenizer), config, tokenizer=char_tokenizer, hooks=hook)
    assert [r.step for r in records] == list(range(1, 8)) and result.steps == 7
    for r in records:
        assert math.isfinite(r.loss) and r.lr > 0 and r.tokens == 4 * 32 and r.tokens_per_s > 0
        assert len(r.mask_ratios) == 4 and all(0 < m <= 1 for m in r.mask_ratios)
    # stopping writes a checkpoint and the log has a row per step
    assert checkpoint_dirs(tmp_path / "run")[-1].name == "step-0000007"
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 8))


@pytest.mark.parametrize("objective", ["pretrain", "autoregressive"])
def test_loss_goes_down(char_tokenizer, tmp_path, objective):
    model = tiny(char_tokenizer, causal=objective == "autoregressive")
    config = TrainConfig(objective=objective, output_dir=str(tmp_path), max_steps=60, warmup_steps=5, lr=3e-3,
                         log_every=1, progress=False, precision="fp32")
    from llada_play.training.evaluation import autoregressive_eval, masked_token_loss

    held_out = packed(char_tokenizer).fixed_batches(8)

    def evaluate():
        if objective == "autoregressive":
            return autoregressive_eval(model, held_out)["nll_per_token"]
        return masked_token_loss(model, held_out, model.config.mask_token_id)["masked_token_loss"]

    before = evaluate()
    train(model, packed(char_tokenizer), config)
    assert evaluate() < 0.75 * before


def test_sft_training_and_keep_last(char_tokenizer, tmp_path):
    convs = [[{"role": "user", "content": f"{a}+{b}"}, {"role": "assistant", "content": str(a + b)}]
             for a in range(5) for b in range(5)]
    batches = SFTBatches.from_conversations(char_tokenizer, convs, batch_size=8)
    config = TrainConfig(objective="sft", output_dir=str(tmp_path), max_steps=12, save_every=3, keep_last=2,
                         warmup_steps=2, progress=False)
    train(tiny(char_tokenizer), batches, config, tokenizer=char_tokenizer)
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-0000009", "step-0000012"]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]


def test_resume_rejects_an_incompatible_checkpoint(char_tokenizer, tmp_path):
    config = TrainConfig(output_dir=str(tmp_path), max_steps=4, warmup_steps=1, progress=False)
    train(tiny(char_tokenizer), packed(char_tokenizer), config)
    other = TrainConfig(output_dir=str(tmp_path), max_steps=4, warmup_steps=1, progress=False, objective="autoregressive")
    with pytest.raises(ValueError, match="objective='pretrain'"):
        train(tiny(char_tokenizer, causal=True), packed(char_tokenizer), other, resume=True)
    bigger = LladaForMaskedLM(config_from_preset("tiny", hidden_size=128, **special_token_ids(char_tokenizer)))
    with pytest.raises(ValueError, match="has shape"):
        train(bigger, packed(char_tokenizer), config, resume=True)


def _train_cmd(corpus, out, steps=24):
    return [sys.executable, "-m", "llada_play.cli", "train", "--data", str(corpus), "--preset", "tiny",
            "--vocab-size", "300", "--seq-len", "32", "--batch-size", "4", "--steps", str(steps), "--warmup", "4",
            "--save-every", "4", "--held-out", "0.34", "--out", str(out), "--no-progress"]


def test_sigkill_and_resume_gives_the_same_weights(corpus, tmp_path):
    """A run killed with SIGKILL mid-way and resumed ends bit-for-bit where an uninterrupted run ends."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    straight = tmp_path / "straight"
    subprocess.run(_train_cmd(corpus, straight), check=True, capture_output=True, env=env, timeout=300)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(corpus, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 240
    while time.time() < deadline and not (killed / "checkpoints" / "step-0000012").exists():
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = checkpoint_dirs(killed)
    assert done and int(done[-1].name.split("-")[1]) < 24, "the run should have been killed before the end"
    # whatever was being written at the kill, the latest complete checkpoint loads
    assert (done[-1] / "model.safetensors").exists() and (done[-1] / "trainer_state.pt").exists()

    subprocess.run(_train_cmd(corpus, killed) + ["--resume"], check=True, capture_output=True, env=env, timeout=300)
    a = load_file(straight / "final" / "model.safetensors")
    b = load_file(killed / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    steps = [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 24  # no duplicated rows from the killed run
