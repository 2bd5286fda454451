"""Stable-Baselines3 algorithms as seqopt agents.

An SB3 algorithm (PPO, A2C, or sb3-contrib's MaskablePPO) learns on the objective's
``SequenceEnv``, one step per choice, while the ordinary ``seqopt.Search`` loop evaluates every
finished episode as a trial: same budgets, trial store, plots and reports as every other agent.

How the bridge works: ``model.learn()`` runs in a background thread on a vectorized environment of
``n_envs`` SequenceEnvs whose objective is a stand-in. Every choice space has a fixed length, so all
``n_envs`` episodes end on the same vector step. On that step the learner thread hands the
``n_envs`` finished sequences to ``propose()`` and blocks until ``observe()`` has delivered all
their evaluations. Only one of the two threads runs at a time, because the learner resumes only
inside a ``propose()`` call, so a run is deterministic given the seed.

SB3 draws its random numbers from the process-global generators (``random``, ``numpy.random``
and torch's default generator) and seeds them in its constructor. Because the threads alternate,
the agent swaps those global states at each hand-over: SB3 draws from its own seeded streams, and the
caller's global random state is the same after a search as before it.

stable_baselines3 and sb3_contrib are imported only when an agent is built, because importing
them can pull in TensorFlow when tensorboard is installed.
"""

from __future__ import annotations

import atexit
import difflib
import importlib
import inspect
import logging
import queue
import random
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from seqopt.agents.base import Agent
from seqopt.envs.sequence_env import SequenceEnv
from seqopt.objective import Evaluation
from seqopt.spaces import ChoiceSpace
from seqopt.trial import Proposal, TrialResult

logger = logging.getLogger(__name__)

# model.learn() runs until the agent is closed; a finite total keeps SB3's progress arithmetic valid.
_UNBOUNDED_TIMESTEPS = 2**62
# Seconds between checks that the learner thread is still alive while the caller waits for it.
_POLL_SECONDS = 1.0
# Seconds that close() waits for the learner thread to finish.
_JOIN_SECONDS = 30.0


# --- Process-global random state, swapped at each hand-over between the two threads ---

# numpy's legacy global state is read and written on purpose: it is what SB3 draws from.
def _capture_global_random_state() -> tuple[Any, Any, torch.Tensor]:
    return random.getstate(), np.random.get_state(), torch.random.get_rng_state()  # noqa: NPY002


def _restore_global_random_state(state: tuple[Any, Any, torch.Tensor]) -> None:
    python_state, numpy_state, torch_state = state
    random.setstate(python_state)
    np.random.set_state(numpy_state)  # noqa: NPY002
    torch.random.set_rng_state(torch_state)


class _LearnerStopped(Exception):
    """Raised inside the learner thread to unwind ``model.learn()`` when the agent closes."""


_STOP = object()


@dataclass
class _LearnerFailed:
    error: BaseException


@dataclass
class _LearnerFinished:
    num_timesteps: int


