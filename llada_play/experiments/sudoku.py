"""Sudoku as a denoising task: generation (seeded), an exact solver, validation and the token encoding.

Grids are ``size`` x ``size`` with boxes of 2x2 (4x4), 2x3 (6x6) or 3x3 (9x9), stored row by row as a tuple of
ints, 0 for an empty cell. A puzzle is written as one character per cell (``_`` for an empty one), so that a
character tokenizer gives one token per cell: the prompt is the puzzle, the answer is the solution.

The difficulty knob is the number of givens and ``singles_only``: whether every empty cell can be found by
"singles" alone (a cell with one candidate left, or a digit with one place left in a row, column or box), the
easiest logical steps. A solver that fills the easy cells first never has to guess on such a puzzle; one that
must go left to right meets cells that are only determined by cells further on.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

BOXES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}  # size -> (box rows, box columns)
BLANK = "_"
EMPTY_MARKS = set("_.0")


def check_size(size: int) -> None:
    if size not in BOXES:
        raise ValueError(f"grid size must be one of {sorted(BOXES)}, got {size!r}")


@lru_cache(maxsize=None)
def units(size: int) -> list[list[int]]:
    """The rows, columns and boxes of a grid, as lists of cell indices (shared between calls: do not modify)."""
    check_size(size)
    box_rows, box_cols = BOXES[size]
    rows = [[r * size + c for c in range(size)] for r in range(size)]
    cols = [[r * size + c for r in range(size)] for c in range(size)]
    boxes = [[(top + r) * size + left + c for r in range(box_rows) for c in range(box_cols)]
             for top in range(0, size, box_rows) for left in range(0, size, box_cols)]
    return rows + cols + boxes


def _unit_name(size: int, index: int) -> str:
    kind, number = ("row", "column", "box")[index // size], index % size + 1
    return f"{kind} {number}"


def parse_grid(text: str, size: int | None = None) -> tuple[int, ...]:
    """A grid from text: one character per cell, digits for givens and ``_``, ``.`` or ``0`` for empty cells;
    whitespace and ``|`` are ignored. The size is inferred from the number of cells when not given."""
    cells = [ch for ch in text if not ch.isspace() and ch != "|"]
    if size is None:
        size = {16: 4, 36: 6, 81: 9}.get(len(cells))
        if size is None:
            raise ValueError(f"a grid has 16, 36 or 81 cells (4x4, 6x6, 9x9); this one has {len(cells)}")
    check_size(size)
    if len(cells) != size * size:
        raise ValueError(f"a {size}x{size} grid has {size * size} cells; this one has {len(cells)}")
    grid = []
    for i, ch in enumerate(cells):
        if ch in EMPTY_MARKS:
            grid.append(0)
        elif ch.isdigit() and 1 <= int(ch) <= size:
            grid.append(int(ch))
        else:
            raise ValueError(f"cell {i + 1} (row {i // size + 1}, column {i % size + 1}) is {ch!r}: use digits "
                             f"1-{size}, or _ . 0 for an empty cell")
    return tuple(grid)


def grid_text(grid: tuple[int, ...] | list[int]) -> str:
    """One character per cell, ``_`` for an empty one (the inverse of :func:`parse_grid`)."""
    return "".join(BLANK if v == 0 else str(v) for v in grid)


def check_grid(grid: tuple[int, ...], size: int) -> None:
    """ValueError for a grid of the wrong length, digits out of range, or a digit twice in a row/column/box."""
    check_size(size)
    if len(grid) != size * size:
        raise ValueError(f"a {size}x{size} grid has {size * size} cells, got {len(grid)}")
    bad = next((i for i, v in enumerate(grid) if not 0 <= v <= size), None)
    if bad is not None:
        raise ValueError(f"cell {bad + 1} holds {grid[bad]}, outside 1-{size}")
    for index, unit in enumerate(units(size)):
        seen: dict[int, int] = {}
        for cell in unit:
            value = grid[cell]
            if value and value in seen:
                raise ValueError(f"contradictory givens: {value} appears twice in {_unit_name(size, index)}")
            seen[value] = cell


@lru_cache(maxsize=None)
def _peers(size: int) -> list[set[int]]:
    peers = [set() for _ in range(size * size)]
    for unit in units(size):
        for cell in unit:
            peers[cell].update(unit)
    for cell, p in enumerate(peers):
        p.discard(cell)
    return peers


def solve(grid: tuple[int, ...], size: int, limit: int = 2, rng: random.Random | None = None) -> list[tuple[int, ...]]:
    """Up to ``limit`` solutions of ``grid`` (exact backtracking, fewest candidates first); ``rng`` shuffles the
    order digits are tried in (to draw a random full grid from an empty one)."""
    check_grid(grid, size)
    peers = _peers(size)
    cells = list(grid)
    found: list[tuple[int, ...]] = []

    def candidates(cell: int) -> list[int]:
        taken = {cells[p] for p in peers[cell]}
        return [d for d in range(1, size + 1) if d not in taken]

    def search() -> None:
        empty = [c for c in range(len(cells)) if cells[c] == 0]
        if not empty:
            found.append(tuple(cells))
            return
        cell = min(empty, key=lambda c: len(candidates(c)))
        options = candidates(cell)
        if rng is not None:
            rng.shuffle(options)
        for digit in options:
            cells[cell] = digit
            search()
            if len(found) >= limit:
                break
        cells[cell] = 0

    search()
    return found


def singles(grid: tuple[int, ...] | list[int], size: int) -> dict[int, int]:
    """{cell: digit} for every empty cell that a single forces on the grid as it stands: one candidate left in
    the cell (naked), or the only place left for a digit in a row, column or box (hidden)."""
    peers = _peers(size)
    options = {c: set(range(1, size + 1)) - {grid[p] for p in peers[c]} for c in range(len(grid)) if grid[c] == 0}
    found = {c: next(iter(digits)) for c, digits in options.items() if len(digits) == 1}
    for unit in units(size):
        for digit in set(range(1, size + 1)) - {grid[c] for c in unit}:
            places = [c for c in unit if digit in options.get(c, ())]
            if len(places) == 1:
                found.setdefault(places[0], digit)
    return found


def solve_by_singles(grid: tuple[int, ...], size: int) -> tuple[int, ...] | None:
    """The solution when singles alone fill the grid (no guess ever needed), else None. Every single is a sound
    deduction, so filling all of a round's singles at once reaches the same grid as filling them one by one."""
    cells = list(grid)
    while 0 in cells:
        found = singles(cells, size)
        if not found:
            return None
        for cell, digit in found.items():
            cells[cell] = digit
    return tuple(cells)


