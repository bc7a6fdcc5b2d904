"""Long runs (training, experiments) in a thread, consumed by a streaming event handler as events.

Sampling needs none of this (it is a plain iterator, see ``live``); a training run is one blocking call that
reports progress through callbacks, so it runs in a thread and its reports are passed over a queue.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Report = Callable[[Any], None]


class StopRequested(Exception):
    """Raised inside the work by :meth:`Cancel.raise_if_set`: the run ends as :class:`Cancelled`."""


class Cancel:
    """Set from the page (a Cancel button); the work polls it where stopping is safe."""

    def __init__(self) -> None:
        self._flag = threading.Event()

    def set(self) -> None:
        self._flag.set()

    def is_set(self) -> bool:
        return self._flag.is_set()

    def raise_if_set(self) -> None:
        if self._flag.is_set():
            raise StopRequested()


@dataclass(frozen=True)
class Progress:
    value: Any  # what the work passed to ``report``


@dataclass(frozen=True)
class Finished:
    result: Any  # what the work returned


@dataclass(frozen=True)
class Cancelled:
    pass


Event = Progress | Finished | Cancelled

_running = 0  # works whose thread is alive (the server's status line)
_running_lock = threading.Lock()


def running() -> int:
    """How many background works are running now."""
    return _running


def run_in_background(work: Callable[[Report], Any]) -> Iterator[Event]:
    """Run ``work(report)`` in a daemon thread. Yield a :class:`Progress` for each ``report(value)`` it makes,
    then :class:`Finished` with its result, or :class:`Cancelled` if it raised :class:`StopRequested`.
    Any other exception of the work is raised here, in the consumer."""
    events: queue.Queue = queue.Queue()

    def target() -> None:
        global _running
        with _running_lock:
            _running += 1
        try:
            events.put(Finished(work(lambda value: events.put(Progress(value)))))
        except StopRequested:
            events.put(Cancelled())
        except Exception as err:  # handed over to be shown in the page
            events.put(err)
        finally:
            with _running_lock:
                _running -= 1

    threading.Thread(target=target, daemon=True).start()
    while True:
        event = events.get()
        if isinstance(event, Exception):
            raise event
        yield event
        if not isinstance(event, Progress):
            return


def request_cancel(cancel: Cancel | None) -> None:
    """What a Cancel button does: nothing when no run is going."""
    if cancel is not None:
        cancel.set()


class RunsPerLogin:
    """At most ``limit`` runs queued or running per login, so that one student cannot fill the training slots
    a class shares.

    What is queued or running is read from the server's queue at each request (``queued``); a run admitted a
    moment ago counts too until it shows up there or starts, so two requests sent at once are both counted."""

    # How long an admitted run counts by itself, before it is among those queued or running: it joins the queue
    # within milliseconds; one cancelled before the next request looked at the queue holds its login this long.
    SHOWS_UP_S = 2.0

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._admitted: list[tuple[str, object, float]] = []  # (login, request, when)

    def admit(self, login: str, request: object, queued: list[tuple[str, object]]) -> bool:
        """Whether ``login`` may queue one more run (then it counts from now on). ``queued``: (login, request)
        of each run queued or running now; ``request`` names this one (the same object is its ``queued``
        entry once the run is queued)."""
        now = time.monotonic()
        with self._lock:
            self._admitted = [(who, req, when) for who, req, when in self._admitted
                              if now - when < self.SHOWS_UP_S and not any(req is r for _, r in queued)]
            held = sum(who == login for who, _ in queued) + sum(who == login for who, _, _ in self._admitted)
            if held >= self.limit:
                return False
            self._admitted.append((login, request, now))
            return True

    def started(self, request: object) -> None:
        """The admitted run of ``request`` has started: from now on it counts as running (in ``queued``), or once
        over not at all."""
        with self._lock:
            self._admitted = [entry for entry in self._admitted if entry[1] is not request]
