"""Fuzzing the served app (issue 27 item 6): random and boundary values for its named endpoints, logged in, on
loopback. Each call either succeeds or is refused with one line; the server never logs a traceback, and a normal
Denoise afterwards still gives the library's tokens. Bounded: a fixed seed, at most CALLS calls, BUDGET_S seconds.
"""
import random
import time

import pytest
import torch
from gradio_client import Client

from llada_play.diffusion.sampler_config import INTERACTIVE
from llada_play.diffusion.sampling import generate
from llada_play.model.checkpoint import load_model
from llada_play.model.text import decode_generation, encode_prompt
from tests.browser import running_app

LOGIN = ("fuzz", "secret")
CALLS, BUDGET_S = 120, 75
# Left out, each for its cost, not its input: they start minutes of work per call (training, 200-question
# accuracy runs, a sweep of settings), and their inputs are the same sliders and boxes as those fuzzed here.
LEFT_OUT = {"/quick_sft", "/cancel_sft", "/reversal_run", "/reversal_cancel", "/task_accuracy", "/compare"}
STRINGS = ["", " ", "\n\n", "x" * 20_000, "\x00", "ab\udcffc", "<script>alert(1)</script>", "../../etc/passwd",
           "12345", "1" * 36, "1_" * 18, "Romeo.\n", "ünïcødé ✓", "{}", "None"]
NUMBERS = [-1e308, -1.0, 0.0, 0.5, 1.0, 3.0, 7.0, 64.0, 1e9, 1e308]
INTEGERS = [-1, 0, 1, 2**31, 2**63, 2**70]


def value_for(parameter: dict, rng: random.Random):
    schema = parameter.get("type", {})
    kind = parameter["python_type"]["type"]
    if "enum" in schema:
        return rng.choice([*schema["enum"], "not a choice"]) if schema["enum"] else rng.choice(STRINGS)
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "int":
        return rng.choice(INTEGERS)
    if kind == "float":
        return rng.choice(NUMBERS)
    if kind.startswith("list"):  # the chat history, in the shape gradio's Chatbot takes (it refuses others itself)
        turn = {"role": rng.choice(["user", "assistant", "system", "nobody"]),
                "content": [{"type": "text", "text": rng.choice(STRINGS)}]}
        return rng.choice([[], [turn], [turn, turn]])
    return rng.choice(STRINGS)


def raised(log: str) -> list[str]:
    """The exception that ended each traceback in a log (of a chain, the last: a ValueError the app turned into
    gr.Error "from" it ends in gradio's Error)."""
    lines = log.splitlines()
    ends, inside = [], False
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last):"):
            inside = True
        elif inside and line and not line.startswith(" "):
            inside = False
            following = next((later for later in lines[i + 1:] if later.strip()), "")
            if not following.startswith(("The above exception", "During handling of the above exception")):
                ends.append(line)
    return ends


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    log = folder / "app.log"
    with running_app("--serving", "--auth", ":".join(LOGIN), "--models-dir", str(folder / "models"),
                     "--dtype", "float32", log_path=log) as url:
        yield url, log


def test_random_and_boundary_values_get_an_answer_or_one_line(served):
    url, log = served
    client = Client(url, auth=LOGIN, verbose=False)
    endpoints = {name: info["parameters"]
                 for name, info in client.view_api(return_format="dict", print_info=False)["named_endpoints"].items()
                 if name not in LEFT_OUT}
    assert {"/denoise", "/chat", "/step_start", "/puzzle_solve", "/load_model"} <= set(endpoints)
    rng = random.Random(0)
    outcomes = {"answered": 0, "refused": 0}
    refusals = []
    start = time.monotonic()
    names = sorted(endpoints)
    for call in range(CALLS):
        if time.monotonic() - start > BUDGET_S:
            break
        name = names[call % len(names)]  # every endpoint in turn, then again with other values
        values = [value_for(p, rng) for p in endpoints[name]]
        if name in ("/puzzle_solve", "/puzzle_second_thoughts"):
            values[-1] = 0  # the pause between frames: a real user's choice, and the budget's
        try:
            client.predict(*values, api_name=name)
            outcomes["answered"] += 1
        except Exception as err:  # the refusal as the client sees it
            message = str(err)
            outcomes["refused"] += 1
            refusals.append((name, message))
            assert "Traceback" not in message and len(message.strip().splitlines()) <= 1, (name, values, message)
            assert "/work/" not in message and "site-packages" not in message, (name, message)
    print(f"fuzz: {sum(outcomes.values())} calls in {time.monotonic() - start:.0f} s, {outcomes}")
    assert sum(outcomes.values()) >= len(names)  # every endpoint was called at least once
    # a refusal says what was wrong; gradio's bare "Error" (an exception it did not expect) is not one
    assert not [r for r in refusals if r[1].strip() in ("", "Error", "None")], refusals
    # gradio logs a traceback for every refused call; each must end in a refusal (gradio's Error, which gr.Error
    # is), never in an exception the app did not mean to raise
    unexpected = [line for line in raised(log.read_text(errors="replace")) if not line.startswith("gradio.exceptions.Error")]
    assert not unexpected, unexpected
    # the server is healthy: a normal Denoise, from a new visitor (the fuzzing one may have loaded another
    # model for its session), gives the library's tokens
    model, tokenizer = load_model(dtype=torch.float32)
    prompt = encode_prompt(tokenizer, "Romeo.\n")
    answer = Client(url, auth=LOGIN, verbose=False).predict("Romeo.\n", False, "", INTERACTIVE.gen_length, INTERACTIVE.steps,
                            INTERACTIVE.block_length, INTERACTIVE.temperature, 0.0, INTERACTIVE.remasking, 0.0, 0,
                            api_name="/denoise")
    with torch.no_grad():
        out = generate(model, prompt, **INTERACTIVE.replace(seed=0).to_dict())
    assert answer[2] == decode_generation(tokenizer, out[0], prompt.shape[1])


