"""A Gymnasium environment for any seqopt objective: one step per choice, the reward at the end."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from seqopt.objective import Objective, Status


class SequenceEnv(gym.Env[np.ndarray, int]):
    """Build a sequence of the objective's choice space one choice per step.

    ## Action Space
    ``Discrete(K)`` with K the largest cardinality of the space. At step i only the first
    ``cardinality_i`` actions are valid: ``action_masks()`` returns that boolean mask (the method
    sb3-contrib's MaskablePPO calls) and ``info["action_mask"]`` carries it too. An invalid action is
    wrapped to ``action % cardinality_i`` by default (``invalid_action="wrap"``), so agents without
    masking still work, or rejected with ``invalid_action="raise"``.

    ## Observation Space
    ``MultiDiscrete`` of length n + 1: entry i is 0 while choice i is still open and
    ``index + 1`` once chosen; the last entry is the step index 0..n.

    ## Rewards
    0 at every step but the last, where the objective's reward is returned. A failed evaluation
    (status ``failed``, NaN reward) returns ``failure_reward`` instead, and ``info["status"]`` says so.

    ## Episode End
    The episode terminates after n steps; it is never truncated.

    ## Info
    On the last step: ``status``, ``metrics`` (the objective's), ``cost_seconds``, ``indices``,
    ``error``.

    ## Arguments
    objective: any object with a ``space`` and ``evaluate(indices, rng)``.
    invalid_action: "wrap" or "raise".
    failure_reward: reward returned for a failed evaluation.

    ## Version History
    v0: first version.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"]}  # noqa: RUF012 - Gymnasium declares it per class

    def __init__(self, objective: Objective, invalid_action: str = "wrap", failure_reward: float = 0.0,
                 render_mode: str | None = None) -> None:
        if invalid_action not in ("wrap", "raise"):
            raise ValueError(f"invalid_action must be 'wrap' or 'raise', got {invalid_action!r}.")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}."
            )
        self.objective = objective
        self.space = objective.space
        self.invalid_action = invalid_action
        self.failure_reward = float(failure_reward)
        self.render_mode = render_mode
        self.length = len(self.space)
        self.cardinalities = self.space.cardinalities
        self.num_actions = self.space.max_cardinality
        self.action_space = gym.spaces.Discrete(self.num_actions)  # type: ignore[assignment]
        self.observation_space = gym.spaces.MultiDiscrete(
            np.append(self.cardinalities + 1, self.length + 1).astype(np.int64)
        )
        self._prefix = np.zeros(self.length, dtype=np.int64)
        self._step = 0
        self._last_info: dict[str, Any] = {}

    def _observation(self) -> np.ndarray:
        return np.append(self._prefix, self._step).astype(np.int64)

    def action_masks(self) -> np.ndarray:
        """Boolean mask of the valid actions at the current step (all False once the episode is over)."""
        mask = np.zeros(self.num_actions, dtype=np.bool_)
        if self._step < self.length:
            mask[: self.cardinalities[self._step]] = True
        return mask

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._prefix[:] = 0
        self._step = 0
        self._last_info = {"action_mask": self.action_masks()}
        return self._observation(), dict(self._last_info)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._step >= self.length:
            raise RuntimeError("step() called after the episode terminated; call reset() first.")
        action = int(action)
        cardinality = int(self.cardinalities[self._step])
        if not 0 <= action < cardinality:
            if self.invalid_action == "raise" or not 0 <= action < self.num_actions:
                raise ValueError(
                    f"Action {action} is invalid at step {self._step} (choice {self.space.names[self._step]!r}); "
                    f"valid actions are 0..{cardinality - 1}. Use action_masks() to pick valid actions."
                )
            action %= cardinality
        self._prefix[self._step] = action + 1
        self._step += 1
        if self._step < self.length:
            self._last_info = {"action_mask": self.action_masks()}
            return self._observation(), 0.0, False, False, dict(self._last_info)

        indices = tuple(int(i) for i in self._prefix - 1)
        evaluation = self.objective.evaluate(indices, self.np_random)
        reward = evaluation.reward if evaluation.usable else self.failure_reward
        self._last_info = {
            "action_mask": self.action_masks(),
            "indices": indices,
            "status": evaluation.status.value,
            "metrics": evaluation.metrics,
            "cost_seconds": evaluation.cost_seconds,
            "error": evaluation.error,
            "reward": evaluation.reward,
        }
        if evaluation.status is Status.FAILED:
            self._last_info["failure_reward"] = self.failure_reward
        return self._observation(), float(reward), True, False, dict(self._last_info)

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        chosen = [self.space.choices[i].values[p - 1] if p else "_" for i, p in enumerate(self._prefix)]
        return f"step {self._step}/{self.length}: {chosen}"
