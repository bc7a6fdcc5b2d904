"""Errors of the model layer, in a module that imports nothing so that every model module can raise them."""
from __future__ import annotations


class CheckpointError(ValueError):
    """A model directory is missing a file, or a file does not match the others."""
