"""The Quick SFT tab: fine-tune the session's model on a small JSONL file, watching the loss and the time left; a
finished run's model becomes the session's model, a cancelled run's only if the visitor chooses it."""
from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

from ...model.checkpoint import default_model_path
from ..background import Cancel, Finished, Report, RunsPerLogin, request_cancel, run_in_background
from ..errors import Refusal, shown_in_page
from ..paths import ROOT, SFT_TRAIN_FILE, TASK_FILE
from ..progress import Phase, RunClock, estimate_words, format_duration
from ..registry import DEFAULT_KEY, ModelRegistry
from ..serving import LOCAL, QUICK_SFT, TRAINING, ServingPolicy, admit_run, checked_upload, run_started

EVAL_ROWS = 40
DEFAULT_STEPS = 1000
# Measured: the shipped arithmetic set at batch 32 on the shipped default model, 1000 steps in 2 min 38 s on an
# idle 2-core CPU (about 12 minutes on a busy one); a step's time grows with the batch.
IDLE_SECONDS_PER_STEP, IDLE_BATCH = 0.158, 32
# What follows the steps, in steps' time (measured: 1.4 s after 300 steps of 0.39 s, saving and answering the 40
# held-out prompts again; saving alone is about half of it)
AFTER_STEPS, SAVE_STEPS = 4, 2
SHIPPED_SET = "the shipped arithmetic set"
USE_HALF_TRAINED, KEEP_PREVIOUS = "Use the half-trained model", "Keep the previous model"


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


def data_words(file) -> str:
    """The training rows in words: the upload's file name, or the shipped set."""
    return SHIPPED_SET if file is None else f"`{Path(file if isinstance(file, str) else file.name).name}`"


def idle_estimate(steps: int, batch: int) -> str:
    """What ``steps`` took on an idle 2-core CPU (measured at batch 32, scaled by the batch), in words."""
    return format_duration(steps * IDLE_SECONDS_PER_STEP * max(batch, 1) / IDLE_BATCH)


def sft_work(registry: ModelRegistry, key: str, file, steps: int, lr: float, batch: int, lora: int, cancel: Cancel,
             policy: ServingPolicy = LOCAL):
    """The training run as a function of its progress report (each step's (step, loss, time.monotonic() at its
    end)); it stops after the current step once ``cancel`` is set, and still saves and returns its summary."""
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
            report((record.step, record.loss, time.monotonic()))
            if cancel.is_set():
                record.stop()

        return run_sft(model_dir, data, config, batch_size=batch, lora_rank=lora, hooks=hook, eval_data=eval_data,
                       eval_limit=EVAL_ROWS)

    return work


def model_words(registry: ModelRegistry, names: dict[str, str], key: str) -> str:
    """A session's model in words: a run of this tab by what it was, a shipped model by its name."""
    if key in names:
        return names[key]
    if key == DEFAULT_KEY:
        return "the shipped default"
    return registry.shipped_name(key) or f"`{key}`"


def saved_where(registry: ModelRegistry, key: str) -> str:
    """Where a run's model was saved, for the small print: its name under the models folder when served, else
    its path (relative to the project where it is inside it)."""
    path = registry.path_of(key) or key
    if not registry.serving:
        try:
            return str(Path(path).resolve().relative_to(ROOT))
        except ValueError:
            return str(path)
    return key


def described(registry: ModelRegistry, key: str, name: str) -> str:
    """The model description of the page (``registry.describe``) with a run of this tab named in words, not by its
    folder; the folder follows in small print."""
    text = registry.describe(key)
    raw = f"`{key}`"
    text = text.replace(raw, f"**{name}**", 1) if raw in text else f"**{name}**. {text}"
    return f"{text}  \n<small>Saved in `{saved_where(registry, key)}`.</small>"


def score_words(summary: dict) -> str:
    """The run's score: held-out accuracy before and after (the shipped set), else its last training loss."""
    if "held_out_accuracy" in summary:
        accuracy = summary["held_out_accuracy"]
        return (f"Held-out accuracy: {accuracy['before']['accuracy']:.0%} before, "
                f"{accuracy['after']['accuracy']:.0%} after.")
    return f"Last training loss: {summary['final_train_loss']:.3f}."


