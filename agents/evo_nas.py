"""The Evo-NAS agent: aging evolution whose mutations are sampled from a learned policy.

Maziarz et al., "Evolutionary-Neural Hybrid Agents for Architecture Search" (arXiv:1811.09828).
A parent is chosen as in aging evolution (the best of S members sampled from the P most recent
models). The child follows the paper's Algorithm 1: the policy runs step by step, and at each
position m ~ Bernoulli(p) decides between the parent's value (m = 0) and a value sampled from the
policy conditioned on the values actually chosen so far (m = 1). The policy is trained on its
log-probability of every chosen value, copied or sampled, plus the entropy term.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from seqopt.agents.aging_evolution import check_evolution_arguments
from seqopt.agents.hybrid import HybridPolicy
from seqopt.agents.neural import PolicyAgent
from seqopt.agents.policy import PolicyConfig, PolicySampler, sample_categorical
from seqopt.agents.population import Population, propose_evolution
from seqopt.agents.training import PQTConfig, TrainerConfig
from seqopt.spaces import ChoiceSpace
from seqopt.trial import Proposal, TrialResult


def mutate_with_policy(
    sampler: PolicySampler, hybrid: HybridPolicy, parents: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Generate one child per parent row by Algorithm 1; returns the children and their mutation masks.

    Both outputs have the shape of ``parents``; the mask is True where the policy chose the value.
    """
    count, length = parents.shape
    children = np.empty((count, length), dtype=np.int64)

    def sample_policy(rows: np.ndarray) -> np.ndarray:
        return sample_categorical(sampler.probabilities(rows), rng)

    sampler.start(count)
    hybrid.begin(parents)
    for position in range(length):
        values = hybrid.act(sample_policy)
        sampler.feed(values)  # the next step conditions on the value actually chosen
        children[:, position] = values
    return children, hybrid.mask_array(length)


class EvoNAS(PolicyAgent):
    """Evo-NAS: aging-evolution parent selection with policy-sampled mutations.

    Args:
        space: the choice space.
        population_size: P, the number of most recent models kept.
        sample_size: S, the tournament size; the parent is the best of S distinct members.
        mutation_probability: p, the probability that a position is sampled from the policy
            instead of copied from the parent.
        trainer: see ``PolicyAgent``. The default is PQT with Evo-NAS's learn-to-count values from
            the paper's Table 5: learning rate 1e-4, entropy penalty 0.2, top 20 %.
        policy: see ``PolicyAgent``.
        batch_size: B, the proposals generated at once and the trials per gradient step.
        seed: seed or Generator of every random draw of the agent.
        max_redraws: draw a proposal that repeats a sequence proposed before again (a new
            tournament and a new child), up to this many times; 0 (the default) keeps repeats, as
            the paper's Algorithm 1 does. See ``seqopt.agents.novelty``.

    The first P proposals are sampled whole from the policy, as the paper's Evo-NAS fills its
    initial population with its sampler. The policy starts uniform, so these begin as random
    search, but the policy trains on them from the first trial. After that, every proposal
    mutates a parent from the population. Failed trials enter neither the population nor the
    trainer.
    """

    def __init__(
        self,
        space: ChoiceSpace,
        population_size: int = 500,
        sample_size: int = 50,
        mutation_probability: float = 0.3,
        trainer: TrainerConfig | Mapping[str, Any] | None = None,
        policy: PolicyConfig | Mapping[str, Any] | None = None,
        batch_size: int = 1,
        seed: int | np.random.SeedSequence | np.random.Generator | None = None,
        max_redraws: int = 0,
    ) -> None:
        check_evolution_arguments(population_size, sample_size, mutation_probability)
        if trainer is None:
            trainer = PQTConfig(learning_rate=1e-4, entropy_penalty=0.2, queue_fraction=0.2)
        super().__init__(space, trainer, policy, batch_size, seed, max_redraws)
        self.population_size = int(population_size)
        self.sample_size = int(sample_size)
        self.mutation_probability = float(mutation_probability)
        self.population = Population(self.population_size, len(space))
        self.hybrid = HybridPolicy(self.mutation_probability, self.rng)

    def propose(self, count: int = 1) -> list[Proposal]:
        count = self._check_count(count)
        proposals = propose_evolution(count, self.num_proposed, self.population, self.seen,
                                      self._sample_policy, self._mutate)
        self.num_proposed += count
        return proposals

    def _mutate(self, count: int) -> list[Proposal]:
        slots = self.population.tournament(self.rng, count, self.sample_size)
        children, mask = mutate_with_policy(self.sampler, self.hybrid, self.population.indices[slots], self.rng)
        return self.population.children(slots, children, mask)

    def _observe_usable(self, results: list[TrialResult]) -> None:
        self.population.add_results(results)
        super()._observe_usable(results)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["population"] = self.population.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.population.load_state_dict(state["population"])
