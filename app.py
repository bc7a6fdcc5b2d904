"""llada-play in the browser: watch a masked-diffusion model write, step by step.

    python app.py [--model DIR] [--models-dir runs] [--host 127.0.0.1] [--port 7860]

The page itself is built in ``llada_play/ui`` (``app.build_app`` composes one module per tab).
"""
from __future__ import annotations

import argparse
import json
import os

# before gradio and the hub client are imported: they read these at import time
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from llada_play.model.checkpoint import DTYPES  # noqa: E402
from llada_play.ui.app import build_app, launch  # noqa: E402
from llada_play.ui.paths import RUNS_DIR  # noqa: E402
from llada_play.ui.registry import ModelRegistry  # noqa: E402

__all__ = ["ModelRegistry", "build_app", "main"]


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="llada-play: watch a masked diffusion LM denoise")
    parser.add_argument("--model", default=None, help="model directory for the 'shipped default' entry")
    parser.add_argument("--models-dir", default=str(RUNS_DIR),
                        help="folder whose model directories (*/ or */*/ with config.json) can be chosen")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow checkpoints that ship their own Python code (LLaDA and Dream are read natively and "
                             "need no such code); off by default")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES),
                        help="weights dtype (default float32; bfloat16 for LLaDA-8B)")
    parser.add_argument("--device", default="cpu", help="where models run (cpu, cuda, cuda:1...)")
    parser.add_argument("--device-map", default=None, help="spread large models over GPUs and CPU (e.g. auto)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--reversal-overrides", default=None, metavar="JSON",
                        help="settings for the reversal tab's quick run, e.g. '{\"steps\": 200}' on a slow machine")
    return parser


def reversal_overrides(parser: argparse.ArgumentParser, text: str | None) -> dict | None:
    """The parsed ``--reversal-overrides``, refused now (not after a click) when they are not valid settings."""
    if not text:
        return None
    from llada_play.experiments.reversal_experiment import ReversalConfig

    try:
        overrides = json.loads(text)
        ReversalConfig.quick(**overrides)
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        parser.error(f"--reversal-overrides: {err}")
    return overrides


def main(argv: list[str] | None = None) -> None:
    parser = argument_parser()
    args = parser.parse_args(argv)
    overrides = reversal_overrides(parser, args.reversal_overrides)
    torch.set_grad_enabled(False)
    registry = ModelRegistry(args.model, args.models_dir, trust_remote_code=args.trust_remote_code,
                             dtype=DTYPES[args.dtype], device=args.device, device_map=args.device_map)
    launch(build_app(registry, overrides), args.host, args.port)


if __name__ == "__main__":
    main()
