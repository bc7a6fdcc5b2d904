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
    assert len(fig.data[0].z) == 2 and all(v is not None for r in fig.data[0].z for v in r)
