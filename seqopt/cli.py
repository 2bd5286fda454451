"""The ``seqopt`` command: a Hydra application that composes agent, env, executor and hardware."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from seqopt.checkpoint import ResumeError
from seqopt.executors.base import Executor
from seqopt.objective import Objective
from seqopt.search import Budget, Search, SearchSummary
from seqopt.seeding import AGENT_STREAM, child_seed

if TYPE_CHECKING:  # worker processes re-import this module; keep torch out of them
    from seqopt.agents.base import Agent

logger = logging.getLogger(__name__)


class _DropTrialLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith("seqopt.trials")


def _quiet_console_trial_lines() -> None:
    """Keep the per-trial INFO lines out of the console (they still reach the run's log file)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.addFilter(_DropTrialLines())


def build_objective(cfg: DictConfig) -> Objective:
    objective = instantiate(cfg.env)
    if not hasattr(objective, "space") or not hasattr(objective, "evaluate"):
        raise TypeError(f"env config {cfg.env.get('_target_')!r} built {type(objective).__name__}, "
                        "which is not an objective (it needs .space and .evaluate).")
    return objective


def build_agent(cfg: DictConfig, objective: Objective) -> Agent:
    return instantiate(cfg.agent, space=objective.space, seed=child_seed(cfg.seed, AGENT_STREAM))


def resolve_resume(resume: Any, run_dir: str | Path | None) -> tuple[bool, str | Path | None]:
    """Return (resume, run folder) for the ``resume`` setting: false, true, or the path of a run folder."""
    if resume is None or resume is False:
        return False, run_dir
    if resume is True:
        return True, run_dir
    if isinstance(resume, str) and resume.strip():
        path = Path(resume).expanduser()
        folder = path.parent if path.is_file() else path
        if not folder.is_dir():
            raise FileNotFoundError(f"resume={resume!r}: no such run folder. Give the folder of the run to continue.")
        return True, folder
    raise ValueError(f"resume must be true, false or the path of a run folder, got {resume!r}.")


def search_options(cfg: DictConfig) -> dict[str, Any]:
    """Return the fault-handling and checkpoint settings of ``cfg`` as Search keyword arguments."""
    checkpoint = cfg.get("checkpoint") or {}
    return {
        "checkpoint_every_trials": checkpoint.get("every_trials", 5000),
        "checkpoint_every_seconds": checkpoint.get("every_seconds", 300),
        "retries": cfg.get("retries", 0),
        "trial_timeout": cfg.get("trial_timeout"),
        "max_failure_rate": cfg.get("max_failure_rate"),
        "failure_rate_min_trials": cfg.get("failure_rate_min_trials", 20),
        "dedup": cfg.get("dedup", False),
    }


def run_search(cfg: DictConfig, run_dir: str | Path | None) -> SearchSummary:
    """Build every component from ``cfg`` and run one search into ``run_dir``."""
    resume, run_dir = resolve_resume(cfg.get("resume", False), run_dir)
    objective = build_objective(cfg)
    agent = build_agent(cfg, objective)
    executor: Executor = instantiate(cfg.executor)
    budget = Budget(**OmegaConf.to_container(cfg.budget, resolve=True))  # type: ignore[arg-type]
    search = Search(objective, agent, budget=budget, seed=cfg.seed, run_dir=run_dir, executor=executor,
                    progress=cfg.progress, window=cfg.window, resume=resume, **search_options(cfg))
    logger.info("Searching %r with %s, seed %d, budget %s; run folder %s", objective, type(agent).__name__,
                cfg.seed, budget, run_dir)
    if cfg.progress:
        from tqdm.contrib.logging import logging_redirect_tqdm

        with logging_redirect_tqdm():
            summary = search.run()
    else:
        summary = search.run()
    return summary


@hydra.main(version_base=None, config_path="pkg://seqopt.conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Run one search; under ``--multirun`` Hydra calls this once per run."""
    if not cfg.log_trials:
        _quiet_console_trial_lines()
    run_dir = HydraConfig.get().runtime.output_dir
    try:
        _, store_dir = resolve_resume(cfg.get("resume", False), run_dir)
        summary = run_search(cfg, run_dir)
    except InstantiationException as error:
        # Hydra wraps the constructor's own error (a bad agent or env value) in this exception.
        logger.debug("Run failed", exc_info=True)
        print(f"seqopt: error: {error.__cause__ or error}", file=sys.stderr)
        raise SystemExit(1) from None
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, ResumeError) as error:
        # Bad configuration values and missing files are the user's to fix: one line naming the
        # problem reads better than a traceback (HYDRA_FULL_ERROR=1 still shows it in the log file).
        logger.debug("Run failed", exc_info=True)
        print(f"seqopt: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    print(summary.format())
    print(f"Trials written to {os.path.join(store_dir or run_dir, 'trials.jsonl')}")
    # Returned so that Hydra sweepers that optimize can read it.
    return summary.best_reward


if __name__ == "__main__":
    main()
