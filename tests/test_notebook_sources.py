"""Each notebook is a pair: ``notebooks/<name>.py`` (jupytext's percent format, the source people edit and review)
and ``notebooks/<name>.ipynb`` (what users open, with its stored outputs). The two must hold the same cells:
a source edited without ``jupytext --sync`` (or an .ipynb edited outside a paired JupyterLab) fails here."""
from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
SOURCES = sorted(NOTEBOOK_DIR.glob("*.py"))
FORMATS = "ipynb,py:percent"


def cells(nb) -> list[tuple[str, str, list[str]]]:
    """What a pair must agree on: each cell's type, source and tags (outputs live in the .ipynb only)."""
    return [(cell.cell_type, cell.source, list(cell.metadata.get("tags", []))) for cell in nb.cells]


def pair_differences(ipynb: Path, source: Path) -> list[str]:
    """One entry per difference between the .py read by jupytext and the .ipynb; empty when they are in sync."""
    from_py, from_ipynb = cells(jupytext.read(source)), cells(nbformat.read(ipynb, as_version=4))
    problems = []
    for i, ((py_type, py_source, py_tags), (nb_type, nb_source, nb_tags)) in enumerate(zip(from_py, from_ipynb)):
        if py_type != nb_type:
            problems.append(f"cell {i}: {py_type} in {source.name}, {nb_type} in {ipynb.name}")
        if py_tags != nb_tags:
            problems.append(f"cell {i}: tags {py_tags} in {source.name}, {nb_tags} in {ipynb.name}")
        if py_source != nb_source:
            diff = difflib.unified_diff(nb_source.splitlines(), py_source.splitlines(), ipynb.name, source.name,
                                        n=0, lineterm="")
            problems.append(f"cell {i}: sources differ\n" + "\n".join(list(diff)[2:]))
    if len(from_py) != len(from_ipynb):
        problems.append(f"{len(from_py)} cells in {source.name}, {len(from_ipynb)} in {ipynb.name}")
    return problems


def test_every_notebook_has_its_source_and_every_source_its_notebook():
    assert NOTEBOOKS, "no notebooks found"
    assert [p.stem for p in NOTEBOOKS] == [p.stem for p in SOURCES], (
        "each notebooks/<name>.ipynb needs its notebooks/<name>.py and back: "
        f"jupytext --set-formats {FORMATS} notebooks/<name>.ipynb (or the .py)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_source_and_notebook_hold_the_same_cells(path):
    problems = pair_differences(path, path.with_suffix(".py"))
    assert not problems, (f"{path.name} and its .py differ (bring the older side up to date with "
                          f"`jupytext --sync notebooks/{path.name}`):\n" + "\n".join(problems))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_pairs_are_declared_and_answers_stay_tagged_and_hidden(path):
    """Both sides name the pairing (so JupyterLab and ``jupytext --sync`` keep it), and every exercise's answer
    cell carries the ``answer`` tag and is collapsed in JupyterLab on both sides."""
    notebook, source = nbformat.read(path, as_version=4), jupytext.read(path.with_suffix(".py"))
    for nb in (notebook, source):
        assert nb.metadata.get("jupytext", {}).get("formats") == FORMATS, (
            f"pair it: jupytext --set-formats {FORMATS} notebooks/{path.name}")
        answers = [cell for cell in nb.cells if "answer" in cell.metadata.get("tags", [])]
        assert answers, "every notebook ends with exercises whose answers are tagged"
        assert all(cell.cell_type == "code" and cell.metadata.get("jupyter", {}).get("source_hidden")
                   for cell in answers)
        assert all("# Answer" in cell.source for cell in answers)


def test_the_check_catches_an_edited_source_a_lost_tag_and_a_missing_cell(tmp_path):
    original = NOTEBOOKS[0]
    ipynb, source = tmp_path / original.name, tmp_path / original.with_suffix(".py").name
    shutil.copy(original, ipynb)
    shutil.copy(original.with_suffix(".py"), source)
    assert pair_differences(ipynb, source) == []

    text = source.read_text()
    source.write_text(text.replace("model, tokenizer = load_model()", "model, tokenizer = load_model(None)", 1))
    [edited] = pair_differences(ipynb, source)
    assert edited.startswith("cell 1: sources differ\n@@ ") and "\n-model, tokenizer = load_model()  #" in edited
    assert "\n+model, tokenizer = load_model(None)  #" in edited

    source.write_text(text.replace('tags=["answer"]', "", 1))
    [untagged] = pair_differences(ipynb, source)
    assert untagged.endswith(f"tags [] in {source.name}, ['answer'] in {ipynb.name}")

    nb = nbformat.read(ipynb, as_version=4)
    nb.cells.pop()
    nbformat.write(nb, ipynb)
    source.write_text(text)
    assert pair_differences(ipynb, source) == [f"{len(nb.cells) + 1} cells in {source.name}, "
                                               f"{len(nb.cells)} in {ipynb.name}"]


def test_the_set_up_cell_finds_the_project_and_the_quick_mode(tmp_path, monkeypatch):
    """The notebooks' first cell calls ``setup()``: ROOT is the checkout whether the kernel runs in notebooks/ or
    at the top (and the one beside the package from anywhere else); QUICK follows LLADA_PLAY_QUICK."""
    from llada_play.ui.notebook import project_root, quick_mode

    root = NOTEBOOK_DIR.parent
    assert project_root(NOTEBOOK_DIR) == root and project_root(root) == root and project_root(tmp_path) == root
    monkeypatch.setenv("LLADA_PLAY_QUICK", "1")
    assert quick_mode()
    monkeypatch.setenv("LLADA_PLAY_QUICK", "0")
    assert not quick_mode()
