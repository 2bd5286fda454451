"""Aging (regularized) evolution, the paper's Evolutionary agent.

Real et al. 2019, "Regularized Evolution for Image Classifier Architecture Search"
(arXiv:1802.01548); mutation as in Maziarz et al., "Evolutionary-Neural Hybrid Agents for
Architecture Search" (arXiv:1811.09828): every position of the parent is resampled uniformly with
probability p.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqopt.agents.base import Agent, rows_to_proposals
from seqopt.agents.novelty import SeenSequences
from seqopt.agents.population import Population, mutate_uniform, propose_evolution
from seqopt.spaces import ChoiceSpace
from seqopt.trial import Proposal, TrialResult


def check_evolution_arguments(population_size: int, sample_size: int, mutation_probability: float) -> None:
    """Validate P, S and p with messages that name the argument, the value and the rule."""
    if isinstance(population_size, bool) or not isinstance(population_size, (int, np.integer)) or population_size < 1:
        raise ValueError(f"population_size (P) must be an int >= 1, got {population_size!r}.")
    if isinstance(sample_size, bool) or not isinstance(sample_size, (int, np.integer)) or sample_size < 1:
        raise ValueError(f"sample_size (S) must be an int >= 1, got {sample_size!r}.")
    if sample_size > population_size:
        raise ValueError(
            f"sample_size (S={sample_size}) must not exceed population_size (P={population_size}); "
            f"lower S or raise P."
        )
    if isinstance(mutation_probability, bool) or not isinstance(mutation_probability, (int, float)) \
            or not 0.0 <= mutation_probability <= 1.0:
        raise ValueError(f"mutation_probability (p) must be a number in [0, 1], got {mutation_probability!r}.")


class AgingEvolution(Agent):
    """Aging evolution with per-position uniform mutation.

    Args:
        space: the choice space.
        population_size: P, the number of most recent models kept.
        sample_size: S, the tournament size; the parent is the best of S distinct members.
        mutation_probability: p, the probability that each position of the parent is resampled.
        must_change: resample from the values other than the parent's (default False, the
            Evo-NAS paper's rule, where a resample may land on the parent's value).
        seed: seed or Generator of every random draw of the agent.
        max_redraws: draw a proposal that repeats a sequence proposed before again (a new
            tournament and a new child), up to this many times; 0 (the default) keeps repeats.
            See ``seqopt.agents.novelty``.

    The first P proposals are drawn uniformly at random. After that, each proposal mutates a parent
    chosen by tournament from the P most recently observed models; failed trials never enter the
    population.
    """

    def __init__(
        self,
        space: ChoiceSpace,
        population_size: int = 500,
        sample_size: int = 50,
        mutation_probability: float = 0.3,
        must_change: bool = False,
        seed: int | np.random.SeedSequence | np.random.Generator | None = None,
        max_redraws: int = 0,
    ) -> None:
        super().__init__(space, seed)
        check_evolution_arguments(population_size, sample_size, mutation_probability)
        self.population_size = int(population_size)
        self.sample_size = int(sample_size)
        self.mutation_probability = float(mutation_probability)
        self.must_change = bool(must_change)
        self.population = Population(self.population_size, len(space))
        self.seen = SeenSequences(len(space), max_redraws, space.size)

    def propose(self, count: int = 1) -> list[Proposal]:
        count = self._check_count(count)
        proposals = propose_evolution(count, self.num_proposed, self.population, self.seen,
                                      self._sample_random, self._mutate)
        self.num_proposed += count
        return proposals

    def _sample_random(self, count: int) -> list[Proposal]:
        return rows_to_proposals(self.space.sample(self.rng, count), origin="random")

    def _mutate(self, count: int) -> list[Proposal]:
        slots = self.population.tournament(self.rng, count, self.sample_size)
        children, mask = mutate_uniform(self.population.indices[slots], self.space.cardinalities, self.rng,
                                        self.mutation_probability, self.must_change)
        return self.population.children(slots, children, mask)

    def _observe_usable(self, results: list[TrialResult]) -> None:
        self.population.add_results(results)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["population"] = self.population.state_dict()
        state["seen"] = self.seen.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.population.load_state_dict(state["population"])
        self.seen.load_state_dict(state.get("seen"))

    def metrics(self) -> dict[str, float]:
        """Redraw counts under the ``agent/`` namespace when ``max_redraws`` is set."""
        return self.seen.metrics()