def sample_flags():
    """(flag, annotation, choices) for every SamplerConfig field: a field's name is its flag (llada_play.flags)."""
    import dataclasses

    from llada_play.cli import build_parser
    from llada_play.diffusion.sampler_config import SamplerConfig

    parser = build_parser()
    sample = next(a for a in parser._actions if a.dest == "command").choices["sample"]
    choices = {a.dest: a.choices for a in sample._actions}
    return [("--" + f.name.replace("_", "-"), str(f.type), choices.get(f.name)) for f in dataclasses.fields(SamplerConfig)]


def flag_value(flag: str, annotation: str, choices, rng: random.Random) -> list[str]:
    """Type-correct boundary values for one flag (argparse's own refusals of a wrong type are its usage text)."""
    if annotation.startswith("bool"):
        return [rng.choice([flag, "--no-" + flag[2:]])]
    if choices:  # values written flag=value: argparse reads "-inf" after a space as another flag
        return [f"{flag}={rng.choice(list(choices))}"]
    ints = ["-1", "0", "1", "2", "3", "8", "64", str(10**6), str(2**63), str(2**70)]
    if "tuple" in annotation:
        return [flag, rng.choice(ints), rng.choice(ints)]
    if annotation.startswith("int"):
        return [f"{flag}={rng.choice(ints)}"]
    if annotation.startswith("float"):
        return [f"{flag}={rng.choice(['nan', 'inf', '-inf', '-1', '0', '1e-9', '0.5', '1', '1.5', '1e308'])}"]
    return [f"{flag}={rng.choice(['none', 'cap', 'loop', 'prefix', 'x', ''])}"]


def test_random_sample_flags_answer_or_refuse_in_one_line(tiny_model, char_tokenizer, tmp_path, capsys):
    """The CLI's `sample` with 2-5 random sampler flags set to boundary values (type-correct: argparse's own
    refusals are its usage text), 200 runs at most in 60 s: exit 0 with text, or 2 with one line."""
    from llada_play.cli import main
    from llada_play.model.checkpoint import save_model

    model = str(save_model(tiny_model, char_tokenizer, tmp_path / "m"))
    capsys.readouterr()  # the saving's progress bar
    flags = sample_flags()
    assert {"--steps", "--temperature", "--remask", "--edit-threshold", "--entropy-bound"} <= {f[0] for f in flags}
    rng, start, outcomes = random.Random(1), time.monotonic(), {0: 0, 2: 0}
    base = ["sample", "--model", model, "--prompt", "hi", "--gen-length", "8", "--block-length", "8", "--steps", "4"]
    for _ in range(200):
        if time.monotonic() - start > 60:
            break
        argv = list(base)
        for flag, annotation, choices in rng.sample(flags, rng.randint(2, 5)):
            argv += flag_value(flag, annotation, choices, rng)
        with _quiet():
            code = main(argv)
        captured = capsys.readouterr()
        assert code in outcomes, (argv, code)
        outcomes[code] += 1
        if code == 2:
            lines = captured.err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("llada-play: error: "), (argv, captured.err)
    print(f"sample fuzz: {outcomes}")
    assert outcomes[0] and outcomes[2]  # both kinds of outcome were reached


class _quiet:
    """Warnings (steps above the tokens, editing a model not trained to edit) are the CLI's business here."""

    def __enter__(self):
        import warnings

        self.catcher = warnings.catch_warnings()
        self.catcher.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self.catcher.__exit__(*exc)
