"""Training algorithms of the autoregressive policy: REINFORCE and Priority Queue Training (PQT).

Both appear in Maziarz et al., "Evolutionary-Neural Hybrid Agents for Architecture Search"
(arXiv:1811.09828), Section 5. REINFORCE is Williams' policy gradient with a moving-average reward
baseline. PQT comes from Abolafia et al., "Neural Program Synthesis with Priority Queue Training"
(arXiv:1801.03526): the policy maximizes the log-likelihood of the best unique sequences seen so
far. Both add an entropy bonus, weighted by the entropy penalty of the paper's tables.

A trainer collects observed trials and takes one gradient step per batch of B of them, with B the
agent's batch size. The loss of every step is computed teacher-forced on the policy as it is at
that step, so the log-probability is always that of the values actually chosen.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import heapq
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch

from seqopt.agents.policy import AutoregressivePolicy, chosen_log_prob, total_entropy


@contextlib.contextmanager
def single_torch_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block, then restore the previous count.

    The policy's tensors are far too small to gain from threads, and on a busy machine the
    threads' synchronization dominates: 30 small steps took 9.8 s with 2 threads against 0.2 s
    with 1 on the shared 2-core VM. Restoring the count leaves torch as the caller set it.
    """
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_positive(name: str, value: Any, integer: bool = False) -> None:
    if integer:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")


def _check_non_negative(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")


@dataclass
class ReinforceConfig:
    """REINFORCE with a moving-average reward baseline and an entropy bonus."""

    algorithm: str = field(default="reinforce", init=False)
    learning_rate: float = 5e-4
    """Adam learning rate."""
    entropy_penalty: float = 0.1
    """Weight of the entropy bonus subtracted from the loss."""
    baseline_decay: float = 0.99
    """Decay of the exponential moving average of rewards that serves as the baseline."""
    max_grad_norm: float | None = None
    """Clip the gradient to this L2 norm; None does not clip."""

    def __post_init__(self) -> None:
        _check_positive("trainer.learning_rate", self.learning_rate)
        _check_non_negative("trainer.entropy_penalty", self.entropy_penalty)
        if isinstance(self.baseline_decay, bool) or not isinstance(self.baseline_decay, (int, float)) \
                or not 0.0 <= self.baseline_decay < 1.0:
            raise ValueError(f"trainer.baseline_decay must be a number in [0, 1), got {self.baseline_decay!r}.")
        if self.max_grad_norm is not None:
            _check_positive("trainer.max_grad_norm", self.max_grad_norm)


@dataclass
class PQTConfig:
    """Priority Queue Training: maximize the log-likelihood of the best unique sequences.

    Give exactly one of ``queue_size`` (a fixed K, as Abolafia et al. and the Evo-NAS paper's
    text experiments with K = 5) and ``queue_fraction`` (the best unique sequences up to that
    fraction of all trials so far, as the Evo-NAS paper's top 5 % and top 20 %).
    """

    algorithm: str = field(default="pqt", init=False)
    learning_rate: float = 5e-4
    """Adam learning rate."""
    entropy_penalty: float = 0.1
    """Weight of the entropy bonus subtracted from the loss."""
    queue_size: int | None = None
    """K: the number of best unique sequences kept; None when queue_fraction is set."""
    queue_fraction: float | None = 0.05
    """Keep the best unique sequences up to this fraction of the trials so far; None when queue_size is set."""
    minibatch_size: int = 64
    """Queue members drawn uniformly without replacement for each gradient step (all when fewer)."""
    max_grad_norm: float | None = None
    """Clip the gradient to this L2 norm; None does not clip."""

    def __post_init__(self) -> None:
        _check_positive("trainer.learning_rate", self.learning_rate)
        _check_non_negative("trainer.entropy_penalty", self.entropy_penalty)
        if (self.queue_size is None) == (self.queue_fraction is None):
            raise ValueError(
                f"Give exactly one of trainer.queue_size and trainer.queue_fraction, got "
                f"queue_size={self.queue_size!r} and queue_fraction={self.queue_fraction!r}; "
                f"set the other one to null."
            )
        if self.queue_size is not None:
            _check_positive("trainer.queue_size", self.queue_size, integer=True)
        if self.queue_fraction is not None and (
            isinstance(self.queue_fraction, bool) or not isinstance(self.queue_fraction, (int, float))
            or not 0.0 < self.queue_fraction <= 1.0
        ):
            raise ValueError(f"trainer.queue_fraction must be a number in (0, 1], got {self.queue_fraction!r}.")
        _check_positive("trainer.minibatch_size", self.minibatch_size, integer=True)
        if self.max_grad_norm is not None:
            _check_positive("trainer.max_grad_norm", self.max_grad_norm)


TrainerConfig = ReinforceConfig | PQTConfig
TRAINER_CONFIGS: dict[str, type[ReinforceConfig] | type[PQTConfig]] = {"reinforce": ReinforceConfig, "pqt": PQTConfig}


def make_trainer_config(config: TrainerConfig | Mapping[str, Any]) -> TrainerConfig:
    """Turn a mapping with an ``algorithm`` key ("pqt" or "reinforce") and that config's fields into a config."""
    if isinstance(config, (ReinforceConfig, PQTConfig)):
        return config
    if not isinstance(config, Mapping):
        raise TypeError(f"trainer must be a PQTConfig, a ReinforceConfig or a mapping, got {type(config).__name__}.")
    options = dict(config)
    algorithm = options.pop("algorithm", None)
    if algorithm not in TRAINER_CONFIGS:
        raise ValueError(f"trainer.algorithm must be one of {sorted(TRAINER_CONFIGS)}, got {algorithm!r}.")
    config_class = TRAINER_CONFIGS[algorithm]
    known = {f.name for f in fields(config_class) if f.init}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"Unknown trainer option(s) {unknown} for algorithm {algorithm!r}; known: {sorted(known)}.")
    return config_class(**options)


