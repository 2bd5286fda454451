"""Gymnasium registration of seqopt's environments."""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

from seqopt.envs.sequence_env import SequenceEnv

# Environment id -> "module:Objective class" and default keyword arguments of the objective.
ENV_IDS: dict[str, tuple[str, dict[str, Any]]] = {
    "seqopt/LearnToCount-v0": ("seqopt.envs.learn_to_count:LearnToCount", {"n": 10}),
    "seqopt/NASBench201-v0": ("seqopt.envs.nasbench201:NASBench201", {"protocol": "12-epoch"}),
    "seqopt/NASBench101-v0": ("seqopt.envs.nasbench101:NASBench101", {}),
    "seqopt/NASBenchMacro-v0": ("seqopt.envs.nasbench_macro:NASBenchMacro", {}),
}


def make_objective_env(objective: str, invalid_action: str = "wrap", failure_reward: float = 0.0,
                       render_mode: str | None = None, **objective_kwargs: Any) -> SequenceEnv:
    """Build the objective named ``module:Class`` with ``objective_kwargs`` and wrap it as a SequenceEnv."""
    module_name, _, class_name = objective.partition(":")
    objective_class = getattr(importlib.import_module(module_name), class_name)
    return SequenceEnv(objective_class(**objective_kwargs), invalid_action=invalid_action,
                       failure_reward=failure_reward, render_mode=render_mode)


def register_envs() -> None:
    """Register every id of ``ENV_IDS`` with Gymnasium; calling it again does nothing."""
    for env_id, (objective, defaults) in ENV_IDS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point="seqopt.envs.registration:make_objective_env",
            kwargs={"objective": objective, **defaults},
        )
