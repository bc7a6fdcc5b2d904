"""The Chat tab: multi-turn chat through the tokenizer's chat template, each reply written by denoising."""
from __future__ import annotations

from functools import partial

import gradio as gr

from ...model.text import decode_generation, encode_prompt, stop_token_ids
from ...training.data import ROLES
from ..controls import Inputs, by_name, config_from_controls
from ..errors import Refusal, shown_in_page
from ..live import GenerationDone, stream
from ..registry import ModelRegistry
from ..model_kinds import INSTRUCT_MODEL
from ..viz import CANVAS_LEGEND, PieceCache, record_canvas


def plain(content) -> str:
    """Chatbot message content as plain text (Gradio may hand back a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content)


def chat_turn(registry: ModelRegistry, key: str, message: str, history: list[dict] | None, controls: dict):
    """Stream (conversation, cleared input box, canvas) while the reply is denoised: through the shared
    sampler, as the Denoise tab's runs, with the app's logits hooks; ``controls``: the sampler's, by name."""
    if not message or not message.strip():
        raise Refusal("the message is empty")
    history = list(history or [])
    for i, turn in enumerate(history, 1):  # what arrives over HTTP need not be what the page wrote
        if not isinstance(turn, dict) or turn.get("role") not in ROLES:
            raise Refusal(f"message {i} of the conversation has no role among {list(ROLES)}")
    shown = history + [{"role": "user", "content": message}]
    messages = [{"role": m["role"], "content": plain(m["content"])} for m in shown]
    with shown_in_page():
        model, tokenizer = registry.get(key)
        ids = encode_prompt(tokenizer, messages, chat=True)
        eos = stop_token_ids(tokenizer)
        # end-of-text committed last, so that the reply is not cut short while its block still fills in
        config = config_from_controls(controls).replace(eos_last=True, eos_token_ids=sorted(eos))
        pieces = PieceCache(tokenizer)
        confidences: dict[int, float] = {}
        for item in stream(model, ids, config, tokenizer, record_trace=False, logits_hooks=registry.logits_hooks,
                           sampler=registry.sampler(key)):
            if isinstance(item, GenerationDone):
                reply = decode_generation(tokenizer, item.output[0], ids.shape[1]).strip()
                yield shown + [{"role": "assistant", "content": reply}], "", gr.update()
                return
            yield shown, "", record_canvas(item, pieces, confidences, eos_ids=eos, show_prompt=False)


def model_note(registry: ModelRegistry, key: str) -> tuple:
    """(note, offer button) for the session's model: a warning and the shipped instruct model offered when the
    model was not trained on chat turns."""
    try:
        kind = registry.kind(key)
    except ValueError:
        return "", gr.update(visible=False)
    if kind.instruct:
        return f"The loaded model is {kind.words}.", gr.update(visible=False)
    offer = INSTRUCT_MODEL in registry.choices()
    return (f"**The loaded model is not a chat model**: it is {kind.words}. It will answer with text of its own "
            "kind, not replies to you." + (f" Chat with *{INSTRUCT_MODEL}*, the shipped instruct model, instead:"
                                           if offer else "")), gr.update(visible=offer)


def use_instruct_model(registry: ModelRegistry, policy) -> tuple:
    """(model key, model info, note, offer button) once the shipped instruct model is the session's."""
    policy.allow_model(INSTRUCT_MODEL, registry.choices())
    with shown_in_page():
        registry.get(INSTRUCT_MODEL)
    return (INSTRUCT_MODEL, registry.describe(INSTRUCT_MODEL), *model_note(registry, INSTRUCT_MODEL))


def chat_tab(registry: ModelRegistry, model_key: gr.State, sampler: Inputs, model_info: gr.Markdown,
             policy=None) -> None:
    """Build the tab and wire it; the reply uses the Denoise tab's sampler controls. Opening the tab says
    whether the session's model is a chat model, and offers the shipped instruct model when it is not."""
    from ..serving import LOCAL

    policy = policy or LOCAL
    with gr.Tab("Chat") as tab:
        gr.Markdown("Multi-turn chat through the tokenizer's chat template, for instruct-style models (for "
                    "example one fine-tuned in the Quick SFT tab). The reply is still written by denoising: "
                    "watch the canvas. End-of-text is committed last and stripped between turns. Uses the "
                    "sampler parameters of the Denoise tab.")
        with gr.Row(equal_height=True):
            note = gr.Markdown("")
            offer = gr.Button(f"Use {INSTRUCT_MODEL}", visible=False, scale=0, min_width=260)
        chatbot = gr.Chatbot(label="Conversation", height=320)
        with gr.Row():
            message = gr.Textbox(label="Your message", scale=4)
            send = gr.Button("Send", variant="primary", scale=1)
            clear = gr.Button("Clear", scale=1)
        gr.HTML(CANVAS_LEGEND)
        canvas = gr.HTML()
    tab.select(partial(model_note, registry), [model_key], [note, offer], api_name=False)
    offer.click(partial(use_instruct_model, registry, policy), None, [model_key, model_info, note, offer],
                api_name=False)
    turn, inputs = by_name(partial(chat_turn, registry), [model_key, message, chatbot], sampler)
    outputs = [chatbot, message, canvas]
    send.click(turn, inputs, outputs, api_name="chat", concurrency_limit=2)
    message.submit(turn, inputs, outputs, api_name=False, concurrency_limit=2)
    clear.click(lambda: ([], ""), None, [chatbot, canvas], api_name=False)
