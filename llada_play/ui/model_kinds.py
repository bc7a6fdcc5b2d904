"""What kind of model is loaded, in plain words, and the defaults that fit it: a text model continues a prompt,
an instruct model answers chat messages, the task models belong to their own tabs."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

INSTRUCT_MODEL = "Arithmetic (SFT of the default)"  # the shipped model that answers chat messages


@dataclass(frozen=True)
class ModelKind:
    name: str  # text, instruct, arithmetic, sudoku, few-shot, reversal, autoregressive
    words: str  # what the model does, for the top of the page
    instruct: bool  # trained on chat turns: the Chat tab and the chat template fit it
    prompt: str | None = None  # a Denoise prompt that fits it (None: keep what the page has)
    tab: str | None = None  # the tab made for it

    @property
    def chat(self) -> bool:
        return self.instruct


TEXT = ModelKind("text", "a text model: it continues a prompt in the style of what it was trained on (not a "
                         "chat model)", False, "Romeo.\n")
INSTRUCT = ModelKind("instruct", "an instruct model: fine-tuned on question-and-answer turns; it answers chat "
                                 "messages (the chat template is on)", True)
ARITHMETIC = ModelKind("arithmetic", "an instruct model for sums: it answers questions such as \"What is 12 + "
                                     "7?\" (the chat template is on)", True, "What is 12 + 7?")
SUDOKU = ModelKind("sudoku", "a Sudoku model: it fills 6x6 grids; use the Puzzle tab", False, tab="Puzzle")
FEW_SHOT = ModelKind("few-shot", "a few-shot model: it answers key -> colour prompts from examples; use the "
                                 "In-context learning tab", False, tab="In-context learning")
REVERSAL = ModelKind("reversal", "a reversal-curse model: it learnt invented facts about people; use the "
                                 "Reversal curse tab", False, tab="Reversal curse")
AUTOREGRESSIVE = ModelKind("autoregressive", "an autoregressive twin: it writes left to right; the diffusion "
                                             "tabs treat it as a mask predictor it was never trained to be", False)

SHIPPED_KINDS = {
    "Shakespeare, diffusion (default)": TEXT,
    "Shakespeare, autoregressive twin": AUTOREGRESSIVE,
    INSTRUCT_MODEL: ARITHMETIC,
    "Arithmetic that edits (SFT of the default, edit ratio 0.1)": ARITHMETIC,
    "Reversal curse, diffusion (seed 0)": REVERSAL,
    "Reversal curse, autoregressive (seed 0)": AUTOREGRESSIVE,
    "Sudoku 6x6, diffusion (seed 0)": SUDOKU,
    "Sudoku 6x6, autoregressive twin (seed 0)": AUTOREGRESSIVE,
    "Sudoku 6x6, diffusion that edits (seed 0)": SUDOKU,
    "Few-shot, diffusion (seed 1)": FEW_SHOT,
    "Few-shot, autoregressive twin (seed 1)": AUTOREGRESSIVE,
}


def trained_with(path: str | Path | None) -> str | None:
    """The objective a run directory's summary.json records for the model at ``path`` (its ``final``
    directory or the run itself), None where there is none."""
    if path is None:
        return None
    for folder in (Path(path), Path(path).parent):
        summary = folder / "summary.json"
        if summary.is_file():
            try:
                return json.loads(summary.read_text()).get("objective")
            except (OSError, ValueError, AttributeError):
                return None
    return None


def kind_of(shipped_name: str | None, path: str | Path | None, causal: bool) -> ModelKind:
    """The kind of a loaded model: a shipped one by name, a causal one as a twin, one fine-tuned here (its run's
    summary says sft) or published as one (LLaDA-8B-Instruct, Dream-v0-Instruct-7B: the name says so) as
    instruct, any other as a text model."""
    if shipped_name in SHIPPED_KINDS:
        return SHIPPED_KINDS[shipped_name]
    if causal:
        return AUTOREGRESSIVE
    name = Path(str(path or "")).name.lower()
    if trained_with(path) == "sft" or "instruct" in name or "chat" in name:
        return INSTRUCT
    return TEXT
