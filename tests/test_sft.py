import json
import shutil
import signal

import pytest
import torch
from safetensors.torch import load_file

from llada_play.model.checkpoint import load_model, save_model
from llada_play.recipes import run_sft
from llada_play.training.data import load_sft_rows
from llada_play.training.evaluation import answer_accuracy
from llada_play.training.trainer import TrainConfig


@pytest.fixture
def sft_files(tmp_path):
    rows = [{"prompt": f"{a}+{b}=", "response": str(a + b)} for a in range(6) for b in range(6)]
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows[:30]))
    test.write_text("".join(json.dumps(r) + "\n" for r in rows[30:]))
    return train, test


@pytest.fixture
def model_dir(tiny_model, char_tokenizer, tmp_path):
    return save_model(tiny_model, char_tokenizer, tmp_path / "base")


def test_sft_reports_accuracy_before_and_after(model_dir, sft_files, tmp_path):
    train, test = sft_files
    # Held-out rows whose expected answers are, on every other row, what the untrained model answers (and on
    # the others an answer it cannot give): its accuracy is 3/6 by construction.
    held_out = load_sft_rows(test)
    base, tokenizer = load_model(model_dir)
    answers = answer_accuracy(base, tokenizer, held_out, return_answers=True)["answers"]
    assert all(answers)  # a response must not be empty
    rows = [{"prompt": conv[0]["content"], "response": answer if i % 2 == 0 else f"not {answer}"}
            for i, (conv, answer) in enumerate(zip(held_out, answers))]
    test.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = TrainConfig(objective="sft", output_dir=str(tmp_path / "run"), max_steps=6, warmup_steps=1,
                         progress=False)
    summary = run_sft(model_dir, train, config, batch_size=8, eval_data=test)
    acc = summary["held_out_accuracy"]
    assert set(acc) == {"before", "after"} and acc["after"]["n"] == 6
    assert acc["before"]["accuracy"] == 0.5
    # after: the exact-match accuracy of the saved fine-tuned model on the same rows
    model, tokenizer = load_model(summary["final_model"])
    assert tokenizer is not None and summary["steps"] == 6
    answers = answer_accuracy(model, tokenizer, held_out, return_answers=True)["answers"]
    assert acc["after"]["accuracy"] == sum(a == r["response"] for a, r in zip(answers, rows)) / 6


def test_lora_trains_only_adapters_and_merges(model_dir, sft_files, tmp_path):
    train, _ = sft_files
    base = load_file(model_dir / "model.safetensors")
    changed_during = []

    def hook(record):
        changed_during.append(record.step)

    config = TrainConfig(objective="sft", output_dir=str(tmp_path / "lora"), max_steps=5, warmup_steps=1, lr=1e-2,
                         progress=False)
    summary = run_sft(model_dir, train, config, batch_size=8, lora_rank=4, hooks=hook)
    merged = load_file(tmp_path / "lora" / "final" / "model.safetensors")
    assert set(merged) == set(base)  # a plain model again: adapters merged away
    assert not torch.equal(merged["model.layers.0.attn.q_proj.weight"], base["model.layers.0.attn.q_proj.weight"])
    # LoRA leaves the embeddings and norms untouched
    assert torch.equal(merged["model.embed_tokens.weight"], base["model.embed_tokens.weight"])
    assert torch.equal(merged["model.norm.weight"], base["model.norm.weight"])
    assert changed_during == [1, 2, 3, 4, 5] and summary["lora_rank"] == 4


def lora_cli_args(model_dir, data, out, merge=True, steps=12) -> list[str]:
    return (["sft", "--model", str(model_dir), "--data", str(data), "--out", str(out), "--steps", str(steps),
             "--batch-size", "8", "--lr", "1e-2", "--warmup", "2", "--save-every", "3", "--log-every", "1",
             "--lora-rank", "4", "--no-progress"] + ([] if merge else ["--no-merge"]))