def finished_view(registry: ModelRegistry, names: dict[str, str], key: str, file, summary: dict,
                  losses: list[float], steps: int) -> tuple:
    """(model key, cancel, status, plot, model info, choice, half-trained) once training is over. A run that did
    all its steps is the session's model now; a cancelled one waits for the visitor's choice (the session keeps
    its model until "use")."""
    new_key = registry.key_of(summary["final_model"])
    registry.get(new_key)
    done, took = summary["steps"], format_duration(summary["wall_time_s"]).removeprefix("about ")
    if done < steps:
        name = f"Quick SFT on {data_words(file)}, cancelled at step {done} of {steps}"
        names[new_key] = name
        status = (f"Done (cancelled) at step {done} of {steps}, in {took}. {score_words(summary)} Keep this "
                  f"half-trained model, or keep the previous one ({model_words(registry, names, key)})?")
        return (key, None, status, loss_figure(losses), gr.update(), gr.update(visible=True),
                {"key": new_key, "name": name})
    name = f"Quick SFT on {data_words(file)}, {done} steps"
    names[new_key] = name
    return (new_key, None, f"Done: {done} steps in {took}. {score_words(summary)} Now using the fine-tuned model "
                           f"({name}) in every tab.", loss_figure(losses), described(registry, new_key, name),
            gr.update(visible=False), None)


def step_status(clock: RunClock, step: int, steps: int, loss: float, at: float) -> str:
    """The status line that streams with the loss: the step, the loss, the time left from this machine's speed
    (and, once known, the whole run's estimate)."""
    return f"Step {step} / {steps}, loss {loss:.3f}. {estimate_words(clock, at)}"


def quick_sft(registry: ModelRegistry, policy: ServingPolicy, key: str, file, steps: float, lr: float, batch: float,
              lora: float, _running: Cancel | None, names: dict[str, str] | None = None):
    """Stream (model key, cancel, status, loss plot, model info, choice, half-trained) while fine-tuning. A page
    that goes away (the stream is closed) cancels the run after its current step."""
    names = {} if names is None else names
    cancel, steps, batch = Cancel(), int(steps), int(batch)
    started = time.monotonic()
    work = sft_work(registry, key, file, steps, float(lr), batch, int(lora), cancel, policy)
    losses: list[float] = []
    clock = RunClock([Phase(steps, AFTER_STEPS if file is None else SAVE_STEPS, "sft")], started)
    keep = gr.update()
    preparing = ("loading the model and the rows, answering the held-out prompts first" if file is None
                 else "loading the model and the rows")
    yield (key, cancel, f"Preparing ({preparing}). {steps} steps take {idle_estimate(steps, batch)} on an idle "
                        "2-core CPU; this machine's own estimate follows its first steps.", None, keep,
           gr.update(visible=False), None)
    try:
        with shown_in_page(Exception):
            for event in run_in_background(work):
                if isinstance(event, Finished):
                    clock.finished(time.monotonic())
                    yield finished_view(registry, names, key, file, event.result, losses, steps)
                    return
                step, loss, at = event.value
                losses.append(loss)
                clock.step(0, step, at)
                if step % 5 == 0 or step == steps:
                    yield (key, cancel, step_status(clock, step, steps, loss, time.monotonic()), loss_figure(losses),
                           keep, keep, keep)
    finally:
        cancel.set()  # nobody is watching any more (or it is over): never train on for nobody


def cancel_sft(cancel: Cancel | None) -> str:
    request_cancel(cancel)
    return "Cancelling after the current step (then saving the half-trained model)..."


def use_half_trained(registry: ModelRegistry, half_trained: dict | None) -> tuple:
    """(model key, model info, status, choice, half-trained): the cancelled run's model becomes the session's."""
    if not half_trained:
        raise Refusal("No half-trained model is waiting: this choice follows a cancelled Quick SFT run.")
    key, name = half_trained["key"], half_trained["name"]
    with shown_in_page():
        registry.get(key)
    return (key, described(registry, key, name), f"Now using the half-trained model ({name}) in every tab.",
            gr.update(visible=False), None)