class _Handoff:
    """Passes control between the caller's thread and the learner thread, one side at a time.

    The caller sends a list of evaluations (or ``_STOP``) and blocks until the learner replies with
    the next batch of finished sequences, a ``_LearnerFailed`` or a ``_LearnerFinished``. Whichever
    thread has control runs with its own process-global random state installed.
    """

    def __init__(self, learner_random_state: tuple[Any, Any, torch.Tensor]) -> None:
        self._to_learner: queue.Queue[object] = queue.Queue(maxsize=1)
        self._to_caller: queue.Queue[object] = queue.Queue(maxsize=1)
        self._learner_random_state = learner_random_state
        self._caller_random_state: tuple[Any, Any, torch.Tensor] | None = None
        self.thread: threading.Thread | None = None

    # Learner side.
    def wait_for_start(self) -> None:
        self._receive()

    def exchange(self, sequences: list[tuple[int, ...]]) -> list[Evaluation]:
        """Hand finished sequences to the caller and return their evaluations (learner thread)."""
        self.give_back(sequences)
        message = self._receive()
        if not isinstance(message, list):
            raise RuntimeError(f"Learner expected a list of evaluations, got {type(message).__name__}.")
        return message

    def give_back(self, message: object) -> None:
        self._learner_random_state = _capture_global_random_state()
        if self._caller_random_state is not None:
            _restore_global_random_state(self._caller_random_state)
        self._to_caller.put(message)

    def _receive(self) -> object:
        message = self._to_learner.get()
        if message is _STOP:
            raise _LearnerStopped
        self._caller_random_state = _capture_global_random_state()
        _restore_global_random_state(self._learner_random_state)
        return message

    # Caller side.
    def resume(self, message: object) -> object:
        """Send ``message`` to the learner and block until it replies (caller thread)."""
        self._to_learner.put(message)
        while True:
            try:
                return self._to_caller.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if self.thread is None or not self.thread.is_alive():
                    raise RuntimeError("The SB3 learner thread ended without a reply; build a new agent.") from None

    def stop(self) -> None:
        """Unwind the learner thread and wait for it (caller thread); safe to call more than once."""
        thread = self.thread
        if thread is None or not thread.is_alive():
            return
        try:
            self._to_learner.put_nowait(_STOP)
        except queue.Full:
            pass
        thread.join(_JOIN_SECONDS)
        if thread.is_alive():
            logger.warning("The SB3 learner thread did not stop within %.0f s; leaving it as a daemon.",
                           _JOIN_SECONDS)


def _run_learner(model: Any, handoff: _Handoff) -> None:
    """Body of the learner thread: ``model.learn()`` until stopped, reporting how it ended."""
    try:
        handoff.wait_for_start()
        model.learn(total_timesteps=_UNBOUNDED_TIMESTEPS)
        handoff.give_back(_LearnerFinished(int(model.num_timesteps)))
    except _LearnerStopped:
        pass
    except BaseException as error:  # handed to the caller, which re-raises it from propose()
        handoff.give_back(_LearnerFailed(error))


_live_handoffs: weakref.WeakSet[_Handoff] = weakref.WeakSet()


@atexit.register
def _stop_live_learners() -> None:
    for handoff in list(_live_handoffs):
        handoff.stop()


class _BridgeObjective:
    """Stand-in objective of each SequenceEnv: returns the evaluation the search delivered for it."""

    def __init__(self, space: ChoiceSpace) -> None:
        self.space = space
        self._expected: tuple[int, ...] | None = None
        self._evaluation: Evaluation | None = None

    def deliver(self, indices: tuple[int, ...], evaluation: Evaluation) -> None:
        self._expected = indices
        self._evaluation = evaluation

    def evaluate(self, indices: tuple[int, ...], rng: np.random.Generator | None = None) -> Evaluation:
        if self._evaluation is None or tuple(indices) != self._expected:
            raise RuntimeError(
                f"SB3 bridge: no evaluation was delivered for {tuple(indices)} (expected {self._expected}); "
                "the bridge lost track of the episode."
            )
        evaluation, self._evaluation, self._expected = self._evaluation, None, None
        return evaluation


