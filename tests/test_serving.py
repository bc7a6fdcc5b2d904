"""Serving a class (issue 17): the login, what a visitor may not reach, uploads, 16 students at once with the
library's tokens, and runs that stop when their page goes away; issue 27: a visitor who has not logged in gets the
login page and nothing else, the Model tab shows no server path, one training run (Quick SFT or the reversal
experiment, counted together) queued per login."""
import json
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.utils import Status

from llada_play.diffusion.sampler_config import INTERACTIVE
from llada_play.diffusion.sampling import generate
from llada_play.model.checkpoint import DEFAULT_MODEL_DIR, SHIPPED_MODELS, CheckpointError, load_model
from llada_play.model.text import decode_generation, encode_prompt
from llada_play.ui.background import RunsPerLogin
from llada_play.ui.registry import DEFAULT_KEY, ModelRegistry
from llada_play.ui.serving import TRAINING, TRAINING_RUNS, ServingPolicy, auth_refusal, is_loopback, parse_logins
from tests.browser import ROOT, browser_page, open_tab, require_chromium, running_app

LOGIN = ("teacher", "secret")
STUDENT = ("student", "pw2")
CLASS_MODEL = "class-run"  # a model the teacher put in the models folder (the shipped default, linked)
# the Denoise tab's inputs: prompt, chat, pins, gen_length, steps, block_length, temperature, cfg, remasking,
# threshold, seed (the page's defaults)
DEFAULTS = ["Romeo.\n", False, "", INTERACTIVE.gen_length, INTERACTIVE.steps, INTERACTIVE.block_length,
            INTERACTIVE.temperature, 0.0, INTERACTIVE.remasking, 0.0, 0]