def assert_killed_lora_run_resumes_exactly(args, straight, killed, merge=True):
    """Run ARGS into STRAIGHT, run them into KILLED with a SIGKILL as step 9 is saved, resume: same end."""
    from llada_play.cli import main
    from llada_play.training.trainer import checkpoint_dirs
    from tests.conftest import run_cli_killed_at

    assert main(args(straight)) == 0
    assert run_cli_killed_at(args(killed), step=9) == -signal.SIGKILL
    done = checkpoint_dirs(killed)
    assert [p.name for p in done] == ["step-0000003", "step-0000006"]
    assert (done[-1] / "adapter_model.safetensors").exists() and not (done[-1] / "model.safetensors").exists()
    logged = [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, 10))  # steps 7-9 were logged, then lost with the process

    assert main(args(killed) + ["--resume"]) == 0
    a = load_file(straight / "adapter" / "adapter_model.safetensors")
    b = load_file(killed / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert (killed / "final").exists() == merge
    if merge:
        a, b = load_file(straight / "final" / "model.safetensors"), load_file(killed / "final" / "model.safetensors")
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key
    steps = [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))  # no duplicated rows from the killed run


@pytest.mark.parametrize("merge", [True, False], ids=["merged", "no-merge"])
def test_lora_run_killed_and_resumed_ends_where_an_uninterrupted_run_ends(model_dir, sft_files, tmp_path, merge):
    def args(out):
        return lora_cli_args(model_dir, sft_files[0], out, merge)

    assert_killed_lora_run_resumes_exactly(args, tmp_path / "straight", tmp_path / "killed", merge)
    if merge:  # the merged model after the resume is the base with the resumed adapters folded in
        with_adapters, _ = load_model(tmp_path / "killed" / "adapter")
        merged, _ = load_model(tmp_path / "killed" / "final")
        base, _ = load_model(model_dir)
        ids = torch.randint(0, 60, (2, 12))
        with torch.no_grad():
            assert torch.allclose(with_adapters(ids).logits, merged(ids).logits, atol=1e-5)
            assert not torch.allclose(base(ids).logits, merged(ids).logits, atol=1e-3)


def test_resume_refuses_a_checkpoint_of_the_other_kind(model_dir, sft_files, tmp_path, capsys):
    from llada_play.cli import main

    lora = lora_cli_args(model_dir, sft_files[0], tmp_path / "run", steps=3)
    full = [a for a in lora if a not in ("--lora-rank", "4")]
    assert main(full) == 0
    assert main(lora + ["--resume"]) == 2
    assert "adapter_model.safetensors is missing (was it written by a full-model run?)" in capsys.readouterr().err
    assert main(lora) == 0
    assert main(full + ["--resume"]) == 2
    assert "model.safetensors is missing (was it written by a LoRA run?)" in capsys.readouterr().err
    # adapters trained on one base do not resume on another
    other = shutil.copytree(model_dir, tmp_path / "other")
    assert main(lora_cli_args(other, sft_files[0], tmp_path / "run", steps=3) + ["--resume"]) == 2
    assert f"its adapters were trained on {model_dir}, this run starts from {other}" in capsys.readouterr().err


def test_sft_refuses_a_mismatched_objective(model_dir, sft_files, tmp_path):
    train, _ = sft_files
    config = TrainConfig(objective="autoregressive", output_dir=str(tmp_path / "x"), max_steps=1, warmup_steps=1,
                         progress=False)
    with pytest.raises(ValueError, match="does not fit a bidirectional model"):
        run_sft(model_dir, train, config)


def test_sft_refuses_a_tokenizer_larger_than_the_model(tmp_path, char_tokenizer, sft_files):
    from llada_play import LladaForMaskedLM, config_from_preset
    small = LladaForMaskedLM(config_from_preset("tiny", vocab_size=len(char_tokenizer) - 5,
                                                mask_token_id=char_tokenizer.mask_token_id))
    small.save_pretrained(tmp_path / "m")
    char_tokenizer.save_pretrained(tmp_path / "m")
    config = TrainConfig(objective="sft", output_dir=str(tmp_path / "x"), max_steps=1, warmup_steps=1, progress=False)
    with pytest.raises(ValueError, match=r"tokenizer\.json has \d+ tokens but the model's vocabulary"):
        run_sft(tmp_path / "m", sft_files[0], config)


def test_pretraining_refuses_a_sequence_longer_than_the_context(tmp_path):
    from llada_play.recipes import run_pretraining
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text("abc " * 100)
    (corpus / "b.txt").write_text("def " * 100)
    config = TrainConfig(output_dir=str(tmp_path / "r"), max_steps=1, warmup_steps=1, progress=False)
    with pytest.raises(ValueError, match="seq_len 1024 is above the tiny preset's context of 256"):
        run_pretraining(corpus, config, preset="tiny", seq_len=1024)