def _make_bridge_vec_env(space: ChoiceSpace, n_envs: int, handoff: _Handoff, invalid_action: str,
                         failure_reward: float) -> Any:
    """Build the DummyVecEnv subclass whose last vector step of each episode waits for the search."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    length = len(space)
    cardinalities = [int(k) for k in space.cardinalities]
    num_actions = space.max_cardinality

    class BridgeVecEnv(DummyVecEnv):
        def __init__(self) -> None:
            self.objectives = [_BridgeObjective(space) for _ in range(n_envs)]
            super().__init__([self._env_factory(objective) for objective in self.objectives])
            self.prefixes = np.zeros((n_envs, length), dtype=np.int64)
            self.steps = np.zeros(n_envs, dtype=np.int64)

        @staticmethod
        def _env_factory(objective: _BridgeObjective) -> Any:
            return lambda: SequenceEnv(objective, invalid_action=invalid_action, failure_reward=failure_reward)

        def reset(self) -> Any:
            self.steps[:] = 0
            return super().reset()

        def step_wait(self) -> Any:
            # Record each env's choice with SequenceEnv's rule; an action it rejects is left to it.
            finishing = []
            for env_index in range(self.num_envs):
                step = int(self.steps[env_index])
                action = int(self.actions[env_index])
                valid = 0 <= action < cardinalities[step] or (invalid_action == "wrap" and 0 <= action < num_actions)
                if valid:
                    self.prefixes[env_index, step] = action % cardinalities[step]
                    if step == length - 1:
                        finishing.append(env_index)

            # All episodes have the same length, so they end together: one hand-over per batch.
            if finishing:
                sequences = [tuple(int(i) for i in self.prefixes[env_index]) for env_index in finishing]
                evaluations = handoff.exchange(sequences)
                for env_index, indices, evaluation in zip(finishing, sequences, evaluations):
                    self.objectives[env_index].deliver(indices, evaluation)

            result = super().step_wait()
            self.steps += 1
            self.steps[self.buf_dones] = 0
            return result

    return BridgeVecEnv()


def _import_algorithm(path: str) -> type:
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        package = module_name.split(".")[0].replace("_", "-")
        raise ImportError(f"{path} needs the package {package}; install it with `pip install {package}`.") from error
    algorithm: type = getattr(module, class_name)
    return algorithm


def _check_hyperparameters(algorithm: type, hyperparameters: dict[str, Any]) -> None:
    """Reject keyword arguments that the SB3 constructor does not take, suggesting the closest name."""
    accepted = set(inspect.signature(algorithm).parameters) - {"env", "policy", "seed"}
    for name in hyperparameters:
        if name not in accepted:
            close = difflib.get_close_matches(name, sorted(accepted), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise TypeError(
                f"{algorithm.__name__} has no hyperparameter {name!r}.{hint} "
                f"Accepted: {', '.join(sorted(accepted))}."
            )


@dataclass
class _Slot:
    proposal: Proposal
    index: int


@dataclass
class _Batch:
    """One hand-over of the learner: its sequences, how many were proposed, the evaluations so far."""

    sequences: list[tuple[int, ...]]
    taken: int = 0
    evaluations: dict[int, Evaluation] = field(default_factory=dict)

    def to_state(self) -> dict[str, Any]:
        evaluations: list[list[Any] | None] = [None] * len(self.sequences)
        for index, evaluation in self.evaluations.items():
            evaluations[index] = [evaluation.reward, evaluation.status.value]
        return {"sequences": [list(sequence) for sequence in self.sequences], "taken": self.taken,
                "evaluations": evaluations}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Batch:
        evaluations = {
            index: Evaluation(reward=float(entry[0]), status=entry[1])
            for index, entry in enumerate(state["evaluations"]) if entry is not None
        }
        sequences = [tuple(int(i) for i in sequence) for sequence in state["sequences"]]
        return cls(sequences, int(state["taken"]), evaluations)


class SB3Agent(Agent):
    """An SB3 algorithm that learns on the objective's SequenceEnv; each finished episode is a trial.

    Args:
        space: the choice space.
        seed: seed or Generator; the SB3 seed (an int) is drawn from it.
        n_envs: number of SequenceEnvs the algorithm steps together. The agent can have at most
            ``n_envs`` trials in flight, so set it to the executor's capacity. Its preferred batch
            (``batch_size``) is ``n_envs``.
        policy: the SB3 policy name or class.
        invalid_action: how each SequenceEnv treats an action beyond the current choice's
            cardinality: "wrap" (modulo the cardinality) or "raise"; "raise" suits MaskablePPO only.
        failure_reward: reward the algorithm receives for a failed trial.
        **hyperparameters: keyword arguments of the SB3 constructor (``learning_rate``, ``n_steps``,
            ``policy_kwargs``, ...). Unknown names raise TypeError.

    ``model`` is the SB3 algorithm object: after a search, ``agent.model.save(path)`` keeps the
    network. ``close()`` stops the learner thread; it also runs when the agent is garbage
    collected and at interpreter exit. ``state_dict`` contains the seed and the evaluations handed to
    the learner, and ``load_state_dict`` restores an agent exactly by replaying them.
    """

    #: "module:Class" of the SB3 algorithm; set by each subclass.
    algorithm_path: ClassVar[str] = ""

    def __init__(
        self,
        space: ChoiceSpace,
        seed: int | np.random.SeedSequence | np.random.Generator | None = None,
        n_envs: int = 1,
        policy: str | type = "MlpPolicy",
        invalid_action: str = "wrap",
        failure_reward: float = 0.0,
        **hyperparameters: Any,
    ) -> None:
        super().__init__(space, seed)
        if isinstance(n_envs, bool) or not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
            raise ValueError(f"n_envs must be an int >= 1, got {n_envs!r}.")
        if invalid_action not in ("wrap", "raise"):
            raise ValueError(f"invalid_action must be 'wrap' or 'raise', got {invalid_action!r}.")
        if not self.algorithm_path:
            raise TypeError("SB3Agent is abstract; use SB3PPO, SB3A2C or SB3MaskablePPO.")
        self.n_envs = int(n_envs)
        self.batch_size = self.n_envs
        self.sb3_seed = int(self.rng.integers(2**31 - 1))
        algorithm = _import_algorithm(self.algorithm_path)
        _check_hyperparameters(algorithm, hyperparameters)

        # SB3 seeds the process-global generators while it builds the model; keep that state for
        # the learner thread and give the caller back its own.
        caller_state = _capture_global_random_state()
        try:
            handoff = _Handoff(caller_state)
            vec_env = _make_bridge_vec_env(space, self.n_envs, handoff, invalid_action, float(failure_reward))
            # The networks are small and the hand-over is synchronous, so a GPU would not pay off.
            options = {"device": "cpu", **hyperparameters}
            self.model = algorithm(policy, vec_env, seed=self.sb3_seed, **options)
            handoff._learner_random_state = _capture_global_random_state()
        finally:
            _restore_global_random_state(caller_state)

        self._handoff = handoff
        self._ready: list[tuple[int, tuple[int, ...]]] = []  # (env index, sequence) not yet proposed
        self._outstanding: list[_Slot] = []
        self._batches: list[_Batch] = []  # every hand-over so far; state_dict stores them for a replay
        self._started = False
        self._closed = False
        self._warned_count = False
        _live_handoffs.add(handoff)
        self._finalizer = weakref.finalize(self, handoff.stop)

    def propose(self, count: int = 1) -> list[Proposal]:
        count = self._check_count(count)
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed; build a new agent to search again.")
        if count > self.n_envs and not self._warned_count:
            logger.warning("%s has n_envs=%d, so at most %d trials can be in flight, but %d were requested; "
                           "set the agent's n_envs to the executor's capacity.",
                           type(self).__name__, self.n_envs, self.n_envs, count)
            self._warned_count = True
        if count == 0:
            return []
        if not self._ready and not self._outstanding:
            self._next_batch()

        taken, self._ready = self._ready[:count], self._ready[count:]
        proposals = []
        for env_index, indices in taken:
            proposal = Proposal(indices=indices, origin="policy")
            self._outstanding.append(_Slot(proposal, env_index))
            proposals.append(proposal)
        self._batches[-1].taken += len(proposals)
        self.num_proposed += len(proposals)
        return proposals

    def _next_batch(self) -> None:
        """Resume the learner with the last batch's evaluations and wait for its next sequences."""
        if self._started:
            last = self._batches[-1]
            message: object = [last.evaluations[i] for i in range(len(last.sequences))]
        else:
            self._start_learner()
            message = None
        reply = self._handoff.resume(message)
        if isinstance(reply, _LearnerFailed):
            self.close()
            raise RuntimeError(f"The {type(self).__name__} learner failed: {reply.error!r}") from reply.error
        if isinstance(reply, _LearnerFinished):
            self.close()
            raise RuntimeError(f"The {type(self).__name__} learner stopped after {reply.num_timesteps} steps.")
        if not isinstance(reply, list):
            raise RuntimeError(f"The SB3 learner replied {reply!r} instead of a batch of sequences.")
        self._batches.append(_Batch(list(reply)))
        self._ready = list(enumerate(reply))

    def _start_learner(self) -> None:
        thread = threading.Thread(target=_run_learner, args=(self.model, self._handoff),
                                  name=f"seqopt-{type(self).__name__}", daemon=True)
        self._handoff.thread = thread
        thread.start()
        self._started = True

    def observe(self, results: Sequence[TrialResult]) -> None:
        """Deliver each result's evaluation (failed ones too) to the episode that proposed it."""
        super().observe(results)
        for result in results:
            slot = self._match(result)
            if slot is None:
                logger.debug("%s ignores trial %d: it has no outstanding proposal with these indices.",
                             type(self).__name__, result.trial_id)
                continue
            self._outstanding.remove(slot)
            self._batches[-1].evaluations[slot.index] = result.evaluation

    def _match(self, result: TrialResult) -> _Slot | None:
        for slot in self._outstanding:
            if slot.proposal is result.proposal:
                return slot
        for slot in self._outstanding:
            if slot.proposal.indices == result.indices:
                return slot
        return None

    def close(self) -> None:
        """Stop the learner thread; the agent cannot propose afterwards."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> SB3Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def state_dict(self) -> dict[str, Any]:
        """Return the seed and every hand-over so far; ``load_state_dict`` replays them.

        SB3 cannot save a learner in the middle of a rollout, but a run is deterministic given the
        seed and the evaluations, so the evaluations are the state.
        """
        state = super().state_dict()
        state["sb3_seed"] = self.sb3_seed
        state["batches"] = [batch.to_state() for batch in self._batches]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a fresh agent by replaying the learner on the stored evaluations.

        The replay costs the learner's own compute up to the checkpoint (no trial is evaluated again).

        Raises:
            RuntimeError: when the agent has already proposed, or when the learner proposes other
                sequences than the stored ones (another seed, SB3 or torch version).
        """
        if self._started:
            raise RuntimeError(f"{type(self).__name__}.load_state_dict needs a fresh agent; this one already proposed.")
        if int(state["sb3_seed"]) != self.sb3_seed:
            raise ValueError(f"The state was saved with SB3 seed {state['sb3_seed']}, but this agent has "
                             f"{self.sb3_seed}; build the agent with the seed of the original run.")
        batches = [_Batch.from_state(batch) for batch in state["batches"]]
        for number, batch in enumerate(batches):
            if number:
                previous = batches[number - 1]
                if len(previous.evaluations) != len(previous.sequences):
                    raise ValueError(f"Stored batch {number - 1} lacks evaluations but is followed by another batch.")
                self._batches[-1].evaluations = previous.evaluations
            self._next_batch()
            if self._batches[-1].sequences != batch.sequences:
                self.close()
                raise RuntimeError(
                    f"Replaying {type(self).__name__} diverged at batch {number}: the learner proposed "
                    f"{self._batches[-1].sequences}, the state holds {batch.sequences}. The state was written with "
                    "another seed or another version of SB3 or torch."
                )
        if batches:
            last = batches[-1]
            self._batches[-1] = last
            self._ready = list(enumerate(last.sequences))[last.taken:]
            self._outstanding = [
                _Slot(Proposal(indices=sequence, origin="policy"), index)
                for index, sequence in enumerate(last.sequences[: last.taken]) if index not in last.evaluations
            ]
        super().load_state_dict(state)


class SB3PPO(SB3Agent):
    """Stable-Baselines3 PPO on the SequenceEnv (invalid actions wrap modulo the cardinality)."""

    algorithm_path = "stable_baselines3:PPO"


class SB3A2C(SB3Agent):
    """Stable-Baselines3 A2C on the SequenceEnv (invalid actions wrap modulo the cardinality)."""

    algorithm_path = "stable_baselines3:A2C"


class SB3MaskablePPO(SB3Agent):
    """sb3-contrib's MaskablePPO, which samples only the valid actions of each step (``action_masks()``)."""

    algorithm_path = "sb3_contrib:MaskablePPO"
