"""The Reversal curse tab: run (or load) the experiment, see its numbers, then ask both trained models."""
from __future__ import annotations

import html
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gradio as gr

from ...experiments.reversal import answer, answer_config, question_ids
from ...model.checkpoint import CheckpointError
from ...model.text import decode_generation, stop_token_ids
from ..background import Cancel, Cancelled, Finished, RunsPerLogin, request_cancel, run_in_background
from ..errors import Refusal, shown_in_page
from ..live import GenerationDone, stream
from ..paths import RECORDED_REVERSAL, ROOT
from ..progress import Phase, RunClock, estimate_words
from ..registry import ModelRegistry
from ..serving import LOCAL, REVERSAL_RUN, TRAINING, ServingPolicy, admit_run, run_started
from ..viz import PieceCache, record_canvas

EMPTY_ANSWER = "(no answer: end-of-text came first)"
RANKING_LABEL = ("Ranking: the true answer against 4 other people's, by log-likelihood per token (exact for the "
                 "autoregressive model, the Monte-Carlo bound for the diffusion model); ★ marks each model's choice")


# Measured (ReversalConfig.quick, the app's run): SCORING_STEPS[kind] is how long scoring one trained model takes,
# in its training steps' time, at QUICK_EVAL_ROWS rows per question set and QUICK_MC_SAMPLES Monte-Carlo samples
# (the diffusion model's likelihood bound); the clock replaces it by the time the first scoring of each kind took.
SCORING_STEPS = {"diffusion": 400.0, "autoregressive": 60.0}
QUICK_EVAL_ROWS, QUICK_MC_SAMPLES = 40, 16
QUICK_IDLE = "about 6 min"  # the quick experiment (two seeds) on an idle 2-core CPU


def scoring_steps(kind: str, config) -> float:
    """The first guess at how long scoring a trained model of ``kind`` takes, in its training steps' time: the
    measured figure scaled by the rows scored (and the diffusion model's Monte-Carlo samples)."""
    rows = config.eval_rows or 100
    scale = rows / QUICK_EVAL_ROWS * (config.mc_samples / QUICK_MC_SAMPLES if kind == "diffusion" else 1.0)
    return SCORING_STEPS.get(kind, SCORING_STEPS["diffusion"]) * scale


def experiment_clock(config, started_at: float) -> tuple[RunClock, list[tuple[int, str]]]:
    """(the run's clock, its (seed, kind) in the order they run): each model's training steps, then its scoring."""
    jobs = [(seed, kind) for seed in config.seeds for kind in config.models]
    return RunClock([Phase(config.steps, scoring_steps(kind, config), kind) for _, kind in jobs], started_at), jobs


def progress_html(fraction: float, message: str) -> str:
    return (f'<div class="lp-progress"><progress value="{fraction:.3f}" max="1" style="width:100%"></progress>'
            f'<div style="white-space:pre-line">{html.escape(message)}</div></div>')


# The recorded result the tab opens on: the long run, where the diffusion model has learnt the facts and the
# effect shows (full.json, the published budget, is undertrained for it; data/reversal/README.md).
FIRST_RESULT = "long.json"


def shown_name(path: Path) -> str:
    """A results file as the page names it: relative to the project (or the models folder), never a full server
    path."""
    for base in (ROOT, Path.cwd()):
        try:
            return str(path.resolve().relative_to(base.resolve()))
        except ValueError:
            continue
    return path.name


def recorded_results(registry: ModelRegistry) -> list[str]:
    """The results files shipped with the project and those written under the models folder, by the names the
    page shows (:func:`shown_name`), the long run first."""
    found = sorted(RECORDED_REVERSAL.glob("*.json"), key=lambda p: (p.name != FIRST_RESULT, p.name))
    if registry.models_dir and registry.models_dir.is_dir():
        found += sorted(registry.models_dir.glob("**/results.json"))
    return [shown_name(p) for p in found]


def results_path(choice: str) -> Path:
    """The file behind a choice: a name relative to the project, or a path typed by hand."""
    path = Path(choice)
    return path if path.is_absolute() or path.exists() else ROOT / path


