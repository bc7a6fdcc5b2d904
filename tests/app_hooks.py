"""A logits hook for tests/test_app_api.py, named on the app's command line (--logits-hook)."""

OPENING_TOKEN = 40


def open_blocks_with_a_token(context, logits):
    """Every block opens with OPENING_TOKEN: all the mass there, at the block's first position."""
    logits[:, context.block_start] = float("-inf")
    logits[:, context.block_start, OPENING_TOKEN] = 0.0
