"""Serving the app beyond this machine (a class on one server): who may log in, and what a session may do.

On loopback (the default) the app is one person's: every tab may load any path or hub id from the local
cache. Bound to any other address it is in **serving mode** for every session (a reverse proxy makes all
visitors look local, so sessions are not told apart by address): a login is required unless ``--no-auth`` is
given, models come only from the teacher's list (the shipped models and the models folder: no typed paths or
hub ids, so ``--trust-remote-code`` reaches only checkpoints the teacher put there), recorded results only from
the listed files, uploads are capped, checked and answered with no server path (:class:`UploadPaths`), and
training runs (Quick SFT, the reversal experiment) take turns through ``training_slots`` with the queue position
shown, each login queueing at most ``max_queued_runs_per_login`` training runs, of either kind counted together
(:func:`admit_run`). A visitor who has not logged in gets the login page and nothing else (:class:`LoggedOutGate`):
no description of the API, no model or file names.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
from urllib.parse import quote
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection

from ..training.data import DataError, load_sft_rows
from .background import RunsPerLogin
from .errors import Refusal

LOOPBACK_NAMES = {"localhost", "ip6-localhost", "ip6-loopback"}
TRAINING = "training"  # the gradio concurrency id that training runs share
# The endpoints of the training runs (their api names): each login's runs of both count against one limit
QUICK_SFT, REVERSAL_RUN = "quick_sft", "reversal_run"
TRAINING_RUNS = (QUICK_SFT, REVERSAL_RUN)


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` serves this machine only."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def auth_refusal(host: str, logins: list[tuple[str, str]], no_auth: bool) -> str | None:
    """Why the app must not start (one line), or None."""
    if is_loopback(host) or logins or no_auth:
        return None
    return (f"refusing to serve on {host} without a login: anyone who reaches the port could use it. Add "
            "--auth USER:PASS (or --auth-file FILE, one USER:PASS a line), or --no-auth to serve without one.")


def parse_logins(pairs: list[str] | None, file: str | None) -> list[tuple[str, str]]:
    """(user, password) pairs from ``--auth`` values and an ``--auth-file``; ValueError naming a bad entry."""
    entries = [(f"--auth {p.split(':')[0]}:...", p) for p in pairs or []]
    if file:
        try:
            lines = Path(file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"--auth-file {file}: {err}") from err
        entries += [(f"{file} line {i}", line.strip()) for i, line in enumerate(lines, 1)
                    if line.strip() and not line.lstrip().startswith("#")]
    logins = []
    for where, entry in entries:
        user, sep, password = entry.partition(":")
        if not sep or not user.strip() or not password:
            raise ValueError(f"{where}: a login is USER:PASS with both parts non-empty")
        logins.append((user.strip(), password))
    return logins


@dataclass(frozen=True)
class ServingPolicy:
    """What sessions may do; :data:`LOCAL` on loopback, ``ServingPolicy(serving=True)`` beyond it."""

    serving: bool = False
    training_slots: int = 1  # training runs at once (each uses every core); the others queue
    max_upload_bytes: int = 2 * 2**20
    denoise_sessions: int = 64  # Denoise runs at once: they share the model's forward passes and mostly wait
    # training runs (Quick SFT and reversal runs together) one login may have queued or running (serving mode)
    max_queued_runs_per_login: int = 1

    def allow_model(self, key: str, listed: list[str]) -> None:
        """Refuse a model that is not on the teacher's list, in serving mode."""
        if self.serving and key not in listed:
            raise Refusal("This app is served to a class: only the listed models can be loaded (typed paths and "
                           "hub ids are turned off). Pick one from the list.")

    def allow_results(self, choice: str, listed: list[str]) -> None:
        if self.serving and choice not in listed:
            raise Refusal("This app is served to a class: only the listed results files can be loaded. Pick one "
                           "from the list.")


LOCAL = ServingPolicy()


def checked_upload(path: Path, max_bytes: int) -> Path:
    """An uploaded SFT file, refused with a one-line message (never a traceback, never a server path) when it
    is too large, not UTF-8 text, or holds a malformed row."""
    size = path.stat().st_size
    if size > max_bytes:
        raise Refusal(f"{path.name} is {size / 2**20:.1f} MB; quick SFT takes at most {max_bytes / 2**20:.0f} MB")
    data = path.read_bytes()
    if b"\0" in data:
        raise Refusal(f"{path.name} is not a text file (it holds NUL bytes): upload JSONL rows")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Refusal(f"{path.name} is not UTF-8 text (byte {err.start}): upload JSONL rows") from None
    try:
        load_sft_rows(path)
    except (DataError, ValueError) as err:
        raise Refusal(str(err).replace(str(path), path.name)) from None
    return path


# What a visitor who has not logged in may fetch: the login page itself (stripped of the API description gradio
# puts in it), its scripts, styles and icons, and the login form's POST. gradio's launch asks for startup-events
# itself, without a login.
LOGGED_OUT_PATHS = {"/", "/login", "/login/", "/favicon.ico", "/theme.css", "/gradio_api/theme.css",
                    "/manifest.json", "/robots.txt", "/gradio_api/startup-events"}
