"""llada-play in the browser: watch a masked-diffusion model write, step by step.

    python app.py [--model DIR] [--models-dir runs] [--host 127.0.0.1] [--port 7860]
"""
from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr
import torch

from llada_play.model.adapters import as_denoiser
from llada_play.model.checkpoint import DTYPES, CheckpointError, default_model_path, load_model
from llada_play.experiments.compare import SamplerSetting, accuracy_by_setting, compare_settings
from llada_play.training.data import load_sft_rows
from llada_play.ui.live import GenerationDone, Stepper, iterate_generation
from llada_play.diffusion.remasking import REMASKING
from llada_play.model.text import decode_generation, encode_prompt, parse_constraints, stop_token_ids
from llada_play.diffusion.trace import Trace
from llada_play.ui.viz import (PieceCache, commit_order_figure, commit_order_panels, confidence_figure, record_canvas,
                            render_canvas, trace_step_html)

ROOT = Path(__file__).resolve().parent
# Local fonts only: the page must work with no internet access.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "DejaVu Sans", "sans-serif"],
                          font_mono=["ui-monospace", "DejaVu Sans Mono", "monospace"])
DEFAULT_PROMPT = "Romeo.\n"
# Clicking a masked cell in step mode writes its position into a hidden textbox, whose change event asks the
# server for that position's candidates.
HEAD = """<script>
function lpPick(pos) {
  const box = document.querySelector('#lp-pick textarea, #lp-pick input');
  if (!box) return;
  box.value = String(pos);
  box.dispatchEvent(new Event('input', {bubbles: true}));
}
</script>"""
CSS = "#lp-pick {display: none !important}"
DEFAULT_KEY = "shipped default"
TASK_FILE = ROOT / "data" / "sft" / "arithmetic_test.jsonl"
SFT_TRAIN_FILE = ROOT / "data" / "sft" / "arithmetic_train.jsonl"
MAX_UPLOAD_BYTES = 2 * 2**20  # quick SFT is for small data
STRATEGIES = sorted(REMASKING)
CACHE_CHOICES = ["none", "prefix", "dual"]
TASK_GEN_LENGTH, TASK_BLOCK_LENGTH = 32, 8


class ModelRegistry:
    """Loaded models, shared by all sessions (read-only while sampling); each session picks one by key."""

    def __init__(self, default: str | None, models_dir: str | None, trust_remote_code: bool = False,
                 dtype: torch.dtype | None = torch.float32, device: str = "cpu", device_map: str | None = None):
        self.default = default
        self.trust_remote_code = trust_remote_code
        self.load_options = dict(dtype=dtype, device=device, device_map=device_map)
        self.models_dir = Path(models_dir) if models_dir else None
        self._loaded: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def choices(self) -> list[str]:
        keys = [DEFAULT_KEY]
        if self.models_dir and self.models_dir.is_dir():
            found = {p.parent for p in self.models_dir.glob("*/config.json")}
            found |= {p.parent for p in self.models_dir.glob("*/*/config.json")}
            keys += sorted(str(p) for p in found)
        return keys

    def path_of(self, key: str) -> str | None:
        return self.default if key == DEFAULT_KEY else key

    def get(self, key: str):
        """(model, tokenizer) for a key, loading it once; raises CheckpointError with the reason."""
        with self._lock:
            if key not in self._loaded:
                model, tokenizer = load_model(self.path_of(key), trust_remote_code=self.trust_remote_code,
                                              **self.load_options)
                if tokenizer is None:
                    raise CheckpointError(f"{key} has no tokenizer: the app needs text in and out")
                self._loaded[key] = (model, tokenizer)
            return self._loaded[key]

    def describe(self, key: str) -> str:
        try:
            model, _ = self.get(key)
        except ValueError as err:  # CheckpointError, or a model too large for this machine
            return f"**No model loaded** ({err}). Train one with `llada-play train` or pick another."
        n = sum(p.numel() for p in model.parameters()) / 1e6
        kind = "causal (autoregressive)" if getattr(model.config, "causal", False) else "masked diffusion"
        denoiser = as_denoiser(model)
        layout = getattr(model.config, "source_layout", None)
        family = f"{layout} checkpoint read natively" if layout else f"{denoiser.family.name} family"
        return f"Model: `{key}` ({n:.1f}M parameters, {kind}, {family}, mask id {denoiser.mask_id})"


def token_label(tokenizer, token: int) -> str:
    from llada_play.ui.viz import token_text

    return token_text(tokenizer.decode([token]))


def sampler_kwargs(gen_len, n_steps, block_len, temp, cfg, strategy, thresh) -> dict:
    return dict(steps=int(n_steps), gen_length=int(gen_len), block_length=int(block_len), temperature=float(temp),
                cfg_scale=float(cfg), remasking=strategy, threshold=float(thresh) if thresh else None)