class Trainer(abc.ABC):
    """Turns observed trials into gradient steps on the policy, one step per ``batch_size`` trials.

    Args:
        policy: the policy to train.
        config: the algorithm's options.
        rng: generator of every random draw of the trainer (the PQT minibatches).
        batch_size: B, the number of observed trials per gradient step.
    """

    def __init__(self, policy: AutoregressivePolicy, config: TrainerConfig, rng: np.random.Generator,
                 batch_size: int = 1) -> None:
        _check_positive("batch_size", batch_size, integer=True)
        self.policy = policy
        self.config = config
        self.rng = rng
        self.batch_size = batch_size
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=config.learning_rate, fused=True)
        self.num_trials = 0
        self.num_updates = 0
        self.last_loss = math.nan
        self.last_entropy = math.nan
        self._pending_sequences = np.zeros((0, policy.length), dtype=np.int64)
        self._pending_rewards = np.zeros(0, dtype=np.float64)

    def observe(self, sequences: np.ndarray, rewards: np.ndarray) -> int:
        """Record finished trials and take a gradient step for each complete batch; returns the steps taken."""
        sequences = np.asarray(sequences, dtype=np.int64).reshape(-1, self.policy.length)
        rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
        if len(sequences) != len(rewards):
            raise ValueError(f"Got {len(sequences)} sequences but {len(rewards)} rewards; give one reward each.")
        if not np.all(np.isfinite(rewards)):
            raise ValueError(f"Rewards must be finite; got {rewards[~np.isfinite(rewards)].tolist()}. "
                             "Failed trials must be filtered out before training.")
        self.num_trials += len(rewards)
        self._record(sequences, rewards)
        self._pending_sequences = np.concatenate([self._pending_sequences, sequences])
        self._pending_rewards = np.concatenate([self._pending_rewards, rewards])

        steps = 0
        while len(self._pending_rewards) >= self.batch_size:
            batch_sequences = self._pending_sequences[: self.batch_size]
            batch_rewards = self._pending_rewards[: self.batch_size]
            self._pending_sequences = self._pending_sequences[self.batch_size:]
            self._pending_rewards = self._pending_rewards[self.batch_size:]
            self._step(batch_sequences, batch_rewards)
            steps += 1
        return steps

    def _record(self, sequences: np.ndarray, rewards: np.ndarray) -> None:
        """Keep what the algorithm needs from every observed trial (PQT's queue)."""

    @abc.abstractmethod
    def loss(self, sequences: np.ndarray, rewards: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the loss of one batch and the mean entropy of its sequences."""

    def _step(self, sequences: np.ndarray, rewards: np.ndarray) -> None:
        with single_torch_thread():
            loss, entropy = self.loss(sequences, rewards)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.config.max_grad_norm)
            self.optimizer.step()
        self.num_updates += 1
        self.last_loss = float(loss.detach())
        self.last_entropy = float(entropy.detach())

    def metrics(self) -> dict[str, float]:
        """Figures of the latest step under the ``agent/`` namespace."""
        return {"agent/num_updates": float(self.num_updates), "agent/loss": self.last_loss,
                "agent/entropy": self.last_entropy}

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "num_trials": self.num_trials,
            "num_updates": self.num_updates,
            "last_loss": self.last_loss,
            "last_entropy": self.last_entropy,
            "pending_sequences": self._pending_sequences.copy(),
            "pending_rewards": self._pending_rewards.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.num_trials = int(state["num_trials"])
        self.num_updates = int(state["num_updates"])
        self.last_loss = float(state["last_loss"])
        self.last_entropy = float(state["last_entropy"])
        self._pending_sequences = np.array(state["pending_sequences"], dtype=np.int64).reshape(-1, self.policy.length)
        self._pending_rewards = np.array(state["pending_rewards"], dtype=np.float64)


class Reinforce(Trainer):
    """REINFORCE: loss = -mean((r - b) log pi(a)) - entropy_penalty * mean entropy.

    The baseline b is an exponential moving average of the rewards observed before the batch,
    started at the mean reward of the first batch.
    """

    config: ReinforceConfig

    def __init__(self, policy: AutoregressivePolicy, config: ReinforceConfig, rng: np.random.Generator,
                 batch_size: int = 1) -> None:
        super().__init__(policy, config, rng, batch_size)
        self.baseline: float | None = None

    def loss(self, sequences: np.ndarray, rewards: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if self.baseline is None:
            self.baseline = float(rewards.mean())
        advantages = torch.as_tensor(rewards - self.baseline, dtype=torch.float32)
        for reward in rewards.tolist():
            self.baseline = self.config.baseline_decay * self.baseline + (1.0 - self.config.baseline_decay) * reward

        log_prob, entropy = self.policy.log_prob_and_entropy(torch.from_numpy(sequences))
        mean_entropy = entropy.mean()
        loss = -(advantages * log_prob).mean() - self.config.entropy_penalty * mean_entropy
        return loss, mean_entropy

    def metrics(self) -> dict[str, float]:
        return {**super().metrics(), "agent/baseline": math.nan if self.baseline is None else self.baseline}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "baseline": self.baseline}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.baseline = None if state["baseline"] is None else float(state["baseline"])


class PriorityQueue:
    """The best unique sequences seen so far, PQT's priority queue.

    Args:
        length: sequence length n.
        capacity: K, a fixed number of members; or None to use ``fraction``.
        fraction: the queue contains the best unique sequences up to ``ceil(fraction * trials)``,
            where ``trials`` counts every pushed sequence, duplicates included.

    A sequence already seen is ignored even if its new reward differs, as in Abolafia et al.
    Among equal rewards the older sequence ranks higher. With a fixed K the lowest member is
    dropped when a better sequence arrives, and duplicates are checked against current members
    only. With a fraction the capacity grows with the trials, so sequences that do not fit yet
    wait in a reserve from which they move up, and duplicates are checked against both; the
    queue is then exactly the best ``ceil(fraction * trials)`` unique sequences at all times.
    """

    def __init__(self, length: int, capacity: int | None = None, fraction: float | None = None) -> None:
        if (capacity is None) == (fraction is None):
            raise ValueError(f"Give exactly one of capacity and fraction, got {capacity!r} and {fraction!r}.")
        self.length = length
        self.fixed_capacity = capacity
        self.fraction = fraction
        self._clear()

    def _clear(self) -> None:
        self.num_pushed = 0
        self._next_order = 0
        self._sequences = np.zeros((0, self.length), dtype=np.int64)
        self._rewards = np.zeros(0, dtype=np.float64)
        self._orders = np.zeros(0, dtype=np.int64)
        self._size = 0
        self._heap: list[tuple[float, int, int]] = []  # (reward, -order, slot): the lowest member on top
        self._slot_of: dict[bytes, int] = {}
        self._reserve: list[tuple[float, int, bytes]] = []  # (-reward, order, key): the best waiting one on top
        self._reserve_keys: set[bytes] = set()

    def __len__(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        if self.fixed_capacity is not None or self.fraction is None:
            return self.fixed_capacity or 0
        # The tolerance keeps a product such as 0.07 * 100 = 7.000000000000001 from rounding up to 8.
        return max(1, math.ceil(self.fraction * self.num_pushed - 1e-9))

    def push(self, sequences: np.ndarray, rewards: np.ndarray) -> None:
        """Offer sequences in order; each one counts as a trial even when it is a duplicate."""
        rewards = np.asarray(rewards, dtype=np.float64)
        if not np.all(np.isfinite(rewards)):
            raise ValueError(f"Queue rewards must be finite, got {rewards[~np.isfinite(rewards)].tolist()}.")
        for sequence, reward in zip(np.asarray(sequences, dtype=np.int64), np.asarray(rewards, dtype=np.float64)):
            self.num_pushed += 1
            key = sequence.tobytes()
            if key not in self._slot_of and key not in self._reserve_keys:
                order = self._next_order
                self._next_order += 1
                if self.fraction is None:
                    self._offer(key, sequence, float(reward), order)
                else:
                    self._to_reserve(key, float(reward), order)
            if self.fraction is not None:
                # A duplicate still counts as a trial, so the capacity may have grown.
                self._fill_from_reserve()

    def _offer(self, key: bytes, sequence: np.ndarray, reward: float, order: int) -> None:
        """Fixed-K insertion: take a free slot, or replace the lowest member if the new one ranks higher."""
        if self._size < self.capacity:
            self._add_member(key, sequence, reward, order, self._new_slot())
        elif (reward, -order) > self._heap[0][:2]:
            _, _, slot = heapq.heappop(self._heap)
            del self._slot_of[self._sequences[slot].tobytes()]
            self._add_member(key, sequence, reward, order, slot)

    def _fill_from_reserve(self) -> None:
        """Move reserve entries into the queue until it is full and no waiting entry outranks a member."""
        while self._reserve and self._size < self.capacity:
            self._add_member(*self._pop_reserve(), self._new_slot())
        while self._reserve and (-self._reserve[0][0], -self._reserve[0][1]) > self._heap[0][:2]:
            reward, negative_order, slot = heapq.heappop(self._heap)
            evicted = self._sequences[slot].copy()
            del self._slot_of[evicted.tobytes()]
            self._add_member(*self._pop_reserve(), slot)
            self._to_reserve(evicted.tobytes(), reward, -negative_order)

    def _to_reserve(self, key: bytes, reward: float, order: int) -> None:
        heapq.heappush(self._reserve, (-reward, order, key))
        self._reserve_keys.add(key)

    def _pop_reserve(self) -> tuple[bytes, np.ndarray, float, int]:
        negative_reward, order, key = heapq.heappop(self._reserve)
        self._reserve_keys.discard(key)
        return key, np.frombuffer(key, dtype=np.int64), -negative_reward, order

    def _new_slot(self) -> int:
        if self._size == len(self._rewards):
            grown = max(16, 2 * self._size)
            self._sequences = np.resize(self._sequences, (grown, self.length))
            self._rewards = np.resize(self._rewards, grown)
            self._orders = np.resize(self._orders, grown)
        self._size += 1
        return self._size - 1

    def _add_member(self, key: bytes, sequence: np.ndarray, reward: float, order: int, slot: int) -> None:
        self._sequences[slot] = sequence
        self._rewards[slot] = reward
        self._orders[slot] = order
        self._slot_of[key] = slot
        heapq.heappush(self._heap, (reward, -order, slot))

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Return ``count`` members drawn uniformly without replacement, or every member when there are fewer."""
        if self._size <= count:
            return self._sequences[: self._size].copy()
        return self._sequences[rng.choice(self._size, size=count, replace=False)]

    def members(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the members and their rewards, best first."""
        order = np.lexsort((self._orders[: self._size], -self._rewards[: self._size]))
        return self._sequences[order].copy(), self._rewards[order].copy()

    def state_dict(self) -> dict[str, Any]:
        reserve = sorted(self._reserve)
        return {
            "num_pushed": self.num_pushed,
            "next_order": self._next_order,
            "sequences": self._sequences[: self._size].copy(),
            "rewards": self._rewards[: self._size].copy(),
            "orders": self._orders[: self._size].copy(),
            "reserve_sequences": np.array([np.frombuffer(key, dtype=np.int64) for _, _, key in reserve],
                                          dtype=np.int64).reshape(-1, self.length),
            "reserve_rewards": np.array([-negative for negative, _, _ in reserve], dtype=np.float64),
            "reserve_orders": np.array([order for _, order, _ in reserve], dtype=np.int64),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._clear()
        self.num_pushed = int(state["num_pushed"])
        self._next_order = int(state["next_order"])
        # Members return to their slots, so minibatch draws after a restore pick the same rows.
        for sequence, reward, order in zip(np.asarray(state["sequences"], dtype=np.int64),
                                           np.asarray(state["rewards"]), np.asarray(state["orders"])):
            self._add_member(sequence.tobytes(), sequence, float(reward), int(order), self._new_slot())
        for sequence, reward, order in zip(np.asarray(state["reserve_sequences"], dtype=np.int64),
                                           np.asarray(state["reserve_rewards"]), np.asarray(state["reserve_orders"])):
            self._to_reserve(sequence.tobytes(), float(reward), int(order))


class PQT(Trainer):
    """Priority Queue Training.

    loss = -mean over a minibatch of queue members of log pi(member)
           - entropy_penalty * mean entropy of the batch's own sequences.

    Every observed trial is offered to the queue first, so a new best sequence is learned from
    in the same step. The minibatch keeps the cost of a step constant as the queue grows. The
    entropy is taken along the batch's sequences, the samples of the current policy, as the
    Evo-NAS sampling algorithm accumulates it along each generated child.
    """

    config: PQTConfig

    def __init__(self, policy: AutoregressivePolicy, config: PQTConfig, rng: np.random.Generator,
                 batch_size: int = 1) -> None:
        super().__init__(policy, config, rng, batch_size)
        self.queue = PriorityQueue(policy.length, capacity=config.queue_size, fraction=config.queue_fraction)

    def _record(self, sequences: np.ndarray, rewards: np.ndarray) -> None:
        self.queue.push(sequences, rewards)

    def loss(self, sequences: np.ndarray, rewards: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        members = self.queue.sample(self.config.minibatch_size, self.rng)
        # One teacher-forced pass over members and batch together; the entropy needs the batch rows only.
        batch = torch.from_numpy(np.concatenate([members, sequences]))
        log_probs = torch.log_softmax(self.policy.logits(batch), dim=-1)
        count = len(members)
        mean_entropy = total_entropy(log_probs[count:]).mean()
        loss = -chosen_log_prob(log_probs[:count], batch[:count]).mean() - self.config.entropy_penalty * mean_entropy
        return loss, mean_entropy

    def metrics(self) -> dict[str, float]:
        return {**super().metrics(), "agent/queue_size": float(len(self.queue))}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "queue": self.queue.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.queue.load_state_dict(state["queue"])


def make_trainer(config: TrainerConfig | Mapping[str, Any], policy: AutoregressivePolicy,
                 rng: np.random.Generator, batch_size: int = 1) -> Trainer:
    """Build the trainer that ``config`` names (its ``algorithm``: "pqt" or "reinforce")."""
    config = make_trainer_config(config)
    if isinstance(config, PQTConfig):
        return PQT(policy, config, rng, batch_size)
    return Reinforce(policy, config, rng, batch_size)
