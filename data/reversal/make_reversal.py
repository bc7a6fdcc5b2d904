"""Write the reversal-curse data set (published layout) into this folder.

    python data/reversal/make_reversal.py [--people 30] [--train-templates 30] [--test-templates 10] [--seed 0]
"""
import argparse
from pathlib import Path

from llada_play.experiments.reversal_data import write_dataset

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=30, help="people per subset (p2d, d2p, both)")
    parser.add_argument("--train-templates", type=int, default=30)
    parser.add_argument("--test-templates", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent))
    args = parser.parse_args()
    counts = write_dataset(args.out, people_per_subset=args.people, train_templates=args.train_templates,
                           test_templates=args.test_templates, seed=args.seed)
    for name, n in counts.items():
        print(f"{name}.jsonl: {n} rows")
