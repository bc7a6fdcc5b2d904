"""The Quick SFT tab: fine-tune the session's model on a small JSONL file, watching the loss; the result becomes
the session's model."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from ...model.checkpoint import default_model_path
from ..background import Cancel, Finished, Report, RunsPerLogin, request_cancel, run_in_background
from ..errors import shown_in_page
from ..paths import SFT_TRAIN_FILE, TASK_FILE
from ..registry import ModelRegistry
from ..serving import LOCAL, QUICK_SFT, TRAINING, ServingPolicy, admit_run, checked_upload, run_started

EVAL_ROWS = 40


def loss_figure(losses: list[float]):
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=list(range(1, len(losses) + 1)), y=losses, mode="lines", name="loss"))
    fig.update_layout(template="plotly_white", height=300, xaxis_title="step", yaxis_title="SFT loss",
                      margin=dict(l=50, r=20, t=30, b=40))
    return fig


def training_rows(file, max_bytes: int) -> tuple[Path, Path | None]:
    """(rows to train on, held-out rows to answer before and after): the upload (checked), or the shipped
    arithmetic set."""
    if file is None:
        return SFT_TRAIN_FILE, TASK_FILE
    return checked_upload(Path(file if isinstance(file, str) else file.name), max_bytes), None


def sft_work(registry: ModelRegistry, key: str, file, steps: int, lr: float, batch: int, lora: int, cancel: Cancel,
             policy: ServingPolicy = LOCAL):
    """The training run as a function of its progress report (each step's (step, loss)); it stops after the
    current step once ``cancel`` is set, and still saves and returns its summary."""
    from ...recipes import run_sft
    from ...training.trainer import TrainConfig

    data, eval_data = training_rows(file, policy.max_upload_bytes)
    with shown_in_page():
        registry.get(key)
        model_dir = registry.path_of(key) or str(default_model_path())
    config = TrainConfig(objective="sft", output_dir=str(registry.new_run_dir("app-sft")), max_steps=steps,
                         lr=lr, warmup_steps=min(50, steps), save_every=max(steps, 1), log_every=1, progress=False)

    def work(report: Report) -> dict:
        def hook(record) -> None:
            report((record.step, record.loss))
            if cancel.is_set():
                record.stop()

        return run_sft(model_dir, data, config, batch_size=batch, lora_rank=lora, hooks=hook, eval_data=eval_data,
                       eval_limit=EVAL_ROWS)

    return work


def finished_view(registry: ModelRegistry, summary: dict, losses: list[float], cancelled: bool) -> tuple:
    """(model key, cancel, status, plot, model info) once training is over: the session now uses its model."""
    new_key = registry.key_of(summary["final_model"])
    registry.get(new_key)
    note = ""
    if "held_out_accuracy" in summary:
        accuracy = summary["held_out_accuracy"]
        note = (f" Held-out accuracy: {accuracy['before']['accuracy']:.0%} before, "
                f"{accuracy['after']['accuracy']:.0%} after.")
    stopped = " (cancelled)" if cancelled else ""
    return (new_key, None, f"Done{stopped}: {summary['steps']} steps in {summary['wall_time_s']:.0f} s.{note} "
                           f"Now using `{new_key}`.", loss_figure(losses), registry.describe(new_key))


def quick_sft(registry: ModelRegistry, policy: ServingPolicy, key: str, file, steps: float, lr: float, batch: float,
              lora: float, _running: Cancel | None):
    """Stream (model key, cancel, status, loss plot, model info) while fine-tuning. A page that goes away
    (the stream is closed) cancels the run after its current step."""
    cancel, steps = Cancel(), int(steps)
    work = sft_work(registry, key, file, steps, float(lr), int(batch), int(lora), cancel, policy)
    losses: list[float] = []
    yield key, cancel, "Preparing (loading rows, answering the held-out prompts first)...", None, gr.update()
    try:
        with shown_in_page(Exception):
            for event in run_in_background(work):
                if isinstance(event, Finished):
                    yield finished_view(registry, event.result, losses, cancel.is_set())
                    return
                step, loss = event.value
                losses.append(loss)
                if step % 5 == 0 or step == steps:
                    yield key, cancel, f"Step {step} / {steps}, loss {loss:.3f}", loss_figure(losses), gr.update()
    finally:
        cancel.set()  # nobody is watching any more (or it is over): never train on for nobody


def cancel_sft(cancel: Cancel | None) -> str:
    request_cancel(cancel)
    return "Cancelling after the current step..."


def sft_tab(registry: ModelRegistry, model_key: gr.State, model_info: gr.Markdown,
            policy: ServingPolicy = LOCAL, runs: RunsPerLogin | None = None) -> None:
    """Build the tab and wire it; a finished run switches the session's model and its description. Runs take
    turns with the other training runs (``policy.training_slots`` at once, the queue position shown); served to a
    class, ``runs`` (the app's one, shared with the reversal tab) holds each login to
    ``policy.max_queued_runs_per_login`` training runs queued or running, of either tab."""

    def admit(_key, _file, _steps, _lr, _batch, _lora, _running, request: gr.Request) -> tuple:
        """gradio calls it with the run's inputs before the run joins the queue; it answers for each input."""
        admit_run(runs, request)
        return (gr.validate(True, ""),) * 7

    def fine_tune(key, file, steps, lr, batch, lora, running, request: gr.Request):
        """Fine-tune the session's model on the uploaded rows (or the shipped arithmetic set), streaming the loss."""
        run_started(runs, request)
        yield from quick_sft(registry, policy, key, file, steps, lr, batch, lora, running)

    with gr.Tab("Quick SFT"):
        gr.Markdown("Fine-tune the current model on a small JSONL file (rows with `prompt`/`response` or chat "
                    f"`messages`, at most {policy.max_upload_bytes / 2**20:.0f} MB), or on the shipped arithmetic set, "
                    "watching the loss. The result becomes this tab's model in every tab.")
        with gr.Row():
            upload = gr.File(label="Training rows (.jsonl)", file_types=[".jsonl"], scale=2)
            with gr.Column(scale=3):
                with gr.Row():
                    steps = gr.Slider(10, 2000, value=1000, step=10, label="Steps")
                    lr = gr.Number(value=1e-3, label="Learning rate")
                    batch = gr.Slider(4, 64, value=32, step=4, label="Batch size")
                    lora = gr.Slider(0, 32, value=0, step=4, label="LoRA rank (0 = full fine-tune)")
                with gr.Row():
                    go = gr.Button("Fine-tune", variant="primary")
                    cancel_button = gr.Button("Cancel")
        status = gr.Markdown("")
        plot = gr.Plot(label="Training loss")
        cancel = gr.State(None, delete_callback=request_cancel)  # a session that ends stops its run
    go.click(fine_tune, [model_key, upload, steps, lr, batch, lora, cancel],
             [model_key, cancel, status, plot, model_info], api_name=QUICK_SFT, validator=admit,
             concurrency_limit=policy.training_slots, concurrency_id=TRAINING)
    cancel_button.click(cancel_sft, [cancel], [status], api_name="cancel_sft")
