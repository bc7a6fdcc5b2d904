"""Write the quick-SFT data set: two-number addition questions with exact answers.

    python data/sft/make_arithmetic.py [--seed 0] [--max 49] [--test 200] [--out data/sft]

Every pair (a, b) with 0 <= a, b <= max appears once; a seeded shuffle puts ``--test`` pairs in the test split
(never seen in training) and the rest in the training split. Prompts use several phrasings so that the model
learns the task rather than one string; the test split uses the same phrasings. Rows are JSONL with
``prompt`` and ``response`` fields.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

TEMPLATES = [
    "What is {a} + {b}?",
    "What is {a} plus {b}?",
    "Add {a} and {b}.",
    "Compute {a} + {b}.",
    "How much is {a} and {b} together?",
]


def make_rows(seed: int = 0, maximum: int = 49, test: int = 200) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    pairs = [(a, b) for a in range(maximum + 1) for b in range(maximum + 1)]
    rng.shuffle(pairs)

    def row(a, b):
        return {"prompt": rng.choice(TEMPLATES).format(a=a, b=b), "response": str(a + b)}

    return [row(a, b) for a, b in pairs[test:]], [row(a, b) for a, b in pairs[:test]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max", type=int, default=49, help="largest operand")
    parser.add_argument("--test", type=int, default=200, help="pairs held out for the test split")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent))
    args = parser.parse_args()
    train, test = make_rows(args.seed, args.max, args.test)
    out = Path(args.out)
    for name, rows in (("arithmetic_train.jsonl", train), ("arithmetic_test.jsonl", test)):
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"{out / name}: {len(rows)} rows")


if __name__ == "__main__":
    main()
