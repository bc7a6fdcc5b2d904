"""Static pictures beside interactive outputs, so that a notebook shows its content wherever it is read.

GitHub, nbviewer and an HTML export run no JavaScript and no kernel: a plotly figure or an ipywidget stored
alone shows as a blank gap or as ``DenoisingPlayer(children=...``. Every figure and widget of the project
therefore carries an ``image/png`` as well, drawn by plotly's kaleido through the system's Chromium (the same
browser the tests drive; nothing is downloaded). JupyterLab and VS Code still draw the interactive version
(they prefer the richer output type); the others fall back to the picture. Where no browser is installed the
picture is left out, silently: the interactive output is unchanged.
"""
from __future__ import annotations

import base64
import logging
import warnings

import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer

RENDERER = "plotly_mimetype+static_png"
_log = logging.getLogger(__name__)
_unavailable: list[str] = []  # why the last attempt failed; not retried once kaleido has no browser


def png_of(fig, width: int | None = None, height: int | None = None, scale: float = 1.0) -> bytes | None:
    """The figure as PNG bytes, or None when kaleido cannot draw here (no Chrome/Chromium found).

    The first picture starts a browser for itself (~2 s); once that has worked, one browser is kept for the rest of
    the process (kaleido's sync server, closed at exit), so that later pictures take ~0.15 s: a widget's final
    picture then follows its last event at once."""
    if _unavailable:
        return None
    # Twice: on a loaded machine kaleido's first browser page has failed before its script was defined
    # ("kaleido_scopes is not defined", seen 2026-12-03 while two training runs used both cores), and the same
    # notebook run again drew every picture; one failure then no longer costs the whole notebook its pictures.
    # A missing browser fails both tries and turns pictures off for the process.
    for attempt in range(2):
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "The kopts argument is ignored", UserWarning)
                png = pio.to_image(fig, format="png", width=width, height=height, scale=scale, validate=False)
            break
        except Exception as err:  # noqa: BLE001 - kaleido's errors differ by version; any only loses the picture
            if attempt == 0:
                continue
            _unavailable.append(f"{type(err).__name__}: {err}")
            _log.warning("static pictures are off (%s); install Chromium to store them in notebooks", err)
            return None
    _keep_browser()
    return png


def _keep_browser() -> None:
    # started only after a picture has been drawn: the server's thread would wait forever if it found no browser
    try:
        import kaleido

        kaleido.start_sync_server(silence_warnings=True)
    except (ImportError, AttributeError):  # kaleido before 1.1 has no server; each picture starts its own browser
        pass


class StaticPngRenderer(MimetypeRenderer):
    """plotly renderer: the figure as ``image/png`` when kaleido can draw it, nothing otherwise."""

    def __init__(self, width: int | None = None, height: int | None = None):
        self.width, self.height = width, height

    def to_mimebundle(self, fig_dict):
        png = png_of(fig_dict, self.width, self.height)
        return {"image/png": base64.b64encode(png).decode()} if png else {}


def use_static_fallbacks() -> None:
    """Make every ``fig.show()`` store plotly's own output together with a PNG of it (call once per notebook)."""
    pio.renderers["static_png"] = StaticPngRenderer()
    pio.renderers.default = RENDERER


class StaticFallback:
    """Mixin for ipywidgets: the widget's display also carries a PNG of :meth:`static_figure`, which is what a
    reader sees where widgets cannot run. The picture is taken when the widget is displayed (or its display is
    updated)."""

    def static_figure(self):
        raise NotImplementedError

    def static_png(self) -> bytes | None:
        figure = self.static_figure()
        return None if figure is None else png_of(figure)

    def _repr_mimebundle_(self, **kwargs):
        bundle = dict(super()._repr_mimebundle_(**kwargs) or {})
        png = self.static_png()
        if png is not None:
            bundle["image/png"] = base64.b64encode(png).decode()
        return bundle
