"""Search agents. Installed as ``seqopt.agents``."""

from seqopt.agents.aging_evolution import AgingEvolution
from seqopt.agents.base import Agent
from seqopt.agents.random_search import RandomSearch

__all__ = ["Agent", "AgingEvolution", "RandomSearch"]
