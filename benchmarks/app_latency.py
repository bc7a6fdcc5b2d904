"""App latency on the default model: start-up time, time to the first streamed step, and time for the default
generation (64 tokens, 64 steps, blocks of 32). Targets (issue 4): start <= 15 s, first step <= 1 s,
whole generation <= 3 s.

    python benchmarks/app_latency.py [--runs 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradio_client import Client  # noqa: E402

from tests.browser import running_app  # noqa: E402

DEFAULTS = ("Romeo.\n", False, "", 64, 64, 32, 0.0, 0.0, "low_confidence", 0.0, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    start = time.perf_counter()
    with running_app(timeout=60) as url:
        started = time.perf_counter() - start
        client = Client(url, verbose=False)
        client.predict(*DEFAULTS, api_name="/denoise")  # warm-up: first call loads nothing new but JITs paths
        firsts, totals = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            job = client.submit(*DEFAULTS, api_name="/denoise")
            first = None
            for _update in job:
                if first is None:
                    first = time.perf_counter() - t0
            totals.append(time.perf_counter() - t0)
            firsts.append(first)
    print(f"app start (process launch to first HTTP 200): {started:.1f} s (target <= 15 s)")
    print(f"first streamed step: median {statistics.median(firsts) * 1000:.0f} ms, max {max(firsts) * 1000:.0f} ms "
          f"(target <= 1000 ms)")
    print(f"default generation (64 tokens): median {statistics.median(totals):.2f} s, max {max(totals):.2f} s "
          f"(target <= 3 s), {args.runs} runs")


if __name__ == "__main__":
    main()
