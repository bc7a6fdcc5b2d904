"""The one place where the library's refusals become messages in the page, and one line in the server's log."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import gradio as gr


class Refusal(gr.Error):
    """Bad input, refused: the visitor reads the message in the page; the server's log gets one line, not a
    traceback (gradio prints one for every other error: those are real faults)."""

    def __init__(self, message: str, **options):
        super().__init__(message, **{**options, "print_exception": False})
        print(f"llada-play: refused: {' '.join(str(message).split())[:300]}", file=sys.stderr, flush=True)


@contextmanager
def shown_in_page(*kinds: type[Exception]) -> Iterator[None]:
    """Re-raise an error of ``kinds`` (default ValueError, which CheckpointError and the sampler's refusals
    are) as a :class:`Refusal` with the same message: the page then shows the library's own words."""
    caught = kinds or (ValueError,)
    try:
        yield
    except gr.Error:
        raise  # already meant for the page (and itself a ValueError: do not wrap it twice)
    except caught as err:
        raise Refusal(str(err)) from err
