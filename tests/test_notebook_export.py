"""The committed notebooks read as HTML exports: in Chromium, with the network cut, every cell that holds a plot or
a widget shows a picture (loaded, of a real size), and no widget prints its Python repr. A screenshot of each
export's first picture goes to test-artifacts/ for a person to look at."""
from pathlib import Path

import nbformat
import pytest

from tests.browser import ROOT, browser_page, require_chromium
from tests.test_notebook_outputs import INTERACTIVE, NOTEBOOKS

ARTIFACTS = ROOT / "test-artifacts"

# For each cell index of interest: how many <img> of the cell's outputs are loaded and drawn at least 100 px tall.
PICTURES_JS = """(indices) => {
  const cells = [...document.querySelectorAll('.jp-Cell')];
  return indices.map(i => [...cells[i].querySelectorAll('.jp-OutputArea-output img')]
    .filter(img => img.complete && img.naturalWidth > 0 && img.getBoundingClientRect().height >= 100).length);
}"""


def interactive_cells(path: Path) -> list[int]:
    cells = nbformat.read(path, as_version=4).cells
    return [i for i, cell in enumerate(cells)
            if any(k in o.get("data", {}) for o in cell.get("outputs", []) for k in INTERACTIVE)]


def export(path: Path, out: Path) -> Path:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(path, as_version=4))
    html = out / f"{path.stem}.html"
    html.write_text(body)
    return html


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_plot_and_widget_shows_a_picture_in_an_html_export(path, tmp_path):
    require_chromium()
    wanted = interactive_cells(path)
    html = export(path, tmp_path)
    with browser_page(1200, 900) as page:
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                   else route.abort())  # a reader offline: nothing may come from a CDN
        page.goto(html.as_uri())
        page.wait_for_load_state("load")
        counts = page.evaluate(PICTURES_JS, wanted)
        assert "(children=(" not in page.inner_text("body")  # a widget's repr instead of a picture
        blank = [index for index, count in zip(wanted, counts) if count == 0]
        assert blank == [], f"cells with a plot or widget but no picture drawn: {blank}"
        if wanted:
            ARTIFACTS.mkdir(exist_ok=True)
            cell = page.locator(".jp-Cell").nth(wanted[0])
            cell.scroll_into_view_if_needed()
            cell.screenshot(path=str(ARTIFACTS / f"html-export-{path.stem}.png"))


def test_the_export_check_sees_a_plot_without_a_picture(tmp_path):
    require_chromium()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("fig.show()")
    cell.outputs = [nbformat.v4.new_output("display_data", {"application/vnd.plotly.v1+json": {"data": []},
                                                            "text/plain": "Figure()"})]
    nb.cells = [cell]
    nbformat.write(nb, tmp_path / "bare.ipynb")
    html = export(tmp_path / "bare.ipynb", tmp_path)
    with browser_page() as page:
        page.goto(html.as_uri())
        assert page.evaluate(PICTURES_JS, interactive_cells(tmp_path / "bare.ipynb")) == [0]
