"""The one place where the library's refusals become messages in the page (``gr.Error``)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import gradio as gr


@contextmanager
def shown_in_page(*kinds: type[Exception]) -> Iterator[None]:
    """Re-raise an error of ``kinds`` (default ValueError, which CheckpointError and the sampler's refusals
    are) as ``gr.Error`` with the same message: the page then shows the library's own words."""
    caught = kinds or (ValueError,)
    try:
        yield
    except gr.Error:
        raise  # already meant for the page (and itself a ValueError: do not wrap it twice)
    except caught as err:
        raise gr.Error(str(err)) from err
