"""Resume that survives damage (issue 27 item 4): a damaged newest training state is set aside (kept, renamed
damaged-step-N) with a warning naming it, and the run resumes from the newest intact one, ending where an
undamaged run resumed from that step ends; when none is intact, the CLI says what it found in one line, exit 2."""
import random
import re
import shutil

import pytest
import torch

from llada_play import LladaForMaskedLM, config_from_preset
from llada_play.cli import main
from llada_play.model.tokenizer import special_token_ids
from llada_play.training.data import PackedBatches
from llada_play.training.trainer import TrainConfig, checkpoint_dirs, intact_state, train

TEXT = "HAMLET:\nTo be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer.\n" * 40
# every file a training state of a full model with a tokenizer holds (a new one needs a case below)
STATE_FILES = ["chat_template.jinja", "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
               "trainer_state.pt"]


def tiny(tokenizer):
    torch.manual_seed(0)
    return LladaForMaskedLM(config_from_preset("tiny", **special_token_ids(tokenizer)))


def batches(tokenizer):
    return PackedBatches(torch.tensor(tokenizer(TEXT).input_ids), 32, 4)


def config(out):  # checkpoints at steps 4, 8 and 12, all kept
    return TrainConfig(output_dir=str(out), max_steps=12, save_every=4, keep_last=3, warmup_steps=2, log_every=1,
                       progress=False, precision="fp32")


