"""Reproduce the learn-to-count comparison of Maziarz et al., "Evolutionary-Neural Hybrid Agents for
Architecture Search" (arXiv:1811.09828), Section 6.1 and Appendix A.

Six agents (Random, Aging Evolution, Neural (PQT), Neural (REINFORCE), Evo-NAS (PQT), Evo-NAS
(REINFORCE)) with the presets of conf/agent, which carry the paper's Table 5 values (P = 500,
S = 50), run 5,000 trials in each of 20 replicas for every n given. Replica r of every agent uses
seed r. The script writes, for each n:

- docs/img/learn_to_count_n<n>_moving_average.png and _best_reward.png: the paper's two views,
  mean over replicas with a band of +- 2 standard errors of the mean;
- a results block in docs/learn_to_count.md (between marker comments, the rest of the page is
  kept): mean best reward at 1,000 / 2,000 / 5,000 trials, the replicas that reach 1.0, policy
  updates per trial, and whether the paper's three claims hold in this measurement;
- runs/benchmarks/learn_to_count_n<n>_<preset>_....npz: every reward of every replica of one
  agent. An agent whose file exists is not run again (unless ``--rerun``), so agents can be
  added with ``--extra`` and the page re-made without repeating the others.

Run: nice -n 10 python benchmarks/learn_to_count.py [--n 10 20] [--replicas 20] [--trials 5000] [--jobs 2]
         [--extra 'Evo-NAS (PQT, tuned)=evo_nas_pqt_tuned' 'Aging Evolution (redraws)=aging_evolution:max_redraws=20']
"""

from __future__ import annotations

import os

# One intra-op thread per worker: the policy's tensors are far too small to gain from threads, and
# the workers already fill the cores.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from importlib import resources  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# Label in plots and tables, and the conf/agent preset it runs.
AGENTS: dict[str, str] = {
    "Random": "random_search",
    "Aging Evolution": "aging_evolution",
    "Neural (PQT)": "neural_pqt",
    "Neural (REINFORCE)": "neural_reinforce",
    "Evo-NAS (PQT)": "evo_nas_pqt",
    "Evo-NAS (REINFORCE)": "evo_nas_reinforce",
}
CHECKPOINTS = (1000, 2000, 5000)


def run_replica(preset: str, n: int, seed: int, trials: int, batch_size: int | None) -> dict[str, Any]:
    """Run one replica in this process; returns its rewards, wall seconds and policy updates."""
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from seqopt import Budget, Search
    from seqopt.envs import LearnToCount
    from seqopt.executors import InlineExecutor
    from seqopt.seeding import AGENT_STREAM, child_seed

    torch.set_num_threads(1)
    objective = LearnToCount(n)
    name, _, overrides = preset.partition(":")
    config = OmegaConf.load(str(resources.files("seqopt.conf") / "agent" / f"{name}.yaml"))
    config = OmegaConf.merge(config, OmegaConf.from_dotlist([item for item in overrides.split(",") if item]))
    if batch_size is not None and "batch_size" in config:
        config.batch_size = batch_size
    agent = instantiate(config, space=objective.space, seed=child_seed(seed, AGENT_STREAM))
    width = getattr(agent, "batch_size", 1)
    search = Search(objective, agent, budget=Budget(trials=trials), seed=seed, executor=InlineExecutor(width))
    started = time.perf_counter()
    search.run()
    wall = time.perf_counter() - started
    history = sorted(search.history, key=lambda r: r.trial_id)
    rewards = np.array([result.reward for result in history])
    seen: set[tuple[int, ...]] = set()
    repeated = np.zeros(len(history), dtype=np.bool_)  # the trial's sequence was evaluated before
    for position, result in enumerate(history):
        repeated[position] = result.indices in seen
        seen.add(result.indices)
    trainer = getattr(agent, "trainer", None)
    return {"rewards": rewards, "repeated": repeated, "wall": wall,
            "updates": trainer.num_updates if trainer is not None else 0}