def test_loopback_and_logins_are_read_as_documented(tmp_path):
    assert all(map(is_loopback, ["127.0.0.1", "localhost", "::1", "127.0.1.1", "[::1]"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.5", "::", "example.org"]))
    assert auth_refusal("127.0.0.1", [], False) is None
    assert auth_refusal("0.0.0.0", [("a", "b")], False) is None and auth_refusal("0.0.0.0", [], True) is None
    assert "--auth USER:PASS" in auth_refusal("0.0.0.0", [], False)
    file = tmp_path / "logins"
    file.write_text("# the class\nann:pw1\n\nbob:pw:with:colons\n")
    assert parse_logins(["teacher:secret"], str(file)) == [("teacher", "secret"), ("ann", "pw1"),
                                                             ("bob", "pw:with:colons")]
    file.write_text("ann:pw1\nnocolon\n")
    with pytest.raises(ValueError, match="line 2: a login is USER:PASS"):
        parse_logins([], str(file))


def test_serving_beyond_loopback_without_a_login_refuses_to_start_in_one_line():
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "app.py"), "--host", "0.0.0.0", "--port", "1"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to serve on 0.0.0.0 without a login" in lines[0]
    assert "Traceback" not in proc.stderr and time.monotonic() - start < 60


def test_a_bad_thread_count_is_refused_in_one_line():
    proc = subprocess.run([sys.executable, str(ROOT / "app.py"), "--threads", "0", "--port", "1"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and "--threads must be at least 1" in proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app in serving mode (as on 0.0.0.0, but bound to loopback for the test) with a login, on the
    shipped default model, in float32: the students' runs share forward passes, and in bfloat16 a batch's
    rounding differs from one row's enough to flip near ties (on an AMX processor, 1 of 16 seeds did, with the
    code before the step engine as after); in float32 each student gets the library's tokens exactly. A second
    login, and a model in the models folder."""
    models = tmp_path_factory.mktemp("models")
    (models / CLASS_MODEL).symlink_to(DEFAULT_MODEL_DIR, target_is_directory=True)
    with running_app("--serving", "--auth", ":".join(LOGIN), "--auth", ":".join(STUDENT), "--models-dir",
                     str(models), "--dtype", "float32") as url:
        yield url


def client(url) -> Client:
    return Client(url, auth=LOGIN, verbose=False)


def status(url) -> str:
    return client(url).predict(api_name="/server_status")


def test_a_request_without_the_login_is_refused(served):
    with pytest.raises(Exception):
        Client(served, verbose=False)
    with pytest.raises(Exception):
        Client(served, auth=("teacher", "wrong"), verbose=False)
    join = httpx.post(f"{served}gradio_api/queue/join", json={"data": DEFAULTS, "fn_index": 0,
                                                               "session_hash": "x"}, timeout=10)
    assert join.status_code in (401, 403)
    assert "Now:" in status(served)  # with the login, the same server answers


# What a visitor who has not logged in must not learn: the endpoints, the models, the server's paths.
SECRETS = ["denoise", "puzzle_solve", "quick_sft", "load_model", "named_endpoints", "Shakespeare", "Sudoku",
           *SHIPPED_MODELS, CLASS_MODEL, str(ROOT), "/tmp/"]
LOGGED_OUT_REFUSED = ["openapi.json", "gradio_api/openapi.json", "info", "gradio_api/info",
                      "gradio_api/info?all_endpoints=True", "gradio_api/info?serialize=False", "config", "config/",
                      "gradio_api/config", "gradio_api/runs", "gradio_api/user", "gradio_api/token",
                      "gradio_api/app_id", "gradio_api/heartbeat/x", "gradio_api/queue/status", "monitoring",
                      "gradio_api/file=README.md", "docs", "gradio_api/mcp/schema"]


def test_a_visitor_who_has_not_logged_in_gets_the_login_page_and_nothing_else(served):
    page = httpx.get(served, timeout=10)
    assert page.status_code == 200 and "window.gradio_api_info = null;" in page.text
    assert '"auth_required":true' in page.text
    assert [word for word in SECRETS if word in page.text] == []
    script = re.search(r'src="\./(assets/index-[^"]+\.js)"', page.text).group(1)
    assert httpx.get(served + script, timeout=10).status_code == 200  # the login form still gets its scripts
    answers = {path: httpx.get(served + path, timeout=10) for path in LOGGED_OUT_REFUSED}
    assert {path: r.status_code for path, r in answers.items() if r.status_code not in (401, 404)} == {}
    assert [(path, word) for path, r in answers.items() for word in SECRETS if word in r.text] == []
    for path in ["gradio_api/upload", "gradio_api/run/denoise", "gradio_api/call/denoise", "gradio_api/cancel"]:
        assert httpx.post(served + path, json={}, timeout=10).status_code == 401, path
    # logged in, the API description is there for gradio_client (the other tests use it) but FastAPI's is not
    cookies = login_cookies(served)
    info = httpx.get(f"{served}gradio_api/info", cookies=cookies, timeout=10)
    assert info.status_code == 200 and "/quick_sft" in info.json()["named_endpoints"]
    assert httpx.get(f"{served}openapi.json", cookies=cookies, timeout=10).status_code == 404
    assert "gradio_api_info = {" in httpx.get(served, cookies=cookies, timeout=10).text


def test_served_the_registry_names_models_and_shows_no_server_path(tmp_path):
    (tmp_path / "app-sft" / "20250101-120000" / "final").mkdir(parents=True)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (tmp_path / "app-sft" / "20250101-120000" / "config.json").write_text("{}")
    served = ModelRegistry(None, str(tmp_path), serving=True)
    assert served.choices() == [DEFAULT_KEY, *SHIPPED_MODELS, "app-sft/20250101-120000", "broken"]
    assert served.key_of(tmp_path / "app-sft" / "20250101-120000" / "final") == "app-sft/20250101-120000/final"
    assert served.path_of("app-sft/20250101-120000/final") == str(tmp_path / "app-sft" / "20250101-120000" / "final")
    assert served.path_of("../etc") == "../etc"  # never a directory outside the models folder
    with pytest.raises(CheckpointError) as err:
        served.get("broken")
    assert "broken/config.json" in str(err.value) and str(tmp_path) not in str(err.value)
    assert str(tmp_path) not in served.describe("broken") and "broken/config.json" in served.describe("broken")
    local = ModelRegistry(None, str(tmp_path))  # on loopback: paths, as before
    assert local.choices()[-1] == str(broken) and local.key_of(broken) == str(broken)


def test_logged_in_the_model_tab_names_models_and_shows_no_server_path(served):
    config = httpx.get(f"{served}config", cookies=login_cookies(served), timeout=10)
    assert config.status_code == 200
    dropdown = next(c["props"] for c in config.json()["components"]
                    if c.get("props", {}).get("label") == "Model" and "choices" in c["props"])
    names = [choice[1] for choice in dropdown["choices"]]
    assert names == [DEFAULT_KEY, *SHIPPED_MODELS, CLASS_MODEL]
    assert str(ROOT) not in config.text and "/tmp/" not in config.text and "/work/" not in config.text
    for key in [CLASS_MODEL, "Sudoku 6x6, diffusion (seed 0)", DEFAULT_KEY]:
        description, loaded = client(served).predict(key, api_name="/load_model")
        assert f"`{key}`" in description and f"Loaded `{key}`" in loaded
        for text in (description, loaded):
            assert str(ROOT) not in text and "llada_play/" not in text and "/tmp/" not in text, text


@pytest.mark.parametrize("key", ["../../../../etc/passwd", "/etc", "/root", str(ROOT / "llada_play" / "default_model"),
                                 "gpt2", "GSAI-ML/LLaDA-8B-Instruct"])
def test_a_visitor_cannot_load_a_typed_path_or_hub_id(served, key):
    with pytest.raises(Exception) as err:
        client(served).predict(key, api_name="/load_model")
    message = str(err.value)  # gradio's own check of the list, or the app's
    assert "only the listed models can be loaded" in message or "is not in the list of choices" in message
    assert "passwd" not in message.replace(key, "") and "Traceback" not in message


def test_a_visitor_loads_a_listed_model(served):
    out = client(served).predict("shipped default", api_name="/load_model")
    assert "Loaded `shipped default`" in out[1]


@pytest.mark.parametrize("path", ["../../../../etc/passwd", "/etc/passwd", "data/reversal/results/../../../README.md"])
def test_a_visitor_cannot_read_a_typed_results_path(served, path):
    with pytest.raises(Exception, match="only the listed results files can be loaded|not in the list of choices"):
        client(served).predict(path, api_name="/reversal_load")


@pytest.mark.parametrize("name, content, message", [
    ("big.jsonl", b'{"prompt": "a", "response": "b"}\n' * 80_000, "exceeds the maximum file size of 2097152|at most 2 MB"),
    ("binary.jsonl", bytes(range(256)) * 10, "not a text file"),
    ("latin1.jsonl", '{"prompt": "caf\xe9", "response": "b"}\n'.encode("latin-1"), "not UTF-8 text"),
    ("broken.jsonl", b'{"prompt": "a", "response": "b"}\n{"prompt": \n', "line 2"),
    ("wrong.jsonl", b'{"question": "a"}\n', "wrong.jsonl, line 1: missing or empty prompt"),
    ("role-null.jsonl", b'{"prompt": "a", "response": "b"}\n{"messages": [{"role": null, "content": "a"}, '
                        b'{"role": "assistant", "content": "b"}]}\n',
     r"role-null.jsonl, line 2: message 1: role must be one of \['system', 'user', 'assistant'\], got None"),
])
def test_bad_uploads_are_refused_with_a_message_and_no_traceback(served, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(Exception, match=message) as err:
        client(served).predict(handle_file(str(path)), 10, 1e-3, 4, 0, api_name="/quick_sft")
    assert "Traceback" not in str(err.value) and "gradio/" not in str(err.value)  # no server paths either
    assert "training runs" in status(served) and " 0 training runs" in status(served)


def test_sixteen_students_at_once_get_the_library_tokens_for_their_seeds(served):
    model, tokenizer = load_model(dtype=torch.float32)  # the served app's dtype
    prompt = encode_prompt(tokenizer, DEFAULTS[0])

    def student(seed):
        args = list(DEFAULTS)
        args[-1] = seed
        return client(served).predict(*args, api_name="/denoise")

    start = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(student, range(16)))
    took = time.monotonic() - start
    assert took < 120, took
    print(f"16 students: {took:.1f} s")
    for seed, answer in enumerate(answers):
        assert answer[0].startswith("Done: 64 steps")
        with torch.no_grad():
            out = generate(model, prompt, **INTERACTIVE.replace(seed=seed).to_dict())
        assert answer[2] == decode_generation(tokenizer, out[0], prompt.shape[1]), seed
    shared = float(status(served).split("passes ")[1].split(" rows")[0])
    assert shared > 2, "the students' runs should have shared forward passes"


def test_one_limit_covers_every_training_endpoint():
    """Served to a class, every endpoint that takes a training slot is a training run of the shared per-login limit
    (a validator that admits it), and every training run takes a training slot."""
    from llada_play.ui.app import build_app

    demo = build_app(ModelRegistry(None, None, serving=True), policy=ServingPolicy(serving=True))
    training = {fn.api_name: fn for fn in demo.fns.values() if fn.concurrency_id == TRAINING}
    assert set(training) == set(TRAINING_RUNS) == {"quick_sft", "reversal_run"}
    assert all(fn.validator is not None for fn in training.values())  # (that they share one: the tests below)


def test_a_login_has_one_reversal_run_queued_at_a_time(served, tmp_path):
    """The teacher's reversal experiment runs; the teacher's second one, and a Quick SFT run, are refused at once
    with one line; the student still queues a Quick SFT run behind it, but then no reversal run of their own;
    all cancelled, each login may start again."""
    teacher, student = client(served), Client(served, auth=STUDENT, verbose=False)
    running = teacher.submit(api_name="/reversal_run")
    wait_for_status(running, {Status.ITERATING})
    assert HELD in join_refused(served, LOGIN, "reversal_run", [None])
    assert HELD in join_refused(served, LOGIN, "quick_sft", [None, None, 10, 1e-3, 4, 0, None])
    with pytest.raises(Exception, match="400"):
        teacher.predict(api_name="/reversal_run")
    queued = student.submit(handle_file(str(sft_rows(tmp_path))), 10, 1e-3, 4, 0, api_name="/quick_sft")
    wait_for_status(queued, {Status.IN_QUEUE})  # behind the teacher's run: one training slot
    assert HELD in join_refused(served, STUDENT, "reversal_run", [None])  # a queued Quick SFT run holds it
    queued.cancel()
    running.cancel()
    wait_for_no_training(served)
    admitted_again(served, tmp_path, (teacher, student))


def test_a_quick_sft_run_and_a_reversal_run_count_against_one_limit(served, tmp_path):
    """The teacher's Quick SFT run trains: the teacher's reversal run is refused, the student's is not (it queues);
    then the student's Quick SFT run is refused. All cancelled, each login may start again."""
    teacher, student = client(served), Client(served, auth=STUDENT, verbose=False)
    running = teacher.submit(handle_file(str(sft_rows(tmp_path))), 10, 1e-3, 4, 0, api_name="/quick_sft")
    wait_for_status(running, {Status.ITERATING})
    assert HELD in join_refused(served, LOGIN, "reversal_run", [None])
    queued = student.submit(api_name="/reversal_run")
    wait_for_status(queued, {Status.IN_QUEUE})  # another login's run does not hold the student's
    assert HELD in join_refused(served, STUDENT, "quick_sft", [None, None, 10, 1e-3, 4, 0, None])
    queued.cancel()
    running.cancel()
    wait_for_no_training(served)
    admitted_again(served, tmp_path, (teacher, student))


def upload(url, cookies, path) -> httpx.Response:
    return httpx.post(f"{url}gradio_api/upload", files=[("files", (path.name, path.read_bytes()))], cookies=cookies,
                      timeout=10)


def test_an_upload_is_answered_with_no_server_path_and_trains(served, tmp_path):
    """gradio answers an upload with the file's path in its cache (the server's temp directory); served, the
    answer is the path inside the cache, and that path works as the run's input (gradio_client uploads the
    same way), and as the page's link to the file. A path that leads out of the cache, or to no upload, is
    refused in one line naming no server path."""
    rows = sft_rows(tmp_path)
    cookies = login_cookies(served)
    answer = upload(served, cookies, rows)
    assert answer.status_code == 200
    (path,) = answer.json()
    assert re.fullmatch(r"[0-9a-f]{64}/rows\.jsonl", path), path
    assert "/tmp" not in answer.text and str(ROOT) not in answer.text
    assert httpx.get(f"{served}gradio_api/file={path}", cookies=cookies, timeout=10).text == rows.read_text()
    index = quick_sft_index(served, cookies)
    for bad in ["../../../../etc/passwd", "x", f"{path.split('/')[0]}/../../rows.jsonl"]:
        payload = {"data": [None, {"path": bad, "meta": {"_type": "gradio.FileData"}, "orig_name": "rows.jsonl"},
                            10, 1e-3, 4, 0, None], "fn_index": index, "session_hash": uuid.uuid4().hex}
        refused = httpx.post(f"{served}gradio_api/queue/join", json=payload, cookies=cookies, timeout=10)
        assert refused.status_code == 400 and refused.json() == {
            "detail": "rows.jsonl is not a file uploaded to this app: upload it again"}, (bad, refused.text)
    assert httpx.get(f"{served}gradio_api/file=x", cookies=cookies, timeout=10).status_code == 403
    done = client(served).predict(handle_file(str(rows)), 10, 1e-3, 4, 0, api_name="/quick_sft")
    assert done[0].startswith("Done: 10 steps"), done[0]
    call = httpx.post(f"{served}gradio_api/call/quick_sft", cookies=cookies, timeout=10,
                      json={"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}, 10, 1e-3, 4, 0]})
    with httpx.stream("GET", f"{served}gradio_api/call/quick_sft/{call.json()['event_id']}", cookies=cookies,
                      timeout=120) as stream:
        events = [line for line in stream.iter_lines() if line.startswith("event:")]
    assert events[-1] == "event: complete", events
    assert " 0 training runs" in status(served)


def test_an_upload_in_the_browser_trains_and_shows_no_server_path(served, tmp_path):
    """Logged in, in Chromium: the uploaded file's link names no server path, and Quick SFT trains on it."""
    require_chromium()
    rows = sft_rows(tmp_path)
    with browser_page() as page:
        page.goto(served)
        page.get_by_label("username").fill(LOGIN[0])
        page.get_by_label("password").fill(LOGIN[1])
        page.get_by_role("button", name="Login").click()
        open_tab(page, "Quick SFT")
        # the open tab's file input (the Denoise tab, drawn first, has one for traces)
        page.get_by_role("tabpanel").locator("input[type=file]").first.set_input_files(str(rows))
        link = page.locator("a[href*='file=']").first  # the file's download link, beside its name
        link.wait_for(timeout=30_000)
        href = link.get_attribute("href")
        assert "/tmp" not in href and str(ROOT) not in href and re.search(r"file=[0-9a-f]{64}/rows\.jsonl$", href), href
        page.get_by_role("button", name="Fine-tune").click()
        page.get_by_text(re.compile(r"Step \d+ / 1000")).wait_for(timeout=60_000)
        page.get_by_role("button", name="Cancel").first.click()
        page.get_by_text(re.compile(r"Done \(cancelled\)")).wait_for(timeout=60_000)
    start = time.monotonic()
    while " 0 training runs" not in status(served):
        assert time.monotonic() - start < 30, status(served)
        time.sleep(0.2)


def login_cookies(url) -> httpx.Cookies:
    response = httpx.post(f"{url}login", data={"username": LOGIN[0], "password": LOGIN[1]}, timeout=10)
    assert response.status_code == 200, response.text
    return response.cookies


def denoise_index(url, cookies) -> int:
    config = httpx.get(f"{url}config", cookies=cookies, timeout=10).json()
    return next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == "denoise")


def runs_now(url) -> int:
    return int(status(url).split("Now: ")[1].split(" ")[0])


def wait_for_no_runs(url, timeout) -> float:
    start = time.monotonic()
    while runs_now(url):
        assert time.monotonic() - start < timeout, status(url)
        time.sleep(0.2)
    return time.monotonic() - start


@pytest.mark.parametrize("leave", ["disconnect", "cancel"])
def test_a_student_who_leaves_mid_run_frees_the_slot(served, leave):
    """A long run (256 tokens, 256 steps: about 10 s alone here) left after its first step stops at once."""
    long_run = list(DEFAULTS)
    long_run[3:6] = [256, 256, 256]
    if leave == "cancel":
        job = client(served).submit(*long_run, api_name="/denoise")
        while not job.outputs():
            time.sleep(0.05)
        job.cancel()
    else:
        cookies = login_cookies(served)
        session = uuid.uuid4().hex
        payload = {"data": [None, *long_run], "fn_index": denoise_index(served, cookies), "session_hash": session,
                   "event_data": None, "trigger_id": None}
        assert httpx.post(f"{served}gradio_api/queue/join", json=payload, cookies=cookies, timeout=10).is_success
        with httpx.stream("GET", f"{served}gradio_api/queue/data", params={"session_hash": session},
                          cookies=cookies, timeout=60) as stream:
            for line in stream.iter_lines():
                if "process_generating" in line:
                    break  # the first streamed step arrived: now the browser goes away
    assert runs_now(served) <= 1
    assert wait_for_no_runs(served, timeout=5) < 5


def test_runs_per_login_counts_queued_running_and_just_admitted_runs():
    runs = RunsPerLogin(1)
    first, second, other = object(), object(), object()
    assert runs.admit("ann", first, [])
    assert not runs.admit("ann", second, [])  # sent at once: the first is not in the queue yet
    assert runs.admit("bob", other, [])
    assert not runs.admit("ann", second, [("ann", first)])  # queued or running
    runs.started(first)
    assert runs.admit("ann", second, [])  # the first is over (no longer in the queue)
    runs.SHOWS_UP_S = 0.0
    assert runs.admit("bob", object(), [])  # bob's first went away before it was seen queued
    assert RunsPerLogin(2).admit("ann", second, [("ann", first)])


def sft_rows(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"prompt": f"{i}+1=", "response": str(i + 1)}) + "\n" for i in range(8)))
    return rows


def endpoint_index(url, cookies, api_name: str) -> int:
    config = httpx.get(f"{url}config", cookies=cookies, timeout=10).json()
    return next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == api_name)


