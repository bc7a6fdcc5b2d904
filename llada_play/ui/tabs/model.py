"""The Model tab: choose the session's model (the shipped default, a shipped model by name, one under the models
folder, any path)."""
from __future__ import annotations

from functools import partial

import gradio as gr

from ..errors import shown_in_page
from ..background import running
from ..registry import DEFAULT_KEY, ModelRegistry
from ..serving import LOCAL, ServingPolicy


def load_for_session(registry: ModelRegistry, policy: ServingPolicy, key: str, current: str):
    """Stream (model key, model info, status): the key changes only once its model has loaded."""
    policy.allow_model(key, registry.choices())
    yield current, gr.update(), f"Loading `{key}`..."
    with shown_in_page():  # CheckpointError, or a model too large for this machine
        registry.get(key)
    yield key, registry.describe(key), f"Loaded `{key}`: every tab of this page now uses it."


def fitting_defaults(registry: ModelRegistry, key: str) -> tuple:
    """(prompt, chat template) of the Denoise tab that fit the session's model: an instruct model gets the chat
    template (and a question when its kind has one), a text model its kind of prompt; others keep the page's."""
    try:
        kind = registry.kind(key)
    except ValueError:
        return gr.update(), gr.update()
    if kind.tab is not None:  # a task's model: its own tab has the right inputs
        return gr.update(), gr.update()
    return (kind.prompt if kind.prompt is not None else gr.update()), kind.chat


def server_status(registry: ModelRegistry) -> str:
    """What the server is doing now, for a teacher watching a class."""
    runs, batch = registry.denoising()
    return (f"Now: {runs} Denoise runs (running or waiting for a slot), {running()} training runs. Denoise runs "
            f"so far shared their forward passes {batch:.1f} rows at a time.")


def model_tab(registry: ModelRegistry, model_key: gr.State, model_info: gr.Markdown,
              policy: ServingPolicy = LOCAL, prompt: dict | None = None) -> None:
    """Build the tab and wire it: loading changes this session's model key and the description at the top, and
    the Denoise tab's prompt and chat template to what fits the model (``prompt``: that tab's inputs). Served to
    a class, only the listed models can be chosen."""
    where = ("the shipped default, a model the project ships (by name) or a directory under the models folder"
             if policy.serving else
             "the shipped default, a model the project ships (by name), a directory under the models folder, a "
             "path, or a hub id already in the local Hugging Face cache (nothing is downloaded)")
    with gr.Tab("Model"):
        choice = gr.Dropdown(registry.choices(), value=DEFAULT_KEY, label="Model", info=where,
                             allow_custom_value=not policy.serving)
        with gr.Row():
            load = gr.Button("Load", variant="primary")
            refresh = gr.Button("Refresh the list")
        status = gr.Markdown("")
        activity = gr.Markdown("")
    loading = load.click(partial(load_for_session, registry, policy), [choice, model_key],
                         [model_key, model_info, status], api_name="load_model")
    if prompt is not None:
        loading.success(partial(fitting_defaults, registry), [model_key], [prompt["prompt"], prompt["chat"]],
                        api_name=False)
    refresh.click(lambda: (gr.update(choices=registry.choices()), server_status(registry)), None,
                  [choice, activity], api_name=False)
    gr.api(partial(server_status, registry), api_name="server_status")
