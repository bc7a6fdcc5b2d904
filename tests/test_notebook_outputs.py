"""The committed notebooks show their content wherever they are opened: every interactive output (a plotly
figure, a widget) has a static picture beside it, and no output depends on JavaScript fetched from a CDN."""
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("0*.ipynb"))
INTERACTIVE = ("application/vnd.plotly.v1+json", "application/vnd.jupyter.widget-view+json")


def outputs_without_picture(path: Path) -> list[str]:
    missing = []
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        outputs = cell.get("outputs", [])
        pictures = any("image/png" in o.get("data", {}) for o in outputs)
        for output in outputs:
            data = output.get("data", {})
            kinds = [k for k in INTERACTIVE if k in data]
            if "text/html" in data and "cdn.plot.ly" in "".join(data["text/html"]):
                kinds.append("plotly.js from a CDN")
            if kinds and not pictures:
                missing.append(f"cell {index}: {', '.join(kinds)} without an image/png")
    return missing


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_interactive_output_has_a_static_picture(path):
    assert outputs_without_picture(path) == []


def test_the_check_catches_a_bare_plotly_figure(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("fig.show()")
    cell.outputs = [nbformat.v4.new_output("display_data", {"application/vnd.plotly.v1+json": {}})]
    nb.cells = [cell]
    nbformat.write(nb, tmp_path / "bare.ipynb")
    assert outputs_without_picture(tmp_path / "bare.ipynb") == ["cell 0: application/vnd.plotly.v1+json without "
                                                                "an image/png"]