def quick_sft_index(url, cookies) -> int:
    return endpoint_index(url, cookies, "quick_sft")


HELD = "You already have a training run (Quick SFT or the reversal experiment) queued or running"


def join_refused(url, login, api_name: str, data: list) -> str:
    """The refusal of a run of ``api_name`` sent by ``login`` straight to the queue (as the page sends it): the
    validator answers 400 before it joins; its one line."""
    cookies = httpx.post(f"{url}login", data={"username": login[0], "password": login[1]}, timeout=10).cookies
    payload = {"data": data, "fn_index": endpoint_index(url, cookies, api_name), "session_hash": uuid.uuid4().hex,
               "event_data": None, "trigger_id": None}
    answer = httpx.post(f"{url}gradio_api/queue/join", json=payload, cookies=cookies, timeout=10)
    assert answer.status_code == 400, (api_name, answer.status_code, answer.text)
    detail = answer.json()["detail"]
    assert len(str(detail).strip().splitlines()) == 1, detail
    return str(detail)


def wait_for_no_training(url) -> None:
    """Every training run over (its thread ended), and admitted runs cancelled unseen no longer counted."""
    start = time.monotonic()
    while " 0 training runs" not in status(url):
        assert time.monotonic() - start < 60, status(url)
        time.sleep(0.2)
    time.sleep(RunsPerLogin.SHOWS_UP_S)


