"""llada-play in the browser: watch a masked-diffusion model write, step by step.

    python app.py [--model DIR] [--models-dir runs] [--host 127.0.0.1] [--port 7860]
    python app.py --host 0.0.0.0 --auth teacher:secret     # a class: see "Teaching a class" in README.md

The page itself is built in ``llada_play/ui`` (``app.build_app`` composes one module per tab).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os

# before gradio, the hub client and torch are imported: they read these at import time
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# OpenMP threads that wait by spinning hold their cores: with anything else busy on the machine (a browser, a
# training run, another process) a default Denoise run measured 10-16 s instead of 1.1 s; passive waiting: 1.3 s.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from llada_play.model.checkpoint import DTYPE_NAMES, dtype_named  # noqa: E402
from llada_play.ui.app import build_app, launch  # noqa: E402
from llada_play.ui.paths import RUNS_DIR  # noqa: E402
from llada_play.ui.registry import ModelRegistry  # noqa: E402
from llada_play.ui.serving import LOCAL, ServingPolicy, auth_refusal, is_loopback, parse_logins  # noqa: E402

__all__ = ["ModelRegistry", "build_app", "main"]


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="llada-play: watch a masked diffusion LM denoise")
    parser.add_argument("--model", default=None, help="model directory for the 'shipped default' entry")
    parser.add_argument("--models-dir", default=str(RUNS_DIR),
                        help="folder whose model directories (*/ or */*/ with config.json) can be chosen")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow checkpoints that ship their own Python code (LLaDA and Dream are read natively and "
                             "need no such code); off by default")
    parser.add_argument("--dtype", default="auto", choices=DTYPE_NAMES,
                        help="weights dtype (default auto: bfloat16 where the processor computes it natively, about "
                             "2x faster there, else float32; float32 gives the library's tokens exactly)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for the Denoise tab's forward passes (default: one core fewer than this "
                             "machine has, at least 1: the server and a browser on the same machine need a core; on "
                             "2 cores a default run in Chromium took 0.62 s with 1 thread, 0.82 s with 2)")
    parser.add_argument("--device", default="cpu", help="where models run (cpu, cuda, cuda:1...)")
    parser.add_argument("--device-map", default=None, help="spread large models over GPUs and CPU (e.g. auto)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only); any other address serves a "
                             "class and needs --auth or --no-auth")
    parser.add_argument("--auth", action="append", metavar="USER:PASS", help="a login (repeat for more)")
    parser.add_argument("--auth-file", metavar="FILE", help="logins, one USER:PASS a line (# comments)")
    parser.add_argument("--no-auth", action="store_true", help="serve beyond this machine without a login")
    parser.add_argument("--serving", action="store_true",
                        help="serving mode on loopback too (behind a reverse proxy, every visitor looks local)")
    parser.add_argument("--training-slots", type=int, default=1,
                        help="training runs (Quick SFT, reversal experiment) at once; the others queue (default 1)")
    parser.add_argument("--max-queued-runs-per-login", type=int, default=1,
                        help="in serving mode, training runs (Quick SFT and reversal experiment together) one login "
                             "may have queued or running at once; another is refused with a message in the page "
                             "(default 1; without logins: per browser session)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--logits-hook", action="append", default=[], metavar="MODULE:FUNCTION",
                        help="a logits hook (a function (LogitsContext, logits) -> logits or None) applied to every "
                             "run of the sampling tabs, imported from an importable module; repeat for more")
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


def serving_options(parser: argparse.ArgumentParser, args) -> tuple[list[tuple[str, str]], ServingPolicy]:
    """(logins, policy) of the flags; the app refuses to start, in one line, when they do not fit."""
    try:
        logins = parse_logins(args.auth, args.auth_file)
    except ValueError as err:
        parser.error(str(err))
    refusal = auth_refusal(args.host, logins, args.no_auth)
    if refusal:
        parser.exit(2, f"app.py: {refusal}\n")
    if args.training_slots < 1:
        parser.error("--training-slots must be at least 1")
    if args.max_queued_runs_per_login < 1:
        parser.error("--max-queued-runs-per-login must be at least 1")
    serving = args.serving or not is_loopback(args.host)
    if not serving:
        return logins, LOCAL if args.training_slots == 1 else ServingPolicy(training_slots=args.training_slots)
    return logins, ServingPolicy(serving=True, training_slots=args.training_slots,
                                 max_queued_runs_per_login=args.max_queued_runs_per_login)


def logits_hooks(parser: argparse.ArgumentParser, names: list[str]) -> list:
    """The functions named ``module:function``, imported; a bad name ends the app with one line."""
    hooks = []
    for name in names:
        module_name, sep, function = name.partition(":")
        if not sep or not module_name or not function:
            parser.error(f"--logits-hook {name!r} should look like module:function")
        try:
            hook = getattr(importlib.import_module(module_name), function)
        except (ImportError, AttributeError) as err:
            parser.error(f"--logits-hook {name!r}: {err}")
        if not callable(hook):
            parser.error(f"--logits-hook {name!r} is not callable")
        hooks.append(hook)
    return hooks


def sampling_threads() -> int:
    """One core fewer than this process may use, at least 1: the model shares the machine with the server's own
    threads and often a browser, and torch's threads slow down a lot when one of them has to wait for a core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - 1)


def main(argv: list[str] | None = None) -> None:
    parser = argument_parser()
    args = parser.parse_args(argv)
    overrides = reversal_overrides(parser, args.reversal_overrides)
    logins, policy = serving_options(parser, args)
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    torch.set_grad_enabled(False)
    registry = ModelRegistry(args.model, args.models_dir, trust_remote_code=args.trust_remote_code,
                             dtype=dtype_named(args.dtype, args.device), device=args.device, device_map=args.device_map,
                             sampler_threads=args.threads or sampling_threads(),
                             logits_hooks=logits_hooks(parser, args.logits_hook), serving=policy.serving)
    launch(build_app(registry, overrides, policy), args.host, args.port, logins, policy)


if __name__ == "__main__":
    main()
