"""Agent-only throughput of Evo-NAS (PQT) and Neural (PQT) against stable-baselines3 PPO, learn-to-count n = 20.

Our agents are timed on their own ``propose`` + ``observe`` calls (the objective and the building
of result records are excluded), at B = 1 and B = 16, with the learn-to-count presets of
conf/agent, the tuned Evo-NAS preset included (its redraws of repeated proposals cost extra
sampling). PPO (stable-baselines3 defaults, one environment) steps the same problem as the
Gymnasium environment ``seqopt/LearnToCount-v0``; its rate is episodes per second of
``model.learn``, environment steps and PPO updates included. Every figure comes with the number of
policy updates per trial, which decides search quality more than the rate does: ours take one
gradient step per B trials; PPO takes n_epochs * n_steps / batch_size minibatch steps per rollout of
n_steps / n episodes.

Rates are given per wall-clock second and per CPU second of this process; on a shared machine the
CPU-time rate is the steadier of the two. PPO runs with torch's default thread count and with one
thread. Compare figures only within one run.

Run: nice -n 10 python benchmarks/agent_speed.py [--trials 3000] [--ppo-episodes 2048]
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import time
from dataclasses import dataclass
from importlib import resources

import gymnasium as gym
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import seqopt.envs  # noqa: F401  (registers seqopt/LearnToCount-v0)
from seqopt import Evaluation, TrialResult
from seqopt.agents import PolicyAgent
from seqopt.envs import LearnToCount, learn_to_count_reward


@dataclass
class Rate:
    """One throughput measurement."""

    name: str
    batch_size: str
    trials: int
    wall_seconds: float
    cpu_seconds: float
    updates_per_trial: float

    def row(self) -> str:
        return (f"| {self.name} | {self.batch_size} | {self.trials / self.wall_seconds:,.0f} | "
                f"{self.trials / self.cpu_seconds:,.0f} | {self.updates_per_trial:.3g} |")


def load_agent(preset: str, n: int, batch_size: int, seed: int = 0) -> PolicyAgent:
    """Build an agent from a conf/agent preset with ``batch_size`` overridden."""
    config = OmegaConf.load(str(resources.files("seqopt.conf") / "agent" / f"{preset}.yaml"))
    config.batch_size = batch_size
    agent: PolicyAgent = instantiate(config, space=LearnToCount(n).space, seed=seed)
    return agent


def measure_agent(preset: str, name: str, n: int, batch_size: int, trials: int, warmup: int) -> Rate:
    """Time ``trials`` trials of the agent's own calls after ``warmup`` untimed ones."""
    agent = load_agent(preset, n, batch_size)
    warmup = math.ceil(warmup / batch_size) * batch_size  # whole batches, so updates per trial is exact
    wall = cpu = 0.0
    trial_id = 0
    updates_before = 0
    while trial_id < warmup + trials:
        if trial_id == warmup:
            wall = cpu = 0.0
            updates_before = agent.trainer.num_updates
        started_wall, started_cpu = time.perf_counter(), time.process_time()
        proposals = agent.propose(batch_size)
        wall += time.perf_counter() - started_wall
        cpu += time.process_time() - started_cpu

        rewards = learn_to_count_reward(np.array([p.indices for p in proposals]) + 1, n)
        results = [TrialResult(trial_id + i, p, Evaluation(reward=float(r)))
                   for i, (p, r) in enumerate(zip(proposals, rewards))]
        trial_id += len(results)

        started_wall, started_cpu = time.perf_counter(), time.process_time()
        agent.observe(results)
        wall += time.perf_counter() - started_wall
        cpu += time.process_time() - started_cpu
    updates = agent.trainer.num_updates - updates_before
    return Rate(name, str(batch_size), trials, wall, cpu, updates / trials)


def measure_ppo(n: int, episodes: int, threads: int) -> Rate:
    """Time stable-baselines3 PPO (defaults) learning on ``seqopt/LearnToCount-v0`` for ``episodes`` episodes."""
    from stable_baselines3 import PPO

    torch.set_num_threads(threads)
    env = gym.make("seqopt/LearnToCount-v0", n=n)
    model = PPO("MlpPolicy", env, seed=0, verbose=0, device="cpu")
    # Warm-up: one rollout and update, so that start-up costs stay out of the timing.
    model.learn(total_timesteps=model.n_steps)
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=episodes * n, reset_num_timesteps=False)
    wall, cpu = time.perf_counter() - started_wall, time.process_time() - started_cpu
    env.close()
    minibatch_steps_per_rollout = model.n_epochs * model.n_steps / model.batch_size
    episodes_per_rollout = model.n_steps / n
    return Rate(f"SB3 PPO (defaults, 1 env, {threads} torch thread{'s' if threads > 1 else ''})", "-", episodes,
                wall, cpu, minibatch_steps_per_rollout / episodes_per_rollout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="learn-to-count length (default 20)")
    parser.add_argument("--trials", type=int, default=3000, help="timed trials per agent at B = 1 (default 3000)")
    parser.add_argument("--batch-trials", type=int, default=16000,
                        help="timed trials per agent at B = 16 (default 16000)")
    parser.add_argument("--warmup", type=int, default=600,
                        help="untimed trials first, past the queue's growth to its minibatch size (default 600)")
    parser.add_argument("--ppo-episodes", type=int, default=2048, help="timed PPO episodes (default 2048)")
    args = parser.parse_args()
    # The trainers run torch on one thread by themselves (seqopt.agents.training.single_torch_thread).
    default_threads = torch.get_num_threads()

    rates = []
    presets = (("evo_nas_pqt", "Evo-NAS (PQT)"), ("evo_nas_pqt_tuned", "Evo-NAS (PQT, tuned)"),
               ("neural_pqt", "Neural (PQT)"))
    for preset, name in presets:
        rates.append(measure_agent(preset, name, args.n, 1, args.trials, args.warmup))
        print(rates[-1].row(), flush=True)
        rates.append(measure_agent(preset, name, args.n, 16, args.batch_trials, args.warmup))
        print(rates[-1].row(), flush=True)
    for threads in sorted({default_threads, 1}, reverse=True):
        rates.append(measure_ppo(args.n, args.ppo_episodes, threads))
        print(rates[-1].row(), flush=True)

    print()
    print(f"learn-to-count n = {args.n}; {datetime.date.today()}; {platform.node()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the end; torch {torch.__version__}")
    print("| agent | B | trials/s (wall) | trials/s (CPU) | policy updates per trial |")
    print("| --- | --- | --- | --- | --- |")
    for rate in rates:
        print(rate.row())
    ppo = max((rate for rate in rates if rate.name.startswith("SB3")), key=lambda rate: rate.trials / rate.wall_seconds)
    for rate in rates:
        if rate.name.startswith("SB3"):
            continue
        ratio = (rate.trials / rate.wall_seconds) / (ppo.trials / ppo.wall_seconds)
        print(f"{rate.name} B={rate.batch_size}: {ratio:.1f}x the faster PPO's episodes per wall-clock second")


if __name__ == "__main__":
    main()