def held_out_examples(results: dict, per_set: int = 3) -> list[str]:
    """A few held-out questions of each direction, as "set: question | answer" choices."""
    from ...experiments.reversal_experiment import QUESTIONS, ReversalConfig, load_experiment_data

    try:
        files = load_experiment_data(ReversalConfig.from_dict(results["config"]))
    except (ValueError, OSError):
        return []
    return [f"{key}: {row['prompt']} | {row['completion'].strip()}" for key, name in QUESTIONS
            for row in files.get(name, [])[::max(1, len(files.get(name, [])) // per_set)][:per_set]]


def results_view(results: dict, note: str) -> tuple:
    """(results, cancel, status, table, figure, examples, legend): a finished or loaded result, shown."""
    from ...experiments.reversal_experiment import conclusions, directions_legend, results_figure, results_table

    rows = results_table(results)
    note = "\n".join([note, *conclusions(results)])
    kinds = [k for k in rows[0] if k != "metric"] if rows else []
    table = [[r["metric"], *[r[k] for k in kinds]] for r in rows]
    examples = held_out_examples(results)
    return (results, None, progress_html(1.0, note), gr.update(value=table, headers=["metric", *kinds]),
            results_figure(results), gr.update(choices=examples, value=examples[0] if examples else None),
            directions_legend(results["config"]["distractors"]))


def run_experiment(registry: ModelRegistry, overrides: dict | None, _running: Cancel | None):
    """Stream (results, cancel, status, table, figure, examples, legend) while the quick experiment runs, the
    time left (from this machine's speed: :mod:`..progress`) under its progress bar."""
    from ...experiments.reversal_experiment import ReversalConfig, run_reversal_experiment

    out = registry.new_run_dir("reversal-app")
    config = ReversalConfig.quick(**{**(overrides or {}), "output_dir": str(out)})
    cancel = Cancel()
    clock, jobs = experiment_clock(config, time.monotonic())

    def work(report):
        def progress(fraction: float, message: str) -> None:
            cancel.raise_if_set()  # the experiment stops at its next progress report
            now = time.monotonic()
            report((fraction, f"{message}\n{estimate_words(clock, now, 'training step', so_far=True)}"))

        def train_hook(kind: str, seed: int, record) -> None:
            clock.step(jobs.index((seed, kind)), record.step, time.monotonic())

        return run_reversal_experiment(config, progress=progress, train_hooks=train_hook)

    keep = gr.update()
    models = len(jobs)
    yield None, cancel, progress_html(0.0, f"Starting: generating the facts, packing the training text... "
                                           f"{models} models of {config.steps:,} steps each, then scored; this "
                                           "machine's estimate follows the first training steps."), \
        keep, keep, keep, keep
    try:
        with shown_in_page(Exception):
            for event in run_in_background(work):
                if isinstance(event, Cancelled):
                    yield None, None, progress_html(0.0, "Cancelled."), keep, keep, keep, keep
                elif isinstance(event, Finished):
                    yield results_view(event.result, f"Done in {event.result['wall_time_s']:.0f} s; results in "
                                                      f"{shown_name(out / 'results.json')}.")
                else:
                    yield keep, cancel, progress_html(*event.value), keep, keep, keep, keep
    finally:
        cancel.set()  # a page that went away stops its run at the next progress report


def cancel_experiment(cancel: Cancel | None) -> str:
    request_cancel(cancel)
    return progress_html(0.0, "Cancelling after the current step...")


def load_results(registry: ModelRegistry, policy: ServingPolicy, path: str | None) -> tuple:
    from ...experiments.reversal_experiment import read_results

    if not path:
        raise Refusal("choose a results file (written by `llada-play reversal --out ...` or by this tab)")
    policy.allow_results(path, recorded_results(registry))
    where = results_path(path)
    with shown_in_page():
        results = read_results(where)
    seeds = len(results["config"]["seeds"])
    return results_view(results, f"Loaded {shown_name(where)}: {len(results['runs'])} models, {seeds} "
                                 f"seed{'' if seeds == 1 else 's'}.")


def load_on_open(registry: ModelRegistry, policy: ServingPolicy, path: str | None, results: dict | None) -> tuple:
    """When the tab is opened: the chosen recorded result, unless one is already shown."""
    if results is not None or not path:
        return tuple(gr.update() for _ in range(7))
    return load_results(registry, policy, path)


def pick_example(example: str | None) -> tuple[str, str]:
    """(question, true answer) of a "set: question | answer" choice."""
    if not example:
        return "", ""
    question, expected = example.split(" | ", 1)
    return question.split(": ", 1)[1], expected


def trained_models(registry: ModelRegistry, results: dict) -> dict[str, tuple]:
    """kind -> (model, tokenizer) of the result's first seed, through the registry; a clear error when they are
    not on this machine."""
    first = results["config"]["seeds"][0]
    pair = {}
    for run in results["runs"]:
        if run["seed"] == first:
            if not run.get("model_dir"):  # a recorded result whose models were not kept
                raise CheckpointError("this result's models were not kept; load long.json, whose first seed's models "
                                      "ship with the project, or run the quick experiment here to ask questions")
            if not Path(run["model_dir"], "config.json").exists():
                raise CheckpointError(f"this result's models are not on this machine ({run['model_dir']}); run "
                                      "the quick experiment here to ask questions")
            pair[run["model"]] = registry.get(run["model_dir"])
    return pair


def ranking(results: dict, pair: dict[str, tuple], question: str, expected: str):
    """The ranking table for one held-out question (``rank_answers``): candidates, each model's score, a star on
    each model's choice. A question without a known true answer gets an empty table that says so."""
    from ...experiments.reversal_experiment import rank_answers

    ranked = rank_answers(results, {kind: model for kind, (model, _) in pair.items()}, pair["diffusion"][1],
                          question, expected or "")
    if ranked is None:
        return gr.update(value=None, label=RANKING_LABEL + " (pick a held-out question to rank its answers)")
    candidates, scores = ranked
    columns = {}
    for kind, values in scores.items():
        choice = max(range(len(values)), key=values.__getitem__)
        columns[kind] = [f"{v:.2f}" + (" ★" if i == choice else "") for i, v in enumerate(values)]
    table = [[("✓ " if i == 0 else "") + c.strip(), *[col[i] for col in columns.values()]]
             for i, c in enumerate(candidates)]
    return gr.update(value=table, headers=["candidate (✓ true answer)", *columns], label=RANKING_LABEL)


def ask_both(registry: ModelRegistry, results: dict | None, question: str, expected: str):
    """Stream (diffusion answer, autoregressive answer, canvas, ranking) while the diffusion model answers."""
    if results is None:
        raise Refusal("run the quick experiment or load a result first")
    with shown_in_page():
        pair = trained_models(registry, results)
        diffusion, tokenizer = pair["diffusion"]
        ids = question_ids(tokenizer, question)
        ar_answer = ((answer(pair["autoregressive"][0], tokenizer, question) or EMPTY_ANSWER)
                     if "autoregressive" in pair else "n/a")
    pieces, confidences, eos, canvas = PieceCache(tokenizer), {}, stop_token_ids(tokenizer), ""
    waiting, text = gr.update(value=None, label=RANKING_LABEL), ""
    for item in stream(diffusion, ids, answer_config(), tokenizer, record_trace=False):
        if isinstance(item, GenerationDone):
            text = decode_generation(tokenizer, item.output[0], ids.shape[1]) or EMPTY_ANSWER
            yield text, ar_answer, canvas, waiting
            break
        canvas = record_canvas(item, pieces, confidences, eos_ids=eos)
        yield "", ar_answer, canvas, waiting
    yield text, ar_answer, canvas, ranking(results, pair, question, expected)


@dataclass(frozen=True)
class AskSection:
    """The "ask both models" part of the tab."""

    example: gr.Dropdown
    question: gr.Textbox
    button: gr.Button
    diffusion: gr.Textbox
    autoregressive: gr.Textbox
    expected: gr.Textbox
    canvas: gr.HTML
    ranking: gr.Dataframe


def ask_section() -> AskSection:
    gr.Markdown("**Ask both models** (the first seed's pair). Questions are sentence starts; the held-out "
                "templates below were never seen in training.")
    with gr.Row():
        example = gr.Dropdown([], label="Held-out question (direction: question)", scale=3)
        question = gr.Textbox(label="Question", scale=3)
        button = gr.Button("Ask both")
    with gr.Row():
        diffusion = gr.Textbox(label="Diffusion model")
        autoregressive = gr.Textbox(label="Autoregressive model")
        expected = gr.Textbox(label="True answer")
    canvas = gr.HTML(label="The diffusion model's denoising")
    ranking_table = gr.Dataframe(label=RANKING_LABEL, wrap=True)
    return AskSection(example, question, button, diffusion, autoregressive, expected, canvas, ranking_table)


def reversal_tab(registry: ModelRegistry, overrides: dict | None, policy: ServingPolicy = LOCAL,
                 runs: RunsPerLogin | None = None) -> None:
    """Build the tab and wire it; ``overrides`` are settings for its quick run (``ReversalConfig.quick``), which
    takes turns with the other training runs; served to a class, ``runs`` (the app's one, shared with the Quick
    SFT tab) holds each login to ``policy.max_queued_runs_per_login`` training runs queued or running, of either
    tab."""

    def admit(_running, request: gr.Request) -> tuple:
        """gradio calls it with the run's input before the run joins the queue."""
        admit_run(runs, request)
        return (gr.validate(True, ""),)

    def run_quick(running, request: gr.Request):
        """Run the quick experiment (two models trained, two seeds), streaming its progress."""
        run_started(runs, request)
        yield from run_experiment(registry, overrides, running)

    from ...experiments.reversal_experiment import ReversalConfig, directions_legend

    with gr.Tab("Reversal curse") as tab:
        gr.Markdown("**The reversal curse.** Two models of the same shape, one masked-diffusion and one "
                    "autoregressive, learn invented facts (\"Daphne Barrington is the director of ...\") stated in "
                    "one direction only, on the same token windows. Asked the other way round, which one still "
                    f"knows? Run the quick experiment (two seeds, four small models: {QUICK_IDLE} on an idle "
                    "2-core CPU, longer on a busy one; the run shows its own estimate as it starts) or load a "
                    "recorded result, then ask both models yourself.")
        with gr.Row():  # one line on a wide page; on a narrow one the recorded results go to a line of their own
            run = gr.Button("Run the quick experiment", variant="primary", scale=2, min_width=220)
            cancel_button = gr.Button("Cancel", min_width=100)
            recorded = recorded_results(registry)
            choice = gr.Dropdown(recorded, value=recorded[0] if recorded else None, label="Recorded result",
                                 allow_custom_value=not policy.serving, scale=3, min_width=320)
            load = gr.Button("Load", min_width=100)
        status = gr.HTML("")
        # one above the other, each the page's whole width (the chart's labels are long)
        table = gr.Dataframe(label="Accuracy (%), mean ± std over seeds", wrap=True)
        legend = gr.Markdown(directions_legend(ReversalConfig().distractors))
        plot = gr.Plot(label="Both models, both directions")
        ask = ask_section()
        results, cancel = gr.State(None), gr.State(None, delete_callback=request_cancel)
    outputs = [results, cancel, status, table, plot, ask.example, legend]
    run.click(run_quick, [cancel], outputs, api_name=REVERSAL_RUN, validator=admit,
              concurrency_limit=policy.training_slots, concurrency_id=TRAINING)
    cancel_button.click(cancel_experiment, [cancel], [status], api_name="reversal_cancel")
    load.click(partial(load_results, registry, policy), [choice], outputs, api_name="reversal_load")
    tab.select(partial(load_on_open, registry, policy), [choice, results], outputs, api_name=False)
    ask.example.change(pick_example, [ask.example], [ask.question, ask.expected], api_name=False)
    ask.button.click(partial(ask_both, registry), [results, ask.question, ask.expected],
                     [ask.diffusion, ask.autoregressive, ask.canvas, ask.ranking], api_name="reversal_ask",
                     concurrency_limit=2)

