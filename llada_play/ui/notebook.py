"""The set-up every teaching notebook runs first, kept here once instead of pasted into each notebook.

    from llada_play.ui.notebook import setup
    ROOT, QUICK = setup()

``setup`` hides the loading bars of ``transformers`` (they would clutter the stored outputs), makes every plotly
figure carry a PNG beside its interactive output (``ui/static.py``: GitHub, nbviewer and HTML exports run no
JavaScript), seeds torch, and returns the project's root (where ``data/`` lives) and whether the test suite asked
for the quick, shrunken version of the work (``LLADA_PLAY_QUICK=1``, as ``make test`` sets it).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch
from transformers.utils import logging as hf_logging

from .paths import ROOT
from .static import use_static_fallbacks

QUICK_VARIABLE = "LLADA_PLAY_QUICK"


class NotebookSetup(NamedTuple):
    root: Path  # the repository: data/, runs/ and notebooks/ sit in it
    quick: bool  # shrink the work (fewer steps, fewer questions): the tests run every notebook this way


def project_root(start: Path | None = None) -> Path:
    """The repository holding ``start`` (the working directory by default: a notebook's kernel runs in
    ``notebooks/``, a script perhaps at the top); the one beside the installed package when ``start`` is outside."""
    start = Path.cwd() if start is None else Path(start)
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "llada_play").is_dir():
            return folder
    return ROOT


def quick_mode() -> bool:
    """Whether the environment asks for the quick version of a notebook (``LLADA_PLAY_QUICK=1``)."""
    return os.environ.get(QUICK_VARIABLE) == "1"


def setup(seed: int = 0) -> NotebookSetup:
    """Prepare a notebook's kernel (no loading bars, static pictures, torch seeded); return its root and mode."""
    hf_logging.disable_progress_bar()
    use_static_fallbacks()
    torch.manual_seed(seed)
    return NotebookSetup(project_root(), quick_mode())
