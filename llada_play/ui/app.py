"""The app: its tabs composed into one page, and how the page is served."""
from __future__ import annotations

import gradio as gr

from .background import RunsPerLogin
from .controls import CONFIG_FIELDS, Inputs
from .registry import DEFAULT_KEY, ModelRegistry
from .serving import LOCAL, ServingPolicy, server_options
from .tabs.chat import chat_tab
from .tabs.compare import CSS as COMPARE_CSS
from .tabs.compare import compare_tab
from .tabs.denoise import denoise_tab
from .tabs.fewshot import CSS as FEWSHOT_CSS
from .tabs.fewshot import fewshot_tab
from .tabs.model import model_tab
from .tabs.puzzle import CSS as PUZZLE_CSS
from .tabs.puzzle import puzzle_tab
from .tabs.reversal import reversal_tab
from .tabs.sft import sft_tab
from .replay import PNG_JS
from .tabs.step import CSS, HEAD, step_tab

# Local fonts only: the page must work with no internet access.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "DejaVu Sans", "sans-serif"],
                          font_mono=["ui-monospace", "DejaVu Sans Mono", "monospace"])
INTRO = ("# llada-play\nA masked-diffusion language model writes by **unmasking**: it starts from a row of masks "
         "and, block by block, commits the tokens it is surest of.")

# Every slider's track may shrink: gradio gives it a minimum width, so in a narrow column the maximum's label
# ("256", "2000") was pushed past the edge and cut ("25", "200").
PAGE_CSS = """
.slider_input_container input[type=range] {min-width: 0 !important; flex: 1 1 0 !important;}
.slider_input_container .min_value, .slider_input_container .max_value {flex: none !important;}
"""


def build_app(registry: ModelRegistry, reversal_overrides: dict | None = None,
              policy: ServingPolicy = LOCAL) -> gr.Blocks:
    """The page: a model description on top, then the tabs. The sampling tabs share the Denoise tab's prompt and
    controls; the Quick SFT and Model tabs change the session's model. ``policy``: what sessions may do
    (:mod:`.serving`); served to a class, one limit of training runs per login covers both training tabs."""
    runs = RunsPerLogin(policy.max_queued_runs_per_login) if policy.serving else None
    with gr.Blocks(title="llada-play") as demo:
        gr.Markdown(INTRO)
        model_key = gr.State(DEFAULT_KEY)  # per session: each browser tab chooses its own model
        model_info = gr.Markdown(registry.describe(DEFAULT_KEY))
        prompt = denoise_tab(registry, model_key, policy, model_info, demo)
        chat_tab(registry, model_key, Inputs({k: v for k, v in prompt.items() if k in CONFIG_FIELDS}), model_info,
                 policy)
        step_tab(registry, model_key, prompt)
        compare_tab(registry, model_key, prompt)
        sft_tab(registry, model_key, model_info, policy, runs)
        reversal_tab(registry, reversal_overrides, policy, runs)
        fewshot_tab(registry)
        puzzle_tab(registry)
        model_tab(registry, model_key, model_info, policy, prompt)
    return demo


def launch(demo: gr.Blocks, host: str, port: int, logins: list[tuple[str, str]] | None = None,
           policy: ServingPolicy = LOCAL) -> None:
    """Serve the page (blocks until stopped); errors are shown in the page; ``logins``: (user, password) pairs
    that may log in (None: no login). Served to a class, every event goes through the queue (gradio's direct
    /gradio_api/run/... routes would skip the training slots and the per-login limit) and a visitor who has not
    logged in gets only the login page (:func:`.serving.server_options`)."""
    demo.queue(default_concurrency_limit=2, api_open=not policy.serving)
    # one worker thread per waiting Denoise session, and room for the other tabs
    demo.launch(server_name=host, server_port=port, ssr_mode=False, theme=THEME, head=f"{HEAD}<script>{PNG_JS}</script>",
                css=f"{PAGE_CSS}\n{CSS}\n{PUZZLE_CSS}\n{FEWSHOT_CSS}\n{COMPARE_CSS}", show_error=True, auth=logins or None,
                max_file_size=policy.max_upload_bytes, max_threads=policy.denoise_sessions + 40,
                **server_options(policy, logins))
