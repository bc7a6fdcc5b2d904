"""llada-play in the browser: watch a masked-diffusion model write, step by step.

    python app.py [--model DIR] [--host 127.0.0.1] [--port 7860]
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr
import torch

from llada_play.checkpoint import CheckpointError, load_model
from llada_play.live import GenerationDone, iterate_generation
from llada_play.remasking import REMASKING
from llada_play.text import decode_generation, encode_prompt
from llada_play.trace import Trace
from llada_play.viz import commit_order_figure, confidence_figure, render_canvas, trace_step_html

# Local fonts only: the page must work with no internet access.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "DejaVu Sans", "sans-serif"],
                          font_mono=["ui-monospace", "DejaVu Sans Mono", "monospace"])
DEFAULT_PROMPT = "ROMEO:\n"


class ModelHolder:
    """The loaded model and tokenizer (shared by all sessions: read-only during sampling)."""

    def __init__(self, path: str | None):
        self.path = path
        self.model = self.tokenizer = None
        self.error = None
        try:
            self.model, self.tokenizer = load_model(path)
        except CheckpointError as err:
            self.error = str(err)

    def describe(self) -> str:
        if self.model is None:
            return (f"**No model loaded.** {self.error}. Train one with `llada-play train` and start the app with "
                    "`python app.py --model runs/NAME/final`.")
        n = sum(p.numel() for p in self.model.parameters()) / 1e6
        return f"Model: `{self.path or 'shipped default'}` ({n:.1f}M parameters, mask id {self.model.config.mask_token_id})"

    def eos_ids(self) -> set[int]:
        vocab = self.tokenizer.get_vocab()
        return {i for i in (self.tokenizer.eos_token_id, vocab.get("<|eot_id|>")) if i is not None}


def build_app(holder: ModelHolder) -> gr.Blocks:
    with gr.Blocks(title="llada-play") as demo:
        gr.Markdown("# llada-play\nA masked-diffusion language model writes by **unmasking**: it starts from a "
                    "row of masks and, block by block, commits the tokens it is surest of.")
        gr.Markdown(holder.describe())
        trace_state = gr.State(None)
        with gr.Tab("Denoise"):
            with gr.Row():
                with gr.Column(scale=2):
                    prompt = gr.Textbox(label="Prompt", value=DEFAULT_PROMPT, lines=3)
                    chat = gr.Checkbox(label="Chat template (instruct models)", value=False)
                    run = gr.Button("Denoise", variant="primary", interactive=holder.model is not None)
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
                        remasking = gr.Dropdown(sorted(REMASKING), value="low_confidence", label="Remasking")
                        threshold = gr.Slider(0, 1, value=0, step=0.05,
                                              label="Confidence threshold (0 = off: fixed tokens per step)")
            status = gr.Markdown("")
            canvas = gr.HTML(label="Canvas")
            text_out = gr.Textbox(label="Text", lines=4)
            scrub = gr.Slider(0, 1, value=0, step=1, label="Step (scrub the recorded run)", visible=False)
            with gr.Row():
                order_plot = gr.Plot(label="Commit order")
                conf_plot = gr.Plot(label="Confidence")

        def denoise(prompt_text, chat_mode, gen_len, n_steps, block_len, temp, cfg, strategy, thresh, seed_value):
            if holder.model is None:
                raise gr.Error(holder.describe())
            try:
                ids = encode_prompt(holder.tokenizer, prompt_text, chat=chat_mode)
            except ValueError as err:
                raise gr.Error(str(err)) from err
            kwargs = dict(steps=int(n_steps), gen_length=int(gen_len), block_length=int(block_len),
                          temperature=float(temp), cfg_scale=float(cfg), remasking=strategy,
                          threshold=float(thresh) if thresh else None, seed=int(seed_value or 0), topk=0)
            pieces = {i: holder.tokenizer.decode([i]) for i in ids[0].tolist()}
            mask_id = holder.model.config.mask_token_id
            eos = holder.eos_ids()
            hidden = gr.update(visible=False)
            try:
                committed_conf: dict[int, float] = {}
                for item in iterate_generation(holder.model, ids, holder.tokenizer, **kwargs):
                    if isinstance(item, GenerationDone):
                        trace = item.trace
                        text = decode_generation(holder.tokenizer, item.output[0], ids.shape[1])
                        n = len(trace.steps)
                        yield (trace.to_dict(), f"Done: {n} steps, {n} forward passes"
                               f"{' (x2 for CFG)' if cfg else ''}.",
                               trace_step_html(trace, n, eos_ids=eos), text,
                               gr.update(visible=True, maximum=n, value=n),
                               commit_order_figure(trace), confidence_figure(trace))
                        return
                    record = item
                    committed = record.committed[0].nonzero().flatten().tolist()
                    tokens = record.x_after[0].tolist()
                    for pos in committed:
                        committed_conf[pos] = float(record.confidence[0, pos])
                    for t in tokens + record.predicted[0].tolist():
                        if t >= 0 and t not in pieces:
                            pieces[t] = holder.tokenizer.decode([t])
                    guesses = {p: t for p, t in enumerate(record.predicted[0].tolist())
                               if t >= 0 and tokens[p] == mask_id}
                    html = render_canvas(tokens, record.prompt_length, record.block_length, mask_id, pieces,
                                         committed_conf, set(committed), eos_ids=eos, guesses=guesses)
                    yield (None, f"Step {record.step + 1}, block {record.block + 1}", html, "", hidden, None, None)
            except ValueError as err:
                raise gr.Error(str(err)) from err

        def show_step(trace_dict, step):
            if not trace_dict:
                return ""
            return trace_step_html(Trace.from_dict(trace_dict), int(step), eos_ids=holder.eos_ids() if holder.model else set())

        run.click(denoise, [prompt, chat, gen_length, steps, block_length, temperature, cfg_scale, remasking,
                            threshold, seed],
                  [trace_state, status, canvas, text_out, scrub, order_plot, conf_plot], api_name="denoise",
                  concurrency_limit=2)
        scrub.release(show_step, [trace_state, scrub], canvas)
        scrub.change(show_step, [trace_state, scrub], canvas, show_progress="hidden")
    return demo


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="llada-play: watch a masked diffusion LM denoise")
    parser.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    holder = ModelHolder(args.model)
    demo = build_app(holder)
    demo.queue(default_concurrency_limit=2)
    demo.launch(server_name=args.host, server_port=args.port, ssr_mode=False, theme=THEME, show_error=True)


if __name__ == "__main__":
    main()
