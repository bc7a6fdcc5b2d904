"""A notebook monitor for a training job (ipywidgets + a plotly ``FigureWidget`` loss plot).

    from llada_play.ui.job_widgets import JobMonitor
    monitor = JobMonitor(handle)   # status line, live loss plot, log tail, Cancel button
    monitor.show()                 # display it (and keep the handle that follow() updates at the end)
    await monitor.follow_async()   # in a notebook: refresh until the job ends, Cancel clickable meanwhile
    monitor.follow()               # in a script: the same, blocking (in a notebook a click waits for the cell)
    monitor.start()                # or: refresh from a background thread; the cell returns at once

Its display carries a PNG of the loss plot too (``ui/static.py``), taken again when a follow returns, so that
the stored notebook shows the finished curve where widgets cannot run.

The monitor only reads through the handle (``status``, ``metrics``, ``log_tail``, ``cancel``), so it works for
any :class:`llada_play.jobs.JobHandle`, local or Slurm.
"""
from __future__ import annotations

import html
import threading
import time

import ipywidgets as widgets

from ..jobs import FINISHED_OK, RUNNING
from .static import StaticFallback

STATUS_COLOURS = {"COMPLETED": "#2b8a3e", "RUNNING": "#1971c2", "PENDING": "#868e96", "CANCELLED": "#e67700"}


def status_html(job_id: str, status: str, rows: list[dict], resumes_from: int | None = None) -> str:
    """One line: the job, its state (coloured), the latest logged step and loss, and whether it continues an
    earlier run found in its folder."""
    colour = STATUS_COLOURS.get(status, "#c92a2a")
    last = rows[-1] if rows else None
    progress = f" &middot; step {last['step']}, loss {last['loss']:.4f}" if last and "loss" in last else ""
    resumed = (f" &middot; <i>resumes the run already in its folder from step {resumes_from}</i>"
               if resumes_from is not None else "")
    return (f"<b>job {html.escape(job_id)}</b>: "
            f"<span style='color:{colour};font-weight:bold'>{html.escape(status)}</span>{progress}{resumed}")


def log_html(text: str) -> str:
    return ("<pre style='font-size:11px;line-height:1.25;max-height:16em;overflow:auto;margin:0'>"
            f"{html.escape(text) or '(no output yet)'}</pre>")


def failure_html(job_id: str, status: str, tail: str) -> str:
    """The error box shown when a job ends without success: its state and the end of its log."""
    return (f"<div style='border:1px solid #c92a2a;background:#fff5f5;padding:6px'>"
            f"<b style='color:#c92a2a'>job {html.escape(job_id)} ended {html.escape(status)}</b>; "
            f"the end of its log:{log_html(tail)}</div>")


class JobMonitor(StaticFallback, widgets.VBox):
    """Status line, loss plot, log tail and a Cancel button for one job; ``refresh()`` reads the job once."""

    def __init__(self, handle, metric: str = "loss", log_lines: int = 12, poll_s: float = 1.0):
        import plotly.graph_objects as go

        self.handle, self.metric, self.log_lines, self.poll_s = handle, metric, log_lines, poll_s
        self.status = "UNKNOWN"
        self._display = None
        self.error: str | None = None  # the failure message (state + log tail) once the job has failed
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.status_line = widgets.HTML()
        self.figure = go.FigureWidget(go.Scatter(x=[], y=[], mode="lines+markers", name=metric))
        self.figure.update_layout(height=280, margin=dict(l=50, r=10, t=30, b=40), template="plotly_white",
                                  title=f"{metric} of job {handle.job_id}", xaxis_title="step", yaxis_title=metric)
        self.log_view = widgets.HTML()
        self.failure = widgets.HTML()
        self.cancel_button = widgets.Button(description="Cancel", button_style="danger", icon="stop",
                                            tooltip="cancel the job (scancel on Slurm)")
        self.cancel_button.on_click(self._cancel)
        super().__init__([widgets.HBox([self.status_line, self.cancel_button]), self.figure, self.log_view, self.failure])
        self.refresh()

    def refresh(self) -> str:
        """Read the job's state, metrics and log once and redraw; returns the state."""
        with self._lock:  # the polling thread and the notebook may both refresh
            status, rows = self.handle.status(), self.handle.metrics()
            tail = self.handle.log_tail(self.log_lines)
            points = [(r["step"], r[self.metric]) for r in rows if self.metric in r]
            with self.figure.batch_update():
                self.figure.data[0].x = [s for s, _ in points]
                self.figure.data[0].y = [v for _, v in points]
                self.figure.layout.annotations = [] if points else [dict(
                    text=f"no {self.metric} logged yet" if status in RUNNING | {"UNKNOWN"}
                    else f"no {self.metric} was logged: the job ended {status} before its first log step",
                    xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False, font=dict(color="#868e96"))]
            self.status_line.value = status_html(self.handle.job_id, status, rows,
                                                 getattr(self.handle, "resumes_from", None))
            self.log_view.value = log_html(tail)
            ended = status not in RUNNING | {"UNKNOWN"}
            self.cancel_button.disabled = ended
            if ended and status not in FINISHED_OK and status != "CANCELLED":
                long_tail = self.handle.log_tail(30)
                self.error = f"job {self.handle.job_id} ended {status}; the end of its log:\n{long_tail}"
                self.failure.value = failure_html(self.handle.job_id, status, long_tail)
            self.status = status
            return status

    def done(self) -> bool:
        return self.status not in RUNNING | {"UNKNOWN"}

    def show(self) -> None:
        """Display the monitor in the notebook; :meth:`follow` updates this display (and its picture) at the end."""
        from IPython.display import display

        self._display = display(self, display_id=True)

    def follow(self, timeout_s: float | None = None) -> str:
        """Refresh every ``poll_s`` until the job ends (or ``timeout_s`` passes); returns the last state.

        Blocking: in a notebook the kernel holds widget events while a cell runs, so a click on Cancel would wait
        for the cell to end. Notebooks use ``await monitor.follow_async()``."""
        for wait in self._polls(timeout_s):
            time.sleep(wait)
        return self._finished()

    async def follow_async(self, timeout_s: float | None = None) -> str:
        """:meth:`follow` for a notebook cell (``await monitor.follow_async()``): between refreshes the cell
        waits on the kernel's event loop, where ipykernel (7.4 and later) hands widget messages through to a
        waiting cell, so a click on Cancel stops the job at once."""
        import asyncio

        for wait in self._polls(timeout_s):
            await asyncio.sleep(wait)
        return self._finished()

    def _polls(self, timeout_s: float | None):
        """The waits of a follow: yields ``poll_s`` (the caller waits it, blocking or not), then refreshes, until
        the job ends or ``timeout_s`` passes."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.done() and (deadline is None or time.monotonic() < deadline):
            yield self.poll_s
            self.refresh()

    def _finished(self) -> str:
        if self._display is not None:
            self._display.update(self)  # the stored output now pictures the finished job
        return self.status

    def static_figure(self):
        import plotly.graph_objects as go

        figure = go.Figure(self.figure)
        figure.update_layout(title=f"{self.metric} of job {self.handle.job_id}: {self.status}")
        return figure

    def start(self) -> "JobMonitor":
        """Refresh from a daemon thread until the job ends, so that the cell returns and Cancel stays clickable."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self.follow, daemon=True, name=f"monitor-{self.handle.job_id}")
            self._thread.start()
        return self

    def _cancel(self, _button) -> None:
        self.handle.cancel()
        self.refresh()
