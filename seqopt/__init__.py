"""seqopt: sequence optimization and architecture search behind a Gymnasium interface.

Built around the Evo-NAS agent of "Evolutionary-Neural Hybrid Agents for Architecture Search"
(Maziarz et al., arXiv:1811.09828).
"""

from seqopt.objective import Evaluation, FunctionObjective, Objective, Status
from seqopt.search import Budget, Search, SearchSummary
from seqopt.spaces import Choice, ChoiceSpace
from seqopt.trial import Proposal, TrialResult

__version__ = "0.1.0"

__all__ = [
    "Budget",
    "Choice",
    "ChoiceSpace",
    "Evaluation",
    "FunctionObjective",
    "Objective",
    "Proposal",
    "Search",
    "SearchSummary",
    "Status",
    "TrialResult",
]

# Importing the environments registers their Gymnasium ids (seqopt/<Name>-v0).
import seqopt.envs  # noqa: F401
