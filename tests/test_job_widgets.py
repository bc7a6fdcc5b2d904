"""The notebook job monitor: it follows a job's state, metrics and log through the handle's methods."""
from pathlib import Path

from llada_play.ui.job_widgets import JobMonitor
from llada_play.jobs import submit
from llada_play.training.trainer import TrainConfig


class ScriptedHandle:
    """A stand-in with JobHandle's reading methods whose job advances one state per ``advance()``."""

    job_id = "42"

    def __init__(self):
        self.rows, self.state, self.cancelled = [], "PENDING", 0

    def advance(self, *losses):
        self.state = "RUNNING"
        for loss in losses:
            self.rows.append({"step": len(self.rows) + 1, "loss": loss})

    def status(self):
        return self.state

    def metrics(self):
        return list(self.rows)

    def log_tail(self, lines=20):
        return "\n".join(f"step {r['step']} loss {r['loss']}" for r in self.rows[-lines:])

    def cancel(self):
        self.cancelled += 1
        self.state = "CANCELLED"


def test_monitor_updates_on_refresh_and_cancel_calls_the_handle():
    handle = ScriptedHandle()
    monitor = JobMonitor(handle)
    assert "PENDING" in monitor.status_line.value and list(monitor.figure.data[0].x) == []
    assert not monitor.cancel_button.disabled
    handle.advance(3.0, 2.5)
    assert monitor.refresh() == "RUNNING"
    assert list(monitor.figure.data[0].x) == [1, 2] and list(monitor.figure.data[0].y) == [3.0, 2.5]
    assert "RUNNING" in monitor.status_line.value and "step 2, loss 2.5000" in monitor.status_line.value
    assert "step 2 loss 2.5" in monitor.log_view.value
    handle.advance(2.0)
    monitor.refresh()
    assert list(monitor.figure.data[0].y) == [3.0, 2.5, 2.0]
    monitor.cancel_button.click()
    assert handle.cancelled == 1 and "CANCELLED" in monitor.status_line.value
    assert monitor.cancel_button.disabled and monitor.error is None and monitor.failure.value == ""


def test_follow_returns_the_final_state():
    handle = ScriptedHandle()
    monitor = JobMonitor(handle, poll_s=0.01)
    handle.advance(1.0)
    original = handle.status
    calls = iter(["RUNNING", "RUNNING", "COMPLETED"])
    handle.status = lambda: next(calls, "COMPLETED")
    assert monitor.follow(timeout_s=5) == "COMPLETED" and monitor.done()
    assert "COMPLETED" in monitor.status_line.value and monitor.error is None
    handle.status = original


def test_a_failed_job_shows_its_error_and_log_tail(tmp_path: Path):
    config = TrainConfig(output_dir=str(tmp_path / "bad"), max_steps=5, progress=False)
    job = submit(config, "pretrain", corpus=str(tmp_path / "no-such-corpus"), preset="tiny", vocab_size=300)
    monitor = JobMonitor(job, poll_s=0.2)
    assert monitor.follow(timeout_s=60) == "FAILED"
    assert "no-such-corpus does not exist" in monitor.error and "FAILED" in monitor.status_line.value
    assert "no-such-corpus does not exist" in monitor.failure.value
    assert monitor.cancel_button.disabled and list(monitor.figure.data[0].x) == []
    # an empty chart says why it is empty
    assert "ended FAILED before its first log step" in monitor.figure.layout.annotations[0].text


def test_a_monitor_display_carries_a_picture_of_its_plot():
    import base64

    from tests.browser import require_chromium

    handle = ScriptedHandle()
    handle.advance(3.0, 2.5, 2.0)
    monitor = JobMonitor(handle)
    figure = monitor.static_figure()
    assert list(figure.data[0].y) == [3.0, 2.5, 2.0] and figure.layout.title.text == "loss of job 42: RUNNING"
    require_chromium()
    bundle = monitor._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"])[:4] == b"\x89PNG"


KERNEL_CELL = '''
import time
from llada_play.ui.job_widgets import JobMonitor

class Handle:
    job_id = "7"
    def __init__(self):
        self.state, self.cancelled = "RUNNING", 0
    def status(self):
        return self.state
    def metrics(self):
        return [{"step": 1, "loss": 2.0}]
    def log_tail(self, lines=20):
        return "step 1"
    def cancel(self):
        self.cancelled += 1
        self.state = "CANCELLED"
        print("CANCEL", time.monotonic(), flush=True)

handle = Handle()
monitor = JobMonitor(handle, poll_s=0.1)
monitor.show()
print("BUTTON", monitor.cancel_button.model_id, flush=True)
state = await monitor.follow_async(timeout_s=60)
print("ENDED", state, handle.cancelled, flush=True)
'''


def test_cancel_is_clicked_through_while_a_notebook_cell_follows_the_job():
    """In a real ipykernel, the way JupyterLab delivers a click (a comm message on the shell channel) reaches the
    Cancel button while the cell awaits ``follow_async``: the job is cancelled at once, and the cell ends then (after
    its final picture, which kaleido draws in Chromium: seconds on a loaded machine), not when the follow times out."""
    import time

    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(Path(__file__).resolve().parent.parent))
    try:
        kc.execute(KERNEL_CELL)
        button, cancelled, ended, deadline = None, None, None, time.monotonic() + 60
        while ended is None and time.monotonic() < deadline:
            msg = kc.get_iopub_msg(timeout=30)
            if msg["msg_type"] == "error":
                raise AssertionError("\n".join(msg["content"]["traceback"]))
            text = msg["content"].get("text", "") if msg["msg_type"] == "stream" else ""
            for line in text.splitlines():
                if line.startswith("BUTTON"):
                    button = line.split()[1]
                    clicked = time.monotonic()
                    click = {"comm_id": button, "data": {"method": "custom", "content": {"event": "click"}}}
                    kc.session.send(kc.shell_channel.socket, kc.session.msg("comm_msg", click))
                if line.startswith("CANCEL "):
                    cancelled = float(line.split()[1])  # CLOCK_MONOTONIC: one clock for both processes
                if line.startswith("ENDED"):
                    ended = line.split()[1:]
        assert button is not None and cancelled is not None and ended == ["CANCELLED", "1"], ended
        assert cancelled - clicked < 5
        assert time.monotonic() - clicked < 30  # the follow's timeout is 60 s
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