def run_all(n: int, replicas: int, trials: int, jobs: int, batch_size: int | None, agents: dict[str, str],
            save: Callable[[str, dict[str, np.ndarray]], None]) -> None:
    """Run every agent's replicas on ``jobs`` worker processes and ``save`` each agent once its replicas are done.

    The slow agents go first, so that the pool stays busy to the end.
    """
    # Imported before the workers fork, so that every worker runs the code as it was at the start
    # even if the files change during the run.
    import seqopt.agents.evo_nas
    import seqopt.cli  # noqa: F401

    tasks = [(label, preset, seed) for label, preset in agents.items() for seed in range(replicas)]
    tasks.sort(key=lambda task: task[1] in ("random_search", "aging_evolution"))
    results: dict[str, dict[str, list[Any]]] = {label: {"rewards": [], "wall": [], "updates": []} for label in agents}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        # Submission order keeps each agent's replicas in seed order, and the results are read in
        # that order.
        futures = [(pool.submit(run_replica, preset, n, seed, trials, batch_size), label, seed)
                   for label, preset, seed in tasks]
        for finished, (future, label, seed) in enumerate(futures, start=1):
            outcome = future.result()
            for key in ("rewards", "wall", "updates"):
                results[label][key].append(outcome[key])
            print(f"  n={n} {label} seed {seed}: best {np.nanmax(outcome['rewards']):.3f} "
                  f"in {outcome['wall']:.1f} s ({finished}/{len(tasks)})", flush=True)
            if len(results[label]["rewards"]) == replicas:
                save(label, {key: np.stack(values) if key == "rewards" else np.asarray(values)
                             for key, values in results[label].items()})


def mean_and_margin(values: np.ndarray) -> tuple[float, float]:
    """Mean and 2 standard errors of the mean."""
    if len(values) < 2:
        return float(values.mean()), math.nan
    return float(values.mean()), float(2.0 * values.std(ddof=1) / math.sqrt(len(values)))


def summarize(n: int, data: dict[str, dict[str, Any]], trials: int) -> str:
    """Return the markdown results block of one n."""
    from seqopt.plots import best_so_far

    checkpoints = sorted({c for c in CHECKPOINTS if c < trials} | {min(1000, trials), trials})
    best_at: dict[str, dict[int, tuple[float, float]]] = {}
    runs: dict[str, list[str]] = {}
    for label, values in data.items():
        runs.setdefault(str(values["run"]), []).append(label)
    lines = [f"### n = {n}", ""]
    for labels in runs.values():
        values = data[labels[0]]
        run_wall = max(float(data[label]["run_wall"]) for label in labels)
        lines.append(f"- {', '.join(labels)}: measured {values['date']} on {values['machine']}, "
                     f"{int(values['jobs'])} worker processes, load average {float(values['load']):.1f} at the start; "
                     f"that run took {run_wall / 60:.1f} min. Command: `{values['command']}`")
    lines += [
        "",
        "Mean best reward +- 2 s.e.m. over replicas; \"reach 1.0\" counts replicas that found the optimum.",
        "",
        "| agent | " + " | ".join(f"best @ {c:,}" for c in checkpoints) + " | reach 1.0 | updates per trial "
        "| s per replica |",
        "| --- " * (len(checkpoints) + 4) + "|",
    ]
    for label, values in data.items():
        best = np.stack([best_so_far(r) for r in values["rewards"]])
        cells = []
        best_at[label] = {}
        for checkpoint in checkpoints:
            mean, margin = mean_and_margin(best[:, checkpoint - 1])
            best_at[label][checkpoint] = (mean, margin)
            cells.append(f"{mean:.3f} +- {margin:.3f}")
        reached = int(np.sum(best[:, -1] >= 1.0 - 1e-12))
        updates = float(np.mean(values["updates"])) / trials
        lines.append(f"| {label} | {' | '.join(cells)} | {reached}/{len(best)} | {updates:.3g} | "
                     f"{np.mean(values['wall']):.1f} |")

    if set(AGENTS) <= set(data):
        lines += ["", *check_claims({label: best_at[label] for label in AGENTS}, trials)]
    return "\n".join(lines)