def forced_cells(grid: tuple[int, ...], size: int) -> set[int]:
    """The empty cells whose digit the grid already forces by a single: the cells a human solver would fill next."""
    return set(singles(grid, size))


@dataclass(frozen=True)
class Puzzle:
    size: int
    givens: tuple[int, ...]  # 0 for an empty cell
    solution: tuple[int, ...]

    @property
    def text(self) -> str:
        return grid_text(self.givens)

    @property
    def blanks(self) -> int:
        return self.givens.count(0)


def make_puzzle(size: int, givens: int, rng: random.Random, singles_only: bool = True) -> Puzzle:
    """A puzzle with a unique solution and about ``givens`` givens: a random full grid whose cells are emptied in
    random order while the puzzle stays uniquely solvable (by singles alone, when ``singles_only``). It keeps more
    givens when no further cell can be emptied."""
    check_size(size)
    if not 0 <= givens <= size * size:
        raise ValueError(f"givens must be between 0 and {size * size}, got {givens}")
    solution = solve(tuple([0] * size * size), size, limit=1, rng=rng)[0]
    cells = list(solution)
    order = list(range(size * size))
    rng.shuffle(order)
    for cell in order:
        if sum(1 for v in cells if v) <= givens:
            break
        kept, cells[cell] = cells[cell], 0
        trial = tuple(cells)
        ok = solve_by_singles(trial, size) is not None if singles_only else len(solve(trial, size)) == 1
        if not ok:
            cells[cell] = kept
    return Puzzle(size, tuple(cells), solution)


def make_puzzles(count: int, size: int, givens: int, seed: int, singles_only: bool = True,
                 exclude: set[str] | None = None) -> list[Puzzle]:
    """``count`` different puzzles drawn with ``seed`` (none whose text is in ``exclude``: held-out sets stay
    apart from training sets)."""
    rng, seen, out = random.Random(seed), set(exclude or ()), []
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > 20 * count + 100:
            raise ValueError(f"could not draw {count} different {size}x{size} puzzles with {givens} givens")
        puzzle = make_puzzle(size, givens, rng, singles_only)
        if puzzle.text not in seen:
            seen.add(puzzle.text)
            out.append(puzzle)
    return out


def check_puzzle(text: str, size: int | None = None) -> Puzzle:
    """A user's puzzle, checked: parsed, consistent, with exactly one solution (ValueError otherwise)."""
    grid = parse_grid(text, size)
    size = {16: 4, 36: 6, 81: 9}[len(grid)]
    check_grid(grid, size)
    solutions = solve(grid, size, limit=2)
    if not solutions:
        raise ValueError("this puzzle has no solution")
    if len(solutions) > 1:
        raise ValueError("this puzzle has more than one solution: give more digits")
    return Puzzle(size, grid, solutions[0])


def mistakes(grid: tuple[int, ...] | list[int], puzzle: Puzzle) -> list[int]:
    """Cells of ``grid`` that differ from the puzzle's solution (empty cells count as wrong)."""
    return [i for i, (v, s) in enumerate(zip(grid, puzzle.solution)) if v != s]
