"""Search agents. Installed as ``seqopt.agents``."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from seqopt.agents.aging_evolution import AgingEvolution
from seqopt.agents.base import Agent
from seqopt.agents.random_search import RandomSearch

if TYPE_CHECKING:
    from seqopt.agents.evo_nas import EvoNAS
    from seqopt.agents.hybrid import HybridPolicy
    from seqopt.agents.hybrid_rl import HybridRLAgent, run_hybrid
    from seqopt.agents.neural import NeuralAgent, PolicyAgent
    from seqopt.agents.policy import AutoregressivePolicy, PolicyConfig
    from seqopt.agents.sb3 import SB3A2C, SB3PPO, SB3Agent, SB3MaskablePPO
    from seqopt.agents.training import PQT, PQTConfig, PriorityQueue, Reinforce, ReinforceConfig

# Agents built on torch are imported on first use, so that `import seqopt` (and every worker
# process that unpickles an objective) does not pay for importing torch.
_LAZY_EXPORTS = {
    "AutoregressivePolicy": "seqopt.agents.policy",
    "EvoNAS": "seqopt.agents.evo_nas",
    "HybridPolicy": "seqopt.agents.hybrid",
    "HybridRLAgent": "seqopt.agents.hybrid_rl",
    "NeuralAgent": "seqopt.agents.neural",
    "PQT": "seqopt.agents.training",
    "PQTConfig": "seqopt.agents.training",
    "PolicyAgent": "seqopt.agents.neural",
    "PolicyConfig": "seqopt.agents.policy",
    "PriorityQueue": "seqopt.agents.training",
    "Reinforce": "seqopt.agents.training",
    "ReinforceConfig": "seqopt.agents.training",
    # stable_baselines3 itself is imported only when an SB3 agent is built.
    "SB3A2C": "seqopt.agents.sb3",
    "SB3Agent": "seqopt.agents.sb3",
    "SB3MaskablePPO": "seqopt.agents.sb3",
    "SB3PPO": "seqopt.agents.sb3",
    "run_hybrid": "seqopt.agents.hybrid_rl",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY_EXPORTS:
        return getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PQT",
    "SB3A2C",
    "SB3PPO",
    "Agent",
    "AgingEvolution",
    "AutoregressivePolicy",
    "EvoNAS",
    "HybridPolicy",
    "HybridRLAgent",
    "NeuralAgent",
    "PQTConfig",
    "PolicyAgent",
    "PolicyConfig",
    "PriorityQueue",
    "RandomSearch",
    "Reinforce",
    "ReinforceConfig",
    "SB3Agent",
    "SB3MaskablePPO",
    "run_hybrid",
]