def check_claims(best_at: dict[str, dict[int, tuple[float, float]]], trials: int) -> list[str]:
    """State whether each of the paper's three learn-to-count claims holds in these means."""
    final = trials
    lines = [f"Claims of the paper, checked on the mean best reward at {final:,} trials "
             "(and at 1,000 for the second):", ""]

    def claim(text: str, holds: bool, detail: str) -> None:
        lines.append(f"- {text}: {'holds' if holds else 'does not hold'} ({detail}).")

    def at(label: str, checkpoint: int) -> float:
        return best_at[label].get(checkpoint, (math.nan, math.nan))[0]

    ranked = sorted(((at(label, final), label) for label in best_at), reverse=True)
    claim("Evo-NAS (PQT) is best at the end", ranked[0][1] == "Evo-NAS (PQT)",
          ", ".join(f"{label} {value:.3f}" for value, label in ranked))
    early = min(1000, trials)
    evolution, neural = at("Aging Evolution", early), at("Neural (PQT)", early)
    claim("Aging Evolution is ahead of Neural (PQT) early", evolution > neural,
          f"{evolution:.3f} against {neural:.3f} at {early:,} trials")
    for agent in ("Neural", "Evo-NAS"):
        pqt, reinforce = at(f"{agent} (PQT)", final), at(f"{agent} (REINFORCE)", final)
        claim(f"{agent}: PQT is ahead of REINFORCE", pqt > reinforce, f"{pqt:.3f} against {reinforce:.3f}")
    return lines


def write_block(doc: Path, n: int, block: str) -> None:
    """Replace the results block of ``n`` in ``doc`` (or append it), keeping the rest of the page."""
    begin, end = f"<!-- results n={n} begin -->", f"<!-- results n={n} end -->"
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Learn to count\n"
    replacement = f"{begin}\n{block}\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: replacement, text)
    else:
        text = text.rstrip() + "\n\n" + replacement + "\n"
    doc.write_text(text, encoding="utf-8")


def plot(n: int, data: dict[str, dict[str, np.ndarray]], image_dir: Path, window: int = 50) -> list[Path]:
    from seqopt.plots import best_so_far, moving_average, plot_bands

    averages = {label: [moving_average(r, window) for r in values["rewards"]] for label, values in data.items()}
    bests = {label: [best_so_far(r) for r in values["rewards"]] for label, values in data.items()}
    return [
        plot_bands(averages, image_dir / f"learn_to_count_n{n}_moving_average.png",
                   f"reward moving average (window {window})",
                   title=f"Learn to count, n = {n}: reward moving average (mean ± 2 s.e.m.)", ylim=(0.0, 1.02)),
        plot_bands(bests, image_dir / f"learn_to_count_n{n}_best_reward.png", "best reward",
                   title=f"Learn to count, n = {n}: best reward (mean ± 2 s.e.m.)", ylim=(0.0, 1.02)),
    ]


def split_extra(item: str) -> tuple[str, str]:
    """Split 'LABEL=PRESET[:key=value,...]' at the '=' that starts a preset name; ('', '') if none does.

    The label may contain '=' itself, as in 'Neural (PQT, B = 16)=neural_pqt:batch_size=16'.
    """
    for match in re.finditer("=", item):
        label, rest = item[: match.start()], item[match.end():]
        if label and re.match(r"[A-Za-z0-9_]+(:|$)", rest):
            return label, rest
    return "", ""


def check_preset(preset: str) -> str:
    """Return what is wrong with 'PRESET[:key=value,...]' (a missing file or an unknown key), or ''."""
    from omegaconf import OmegaConf

    name, _, overrides = preset.partition(":")
    path = resources.files("seqopt.conf") / "agent" / f"{name}.yaml"
    if not path.is_file():
        return f"no preset conf/agent/{name}.yaml"
    config = OmegaConf.create(path.read_text(encoding="utf-8"))
    for item in (item for item in overrides.split(",") if item):
        key, separator, _ = item.partition("=")
        if not separator:
            return f"override {item!r} has no value; write key=value"
        absent = object()
        if OmegaConf.select(config, key, default=absent) is absent:
            return f"preset {name} has no key {key!r}; see conf/agent/{name}.yaml"
    return ""