def admitted_again(url, tmp_path, logins) -> None:
    """Each login may start a training run again: the Quick SFT handler itself answers (a bad upload)."""
    bad = tmp_path / "wrong.jsonl"
    bad.write_text('{"question": "a"}\n')
    for login in logins:
        with pytest.raises(Exception, match="wrong.jsonl, line 1: missing or empty prompt"):
            login.predict(handle_file(str(bad)), 10, 1e-3, 4, 0, api_name="/quick_sft")
    assert " 0 training runs" in status(url)


def wait_for_status(job, codes, timeout=60.0) -> None:
    start = time.monotonic()
    while job.status().code not in codes:
        assert time.monotonic() - start < timeout, job.status()
        time.sleep(0.1)


def test_a_login_has_one_quick_sft_run_queued_at_a_time(served, tmp_path):
    """The teacher's run trains; the teacher's second request is refused at once with one line (the page shows it
    as an error), while a student still queues one behind it; both cancelled, each login may start again."""
    rows = handle_file(str(sft_rows(tmp_path)))
    teacher, student = client(served), Client(served, auth=STUDENT, verbose=False)
    running = teacher.submit(rows, 10, 1e-3, 4, 0, api_name="/quick_sft")
    wait_for_status(running, {Status.ITERATING})
    cookies = login_cookies(served)
    payload = {"data": [None, None, 10, 1e-3, 4, 0, None], "fn_index": quick_sft_index(served, cookies),
               "session_hash": uuid.uuid4().hex, "event_data": None, "trigger_id": None}
    again = httpx.post(f"{served}gradio_api/queue/join", json=payload, cookies=cookies, timeout=10)
    assert again.status_code == 400
    assert HELD in again.json()["detail"]
    with pytest.raises(Exception, match="400"):
        teacher.predict(rows, 10, 1e-3, 4, 0, api_name="/quick_sft")
    queued = student.submit(rows, 10, 1e-3, 4, 0, api_name="/quick_sft")
    wait_for_status(queued, {Status.IN_QUEUE})  # behind the teacher's run: one training slot
    queued.cancel()
    running.cancel()
    start = time.monotonic()
    while " 0 training runs" not in status(served):
        assert time.monotonic() - start < 60, status(served)
        time.sleep(0.2)
    time.sleep(RunsPerLogin.SHOWS_UP_S)  # the student's run was cancelled before any request saw it queued
    bad = tmp_path / "wrong.jsonl"
    bad.write_text('{"question": "a"}\n')
    for login in (teacher, student):  # admitted again: the handler itself answers
        with pytest.raises(Exception, match="wrong.jsonl, line 1: missing or empty prompt"):
            login.predict(handle_file(str(bad)), 10, 1e-3, 4, 0, api_name="/quick_sft")
    assert " 0 training runs" in status(served)


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path):
    """A 20-step Quick SFT ends within a second: the next run once wrote its model over the first's."""
    registry = ModelRegistry(None, str(tmp_path))
    folders = [registry.new_run_dir("app-sft") for _ in range(3)]
    assert len(set(folders)) == 3 and all(f.is_dir() and not any(f.iterdir()) for f in folders)