LOGGED_OUT_PREFIXES = ("/assets/", "/static/", "/svelte/")
PAGE_API_INFO = re.compile(rb"window\.gradio_api_info = .*?;</script>", re.S)
NOT_LOGGED_IN = b'{"detail":"Not authenticated"}'


class LoggedOutGate:
    """ASGI middleware of a served app with logins: a visitor who has not logged in gets the login page and
    nothing else. gradio embeds the API description (every endpoint, its parameters and defaults, the model
    and results names among them) in every page it serves, the login page included, and FastAPI answers
    /openapi.json; here the page's copy is blanked and every other route answers 401 until the login."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket") or logged_in(scope):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root):] or "/"
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        elif path == "/" and scope["method"] != "HEAD":  # HEAD sends no body
            await self.app(scope, receive, without_api_info(send))
        elif path in LOGGED_OUT_PATHS or path.startswith(LOGGED_OUT_PREFIXES):
            await self.app(scope, receive, send)
        else:
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(NOT_LOGGED_IN)).encode())]})
            await send({"type": "http.response.body", "body": NOT_LOGGED_IN})


def logged_in(scope) -> bool:
    """Whether the request carries a login of the gradio app serving it (as gradio's own check reads it)."""
    app = scope.get("app")
    if getattr(app, "auth", None) is None and getattr(app, "auth_dependency", None) is None:
        return True  # no login asked for (--no-auth)
    cookies = HTTPConnection(scope).cookies
    token = cookies.get(f"access-token-{app.cookie_id}") or cookies.get(f"access-token-unsecure-{app.cookie_id}")
    return token is not None and app.tokens.get(token) is not None


def rewritten_body(send, rewrite):
    """``send`` for a response whose whole body ``rewrite(start, body) -> (start, body)`` replaces: the body is
    collected, rewritten and sent in one piece with its new length."""
    start, body = None, b""

    async def collecting_send(message) -> None:
        nonlocal start, body
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        body += message.get("body", b"")
        if message.get("more_body"):
            return
        first, whole = rewrite(start, body)
        headers = [(k, v) for k, v in first["headers"] if k.lower() != b"content-length"]
        await send({**first, "headers": [*headers, (b"content-length", str(len(whole)).encode())]})
        await send({"type": "http.response.body", "body": whole})

    return collecting_send


def without_api_info(send):
    """``send`` for the page: the embedded API description replaced by null (the login form needs none); a page
    that would still carry one is not sent at all."""
    def rewrite(start: dict, body: bytes) -> tuple[dict, bytes]:
        page = PAGE_API_INFO.sub(b"window.gradio_api_info = null;</script>", body)
        if b"named_endpoints" in page:  # gradio changed how it embeds the description: send nothing
            return {**start, "status": 500}, b"the login page is not available"
        return start, page

    return rewritten_body(send, rewrite)


UPLOAD_ROUTE, FILE_ROUTE = "/gradio_api/upload", "/gradio_api/file="
FILE_DATA = "gradio.FileData"  # the meta type of a file in gradio's JSON (an upload sent back as an input)


class UploadPaths:
    """ASGI middleware of a served app: no server path in what gradio says about uploads. Its upload route answers
    with the absolute path of each file in its cache (``/tmp/gradio/<hash>/rows.jsonl``: the server's temp
    directory); here it answers with the path inside the cache (``<hash>/rows.jsonl``). Such a path, when it comes
    back (a file among a run's inputs, in any JSON body sent: the queue, /call; the page's link to the file,
    ``file=``), is read inside the cache again; one that leads out of it, or to no uploaded file, is refused in
    one line naming no server path (gradio would name the path it resolved, against its working directory)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root = scope.get("root_path") or ""
        path = scope["path"][len(root):] if root and scope["path"].startswith(root) else scope["path"]
        if scope["method"] == "POST" and path == UPLOAD_ROUTE:
            await self.app(scope, receive, relative_upload_paths(send, upload_cache(scope)))
        elif scope["method"] == "POST" and HTTPConnection(scope).headers.get("content-type", "").startswith(
                "application/json"):
            await self.with_files_in_cache(scope, receive, send, upload_cache(scope))
        elif scope["method"] in ("GET", "HEAD") and path.startswith(FILE_ROUTE) and is_relative(path[len(FILE_ROUTE):]):
            target = in_cache(upload_cache(scope), path[len(FILE_ROUTE):])
            if target is None:
                await refuse(send, 403, "File not allowed.")
                return
            new_path = scope["path"][:len(scope["path"]) - len(path)] + FILE_ROUTE + str(target)
            await self.app({**scope, "path": new_path, "raw_path": quote(new_path, safe="/=").encode()}, receive, send)
        else:
            await self.app(scope, receive, send)

    async def with_files_in_cache(self, scope, receive, send, cache: Path) -> None:
        """A JSON request whose files named by their path inside the cache are named by their full path."""
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            data = json.loads(body)
        except ValueError:
            data = None  # gradio's to refuse
        if data is not None:
            try:
                data, changed = files_in_cache(data, cache)
            except ValueError as err:
                await refuse(send, 400, str(err))
                return
            if changed:
                body = json.dumps(data).encode()
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in (b"content-length", b"transfer-encoding")]
        scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def upload_cache(scope) -> Path:
    """The folder gradio keeps uploads in (the served app's, else its default)."""
    folder = getattr(scope.get("app"), "uploaded_file_dir", None)
    if folder is None:
        from gradio.utils import get_upload_folder

        folder = get_upload_folder()
    return Path(folder).resolve()


def is_relative(path: str) -> bool:
    return bool(path) and not path.startswith(("/", "\\")) and "://" not in path and not re.match(r"[A-Za-z]:", path)


def in_cache(cache: Path, path: str) -> Path | None:
    """The uploaded file at ``path`` inside the cache, or None where it leads out of it or to no file."""
    target = (cache / path).resolve()
    return target if target.is_relative_to(cache) and target != cache and target.is_file() else None


def files_in_cache(data, cache: Path):
    """(``data`` with each file named by its path inside the cache named by its full path, whether any was);
    ValueError, one line, for such a path that names no uploaded file."""
    if isinstance(data, list):
        items = [files_in_cache(item, cache) for item in data]
        return [item for item, _ in items], any(changed for _, changed in items)
    if not isinstance(data, dict):
        return data, False
    if (data.get("meta") or {}).get("_type") == FILE_DATA and isinstance(data.get("path"), str):
        if not is_relative(data["path"]):
            return data, False  # a full path: gradio accepts it from its cache only
        target = in_cache(cache, data["path"])
        if target is None:
            name = data.get("orig_name") or Path(data["path"]).name
            raise ValueError(f"{name} is not a file uploaded to this app: upload it again")
        return {**data, "path": str(target)}, True
    items = {key: files_in_cache(value, cache) for key, value in data.items()}
    return {key: item for key, (item, _) in items.items()}, any(changed for _, changed in items.values())


def relative_upload_paths(send, cache: Path):
    """``send`` for the upload route: its answer, a JSON list of paths in the cache, with each path inside it."""
    def rewrite(start: dict, body: bytes) -> tuple[dict, bytes]:
        if start["status"] != 200:
            return start, body
        paths = json.loads(body)
        return start, json.dumps([os.path.relpath(p, cache) if Path(p).resolve().is_relative_to(cache)
                                  else Path(p).name for p in paths]).encode()

    return rewritten_body(send, rewrite)


async def refuse(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def server_options(policy: ServingPolicy, logins: list[tuple[str, str]] | None) -> dict:
    """gradio launch options beyond the defaults, in serving mode: no FastAPI schema at /openapi.json, no server
    path in what gradio says about uploads (:class:`UploadPaths`), and with logins, nothing for a visitor who has
    not logged in but the login page."""
    if not policy.serving:
        return {}
    middleware = [Middleware(UploadPaths)]
    if logins:
        middleware.insert(0, Middleware(LoggedOutGate))  # the outermost: before a login, nothing else is reached
    return {"app_kwargs": {"openapi_url": None, "middleware": middleware}}


def login_of(request: gr.Request | None) -> str | None:
    """Who sent a request: the login, or the browser session where the app asks for none; None outside a
    request (a direct call)."""
    if request is None or getattr(request, "request", None) is None:
        return None
    return request.username or f"session {request.session_hash}"


def queued_runs(request: gr.Request, *api_names: str) -> list[tuple[str, object]]:
    """(login, request) of every run of the endpoints ``api_names`` queued or running in the app's queue now.
    gradio has no public call for it: this reads its queue (waiting events per concurrency id, and the jobs
    running), and fails loudly if those are gone."""
    queue = request.request.app.get_blocks()._queue
    waiting = [event for group in queue.event_queue_per_concurrency_id.values() for event in group.queue]
    running = [event for job in queue.active_jobs if job for event in job]
    return [(event.username or f"session {event.session_hash}", event.request) for event in waiting + running
            if event.fn.api_name in api_names]


def admit_run(runs: RunsPerLogin | None, request: gr.Request | None) -> None:
    """Refuse, in one line in the page, a training run past its login's limit of training runs queued or running,
    Quick SFT and reversal runs counted together (served to a class: ``runs``, one for the whole app); the
    validator of each training endpoint calls it before the run joins the queue."""
    login = login_of(request)
    if runs is None or login is None:
        return
    if not runs.admit(login, request.request, queued_runs(request, *TRAINING_RUNS)):
        held = "a training run" if runs.limit == 1 else f"{runs.limit} training runs (the most one login may)"
        raise Refusal(f"You already have {held} (Quick SFT or the reversal experiment) queued or running: wait "
                       "until it ends, or cancel it, before starting another.", print_exception=False)


def run_started(runs: RunsPerLogin | None, request: gr.Request) -> None:
    """What a training run's handler does first: its admission (:func:`admit_run`) now counts as running."""
    if runs is not None:
        runs.started(request.request)
