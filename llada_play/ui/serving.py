"""Serving the app beyond this machine (a class on one server): who may log in, and what a session may do.

On loopback (the default) the app is one person's: every tab may load any path or hub id from the local
cache. Bound to any other address it is in **serving mode** for every session (a reverse proxy makes all
visitors look local, so sessions are not told apart by address): a login is required unless ``--no-auth`` is
given, models come only from the teacher's list (the shipped models and the models folder: no typed paths or
hub ids, so ``--trust-remote-code`` reaches only checkpoints the teacher put there), recorded results only from
the listed files, uploads are capped and checked, and training runs (Quick SFT, the reversal experiment) take
turns through ``training_slots`` with the queue position shown.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ..training.data import DataError, load_sft_rows

LOOPBACK_NAMES = {"localhost", "ip6-localhost", "ip6-loopback"}
TRAINING = "training"  # the gradio concurrency id that training runs share


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

    def allow_model(self, key: str, listed: list[str]) -> None:
        """Refuse a model that is not on the teacher's list, in serving mode."""
        if self.serving and key not in listed:
            raise gr.Error("This app is served to a class: only the listed models can be loaded (typed paths and "
                           "hub ids are turned off). Pick one from the list.")

    def allow_results(self, choice: str, listed: list[str]) -> None:
        if self.serving and choice not in listed:
            raise gr.Error("This app is served to a class: only the listed results files can be loaded. Pick one "
                           "from the list.")


LOCAL = ServingPolicy()


def checked_upload(path: Path, max_bytes: int) -> Path:
    """An uploaded SFT file, refused with a one-line message (never a traceback, never a server path) when it
    is too large, not UTF-8 text, or holds a malformed row."""
    size = path.stat().st_size
    if size > max_bytes:
        raise gr.Error(f"{path.name} is {size / 2**20:.1f} MB; quick SFT takes at most {max_bytes / 2**20:.0f} MB")
    data = path.read_bytes()
    if b"\0" in data:
        raise gr.Error(f"{path.name} is not a text file (it holds NUL bytes): upload JSONL rows")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise gr.Error(f"{path.name} is not UTF-8 text (byte {err.start}): upload JSONL rows") from None
    try:
        load_sft_rows(path)
    except (DataError, ValueError) as err:
        raise gr.Error(str(err).replace(str(path), path.name)) from None
    return path
