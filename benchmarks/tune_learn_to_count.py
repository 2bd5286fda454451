"""Scan agent settings on learn-to-count and print the mean best reward of each candidate.

Each candidate is a conf/agent preset plus Hydra-style overrides of its keys, for example
``evo_nas_pqt:trainer.learning_rate=1e-3,trainer.queue_size=50,trainer.queue_fraction=null``.
Every candidate runs the same replica seeds (0, 1, ...) at every n, so differences between
candidates are not differences of seeds. The scan behind the tuned Evo-NAS preset
(conf/agent/evo_nas_pqt_tuned.yaml) and its results are in docs/learn_to_count.md.

Run: nice -n 10 python benchmarks/tune_learn_to_count.py --n 10 20 --replicas 8 --trials 5000 \
         --candidate 'evo_nas_pqt' 'evo_nas_pqt:trainer.learning_rate=1e-3'
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import json  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

# The replica runner and the preset check of the comparison script, which lies in this folder (the
# folder of a script run with `python benchmarks/...` is on sys.path).
from learn_to_count import check_preset, run_replica  # noqa: E402


def run_one(candidate: str, n: int, seed: int, trials: int) -> dict[str, Any]:
    """Run one replica of a candidate and return its best reward at 1,000 trials and at the end."""
    outcome = run_replica(candidate, n, seed, trials, None)
    best = np.maximum.accumulate(outcome["rewards"])
    repeated = outcome["repeated"]
    return {"best_1000": float(best[min(999, len(best) - 1)]), "best": float(best[-1]), "wall": outcome["wall"],
            "repeated_1000_2000": float(repeated[1000:2000].mean()) if len(repeated) > 1000 else float("nan"),
            "repeated_after_3500": float(repeated[3500:].mean()) if len(repeated) > 3500 else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description="Scan agent settings on learn-to-count.")
    parser.add_argument("--candidate", nargs="+", required=True, metavar="PRESET[:KEY=VALUE,...]")
    parser.add_argument("--n", type=int, nargs="+", default=[10, 20])
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--trials", type=int, default=5000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--output", type=Path, default=None, help="append one JSON line per candidate and n")
    args = parser.parse_args()
    for candidate in args.candidate:
        problem = check_preset(candidate)
        if problem:
            parser.error(f"--candidate {candidate!r}: {problem}")

    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {(candidate, n): [pool.submit(run_one, candidate, n, seed, args.trials)
                                    for seed in range(args.replicas)]
                   for candidate in args.candidate for n in args.n}
        for (candidate, n), group in futures.items():
            outcomes = [future.result() for future in group]
            best = np.array([o["best"] for o in outcomes])
            line = {
                "candidate": candidate, "n": n, "replicas": len(best), "trials": args.trials,
                "mean_best": round(float(best.mean()), 4),
                "sem2": round(float(2 * best.std(ddof=1) / np.sqrt(len(best))) if len(best) > 1 else 0.0, 4),
                "reach_1": int(np.sum(best >= 1.0 - 1e-12)),
                "mean_best_1000": round(float(np.mean([o["best_1000"] for o in outcomes])), 4),
                "seconds_per_replica": round(float(np.mean([o["wall"] for o in outcomes])), 1),
                # Share of trials whose sequence was evaluated before, in two phases of the run.
                "repeated_1000_2000": round(float(np.mean([o["repeated_1000_2000"] for o in outcomes])), 3),
                "repeated_after_3500": round(float(np.mean([o["repeated_after_3500"] for o in outcomes])), 3),
            }
            print(json.dumps(line), flush=True)
            if args.output is not None:
                with args.output.open("a") as handle:
                    handle.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
