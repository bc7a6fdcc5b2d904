"""Fuzzing the served app (issue 27 item 6): random and boundary values for every named endpoint, logged in, on
loopback. Each call either succeeds or is refused with one line; the server never logs a traceback, and a normal
Denoise afterwards still gives the library's tokens. Bounded: a fixed seed, at most CALLS calls, BUDGET_S seconds,
then LONG_CALLS calls of each endpoint that starts long work, each run that starts cancelled.
"""
import json
import random
import re
import time

import httpx
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.utils import Status

from llada_play.diffusion.sampler_config import INTERACTIVE
from llada_play.diffusion.sampling import generate
from llada_play.model.checkpoint import load_model
from llada_play.model.text import decode_generation, encode_prompt
from tests.browser import running_app

LOGIN = ("fuzz", "secret")
CALLS, BUDGET_S = 120, 75
# The endpoints whose accepted calls start long work (training runs of minutes, the task's 40 prompts under each
# setting, a sweep of settings): LONG_CALLS calls each, in a session of their own, half random, half near the
# page's defaults (one input random or at an end of its range: past gradio's range checks, into the handler). A
# training run that starts is cancelled through its tab's Cancel endpoint, from the same session, and must end and
# free its slot within STOP_S.
LONG = {"/quick_sft", "/reversal_run", "/task_accuracy", "/compare"}
CANCEL = {"/quick_sft": "/cancel_sft", "/reversal_run": "/reversal_cancel"}
LONG_CALLS, STOP_S = 4, 30
# Near the defaults, a Compare or task accuracy call (plain calls: cancelling one leaves its work running) starts
# from the cheapest settings: 8 tokens in one block, the fewest steps (the task's default took 23 s here)
CHEAP = {"/compare": {"Steps": 8, "Block length": 8, "Generation length": 8}, "/task_accuracy": {"Steps": 4}}
STRINGS = ["", " ", "\n\n", "x" * 20_000, "\x00", "ab\udcffc", "<script>alert(1)</script>", "../../etc/passwd",
           "12345", "1" * 36, "1_" * 18, "Romeo.\n", "ünïcødé ✓", "{}", "None"]
NUMBERS = [-1e308, -1.0, 0.0, 0.5, 1.0, 3.0, 7.0, 64.0, 1e9, 1e308]
INTEGERS = [-1, 0, 1, 2**31, 2**63, 2**70]


def value_for(parameter: dict, rng: random.Random, files: list | None = None):
    """A random or boundary value of the parameter's type; a file parameter gets one of ``files`` (uploads of
    good and bad rows, or none): a value that is not a file is gradio's to refuse, in its own words."""
    schema = parameter.get("type", {})
    kind = parameter["python_type"]["type"]
    if kind == "filepath":
        return rng.choice(files or [None])
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


def upload_files(folder) -> list:
    """The file parameter's values: no file (the shipped rows), good rows, and files the upload check refuses."""
    contents = {"rows.jsonl": "".join(json.dumps({"prompt": f"{i}+1=", "response": str(i + 1)}) + "\n"
                                      for i in range(8)).encode(),
                "empty.jsonl": b"", "binary.jsonl": bytes(range(256)), "latin1.jsonl": '{"prompt": "caf\xe9"}'.encode("latin-1"),
                "wrong.jsonl": b'{"question": "a"}\n', "broken.jsonl": b'{"prompt": "a", "response": "b"}\n{"prompt": \n'}
    for name, content in contents.items():
        (folder / name).write_bytes(content)
    return [None, *(handle_file(str(folder / name)) for name in contents)]


def call(client: Client, name: str, values: list, refusals: list) -> str:
    """Call an endpoint and wait for its answer: "answered" or "refused" (the refusal kept in ``refusals``,
    checked to be one line without a server path). A refusal before the run joined the queue (a validator's,
    HTTP 400) is the server's detail, not the client's wording of the status."""
    try:
        client.predict(*values, api_name=name)
        return "answered"
    except httpx.HTTPStatusError as err:
        message = detail(err)
    except Exception as err:  # the refusal as the client sees it
        message = str(err)
    refused(name, values, message, refusals)
    return "refused"


def detail(err: httpx.HTTPStatusError) -> str:
    """What the server answered with an error status (its JSON detail, or its text)."""
    try:
        return str(err.response.json().get("detail"))
    except ValueError:
        return err.response.text


def refused(name: str, values: list, message: str, refusals: list) -> None:
    refusals.append((name, message))
    assert "Traceback" not in message and len(message.strip().splitlines()) <= 1, (name, values, message)
    assert "/work/" not in message and "site-packages" not in message, (name, message)


def training_runs(client: Client) -> int:
    return int(client.predict(api_name="/server_status").split(" Denoise runs")[1].split(", ")[1].split(" ")[0])


