"""The Neural agent: every sequence is sampled whole from a trained autoregressive policy.

The Neural agent of Maziarz et al., "Evolutionary-Neural Hybrid Agents for Architecture Search"
(arXiv:1811.09828), in the line of Zoph and Le's NAS controller: an RNN policy samples each
choice conditioned on the previous ones and is trained with REINFORCE or Priority Queue Training.
``PolicyAgent`` contains what the Neural and Evo-NAS agents share: the policy, its trainer,
batching and the saved state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from seqopt.agents.base import Agent, rows_to_proposals
from seqopt.agents.novelty import SeenSequences
from seqopt.agents.policy import AutoregressivePolicy, PolicyConfig, sample_sequences
from seqopt.agents.training import PQTConfig, TrainerConfig, make_trainer
from seqopt.spaces import ChoiceSpace
from seqopt.trial import Proposal, TrialResult

logger = logging.getLogger(__name__)


def make_policy_config(config: PolicyConfig | Mapping[str, Any] | None) -> PolicyConfig:
    """Turn a mapping of PolicyConfig fields (or None for the defaults) into a PolicyConfig."""
    if config is None:
        return PolicyConfig()
    if isinstance(config, PolicyConfig):
        return config
    if not isinstance(config, Mapping):
        raise TypeError(f"policy must be a PolicyConfig or a mapping of its fields, got {type(config).__name__}.")
    known = set(PolicyConfig.__dataclass_fields__)
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"Unknown policy option(s) {unknown}; known: {sorted(known)}.")
    return PolicyConfig(**dict(config))


class PolicyAgent(Agent):
    """An agent that owns an autoregressive policy and trains it on every usable trial.

    Args:
        space: the choice space.
        trainer: the training algorithm and its options: a PQTConfig, a ReinforceConfig, or a
            mapping with ``algorithm`` ("pqt" or "reinforce") and that config's fields.
        policy: the policy network's shape: a PolicyConfig or a mapping of its fields.
        batch_size: B, the proposals generated at once and the trials per gradient step.
        seed: seed or Generator of every random draw of the agent, the initial weights included.
        max_redraws: draw a proposal that repeats a sequence proposed before again, up to this
            many times; 0 (the default) keeps repeats, as the paper's algorithms do. See
            ``seqopt.agents.novelty``.
    """

    def __init__(
        self,
        space: ChoiceSpace,
        trainer: TrainerConfig | Mapping[str, Any],
        policy: PolicyConfig | Mapping[str, Any] | None = None,
        batch_size: int = 1,
        seed: int | np.random.SeedSequence | np.random.Generator | None = None,
        max_redraws: int = 0,
    ) -> None:
        super().__init__(space, seed)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size (B) must be an int >= 1, got {batch_size!r}.")
        self.batch_size = batch_size
        self.policy_config = make_policy_config(policy)
        # The initial weights come from the agent's own generator, never from torch's global one.
        generator = torch.Generator().manual_seed(int(self.rng.integers(2**63 - 1)))
        self.policy = AutoregressivePolicy(space.cardinalities.tolist(), self.policy_config, generator)
        self.sampler = self.policy.sampler()
        self.trainer = make_trainer(trainer, self.policy, self.rng, batch_size)
        self.seen = SeenSequences(len(space), max_redraws, space.size)

    def _sample_policy(self, count: int) -> list[Proposal]:
        return rows_to_proposals(sample_sequences(self.sampler, count, self.rng), origin="policy")

    def _observe_usable(self, results: list[TrialResult]) -> None:
        sequences = np.array([r.proposal.indices for r in results], dtype=np.int64)
        rewards = np.array([r.evaluation.reward for r in results], dtype=np.float64)
        self.trainer.observe(sequences, rewards)

    def metrics(self) -> dict[str, float]:
        """Training figures under the ``agent/`` namespace (number of updates, last loss and entropy)."""
        return {**self.trainer.metrics(), **self.seen.metrics()}

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["policy"] = {name: tensor.detach().clone() for name, tensor in self.policy.state_dict().items()}
        state["trainer"] = self.trainer.state_dict()
        state["seen"] = self.seen.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        # Copies into the existing parameters, so the sampler's numpy views stay valid.
        self.policy.load_state_dict(state["policy"])
        self.trainer.load_state_dict(state["trainer"])
        self.seen.load_state_dict(state.get("seen"))


class NeuralAgent(PolicyAgent):
    """Samples every proposal whole from the policy and trains it on the observed rewards.

    Args:
        space: the choice space.
        trainer: see ``PolicyAgent``. The default is PQT with the Neural agent's learn-to-count
            values from the Evo-NAS paper's Table 5: learning rate 5e-4, entropy penalty 0.1, top 5 %.
        policy: see ``PolicyAgent``.
        batch_size: B, the proposals generated at once and the trials per gradient step.
        seed: seed or Generator of every random draw of the agent.
        max_redraws: see ``PolicyAgent``.
    """

    def __init__(
        self,
        space: ChoiceSpace,
        trainer: TrainerConfig | Mapping[str, Any] | None = None,
        policy: PolicyConfig | Mapping[str, Any] | None = None,
        batch_size: int = 1,
        seed: int | np.random.SeedSequence | np.random.Generator | None = None,
        max_redraws: int = 0,
    ) -> None:
        if trainer is None:
            trainer = PQTConfig(learning_rate=5e-4, entropy_penalty=0.1, queue_fraction=0.05)
        super().__init__(space, trainer, policy, batch_size, seed, max_redraws)

    def propose(self, count: int = 1) -> list[Proposal]:
        count = self._check_count(count)
        proposals = self.seen.draw(self._sample_policy, count) if count else []
        self.num_proposed += count
        return proposals
