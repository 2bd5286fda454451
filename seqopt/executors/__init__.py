"""Executors run trials: in the search's process, in local worker processes, or on a Ray cluster."""

from seqopt.executors.base import Completed, Executor, evaluate_safely
from seqopt.executors.inline import InlineExecutor
from seqopt.executors.process import ProcessExecutor
from seqopt.executors.ray import RayExecutor

__all__ = ["Completed", "Executor", "InlineExecutor", "ProcessExecutor", "RayExecutor", "evaluate_safely"]