def long_call(client: Client, name: str, values: list, refusals: list) -> str:
    """A call that may start long work: a training run that starts (its first streamed answer) is cancelled
    through its tab's Cancel endpoint and must end, and the server's training runs with it, within STOP_S;
    a plain call (Compare, the task accuracy) is waited for. "answered", "refused" or "cancelled"."""
    if name not in CANCEL:
        return call(client, name, values, refusals)
    try:
        job = client.submit(*values, api_name=name)
        while not job.done() and not (job.status().code == Status.ITERATING and job.outputs()):
            time.sleep(0.05)
    except httpx.HTTPStatusError as err:  # refused by its validator before it joined the queue
        refused(name, values, detail(err), refusals)
        return "refused"
    outcome = "answered"
    if not job.done():
        client.predict(api_name=CANCEL[name])
        outcome = "cancelled"
    try:
        job.result(timeout=STOP_S)
    except TimeoutError:
        raise AssertionError(f"{name} still running {STOP_S} s after its Cancel: {values}") from None
    except httpx.HTTPStatusError as err:
        refused(name, values, detail(err), refusals)
        outcome = "refused"
    except Exception as err:
        refused(name, values, str(err), refusals)
        outcome = "refused"
    start = time.monotonic()
    while training_runs(client):  # the run's thread ended: its slot is free
        assert time.monotonic() - start < STOP_S, (name, values, "a training run still going")
        time.sleep(0.1)
    return outcome


def near_defaults(name: str, parameters: list[dict], rng: random.Random, files: list) -> list:
    """The page's defaults (the cheapest settings for CHEAP's endpoints), one of them random or at an end of its
    slider's range."""
    cheap = CHEAP.get(name, {})
    values = [cheap.get(p.get("label"), cheap.get(p["parameter_name"], p.get("parameter_default")))
              for p in parameters]
    if parameters:
        i = rng.randrange(len(parameters))
        ends = re.fullmatch(r"numeric value between (\S+) and (\S+)", parameters[i].get("type", {}).get("description", ""))
        values[i] = rng.choice([*map(float, ends.groups()), value_for(parameters[i], rng, files)] if ends else
                               [value_for(parameters[i], rng, files)])
    return values


def test_random_and_boundary_values_get_an_answer_or_one_line(served, tmp_path):
    url, log = served
    client = Client(url, auth=LOGIN, verbose=False)
    everything = {name: info["parameters"] for name, info
                  in client.view_api(return_format="dict", print_info=False)["named_endpoints"].items()}
    endpoints = {name: parameters for name, parameters in everything.items() if name not in LONG}
    assert {"/denoise", "/chat", "/step_start", "/puzzle_solve", "/load_model", *CANCEL.values()} <= set(endpoints)
    assert LONG <= set(everything)
    files = upload_files(tmp_path)
    rng = random.Random(0)
    outcomes = {"answered": 0, "refused": 0}
    refusals = []
    start = time.monotonic()
    names = sorted(endpoints)
    for calls in range(CALLS):
        if time.monotonic() - start > BUDGET_S:
            break
        name = names[calls % len(names)]  # every endpoint in turn, then again with other values
        values = [value_for(p, rng, files) for p in endpoints[name]]
        if name in ("/puzzle_solve", "/puzzle_second_thoughts", "/icl_ask"):
            values[-1] = 0  # the pause between frames: a real user's choice, and the budget's
        outcomes[call(client, name, values, refusals)] += 1
    print(f"fuzz: {sum(outcomes.values())} calls in {time.monotonic() - start:.0f} s, {outcomes}")
    assert sum(outcomes.values()) >= len(names)  # every endpoint was called at least once
    long_start, long_outcomes = time.monotonic(), {}
    client = Client(url, auth=LOGIN, verbose=False)  # a new session, on the default model: its page's defaults
    for name in sorted(LONG):
        for calls in range(LONG_CALLS):
            values = ([value_for(p, rng, files) for p in everything[name]] if calls % 2 else
                      near_defaults(name, everything[name], rng, files))
            outcome = long_call(client, name, values, refusals)
            long_outcomes.setdefault(name, {}).setdefault(outcome, 0)
            long_outcomes[name][outcome] += 1
    print(f"long endpoints: {LONG_CALLS} calls each in {time.monotonic() - long_start:.0f} s, {long_outcomes}")
    print("\n".join(f"  {name}: {message[:120]}" for name, message in refusals if name in LONG))
    # a refusal says what was wrong; gradio's bare "Error" (an exception it did not expect) is not one
    assert not [r for r in refusals if r[1].strip() in ("", "Error", "None")], refusals
    # gradio logs a traceback for every refused call; each must end in a refusal (gradio's Error, which gr.Error
    # is), never in an exception the app did not mean to raise
    unexpected = [line for line in raised(log.read_text(errors="replace")) if not line.startswith("gradio.exceptions.Error")]
    assert not unexpected, unexpected
    # the server is healthy: no training run left, and a normal Denoise, from a new visitor (the fuzzing one may
    # have loaded or trained another model for its session), gives the library's tokens
    assert training_runs(client) == 0
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


def test_a_prompt_the_model_has_no_tokens_for_is_refused_in_one_line(served):
    """Found by the fuzz above (a session left on a Sudoku model, then the task accuracy): a Denoise of text on a
    Sudoku model is refused with a message that says what is wrong, and the server logs no other exception."""
    url, log = served
    client = Client(url, auth=LOGIN, verbose=False)
    client.predict("Sudoku 6x6, diffusion (seed 0)", api_name="/load_model")
    before = len(log.read_text(errors="replace"))
    with pytest.raises(Exception) as err:
        client.predict("Romeo.\n", False, "", INTERACTIVE.gen_length, INTERACTIVE.steps, INTERACTIVE.block_length,
                       INTERACTIVE.temperature, 0.0, INTERACTIVE.remasking, 0.0, 0, api_name="/denoise")
    time.sleep(0.5)  # the server's log of the refusal
    assert str(err.value).strip() not in ("", "Error", "None"), str(err.value)
    logged = raised(log.read_text(errors="replace")[before:])
    assert all(line.startswith("gradio.exceptions.Error") for line in logged), logged