def keep_previous(registry: ModelRegistry, names: dict[str, str], half_trained: dict | None, key: str) -> tuple:
    """(status, choice, half-trained): the session keeps its model; the half-trained one stays saved."""
    if not half_trained:
        raise Refusal("No half-trained model is waiting: this choice follows a cancelled Quick SFT run.")
    return (f"Kept the previous model ({model_words(registry, names, key)}). The half-trained one stays saved in "
            f"`{saved_where(registry, half_trained['key'])}`.", gr.update(visible=False), None)


def sft_tab(registry: ModelRegistry, model_key: gr.State, model_info: gr.Markdown,
            policy: ServingPolicy = LOCAL, runs: RunsPerLogin | None = None) -> None:
    """Build the tab and wire it; a finished run switches the session's model and its description, a cancelled
    one only when "use" is chosen. Runs take turns with the other training runs (``policy.training_slots`` at
    once, the queue position shown); served to a class, ``runs`` (the app's one, shared with the reversal tab)
    holds each login to ``policy.max_queued_runs_per_login`` training runs queued or running, of either tab."""
    names: dict[str, str] = {}  # model key -> the words of the run that trained it (this app's runs)

    def admit(_key, _file, _steps, _lr, _batch, _lora, _running, request: gr.Request) -> tuple:
        """gradio calls it with the run's inputs before the run joins the queue; it answers for each input."""
        admit_run(runs, request)
        return (gr.validate(True, ""),) * 7

    def fine_tune(key, file, steps, lr, batch, lora, running, request: gr.Request):
        """Fine-tune the session's model on the uploaded rows (or the shipped arithmetic set), streaming the loss."""
        run_started(runs, request)
        yield from quick_sft(registry, policy, key, file, steps, lr, batch, lora, running, names)

    with gr.Tab("Quick SFT"):
        gr.Markdown("Fine-tune the current model on a small JSONL file (rows with `prompt`/`response` or chat "
                    f"`messages`, at most {policy.max_upload_bytes / 2**20:.0f} MB), or on the shipped arithmetic set, "
                    "watching the loss. The result becomes this tab's model in every tab. "
                    f"{DEFAULT_STEPS} steps take {idle_estimate(DEFAULT_STEPS, IDLE_BATCH)} on an idle 2-core "
                    "CPU (several times that on a busy one); the run shows its own estimate as it starts.")
        with gr.Row():
            upload = gr.File(label="Training rows (.jsonl)", file_types=[".jsonl"], scale=1, min_width=180)
            # two controls a line, each wide enough for its label, its number box and the slider's "2000"
            with gr.Column(scale=3, min_width=480):
                with gr.Row():
                    steps = gr.Slider(10, 2000, value=DEFAULT_STEPS, step=10, label="Steps", min_width=240,
                                      info="optimizer steps")
                    lr = gr.Number(value=1e-3, label="Learning rate", min_width=200, info="peak, after warm-up")
                with gr.Row():
                    batch = gr.Slider(4, 64, value=32, step=4, label="Batch size", min_width=240,
                                      info="rows a step")
                    lora = gr.Slider(0, 32, value=0, step=4, label="LoRA rank", min_width=200,
                                     info="0 = full fine-tune")
                with gr.Row():
                    go = gr.Button("Fine-tune", variant="primary")
                    cancel_button = gr.Button("Cancel")
        status = gr.Markdown("")
        with gr.Row(visible=False) as choice:
            use = gr.Button(USE_HALF_TRAINED, variant="primary")
            keep = gr.Button(KEEP_PREVIOUS)
        plot = gr.Plot(label="Training loss")
        cancel = gr.State(None, delete_callback=request_cancel)  # a session that ends stops its run
        half_trained = gr.State(None)  # a cancelled run's {"key", "name"}, until the visitor chooses
    go.click(fine_tune, [model_key, upload, steps, lr, batch, lora, cancel],
             [model_key, cancel, status, plot, model_info, choice, half_trained], api_name=QUICK_SFT,
             validator=admit, concurrency_limit=policy.training_slots, concurrency_id=TRAINING)
    cancel_button.click(cancel_sft, [cancel], [status], api_name="cancel_sft")
    use.click(lambda pending: use_half_trained(registry, pending), [half_trained],
              [model_key, model_info, status, choice, half_trained], api_name="sft_use_half_trained")
    keep.click(lambda pending, key: keep_previous(registry, names, pending, key), [half_trained, model_key],
               [status, choice, half_trained], api_name="sft_keep_previous")
