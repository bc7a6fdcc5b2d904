import torch

from llada_play import TraceRecorder, generate
from llada_play.ui.widgets import DenoisingPlayer, grid_figure


def test_player_scrubs_and_jumps_by_block(tiny_model, char_tokenizer):
    recorder = TraceRecorder(char_tokenizer)
    generate(tiny_model, torch.tensor([[12, 13]]), steps=8, gen_length=16, block_length=8, hooks=recorder)
    trace = recorder.trace()
    player = DenoisingPlayer(trace)
    assert player.slider.max == 8 and player.slider.value == 8
    player.slider.value = 0
    assert player.canvas.value.count("lp-tok lp-mask") == 16
    assert player.figure.layout.title.text == "step 0 of 8"
    player._next_block(None)
    assert player.slider.value == 4 and player.canvas.value.count("lp-tok lp-mask") == 8
    player._next_block(None)
    assert player.slider.value == 8 and "lp-tok lp-mask" not in player.canvas.value
    fig = grid_figure(trace, 8, width=8)
    assert len(fig.data[1].z) == 2 and all(v is not None for r in fig.data[1].z for v in r)
    start = grid_figure(trace, 0, width=8)  # all masked: drawn as grey cells, not as a blank chart
    assert all(v == 1 for r in start.data[0].z for v in r) and all(v is None for r in start.data[1].z for v in r)


def test_puzzle_replay_scrubs_both_grids_and_carries_a_static_picture():
    import base64

    from llada_play.experiments.puzzle import load_pair
    from llada_play.experiments.puzzle_replay import solve_live, twin_attempt
    from llada_play.experiments.sudoku import make_puzzles
    from llada_play.ui.paths import PUZZLE_RESULTS
    from llada_play.ui.puzzle_view import attempts_figure
    from llada_play.ui.widgets import PuzzleReplay
    from tests.browser import require_chromium

    pair = load_pair(PUZZLE_RESULTS)
    puzzle = make_puzzles(1, 6, 14, seed=5)[0]
    attempts = {"diffusion": solve_live(*pair["diffusion"], puzzle),
                "twin": twin_attempt(*pair["autoregressive"], puzzle)}
    replay = PuzzleReplay(attempts)
    assert replay.slider.max == puzzle.blanks and "lp-guess" not in replay.grids[0].value.split("</style>")[1]
    replay.slider.value = 1
    shown = [grid.value.split("</style>")[1] for grid in replay.grids]
    assert shown[0].count("lp-guess") == puzzle.blanks - 1 and shown[1].count("#1<") == 1
    assert f"step 1 of {puzzle.blanks}" in shown[0]
    strip = attempts_figure(attempts, fractions=(0.0, 1.0))
    digits = [a["text"] for a in strip.layout.annotations if a["text"].strip("<b>/i").isdigit()]
    assert len(digits) == 2 * (36 + 36 - puzzle.blanks)  # both rows: givens at step 0, every cell at the end
    require_chromium()
    png = base64.b64decode(replay._repr_mimebundle_()["image/png"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