def resume(out, tokenizer):
    model = tiny(tokenizer)
    result = train(model, batches(tokenizer), config(out), tokenizer=tokenizer, resume=True)
    return result, {k: v.clone() for k, v in model.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def run(char_tokenizer, tmp_path_factory):
    """A finished 12-step run and the weights an undamaged run resumed from step 8 and from step 4 ends with."""
    root = tmp_path_factory.mktemp("resume-damage")
    model = tiny(char_tokenizer)
    train(model, batches(char_tokenizer), config(root / "run"), tokenizer=char_tokenizer)
    assert [p.name for p in checkpoint_dirs(root / "run")] == ["step-0000004", "step-0000008", "step-0000012"]
    assert all(intact_state(p) is None for p in checkpoint_dirs(root / "run"))
    assert sorted(f.name for f in (root / "run" / "checkpoints" / "step-0000012").iterdir()) == STATE_FILES
    reference = {}
    for step in (8, 4):  # the newest states removed: an undamaged run that resumes from `step`
        out = root / f"from-{step}"
        shutil.copytree(root / "run", out)
        for later in range(step + 4, 13, 4):
            shutil.rmtree(out / "checkpoints" / f"step-{later:07d}")
        result, reference[step] = resume(out, char_tokenizer)
        assert result.steps == 12 and result.history[0]["step"] == step + 1
    final = {k: v.clone() for k, v in model.state_dict().items()}
    assert same_weights(reference[8], final) and same_weights(reference[4], final)  # exact resume
    return root / "run", reference


def truncate(file):
    data = file.read_bytes()
    file.write_bytes(data[:len(data) // 2])


def garbage(file):
    file.write_bytes(random.Random(0).randbytes(file.stat().st_size))


def state_of_step_8(file):
    shutil.copy(file.parents[1] / "step-0000008" / "trainer_state.pt", file)


def delete(file):
    file.unlink()


def truncate_in_a_state_without_sizes(file):  # a state saved before trainer_state.pt listed its files
    state_file = file.parent / "trainer_state.pt"
    state = torch.load(state_file, weights_only=False)
    del state["files"]
    torch.save(state, state_file)
    truncate(file)


CASES = [  # (file of step-12, what is done to it, a piece of the warning: {size} its size, {cut} half of it)
    *[(name, truncate, f"{name} truncated: {{cut}} of {{size}} bytes") for name in STATE_FILES
      if name != "trainer_state.pt"],
    ("trainer_state.pt", truncate, "trainer_state.pt unreadable: "),
    ("model.safetensors", garbage, "model.safetensors unreadable ({size} bytes): "),
    ("trainer_state.pt", garbage, "trainer_state.pt unreadable: "),
    ("tokenizer.json", garbage, "tokenizer.json unreadable: "),
    ("trainer_state.pt", state_of_step_8, "trainer_state.pt holds step 8, not 12"),
    ("model.safetensors", delete, "model.safetensors missing"),
    ("model.safetensors", truncate_in_a_state_without_sizes, "model.safetensors truncated: {cut} of {size} bytes"),
]


@pytest.mark.parametrize("name, damage, why", CASES, ids=[f"{d.__name__}-{n}" for n, d, _ in CASES])
def test_a_damaged_newest_state_is_kept_and_the_run_resumes_from_the_one_before(run, char_tokenizer, tmp_path,
                                                                                  name, damage, why):
    source, reference = run
    out = tmp_path / "run"
    shutil.copytree(source, out)
    newest = out / "checkpoints" / "step-0000012"
    size = (newest / name).stat().st_size
    why = why.format(size=size, cut=size // 2)
    damage(newest / name)
    left = {f.name: f.read_bytes() for f in newest.iterdir()}
    with pytest.warns(UserWarning, match=re.escape(f"{newest} is damaged (")) as caught:
        result, weights = resume(out, char_tokenizer)
    message = str(next(w.message for w in caught if "is damaged" in str(w.message)))
    assert why in message and "resuming from step-0000008" in message, message
    assert result.steps == 12 and [row["step"] for row in result.history] == [9, 10, 11, 12]
    assert same_weights(weights, reference[8])
    kept = out / "checkpoints" / "damaged-step-0000012"  # nothing deleted: the damaged folder, as it was
    assert f"kept as {kept}" in message
    assert {f.name: f.read_bytes() for f in kept.iterdir()} == left
    assert intact_state(newest) is None  # written again by the resumed run


def test_two_damaged_states_fall_back_two_steps(run, char_tokenizer, tmp_path):
    source, reference = run
    out = tmp_path / "run"
    shutil.copytree(source, out)
    truncate(out / "checkpoints" / "step-0000012" / "model.safetensors")
    garbage(out / "checkpoints" / "step-0000008" / "trainer_state.pt")
    (out / "checkpoints" / "damaged-step-0000008").mkdir()  # a name already taken by an earlier damage
    with pytest.warns(UserWarning) as caught:
        result, weights = resume(out, char_tokenizer)
    damaged = sorted(str(w.message) for w in caught if "is damaged" in str(w.message))
    assert len(damaged) == 2 and "step-0000008 is damaged (trainer_state.pt unreadable" in damaged[0]
    assert "step-0000012 is damaged (model.safetensors truncated" in damaged[1]
    assert result.steps == 12 and result.history[0]["step"] == 5 and same_weights(weights, reference[4])
    assert (out / "checkpoints" / "damaged-step-0000008-2" / "trainer_state.pt").exists()
    assert (out / "checkpoints" / "damaged-step-0000012" / "model.safetensors").exists()


def test_cli_says_in_one_line_that_no_state_is_intact(tmp_path, capsys):
    data = tmp_path / "corpus"
    data.mkdir()
    (data / "hamlet.txt").write_text(TEXT)
    (data / "more.txt").write_text(TEXT[:2000])
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--preset", "tiny", "--vocab-size", "300", "--seq-len", "32",
            "--batch-size", "4", "--steps", "8", "--warmup", "2", "--save-every", "4", "--held-out", "0.34",
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    checkpoints = out / "checkpoints"
    assert [p.name for p in checkpoint_dirs(out)] == ["step-0000004", "step-0000008"]
    weights = checkpoints / "step-0000008" / "model.safetensors"
    size = weights.stat().st_size
    truncate(weights)
    truncate(checkpoints / "step-0000004" / "trainer_state.pt")
    capsys.readouterr()
    assert main(argv + ["--resume"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"llada-play: error: no intact training state under {checkpoints}: "
                               f"step-0000008 (model.safetensors truncated: {size // 2} of {size} bytes), "
                               "step-0000004 (trainer_state.pt unreadable: "), lines[0]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-0000004", "step-0000008"]  # nothing moved


def test_jobs_point_at_the_newest_intact_state(run, tmp_path):
    """A job's model (before final/) and the step a job would resume from pass over a damaged newest state."""
    from llada_play import jobs

    done, _ = run
    out = tmp_path / "run"
    shutil.copytree(done, out)
    shutil.rmtree(out / "final", ignore_errors=True)
    assert jobs._latest_step(out) == 12
    truncate(out / "checkpoints" / "step-0000012" / "model.safetensors")
    assert jobs._latest_step(out) == 8
    handle = jobs.JobHandle.__new__(jobs.JobHandle)
    handle.output_dir = out
    assert handle.model_dir() == out / "checkpoints" / "step-0000008"