def cache_path(cache_dir: Path, n: int, preset: str, replicas: int, trials: int, batch_size: int | None) -> Path:
    batch = "preset" if batch_size is None else str(batch_size)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", preset)
    return cache_dir / f"learn_to_count_n{n}_{name}_r{replicas}_t{trials}_b{batch}.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description="Reproduce the learn-to-count comparison of arXiv:1811.09828.")
    parser.add_argument("--n", type=int, nargs="+", default=[10, 20], help="sequence lengths (default 10 20)")
    parser.add_argument("--replicas", type=int, default=20, help="replicas per agent (default 20)")
    parser.add_argument("--trials", type=int, default=5000, help="trials per replica (default 5000)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="override B of the Neural and Evo-NAS presets (default: the presets' B = 1)")
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), metavar="LABEL",
                        help="which of the six agents to show (default all)")
    parser.add_argument("--extra", nargs="+", default=[], metavar="LABEL=PRESET",
                        help="more agents to show, e.g. 'Evo-NAS (PQT, tuned)=evo_nas_pqt_tuned'; a preset may "
                        "end in :key=value,key=value overrides, e.g. 'Aging Evolution (redraws)=aging_evolution:"
                        "max_redraws=20'")
    parser.add_argument("--rerun", action="store_true", help="run agents again even when their rewards are cached")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "learn_to_count.md",
                        help="page that receives the results block (default docs/learn_to_count.md)")
    parser.add_argument("--image-dir", type=Path, default=ROOT / "docs" / "img", help="folder of the PNGs")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "runs" / "benchmarks",
                        help="folder of the raw rewards, one .npz per agent and n (default runs/benchmarks)")
    args = parser.parse_args()

    unknown = sorted(set(args.agents) - set(AGENTS))
    if unknown:
        parser.error(f"unknown agent label(s) {unknown}; choose from {list(AGENTS)}")
    agents = {label: AGENTS[label] for label in args.agents}
    for item in args.extra:
        label, preset = split_extra(item)
        if not label:
            parser.error(f"--extra needs LABEL=PRESET[:key=value,...], got {item!r}")
        if label in agents:
            parser.error(f"--extra {item!r}: the label {label!r} is already taken; choose another label")
        problem = check_preset(preset)
        if problem:
            parser.error(f"--extra {item!r}: {problem}")
        agents[label] = preset
    command = "python benchmarks/learn_to_count.py " + shlex.join(sys.argv[1:])
    args.cache_dir.mkdir(parents=True, exist_ok=True)

    for n in args.n:
        paths = {label: cache_path(args.cache_dir, n, preset, args.replicas, args.trials, args.batch_size)
                 for label, preset in agents.items()}
        missing = {label: agents[label] for label, path in paths.items() if args.rerun or not path.exists()}
        if missing:
            load = os.getloadavg()[0]
            started = time.perf_counter()
            run = datetime.datetime.now().isoformat(timespec="seconds")

            def save(label: str, values: dict[str, np.ndarray], paths: dict[str, Path] = paths, load: float = load,
                     started: float = started, run: str = run) -> None:
                # run_wall is the time from the start of this invocation to this agent's last replica.
                np.savez_compressed(paths[label], **values, run=run, run_wall=time.perf_counter() - started,
                                    command=command, jobs=args.jobs, load=load, date=str(datetime.date.today()),
                                    machine=f"{platform.node()} ({os.cpu_count()} CPUs, shared)")

            run_all(n, args.replicas, args.trials, args.jobs, args.batch_size, missing, save)
            print(f"n={n}: ran {list(missing)} in {(time.perf_counter() - started) / 60:.1f} min", flush=True)
        data = {}
        for label, path in paths.items():
            with np.load(path, allow_pickle=False) as stored:
                data[label] = {key: stored[key] for key in stored.files}
        block = summarize(n, data, args.trials)
        print(block, flush=True)
        for path in plot(n, data, args.image_dir):
            print(f"wrote {path}")
        write_block(args.doc, n, block)
        print(f"updated {args.doc}")


if __name__ == "__main__":
    main()
