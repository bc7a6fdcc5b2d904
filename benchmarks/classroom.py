"""A class on one machine: N simulated students (gradio_client on loopback, each its own session) click Denoise
at the same moment, each with the page's default settings and their own seed, on the shipped default model.

Reports time to the first streamed step and to completion (p50/p95), total throughput (generated tokens/s) and
the ratio against serving the same runs one at a time (N x the median of runs made one after another on the same
server), and checks every answer against the library's ``generate`` for its seed. Targets (issue 17), 2-core
CPU: at 16 students throughput >= 3x serial and first-step p95 <= 2 s.

    python benchmarks/classroom.py [--students 1 8 16 32] [--serial-runs 8]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from gradio_client import Client  # noqa: E402

from llada_play.diffusion.sampler_config import INTERACTIVE  # noqa: E402
from llada_play.diffusion.sampling import generate  # noqa: E402
from llada_play.model.checkpoint import DTYPE_NAMES, dtype_named, load_model  # noqa: E402
from llada_play.model.text import decode_generation, encode_prompt  # noqa: E402
from llada_play.ui.tabs.denoise import DEFAULT_PROMPT  # noqa: E402
from tests.browser import running_app  # noqa: E402

LOGIN = ("teacher", "secret")


def default_run(seed: int) -> list:
    """The Denoise tab's inputs at the page's defaults, with a student's seed."""
    c = INTERACTIVE
    return [DEFAULT_PROMPT, False, "", c.gen_length, c.steps, c.block_length, c.temperature, c.cfg_scale,
            c.remasking, 0.0, seed]


def one_run(client: Client, seed: int, start: float, out: dict) -> None:
    job = client.submit(*default_run(seed), api_name="/denoise")
    first = None
    for _update in job:
        if first is None:
            first = time.perf_counter() - start
    out[seed] = dict(first=first, done=time.perf_counter() - start, text=job.result()[2])


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def class_at_once(url: str, students: int, seed0: int) -> dict:
    clients = [Client(url, auth=LOGIN, verbose=False) for _ in range(students)]
    out: dict = {}
    barrier = threading.Barrier(students + 1)

    def student(i):
        barrier.wait()
        one_run(clients[i], seed0 + i, start, out)

    threads = [threading.Thread(target=student, args=(i,)) for i in range(students)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    return out


def library_texts(seeds, dtype: str) -> dict[int, str]:
    model, tokenizer = load_model(dtype=dtype_named(dtype))
    ids = encode_prompt(tokenizer, DEFAULT_PROMPT)
    with torch.no_grad():
        return {s: decode_generation(tokenizer, generate(model, ids, **INTERACTIVE.replace(seed=s).to_dict())[0],
                                     ids.shape[1]) for s in seeds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, nargs="+", default=[1, 8, 16, 32])
    parser.add_argument("--serial-runs", type=int, default=8)
    parser.add_argument("--dtype", default="auto", choices=DTYPE_NAMES, help="app.py's --dtype (default: its default)")
    parser.add_argument("--threads", type=int, default=None, help="app.py's --threads (default: its default)")
    args = parser.parse_args()
    answers: dict[int, str] = {}
    rows = []
    app_threads = ("--threads", str(args.threads)) if args.threads else ()
    with running_app("--serving", "--auth", ":".join(LOGIN), "--dtype", args.dtype, *app_threads, timeout=60) as url:
        client = Client(url, auth=LOGIN, verbose=False)
        client.predict(*default_run(0), api_name="/denoise")  # warm-up
        serial = []
        for i in range(args.serial_runs):  # one at a time: each run alone on the server
            out: dict = {}
            one_run(client, 10_000 + i, time.perf_counter(), out)
            serial.append(out[10_000 + i]["done"])
            answers[10_000 + i] = out[10_000 + i]["text"]
        alone = statistics.median(serial)
        for n in args.students:
            seed0 = 1000 * n
            out = class_at_once(url, n, seed0)
            wall = max(r["done"] for r in out.values())
            firsts, dones = [r["first"] for r in out.values()], [r["done"] for r in out.values()]
            answers.update({s: r["text"] for s, r in out.items()})
            rows.append(dict(n=n, first50=percentile(firsts, .5), first95=percentile(firsts, .95),
                             done50=percentile(dones, .5), done95=percentile(dones, .95), wall=wall,
                             tokens_s=n * INTERACTIVE.gen_length / wall, ratio=n * alone / wall))
    want = library_texts(answers, args.dtype)
    wrong = [s for s, text in answers.items() if text != want[s]]
    print(f"dtype {args.dtype} = {dtype_named(args.dtype)}, app threads {args.threads or 'default'}")
    print(f"one at a time: median {alone:.2f} s a run ({args.serial_runs} runs), "
          f"{INTERACTIVE.gen_length / alone:.0f} tokens/s")
    print("| students | first step p50 / p95 (s) | done p50 / p95 (s) | all done (s) | tokens/s | vs one at a time |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {r['first50']:.2f} / {r['first95']:.2f} | {r['done50']:.2f} / {r['done95']:.2f} | "
              f"{r['wall']:.2f} | {r['tokens_s']:.0f} | {r['ratio']:.2f}x |")
    print(f"answers equal to the library's for their seed: {len(answers) - len(wrong)} / {len(answers)}"
          + (f" (different: seeds {wrong[:10]})" if wrong else ""))


if __name__ == "__main__":
    main()
