"""The Model tab: choose the session's model (the shipped default, a shipped model by name, one under the models
folder, any path)."""
from __future__ import annotations

from functools import partial

import gradio as gr

from ..errors import shown_in_page
from ..registry import DEFAULT_KEY, ModelRegistry


def load_for_session(registry: ModelRegistry, key: str, current: str):
    """Stream (model key, model info, status): the key changes only once its model has loaded."""
    yield current, gr.update(), f"Loading `{key}`..."
    with shown_in_page():  # CheckpointError, or a model too large for this machine
        registry.get(key)
    yield key, registry.describe(key), f"Loaded `{key}`: every tab of this page now uses it."


def model_tab(registry: ModelRegistry, model_key: gr.State, model_info: gr.Markdown) -> None:
    """Build the tab and wire it: loading changes this session's model key and the description at the top."""
    with gr.Tab("Model"):
        choice = gr.Dropdown(registry.choices(), value=DEFAULT_KEY, label="Model", allow_custom_value=True,
                             info="the shipped default, a model the project ships (by name), a directory under the "
                                  "models folder, a path, or a hub id already in the local Hugging Face cache "
                                  "(nothing is downloaded)")
        with gr.Row():
            load = gr.Button("Load", variant="primary")
            refresh = gr.Button("Refresh the list")
        status = gr.Markdown("")
    load.click(partial(load_for_session, registry), [choice, model_key], [model_key, model_info, status],
               api_name="load_model")
    refresh.click(lambda: gr.update(choices=registry.choices()), None, choice, api_name=False)