def build_app(registry: ModelRegistry, reversal_overrides: dict | None = None) -> gr.Blocks:
    initial_key = DEFAULT_KEY
    with gr.Blocks(title="llada-play") as demo:
        gr.Markdown("# llada-play\nA masked-diffusion language model writes by **unmasking**: it starts from a "
                    "row of masks and, block by block, commits the tokens it is surest of.")
        model_key = gr.State(initial_key)  # per session: each browser tab chooses its own model
        trace_state = gr.State(None)
        model_info = gr.Markdown(registry.describe(initial_key))

        with gr.Tab("Denoise"):
            with gr.Row():
                with gr.Column(scale=2):
                    prompt = gr.Textbox(label="Prompt", value=DEFAULT_PROMPT, lines=3)
                    chat = gr.Checkbox(label="Chat template (instruct models)", value=False)
                    pins = gr.Textbox(label="Pinned words (infilling): position: word, ...", value="",
                                      placeholder="e.g. 0: Romeo, 20: love")
                    run = gr.Button("Denoise", variant="primary")
                with gr.Column(scale=3):
                    with gr.Row():
                        gen_length = gr.Slider(8, 256, value=64, step=8, label="Generation length")
                        steps = gr.Slider(1, 256, value=64, step=1, label="Steps")
                        block_length = gr.Slider(4, 256, value=32, step=4, label="Block length")
                    with gr.Row():
                        temperature = gr.Slider(0, 2, value=0.0, step=0.05, label="Temperature")
                        cfg_scale = gr.Slider(0, 5, value=0.0, step=0.25, label="CFG scale")
                        seed = gr.Number(value=0, precision=0, label="Seed")
                    with gr.Row():
                        remasking = gr.Dropdown(STRATEGIES, value="low_confidence", label="Remasking")
                        threshold = gr.Slider(0, 1, value=0, step=0.05,
                                              label="Confidence threshold (0 = off: fixed tokens per step)")
            status = gr.Markdown("")
            canvas = gr.HTML(label="Canvas")
            text_out = gr.Textbox(label="Text", lines=4)
            scrub = gr.Slider(0, 1, value=0, step=1, label="Step (scrub the recorded run)", visible=False)
            with gr.Row():
                order_plot = gr.Plot(label="Commit order")
                conf_plot = gr.Plot(label="Confidence")

        with gr.Tab("Chat"):
            gr.Markdown("Multi-turn chat through the tokenizer's chat template, for instruct-style models (for "
                        "example one fine-tuned in the Quick SFT tab). The reply is still written by denoising: "
                        "watch the canvas. End-of-text is committed last and stripped between turns. Uses the "
                        "sampler parameters of the Denoise tab.")
            chatbot = gr.Chatbot(label="Conversation", height=320)
            with gr.Row():
                chat_input = gr.Textbox(label="Your message", scale=4)
                chat_send = gr.Button("Send", variant="primary", scale=1)
                chat_clear = gr.Button("Clear", scale=1)
            chat_canvas = gr.HTML()

        with gr.Tab("Step by step"):
            gr.Markdown("Pause after every step (uses the prompt and parameters of the Denoise tab). Click a masked "
                        "cell to see the model's top candidates there at this step, commit one by hand (or type any "
                        "token), then go on: the hand-made commit flows through the sampler's steering hook and "
                        "into the trace.")
            stepper_state = gr.State(None)
            with gr.Row():
                step_start = gr.Button("Start", variant="primary")
                step_next = gr.Button("Next step")
                step_finish = gr.Button("Run to the end")
                step_stop = gr.Button("Stop")
            step_status = gr.Markdown("")
            step_canvas = gr.HTML()
            pick = gr.Textbox(elem_id="lp-pick", label="position", container=False)
            with gr.Row():
                candidates = gr.Radio([], label="Candidates at the picked position (probability)", scale=3)
                own_token = gr.Textbox(label="...or any text (its first token)", scale=2)
                commit_btn = gr.Button("Commit by hand", scale=1)
            step_text = gr.Textbox(label="Text", lines=3)

        with gr.Tab("Compare"):
            gr.Markdown("The same prompt and seed under up to four sampler settings (uses the prompt, length "
                        "and temperature of the Denoise tab).")
            rows = []
            # the last default is the fast setting: threshold decoding with the block cache and early exit
            defaults = [("low_confidence", 64, 32, 0.0, "none", False), ("random", 64, 32, 0.0, "none", False),
                        ("margin", 64, 32, 0.0, "none", False), ("low_confidence", 64, 32, 0.9, "dual", True)]
            for i, (strategy, n, block, thr, cache, early) in enumerate(defaults):
                with gr.Row():
                    use = gr.Checkbox(value=i < 3, label=f"Setting {i + 1}", scale=1)
                    s_strategy = gr.Dropdown(STRATEGIES, value=strategy, label="Remasking", scale=2)
                    s_steps = gr.Slider(1, 256, value=n, step=1, label="Steps", scale=2)
                    s_block = gr.Slider(4, 256, value=block, step=4, label="Block length", scale=2)
                    s_thr = gr.Slider(0, 1, value=thr, step=0.05, label="Threshold (0 = off)", scale=2)
                    s_cache = gr.Dropdown(CACHE_CHOICES, value=cache, label="KV cache", scale=1)
                    s_exit = gr.Checkbox(value=early, label="Early exit on end-of-text", scale=1)
                rows.append((use, s_strategy, s_steps, s_block, s_thr, s_cache, s_exit))
            with gr.Row():
                compare_run = gr.Button("Compare on the prompt", variant="primary")
                task_run = gr.Button(f"Accuracy on {TASK_FILE.name} (first 40 prompts, {TASK_GEN_LENGTH} tokens "
                                     f"in blocks of {TASK_BLOCK_LENGTH})")
            compare_table = gr.Dataframe(headers=["setting", "forward passes (windowed)", "wall time (s)", "text"],
                                         label="Results", wrap=True)
            compare_plots = gr.Plot(label="Commit order of each setting")

        with gr.Tab("Quick SFT"):
            gr.Markdown("Fine-tune the current model on a small JSONL file (rows with `prompt`/`response` or chat "
                        f"`messages`, at most {MAX_UPLOAD_BYTES // 2**20} MB), or on the shipped arithmetic set, "
                        "watching the loss. The result becomes this tab's model in every tab.")
            with gr.Row():
                upload = gr.File(label="Training rows (.jsonl)", file_types=[".jsonl"], scale=2)
                with gr.Column(scale=3):
                    with gr.Row():
                        sft_steps = gr.Slider(10, 2000, value=1000, step=10, label="Steps")
                        sft_lr = gr.Number(value=1e-3, label="Learning rate")
                        sft_batch = gr.Slider(4, 64, value=32, step=4, label="Batch size")
                        sft_lora = gr.Slider(0, 32, value=0, step=4, label="LoRA rank (0 = full fine-tune)")
                    with gr.Row():
                        sft_go = gr.Button("Fine-tune", variant="primary")
                        sft_cancel = gr.Button("Cancel")
            sft_status = gr.Markdown("")
            sft_plot = gr.Plot(label="Training loss")
            cancel_event = gr.State(None)

        with gr.Tab("Reversal curse"):
            gr.Markdown("**The reversal curse.** Two models of the same shape, one masked-diffusion and one "
                        "autoregressive, learn invented facts (\"Daphne Barrington is the director of ...\") stated in "
                        "one direction only, on the same token windows. Asked the other way round, which one still "
                        "knows? Run the quick experiment (two seeds, a few minutes on a laptop CPU) or load a recorded "
                        "result, then ask both models yourself.")
            with gr.Row():
                rev_run = gr.Button("Run the quick experiment", variant="primary")
                rev_cancel = gr.Button("Cancel")
                rev_choice = gr.Dropdown(recorded_reversal_results(registry), label="Recorded result",
                                         allow_custom_value=True, scale=3)
                rev_load = gr.Button("Load")
            rev_status = gr.HTML("")
            with gr.Row():
                rev_table = gr.Dataframe(label="Accuracy (%), mean ± std over seeds", wrap=True)
                rev_plot = gr.Plot(label="Both models, both directions")
            gr.Markdown("**Ask both models** (the first seed's pair). Questions are sentence starts; the held-out "
                        "templates below were never seen in training.")
            with gr.Row():
                rev_example = gr.Dropdown([], label="Held-out question (direction: question)", scale=3)
                rev_question = gr.Textbox(label="Question", scale=3)
                rev_ask = gr.Button("Ask both")
            with gr.Row():
                rev_diffusion = gr.Textbox(label="Diffusion model")
                rev_autoregressive = gr.Textbox(label="Autoregressive model")
                rev_expected = gr.Textbox(label="True answer")
            rev_canvas = gr.HTML(label="The diffusion model's denoising")
            rev_ranking = gr.Dataframe(label=RANKING_LABEL, wrap=True)
            rev_state = gr.State(None)
            rev_cancel_event = gr.State(None)

        with gr.Tab("Model"):
            choice = gr.Dropdown(registry.choices(), value=initial_key, label="Model", allow_custom_value=True,
                                 info="the shipped default, a directory under the models folder, a path, or a hub id already "
                                      "in the local Hugging Face cache (nothing is downloaded)")
            with gr.Row():
                load = gr.Button("Load", variant="primary")
                refresh = gr.Button("Refresh the list")
            load_status = gr.Markdown("")

        def settings_from(values) -> list[SamplerSetting]:
            chosen = []
            width = len(rows[0])
            for i in range(0, len(values), width):
                use, strategy, n, block, thr, cache, early = values[i:i + width]
                if use:
                    name = (f"{i // width + 1}: {strategy}, {int(n)} steps, block {int(block)}"
                            + (f", thr {thr}" if thr else "") + (f", cache {cache}" if cache != "none" else "")
                            + (", early exit" if early else ""))
                    chosen.append(SamplerSetting(name, dict(steps=int(n), block_length=int(block), remasking=strategy,
                                                            threshold=float(thr) if thr else None, cache=cache,
                                                            eos_early_exit=bool(early))))
            if not chosen:
                raise gr.Error("tick at least one setting")
            return chosen

        def denoise(key, prompt_text, chat_mode, pin_text, gen_len, n_steps, block_len, temp, cfg, strategy, thresh,
                    seed_value):
            try:
                model, tokenizer = registry.get(key)
                ids = encode_prompt(tokenizer, prompt_text, chat=chat_mode)
                kwargs = sampler_kwargs(gen_len, n_steps, block_len, temp, cfg, strategy, thresh)
                kwargs["constraints"] = parse_constraints(tokenizer, pin_text, int(gen_len)) or None
                kwargs["seed"] = int(seed_value or 0)
                pieces = PieceCache(tokenizer)
                eos = stop_token_ids(tokenizer)
                hidden = gr.update(visible=False)
                confidences: dict[int, float] = {}
                for item in iterate_generation(model, ids, tokenizer, **kwargs):
                    if isinstance(item, GenerationDone):
                        trace = item.trace
                        text = decode_generation(tokenizer, item.output[0], ids.shape[1])
                        n = len(trace.steps)
                        passes = n * (2 if kwargs["cfg_scale"] > 0 else 1)
                        yield (trace.to_dict(), f"Done: {n} steps, {passes} forward passes.",
                               trace_step_html(trace, n, eos_ids=eos), text,
                               gr.update(visible=True, maximum=n, value=n),
                               commit_order_figure(trace), confidence_figure(trace))
                        return
                    record = item
                    html = record_canvas(record, pieces, confidences, eos_ids=eos)
                    yield (None, f"Step {record.step + 1}, block {record.block + 1}", html, "", hidden, None, None)
            except (ValueError, CheckpointError) as err:
                raise gr.Error(str(err)) from err

        def show_step(key, trace_dict, step):
            if not trace_dict:
                return ""
            _, tokenizer = registry.get(key)
            return trace_step_html(Trace.from_dict(trace_dict), int(step), eos_ids=stop_token_ids(tokenizer))

        def compare(key, prompt_text, chat_mode, gen_len, temp, seed_value, *values):
            try:
                model, tokenizer = registry.get(key)
                ids = encode_prompt(tokenizer, prompt_text, chat=chat_mode)
                settings = settings_from(values)
                for s in settings:
                    s.kwargs.update(gen_length=int(gen_len), temperature=float(temp),
                                    eos_token_ids=sorted(stop_token_ids(tokenizer)))
                results = compare_settings(model, tokenizer, ids, settings, seed=int(seed_value or 0))
            except (ValueError, CheckpointError) as err:
                raise gr.Error(str(err)) from err
            table = [[r.name, f"{r.forward_passes} ({r.windowed_passes})", round(r.wall_time_s, 2), r.text]
                     for r in results]
            return table, commit_order_panels(results)

        def task_accuracy(key, temp, seed_value, *values):
            try:
                model, tokenizer = registry.get(key)
                conversations = load_sft_rows(TASK_FILE)[:40]
                settings = settings_from(values)
                for s in settings:
                    # short answers in an app-typical length, so that the cache and early exit matter; each
                    # setting keeps its steps per token (rounded to whole steps per block)
                    blocks = TASK_GEN_LENGTH // TASK_BLOCK_LENGTH
                    steps = max(blocks, min(TASK_GEN_LENGTH, s.kwargs["steps"]) // blocks * blocks)
                    s.kwargs.update(gen_length=TASK_GEN_LENGTH, steps=steps, block_length=TASK_BLOCK_LENGTH,
                                    temperature=float(temp), eos_token_ids=sorted(stop_token_ids(tokenizer)))
                rows_out = accuracy_by_setting(model, tokenizer, conversations, settings, seed=int(seed_value or 0))
            except (ValueError, CheckpointError) as err:
                raise gr.Error(str(err)) from err
            table = [[r["setting"], f"{r['forward_passes']} ({r['windowed_passes']})", round(r["wall_time_s"], 2),
                      f"accuracy {r['accuracy']:.0%}, well-formed {r['well_formed']:.0%}, "
                      f"{r['tokens_per_s']:.0f} tokens/s"] for r in rows_out]
            return table, None

        def chat_turn(key, message, history, gen_len, n_steps, block_len, temp, cfg, strategy, thresh, seed_value):
            if not message or not message.strip():
                raise gr.Error("the message is empty")
            history = list(history or [])
            messages = [{"role": m["role"], "content": _plain(m["content"])} for m in history]
            messages.append({"role": "user", "content": message})
            try:
                model, tokenizer = registry.get(key)
                ids = encode_prompt(tokenizer, messages, chat=True)
                kwargs = sampler_kwargs(gen_len, n_steps, block_len, temp, cfg, strategy, thresh)
                eos = stop_token_ids(tokenizer)
                kwargs.update(seed=int(seed_value or 0), eos_last=True, eos_token_ids=sorted(eos))
                pieces = PieceCache(tokenizer)
                shown = history + [{"role": "user", "content": message}]
                for item in iterate_generation(model, ids, tokenizer, record_trace=False, **kwargs):
                    if isinstance(item, GenerationDone):
                        reply = decode_generation(tokenizer, item.output[0], ids.shape[1]).strip()
                        yield shown + [{"role": "assistant", "content": reply}], "", gr.update()
                        return
                    tokens = item.x_after[0].tolist()
                    html = render_canvas(tokens[item.prompt_length:], 0, item.block_length, item.mask_id, pieces,
                                         eos_ids=eos)
                    yield shown, "", html
            except (ValueError, CheckpointError) as err:
                raise gr.Error(str(err)) from err

        def step_view(stepper, note=""):
            """(state, status, canvas, text) for the stepper's current situation."""
            tokenizer = stepper.tokenizer
            if stepper.done is not None:
                trace = stepper.done.trace
                n = len(trace.steps)
                html = trace_step_html(trace, n, eos_ids=stop_token_ids(tokenizer))
                text = decode_generation(tokenizer, stepper.done.output[0], trace.prompt_length)
                return stepper, f"Finished after {n} steps. {note}", html, text
            record = stepper.last
            html = record_canvas(record, PieceCache(tokenizer), stepper.confidences, eos_ids=stop_token_ids(tokenizer),
                                 interactive=True)
            return stepper, f"Paused after step {record.step + 1} (block {record.block + 1}). {note}", html, ""

        def step_start_fn(key, prompt_text, chat_mode, pin_text, gen_len, n_steps, block_len, temp, cfg, strategy,
                          thresh, seed_value, old):
            if old is not None and old.done is None:
                old.stop()
            try:
                model, tokenizer = registry.get(key)
                ids = encode_prompt(tokenizer, prompt_text, chat=chat_mode)
                kwargs = sampler_kwargs(gen_len, n_steps, block_len, temp, cfg, strategy, thresh)
                kwargs["constraints"] = parse_constraints(tokenizer, pin_text, int(gen_len)) or None
                stepper = Stepper(model, ids, tokenizer, topk=5, seed=int(seed_value or 0), **kwargs)
                stepper.step()
            except (ValueError, CheckpointError) as err:
                raise gr.Error(str(err)) from err
            return step_view(stepper)

        def require(stepper):
            if stepper is None:
                raise gr.Error("press Start first")
            return stepper

        def step_next_fn(stepper):
            require(stepper).step()
            return step_view(stepper)

        def step_finish_fn(stepper):
            require(stepper).finish()
            return step_view(stepper)

        def step_stop_fn(stepper):
            require(stepper).stop()
            return step_view(stepper, "Stopped by hand: masked cells stay masked.")

        def pick_fn(stepper, position):
            if stepper is None or not str(position).strip().isdigit() or stepper.done is not None:
                return gr.update(choices=[], value=None)
            tokenizer = stepper.tokenizer
            try:
                cands = stepper.candidates(int(position))
            except ValueError as err:
                raise gr.Error(str(err)) from err
            choices = [(f"{token_label(tokenizer, t)}  ({p:.2f})", t) for t, p in cands]
            return gr.update(choices=choices, value=None, label=f"Candidates at position {position}")

        def commit_fn(stepper, position, chosen, typed):
            stepper = require(stepper)
            tokenizer = stepper.tokenizer
            if not str(position).strip().isdigit():
                raise gr.Error("click a masked cell first")
            if typed and typed.strip():
                ids = tokenizer(typed, add_special_tokens=False).input_ids
                if not ids:
                    raise gr.Error(f"{typed!r} gives no token")
                chosen = ids[0]
            if chosen is None:
                raise gr.Error("pick a candidate or type a token")
            try:
                stepper.force(int(position), int(chosen))
            except ValueError as err:
                raise gr.Error(str(err)) from err
            return step_view(stepper, f"Committed {token_label(tokenizer, int(chosen))!r} at position {position} by hand.")

        def quick_sft(key, file, n_steps, lr, batch, lora, _cancel):
            import queue as queue_module
            import time as time_module

            from llada_play.recipes import run_sft
            from llada_play.training.trainer import TrainConfig

            cancel = threading.Event()
            data, eval_data = SFT_TRAIN_FILE, TASK_FILE
            if file is not None:
                path = Path(file if isinstance(file, str) else file.name)
                if path.stat().st_size > MAX_UPLOAD_BYTES:
                    raise gr.Error(f"{path.name} is {path.stat().st_size / 2**20:.1f} MB; quick SFT takes at most "
                                   f"{MAX_UPLOAD_BYTES // 2**20} MB")
                data, eval_data = path, None
            try:
                registry.get(key)
                model_dir = registry.path_of(key) or str(default_model_path())
            except CheckpointError as err:
                raise gr.Error(str(err)) from err
            out = (registry.models_dir or ROOT / "runs") / "app-sft" / time_module.strftime("%Y%m%d-%H%M%S")
            config = TrainConfig(objective="sft", output_dir=str(out), max_steps=int(n_steps), lr=float(lr),
                                 warmup_steps=min(50, int(n_steps)), save_every=max(int(n_steps), 1), log_every=1,
                                 progress=False)
            events: queue_module.Queue = queue_module.Queue()

            def hook(record):
                events.put(("step", record.step, record.loss))
                if cancel.is_set():
                    record.stop()

            def work():
                try:
                    events.put(("done", run_sft(model_dir, data, config, batch_size=int(batch), lora_rank=int(lora),
                                                hooks=hook, eval_data=eval_data, eval_limit=40)))
                except Exception as err:  # shown in the page
                    events.put(("error", err))

            threading.Thread(target=work, daemon=True).start()
            losses: list[float] = []
            yield key, cancel, "Preparing (loading rows, answering the held-out prompts first)...", None, gr.update()
            while True:
                kind, *payload = events.get()
                if kind == "error":
                    raise gr.Error(str(payload[0]))
                if kind == "done":
                    summary = payload[0]
                    new_key = summary["final_model"]
                    registry.get(new_key)
                    note = ""
                    if "held_out_accuracy" in summary:
                        acc = summary["held_out_accuracy"]
                        note = (f" Held-out accuracy: {acc['before']['accuracy']:.0%} before, "
                                f"{acc['after']['accuracy']:.0%} after.")
                    stopped = " (cancelled)" if cancel.is_set() else ""
                    yield (new_key, None, f"Done{stopped}: {summary['steps']} steps in {summary['wall_time_s']:.0f} s."
                           f"{note} Now using `{new_key}`.", _loss_figure(losses), registry.describe(new_key))
                    return
                _, step, loss = kind, *payload
                losses.append(loss)
                if step % 5 == 0 or step == int(n_steps):
                    yield key, cancel, f"Step {step} / {int(n_steps)}, loss {loss:.3f}", _loss_figure(losses), gr.update()

        def cancel_sft(cancel):
            if cancel is not None:
                cancel.set()
            return "Cancelling after the current step..."

        def load_model_for_session(key, current):
            yield current, gr.update(), f"Loading `{key}`..."
            try:
                registry.get(key)
            except ValueError as err:  # CheckpointError, or a model too large for this machine
                raise gr.Error(str(err)) from err
            yield key, registry.describe(key), f"Loaded `{key}`: every tab of this page now uses it."

        def reversal_view(results, note):
            from llada_play.experiments.reversal_experiment import conclusions, results_figure, results_table

            rows = results_table(results)
            note = "\n".join([note, *conclusions(results)])
            kinds = [k for k in rows[0] if k != "metric"] if rows else []
            table = [[r["metric"], *[r[k] for k in kinds]] for r in rows]
            examples = reversal_examples(results)
            return (results, _progress_html(1.0, note), gr.update(value=table, headers=["metric", *kinds]),
                    results_figure(results), gr.update(choices=examples, value=examples[0] if examples else None))

        def reversal_run(_cancel):
            import queue as queue_module
            import time as time_module

            from llada_play.experiments.reversal_experiment import ReversalConfig, run_reversal_experiment

            cancel = threading.Event()
            out = (registry.models_dir or ROOT / "runs") / "reversal-app" / time_module.strftime("%Y%m%d-%H%M%S")
            config = ReversalConfig.quick(**{**(reversal_overrides or {}), "out_dir": str(out)})
            events: queue_module.Queue = queue_module.Queue()

            def progress(fraction, message):
                if cancel.is_set():
                    raise _Cancelled()
                events.put(("progress", fraction, message))

            def work():
                try:
                    events.put(("done", run_reversal_experiment(config, progress=progress)))
                except _Cancelled:
                    events.put(("cancelled",))
                except Exception as err:  # shown in the page
                    events.put(("error", err))

            threading.Thread(target=work, daemon=True).start()
            keep = gr.update()
            yield None, cancel, _progress_html(0.0, "Starting: generating the facts, packing the training text..."), keep, keep, keep
            while True:
                kind, *payload = events.get()
                if kind == "error":
                    raise gr.Error(str(payload[0]))
                if kind == "cancelled":
                    yield None, None, _progress_html(0.0, "Cancelled."), keep, keep, keep
                    return
                if kind == "done":
                    results = payload[0]
                    view = reversal_view(results, f"Done in {results['wall_time_s']:.0f} s; results in "
                                                  f"{out / 'results.json'}.")
                    yield view[0], None, *view[1:]
                    return
                fraction, message = payload
                yield gr.update(), cancel, _progress_html(fraction, message), keep, keep, keep

        def reversal_cancel(cancel):
            if cancel is not None:
                cancel.set()
            return _progress_html(0.0, "Cancelling after the current step...")

        def reversal_load(path):
            from llada_play.experiments.reversal_experiment import read_results

            if not path:
                raise gr.Error("choose a results file (written by `llada-play reversal --out ...` or by this tab)")
            try:
                results = read_results(path)
            except ValueError as err:
                raise gr.Error(str(err)) from err
            seeds = len(results["config"]["seeds"])
            view = reversal_view(results, f"Loaded {path}: {len(results['runs'])} models, {seeds} "
                                          f"seed{'' if seeds == 1 else 's'}.")
            return view[0], None, *view[1:]

        def reversal_pick(example):
            if not example:
                return "", ""
            question, expected = example.split(" | ", 1)
            return question.split(": ", 1)[1], expected

        def reversal_ask(results, question, expected):
            from llada_play.experiments.reversal import answer, answer_settings, question_ids

            if results is None:
                raise gr.Error("run the quick experiment or load a result first")
            try:
                pair = reversal_models(results)
                diffusion, tokenizer = pair["diffusion"]
                ids = question_ids(tokenizer, question)
            except (ValueError, CheckpointError) as err:
                raise gr.Error(str(err)) from err
            ar_answer = ((answer(pair["autoregressive"][0], tokenizer, question) or EMPTY_ANSWER)
                         if "autoregressive" in pair else "n/a")
            pieces, confidences, eos, html = PieceCache(tokenizer), {}, stop_token_ids(tokenizer), ""
            waiting, text = gr.update(value=None, label=RANKING_LABEL), ""
            for item in iterate_generation(diffusion, ids, tokenizer, record_trace=False, **answer_settings(tokenizer)):
                if isinstance(item, GenerationDone):
                    text = decode_generation(tokenizer, item.output[0], ids.shape[1]) or EMPTY_ANSWER
                    yield text, ar_answer, html, waiting
                    break
                html = record_canvas(item, pieces, confidences, eos_ids=eos)
                yield "", ar_answer, html, waiting
            yield text, ar_answer, html, reversal_ranking(results, pair, question, expected)

        denoise_inputs = [model_key, prompt, chat, pins, gen_length, steps, block_length, temperature, cfg_scale,
                          remasking, threshold, seed]
        run.click(denoise, denoise_inputs, [trace_state, status, canvas, text_out, scrub, order_plot, conf_plot],
                  api_name="denoise", concurrency_limit=2)
        scrub.change(show_step, [model_key, trace_state, scrub], canvas, show_progress="hidden", api_name=False)
        setting_inputs = [c for row in rows for c in row]
        compare_run.click(compare, [model_key, prompt, chat, gen_length, temperature, seed, *setting_inputs],
                          [compare_table, compare_plots], api_name="compare", concurrency_limit=2)
        task_run.click(task_accuracy, [model_key, temperature, seed, *setting_inputs], [compare_table, compare_plots],
                       api_name="task_accuracy", concurrency_limit=1)
        chat_inputs = [model_key, chat_input, chatbot, gen_length, steps, block_length, temperature, cfg_scale,
                       remasking, threshold, seed]
        chat_send.click(chat_turn, chat_inputs, [chatbot, chat_input, chat_canvas], api_name="chat", concurrency_limit=2)
        chat_input.submit(chat_turn, chat_inputs, [chatbot, chat_input, chat_canvas], api_name=False, concurrency_limit=2)
        chat_clear.click(lambda: ([], ""), None, [chatbot, chat_canvas], api_name=False)
        step_outputs = [stepper_state, step_status, step_canvas, step_text]
        step_start.click(step_start_fn, denoise_inputs[:] + [stepper_state], step_outputs, api_name="step_start")
        step_next.click(step_next_fn, [stepper_state], step_outputs, api_name="step_next")
        step_finish.click(step_finish_fn, [stepper_state], step_outputs, api_name="step_finish")
        step_stop.click(step_stop_fn, [stepper_state], step_outputs, api_name="step_stop")
        pick.change(pick_fn, [stepper_state, pick], candidates, api_name=False)
        commit_btn.click(commit_fn, [stepper_state, pick, candidates, own_token], step_outputs, api_name="step_commit")
        sft_go.click(quick_sft, [model_key, upload, sft_steps, sft_lr, sft_batch, sft_lora, cancel_event],
                     [model_key, cancel_event, sft_status, sft_plot, model_info], api_name="quick_sft", concurrency_limit=1)
        sft_cancel.click(cancel_sft, [cancel_event], [sft_status], api_name="cancel_sft")
        load.click(load_model_for_session, [choice, model_key], [model_key, model_info, load_status],
                   api_name="load_model")
        rev_outputs = [rev_state, rev_cancel_event, rev_status, rev_table, rev_plot, rev_example]
        rev_run.click(reversal_run, [rev_cancel_event], rev_outputs, api_name="reversal_run", concurrency_limit=1)
        rev_cancel.click(reversal_cancel, [rev_cancel_event], [rev_status], api_name="reversal_cancel")
        rev_load.click(reversal_load, [rev_choice], rev_outputs, api_name="reversal_load")
        rev_example.change(reversal_pick, [rev_example], [rev_question, rev_expected], api_name=False)
        rev_ask.click(reversal_ask, [rev_state, rev_question, rev_expected],
                      [rev_diffusion, rev_autoregressive, rev_canvas, rev_ranking],
                      api_name="reversal_ask", concurrency_limit=2)
        refresh.click(lambda: gr.update(choices=registry.choices()), None, choice, api_name=False)
    return demo


class _Cancelled(Exception):
    """Raised from the reversal experiment's progress callback to stop it."""


RECORDED_REVERSAL = ROOT / "data" / "reversal" / "results"


def recorded_reversal_results(registry: ModelRegistry) -> list[str]:
    """Results files shipped with the project and those written under the models folder."""
    found = sorted(RECORDED_REVERSAL.glob("*.json"))
    if registry.models_dir and registry.models_dir.is_dir():
        found += sorted(registry.models_dir.glob("**/results.json"))
    return [str(p) for p in found]


def reversal_examples(results: dict, per_set: int = 3) -> list[str]:
    """A few held-out questions of each direction, as "set: question | answer" choices."""
    from llada_play.experiments.reversal_experiment import QUESTIONS, ReversalConfig, load_experiment_data

    try:
        files = load_experiment_data(ReversalConfig.from_dict(results["config"]))
    except (ValueError, OSError):
        return []
    return [f"{key}: {row['prompt']} | {row['completion'].strip()}" for key, name in QUESTIONS
            for row in files.get(name, [])[::max(1, len(files.get(name, [])) // per_set)][:per_set]]


_REVERSAL_MODELS: dict[str, tuple] = {}


def reversal_models(results: dict) -> dict[str, tuple]:
    """The first seed's trained models of a result, loaded once; a clear error when they are not on disk."""
    first = results["config"]["seeds"][0]
    pair = {}
    for run in results["runs"]:
        if run["seed"] != first:
            continue
        path = run["model_dir"]
        if path not in _REVERSAL_MODELS:
            if not Path(path, "config.json").exists():
                raise CheckpointError(f"this result's models are not on this machine ({path}); run the quick "
                                      "experiment here to ask questions")
            _REVERSAL_MODELS[path] = load_model(path)
        pair[run["model"]] = _REVERSAL_MODELS[path]
    return pair


EMPTY_ANSWER = "(no answer: end-of-text came first)"
RANKING_LABEL = ("Ranking: the true answer against 4 other people's, by log-likelihood per token (exact for the "
                 "autoregressive model, the Monte-Carlo bound for the diffusion model); ★ marks each model's choice")


def reversal_ranking(results: dict, pair: dict[str, tuple], question: str, expected: str):
    """The ranking table for one held-out question (``rank_answers``): candidates, each model's score, a star on
    each model's choice. A question without a known true answer gets an empty table that says so."""
    from llada_play.experiments.reversal_experiment import rank_answers

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


def _progress_html(fraction: float, message: str) -> str:
    import html

    return (f'<div class="lp-progress"><progress value="{fraction:.3f}" max="1" style="width:100%"></progress>'
            f'<div style="white-space:pre-line">{html.escape(message)}</div></div>')


def _plain(content) -> str:
    """Chatbot message content as plain text (Gradio may hand back a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content)


def _loss_figure(losses: list[float]):
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=list(range(1, len(losses) + 1)), y=losses, mode="lines", name="loss"))
    fig.update_layout(template="plotly_white", height=300, xaxis_title="step", yaxis_title="SFT loss",
                      margin=dict(l=50, r=20, t=30, b=40))
    return fig


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="llada-play: watch a masked diffusion LM denoise")
    parser.add_argument("--model", default=None, help="model directory for the 'shipped default' entry")
    parser.add_argument("--models-dir", default=str(ROOT / "runs"),
                        help="folder whose model directories (*/ or */*/ with config.json) can be chosen")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow checkpoints that ship their own Python code (LLaDA and Dream are read natively and "
                             "need no such code); off by default")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES),
                        help="weights dtype (default float32; bfloat16 for LLaDA-8B)")
    parser.add_argument("--device", default="cpu", help="where models run (cpu, cuda, cuda:1...)")
    parser.add_argument("--device-map", default=None, help="spread large models over GPUs and CPU (e.g. auto)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--reversal-overrides", default=None, metavar="JSON",
                        help="settings for the reversal tab's quick run, e.g. '{\"steps\": 200}' on a slow machine")
    args = parser.parse_args(argv)
    overrides = None
    if args.reversal_overrides:
        import json

        from llada_play.experiments.reversal_experiment import ReversalConfig

        try:
            overrides = json.loads(args.reversal_overrides)
            ReversalConfig.quick(**overrides)  # refuse bad settings now, not after a click
        except (json.JSONDecodeError, TypeError, ValueError) as err:
            parser.error(f"--reversal-overrides: {err}")
    torch.set_grad_enabled(False)
    registry = ModelRegistry(args.model, args.models_dir, trust_remote_code=args.trust_remote_code,
                             dtype=DTYPES[args.dtype], device=args.device, device_map=args.device_map)
    demo = build_app(registry, overrides)
    demo.queue(default_concurrency_limit=2)
    demo.launch(server_name=args.host, server_port=args.port, ssr_mode=False, theme=THEME, head=HEAD, css=CSS,
                show_error=True)


if __name__ == "__main__":
    main()
