"""The package's layout: no import cycles, and each layer imports only the layers below it.

base (flags) < model < diffusion < training < experiments < recipes, runs, jobs, cli < ui. Every ``import`` counts,
including those inside functions (the lazy ones), since they still tie the modules together. A package's
``__init__`` importing its own submodules stays within its layer; the top-level ``llada_play/__init__.py``,
which re-exports the public API of several layers, is exempt.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "llada_play"

BASE_MODULES = {"flags", "validation"}  # below every layer: importable from all of them, imports none of them
BELOW_TOP = {"base", "model", "diffusion", "training", "experiments"}
TOP_MODULES = {"recipes", "runs", "jobs", "cli"}
# layer -> the layers its modules may import ("root" is llada_play/__init__.py)
ALLOWED = {
    "base": {"base"},
    "model": {"base", "model"},
    "diffusion": {"base", "model", "diffusion"},
    "training": {"base", "model", "diffusion", "training"},
    "experiments": {"base", "model", "diffusion", "training", "experiments"},
    "top": BELOW_TOP | {"top", "root"},
    "ui": BELOW_TOP | {"top", "root", "ui"},
}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (the deepest one that exists: a name imported from a module is the module)
    where: str  # file:line and the statement, to name it in failures

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} ({self.where})"


def modules_of(package_dir: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's __init__) for every .py file under ``package_dir``."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def import_graph(package_dir: Path) -> list[Import]:
    """Every import of one of the package's modules by another, relative imports resolved."""
    modules = modules_of(package_dir)
    root = package_dir.name

    def existing(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges = []
    for module, (path, is_package) in modules.items():
        if module == root:
            continue  # the top-level __init__ re-exports the public API from every layer: exempt
        here = module if is_package else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = {existing(alias.name) for alias in node.names if alias.name.split(".")[0] == root}
            elif isinstance(node, ast.ImportFrom):
                parts = here.split(".")
                base = parts[:len(parts) - node.level + 1] if node.level else []
                full = ".".join(base + ([node.module] if node.module else []))
                if full.split(".")[0] != root:
                    continue
                # `from pkg import sub` imports the module pkg.sub; `from mod import name` imports mod
                targets = {f"{full}.{a.name}" if f"{full}.{a.name}" in modules else existing(full)
                           for a in node.names}
            else:
                continue
            where = f"{path.relative_to(package_dir.parent)}:{node.lineno}: {ast.unparse(node)}"
            edges += [Import(module, target, where) for target in sorted(targets - {None, module})]
    return edges


def layer_of(module: str, root: str = "llada_play") -> str | None:
    """The layer a module belongs to, or None for a module that has none yet."""
    parts = module.split(".")
    if parts == [root]:
        return "root"
    if parts[1] in BELOW_TOP | {"ui"}:
        return parts[1]
    if len(parts) == 2 and parts[1] in BASE_MODULES:
        return "base"
    if len(parts) == 2 and parts[1] in TOP_MODULES:
        return "top"
    return None


def layer_violations(edges: list[Import]) -> list[str]:
    """One line per module without a layer and per import of a layer its importer may not import."""
    problems = []
    for module in sorted({e.source for e in edges} | {e.target for e in edges}):
        if layer_of(module) is None:
            problems.append(f"{module} belongs to no layer: add it to tests/test_layout.py")
    for edge in edges:
        source, target = layer_of(edge.source), layer_of(edge.target)
        if source is not None and target is not None and target not in ALLOWED[source]:
            problems.append(f"{source} imports {target}: {edge}")
    return problems


def import_cycles(edges: list[Import]) -> list[list[Import]]:
    """One cycle (as its imports) for each group of modules that import one another (Tarjan's SCCs)."""
    out: dict[str, list[Import]] = {}
    for edge in edges:
        out.setdefault(edge.source, []).append(edge)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for edge in out.get(node, []):
            if edge.target not in index:
                visit(edge.target)
                low[node] = min(low[node], low[edge.target])
            elif edge.target in on_stack:
                low[node] = min(low[node], index[edge.target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(out):
        if node not in index:
            visit(node)

    cycles = []
    for group in groups:  # breadth first from one member: the shortest way back to it within the group
        start = min(group)
        came_by: dict[str, list[Import]] = {start: []}
        queue, cycle = [start], None
        while cycle is None:
            node = queue.pop(0)
            for edge in out.get(node, []):
                if edge.target == start:
                    cycle = came_by[node] + [edge]
                    break
                if edge.target in group and edge.target not in came_by:
                    came_by[edge.target] = came_by[node] + [edge]
                    queue.append(edge.target)
        cycles.append(cycle)
    return cycles


def test_no_import_cycles_and_layers_import_only_below():
    edges = import_graph(PACKAGE_DIR)
    assert len({e.source for e in edges}) > 20  # the graph was built (every layer imports something)
    cycles = import_cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(
        " then ".join(str(edge) for edge in cycle) for cycle in cycles)
    problems = layer_violations(edges)
    assert not problems, "imports against the layering:\n" + "\n".join(problems)


def test_the_checks_find_cycles_upward_and_lazy_imports(tmp_path):
    """The checks themselves, on a made-up package: a cycle through a relative import inside a function, an
    upward import, and a module outside every layer."""
    pkg = tmp_path / "llada_play"
    for sub in ("", "model", "training"):
        (pkg / sub).mkdir(exist_ok=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "model" / "a.py").write_text("from .b import thing\n")
    (pkg / "model" / "b.py").write_text("def f():\n    from . import a\n    return a\n\nthing = 1\n")
    (pkg / "model" / "c.py").write_text("import llada_play.training.t\n")
    (pkg / "training" / "t.py").write_text("from ..model import a\nfrom ..model.b import thing\n")
    (pkg / "stray.py").write_text("from .model import c\n")

    edges = import_graph(pkg)
    assert {(e.source, e.target) for e in edges} == {
        ("llada_play.model.a", "llada_play.model.b"), ("llada_play.model.b", "llada_play.model.a"),
        ("llada_play.model.c", "llada_play.training.t"), ("llada_play.training.t", "llada_play.model.a"),
        ("llada_play.training.t", "llada_play.model.b"), ("llada_play.stray", "llada_play.model.c")}
    [cycle] = import_cycles(edges)
    assert [(e.source, e.target) for e in cycle] == [("llada_play.model.a", "llada_play.model.b"),
                                                     ("llada_play.model.b", "llada_play.model.a")]
    assert cycle[1].where == "llada_play/model/b.py:2: from . import a"
    assert layer_violations(edges) == [
        "llada_play.stray belongs to no layer: add it to tests/test_layout.py",
        "model imports training: llada_play.model.c -> llada_play.training.t "
        "(llada_play/model/c.py:1: import llada_play.training.t)"]


def test_architecture_md_lists_every_module_and_only_existing_ones():
    import re

    doc = (PACKAGE_DIR.parent / "docs" / "ARCHITECTURE.md").read_text()
    modules = {str(path.relative_to(PACKAGE_DIR)) for path in PACKAGE_DIR.rglob("*.py") if path.name != "__init__.py"}
    listed = set(re.findall(r"^\| `([\w/]+\.py)` \|", doc, flags=re.M))
    assert modules - listed == set(), f"modules missing from docs/ARCHITECTURE.md's table: {sorted(modules - listed)}"
    assert listed - modules == set(), f"docs/ARCHITECTURE.md lists modules that do not exist: {sorted(listed - modules)}"


def test_functions_stay_readable():
    """No function of the library or the app over 80 lines (docstring included); the sampler's generate under 60."""
    files = [*PACKAGE_DIR.rglob("*.py"), PACKAGE_DIR.parent / "app.py"]
    lengths = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lengths[f"{path.relative_to(PACKAGE_DIR.parent)}:{node.name}"] = node.end_lineno - node.lineno + 1
    too_long = {name: n for name, n in lengths.items() if n >= 80}
    assert not too_long, f"functions of 80 lines or more: {too_long}"
    assert lengths["llada_play/diffusion/sampling.py:generate"] < 60


def callers_of(names: set[str]) -> dict[str, set[str]]:
    """name -> the library modules (paths under llada_play/) that call a function of that name."""
    found: dict[str, set[str]] = {name: set() for name in names}
    for path in PACKAGE_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
                if name in found:
                    found[name].add(str(path.relative_to(PACKAGE_DIR)))
    return found


def test_one_step_engine_and_one_set_up():
    """No second implementation of the denoising step: the update rule's pieces are called by the engine alone
    (update.py calls its own helpers; guided_logits, the model call under guidance, is also the likelihood's);
    the set-up checks by requests.prepare alone."""
    step = callers_of({"propose", "choose_commits", "block_logits", "end_rows_after_eos_block",
                       "call_logits_hooks", "step_predictions"})
    for name, modules in step.items():
        assert modules <= {"diffusion/update.py", "diffusion/engine.py"}, (name, modules)
    assert step["propose"] == {"diffusion/engine.py"}
    set_up = callers_of({"check_against_model", "check_token_ids", "resolve_rules", "pinned_tokens"})
    for name, modules in set_up.items():
        assert modules == {"diffusion/requests.py"}, (name, modules)
