"""Evo-NAS as a hybrid policy for closed-loop Gymnasium tasks with discrete actions.

Maziarz et al., "Evolutionary-Neural Hybrid Agents for Architecture Search" (arXiv:1811.09828),
suggest applying their hybrid agent to other reinforcement learning tasks. Here an episode plays
the role of a sequence:

- the population contains the P most recent episodes (aging). Each new episode has a parent, the
  episode with the highest return among S members drawn without replacement;
- at step t the agent reuses the parent's action a_t with probability 1 - p and otherwise samples
  from a learned policy pi(a | observation). The per-step decision is ``HybridPolicy`` of
  ``seqopt.agents.hybrid``, the object the Evo-NAS agent for sequence objectives uses. Past the end
  of a shorter parent, and before the population contains P episodes, the policy decides every step;
- the policy is an MLP over the observation, or a GRU that also reads the previous action (for
  partially observable tasks). It is trained after every episode, either with Priority Queue
  Training (Abolafia et al. 2018, "Neural Program Synthesis with Priority Queue Training": the
  negative log-likelihood of the actions of the K episodes with the highest
  returns, given their observations) or with REINFORCE on the episode return.

Reusing a parent's actions is open loop: it replays a plan without looking at the observation.
That pays off where the same actions lead to the same states (deterministic dynamics and a fixed
start); with random starts or slippery dynamics the policy has to do the work.
"""

from __future__ import annotations

import argparse
import heapq
import json
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqopt.agents.hybrid import HybridPolicy
from seqopt.agents.policy import sample_categorical
from seqopt.seeding import torch_seed

POLICIES = ("mlp", "gru")
TRAINERS = ("pqt", "reinforce")


@dataclass
class HybridRLConfig:
    """Hyperparameters of the hybrid agent; every field is a keyword of ``HybridRLAgent``."""

    mutation_probability: float = 0.1
    """p: probability that a step's action comes from the policy instead of the parent."""
    population_size: int = 20
    """P: the most recent episodes kept; before P episodes exist, the policy acts alone."""
    sample_size: int = 5
    """S: tournament size; the parent is the member with the highest return among S."""
    policy: str = "mlp"
    """Base policy: "mlp" (pi(a | observation)) or "gru" (also reads the previous action)."""
    hidden_size: int = 64
    """Units of each hidden layer."""
    trainer: str = "pqt"
    """Training rule: "pqt" (Priority Queue Training) or "reinforce"."""
    learning_rate: float = 1e-3
    """Adam step size."""
    entropy_beta: float = 0.01
    """Weight of the entropy bonus, per step of each trained episode."""
    queue_size: int = 10
    """K: episodes in the PQT priority queue (the K highest returns, unique action sequences)."""
    baseline_decay: float = 0.9
    """REINFORCE: decay of the exponential moving average of returns used as the baseline."""

    def __post_init__(self) -> None:
        p = self.mutation_probability
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"mutation_probability (p) must be a number in [0, 1], got {p!r}.")
        for name in ("population_size", "sample_size", "hidden_size", "queue_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
        if self.sample_size > self.population_size:
            raise ValueError(f"sample_size (S={self.sample_size}) must not exceed population_size "
                             f"(P={self.population_size}); lower S or raise P.")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {list(POLICIES)}, got {self.policy!r}.")
        if self.trainer not in TRAINERS:
            raise ValueError(f"trainer must be one of {list(TRAINERS)}, got {self.trainer!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}.")
        if not self.entropy_beta >= 0:
            raise ValueError(f"entropy_beta must be >= 0, got {self.entropy_beta!r}.")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1), got {self.baseline_decay!r}.")


class ObservationEncoder:
    """Turns an observation of a Gymnasium space into a float32 vector (one-hot for Discrete)."""

    def __init__(self, space: gym.Space[Any]) -> None:
        self.space = space
        self._discrete = isinstance(space, gym.spaces.Discrete)
        self.size = int(gym.spaces.flatdim(space))
        self._identity = np.eye(self.size, dtype=np.float32) if self._discrete else None

    def __call__(self, observation: Any) -> np.ndarray:
        if self._identity is not None:
            return self._identity[int(observation) - int(self.space.start)]  # type: ignore[attr-defined]
        return np.asarray(gym.spaces.flatten(self.space, observation), dtype=np.float32)


class ObservationPolicy(nn.Module):
    """pi(a | observation): an MLP, or a GRU over the observation and the previous action.

    The output layer starts at zero, so a fresh policy is uniform over the actions. Weights are
    drawn from ``generator`` only, never from torch's global generator.
    """

    def __init__(self, observation_size: int, num_actions: int, kind: str = "mlp", hidden_size: int = 64,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.num_actions = num_actions
        self.hidden_size = hidden_size
        if kind == "mlp":
            self.body: nn.Module = nn.Sequential(
                nn.Linear(observation_size, hidden_size), nn.Tanh(), nn.Linear(hidden_size, hidden_size), nn.Tanh()
            )
        else:
            # The previous action is one-hot with an extra slot for "no action yet".
            self.body = nn.GRU(observation_size + num_actions + 1, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, num_actions)
        with torch.no_grad():
            for parameter in self.body.parameters():
                bound = 1.0 / np.sqrt(parameter.shape[-1])
                nn.init.uniform_(parameter, -bound, bound, generator=generator)
            self.head.weight.zero_()
            self.head.bias.zero_()

    def _gru_inputs(self, observations: torch.Tensor, previous_actions: torch.Tensor) -> torch.Tensor:
        # previous_actions is -1 where no action was taken yet, which maps to the extra slot.
        one_hot = F.one_hot(previous_actions + 1, self.num_actions + 1).to(observations.dtype)
        return torch.cat([observations, one_hot], dim=-1)

    def step(self, observation: torch.Tensor, previous_action: int, state: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return the logits of one step, shape (num_actions,), and the next recurrent state."""
        if self.kind == "mlp":
            return self.head(self.body(observation)), None
        inputs = self._gru_inputs(observation[None, None], torch.tensor([[previous_action]]))
        output, state = self.body(inputs, state)
        return self.head(output[0, 0]), state

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Return the MLP's logits for a batch of observations, shape (batch, num_actions)."""
        if self.kind != "mlp":
            raise TypeError("The GRU policy needs the previous actions; call episode_logits instead.")
        return self.head(self.body(observations))

    def episode_logits(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Return the logits of every step of one episode given its actions, shape (T, num_actions)."""
        if self.kind == "mlp":
            return self.head(self.body(observations))
        previous = torch.cat([actions.new_full((1,), -1), actions[:-1]])
        output, _ = self.body(self._gru_inputs(observations, previous)[None])
        return self.head(output[0])


@dataclass
class Episode:
    """One finished episode: the encoded observation before each action, the actions and the return."""

    observations: np.ndarray
    actions: np.ndarray
    episode_return: float
    mutated: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))

    def __len__(self) -> int:
        return len(self.actions)


class PriorityQueue:
    """The K episodes with the highest returns, one per distinct action sequence.

    As in Priority Queue Training, an episode whose actions are already queued is ignored even if
    its return differs, and a full queue admits only an episode with a higher return than its lowest.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._heap: list[tuple[float, int, Episode]] = []  # min-heap on return; the int breaks ties by age
        self._keys: set[bytes] = set()
        self._count = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, episode: Episode) -> None:
        key = episode.actions.tobytes()
        if key in self._keys:
            return
        entry = (episode.episode_return, self._count, episode)
        self._count += 1
        if len(self._heap) < self.capacity:
            heapq.heappush(self._heap, entry)
        elif episode.episode_return > self._heap[0][0]:
            dropped = heapq.heapreplace(self._heap, entry)
            self._keys.discard(dropped[2].actions.tobytes())
        else:
            return
        self._keys.add(key)

    def episodes(self) -> list[Episode]:
        return [entry[2] for entry in self._heap]


class HybridRLAgent:
    """Evo-NAS on a Gymnasium task: parents by tournament, per-step reuse or policy sampling.

    Args:
        observation_space: the task's observation space (any space Gymnasium can flatten).
        action_space: the task's action space; must be ``Discrete``.
        seed: seed of every random draw of the agent (parent selection, mutation masks, policy
            weights and action sampling each get their own generator derived from it).
        **config: fields of ``HybridRLConfig``.

    Use per episode: ``begin_episode()``, ``act(observation)`` at each step with the current
    observation, then ``end_episode(episode_return)``, which stores the episode and trains
    the policy once. ``run_episode`` does all three on an environment.
    """

    def __init__(self, observation_space: gym.Space[Any], action_space: gym.Space[Any],
                 seed: int | np.random.SeedSequence | None = 0, **config: Any) -> None:
        if not isinstance(action_space, gym.spaces.Discrete):
            raise TypeError(
                f"The hybrid agent needs a Discrete action space, got {action_space}. "
                "Discretize continuous actions first, for example with a wrapper that maps an index to a value."
            )
        self.config = HybridRLConfig(**config)
        self.num_actions = int(action_space.n)
        self.action_start = int(action_space.start)
        self.encoder = ObservationEncoder(observation_space)

        seed_sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        selection_seed, mask_seed, weight_seed, action_seed = seed_sequence.spawn(4)
        self.selection_rng = np.random.Generator(np.random.PCG64(selection_seed))
        self.action_rng = np.random.Generator(np.random.PCG64(action_seed))
        self.hybrid = HybridPolicy(self.config.mutation_probability, np.random.Generator(np.random.PCG64(mask_seed)))
        generator = torch.Generator().manual_seed(torch_seed(weight_seed))
        self.policy = ObservationPolicy(self.encoder.size, self.num_actions, self.config.policy,
                                        self.config.hidden_size, generator)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.config.learning_rate)

        self.population: deque[Episode] = deque(maxlen=self.config.population_size)
        self.queue = PriorityQueue(self.config.queue_size)
        self.baseline: float | None = None
        self.num_episodes = 0
        self.parent: Episode | None = None
        self._observations: list[np.ndarray] = []
        self._actions: list[int] = []
        self._state: torch.Tensor | None = None
        self.last_probabilities = np.full(self.num_actions, 1.0 / self.num_actions)
        """pi(. | observation, history) at the last ``act`` call, whether or not the policy chose."""

    # --- One episode: select a parent, act step by step, learn ---

    def begin_episode(self) -> None:
        """Choose the parent of the next episode (none while the population is not yet full)."""
        self.parent = self._tournament() if len(self.population) >= self.config.population_size else None
        self.hybrid.begin([None if self.parent is None else self.parent.actions])
        self._reset_history()

    def _reset_history(self) -> None:
        self._observations = []
        self._actions = []
        self._state = None

    def _tournament(self) -> Episode:
        contestants = self.selection_rng.choice(len(self.population), self.config.sample_size, replace=False)
        returns = [self.population[i].episode_return for i in contestants]
        # argmax keeps the first of tied contestants, and the contestants come in random order.
        return self.population[int(contestants[int(np.argmax(returns))])]

    def action_probabilities(self, observation: Any) -> np.ndarray:
        """Advance the policy on ``observation`` and return pi(. | observation, history) for this step."""
        encoded = self.encoder(observation)
        previous = self._actions[-1] if self._actions else -1
        with torch.no_grad():
            logits, self._state = self.policy.step(torch.from_numpy(encoded), previous, self._state)
            probabilities = torch.softmax(logits.double(), dim=-1).numpy()
        self._observations.append(encoded)
        return probabilities

    def act(self, observation: Any) -> int:
        """Return the action for ``observation``: the parent's with probability 1 - p, else a policy sample."""
        # The policy runs at every step, reused or not, so that a recurrent state reads every action taken.
        probabilities = self.action_probabilities(observation)
        self.last_probabilities = probabilities

        def sample_policy(rows: np.ndarray) -> np.ndarray:
            return sample_categorical(np.broadcast_to(probabilities, (len(rows), self.num_actions)), self.action_rng)

        action = int(self.hybrid.act(sample_policy)[0])
        self._actions.append(action)
        return action + self.action_start

    def end_episode(self, episode_return: float) -> Episode:
        """Store the finished episode in the population (and queue) and take one training step."""
        episode = Episode(
            observations=np.array(self._observations, dtype=np.float32).reshape(-1, self.encoder.size),
            actions=np.array(self._actions, dtype=np.int64),
            episode_return=float(episode_return),
            mutated=self.hybrid.masks[0],
        )
        self.population.append(episode)
        self.num_episodes += 1
        if len(episode):
            if self.config.trainer == "pqt":
                self.queue.push(episode)
                self._train(self.queue.episodes(), weights=None)
            else:
                self._train([episode], weights=[self._advantage(episode.episode_return)])
        return episode

    # --- Training ---

    def _advantage(self, episode_return: float) -> float:
        baseline = episode_return if self.baseline is None else self.baseline
        decay = self.config.baseline_decay
        self.baseline = decay * baseline + (1.0 - decay) * episode_return
        return episode_return - baseline

    def _train(self, episodes: list[Episode], weights: list[float] | None) -> None:
        """Take one Adam step on -weight * sum_t log pi(a_t | o_t) - beta * sum_t entropy_t, averaged over episodes.

        PQT uses weight 1 for every queued episode (the negative log-likelihood); REINFORCE uses the
        return minus the baseline, for all steps, reused or sampled, as Evo-NAS trains.
        """
        lengths = torch.tensor([len(episode) for episode in episodes])
        actions = torch.from_numpy(np.concatenate([episode.actions for episode in episodes]))
        if self.policy.kind == "mlp":
            # Steps are independent given their observations, so all episodes go through in one batch.
            observations = torch.from_numpy(np.concatenate([episode.observations for episode in episodes]))
            logits = self.policy(observations)
        else:
            logits = torch.cat([
                self.policy.episode_logits(torch.from_numpy(episode.observations), torch.from_numpy(episode.actions))
                for episode in episodes
            ])
        log_probs = F.log_softmax(logits, dim=-1)  # (sum of T, A)
        chosen = log_probs.gather(1, actions[:, None])[:, 0]
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        step_weights = torch.ones(len(episodes)) if weights is None else torch.tensor(weights, dtype=torch.float32)
        step_weights = step_weights.repeat_interleave(lengths)
        loss = (-(step_weights * chosen) - self.config.entropy_beta * entropy).sum() / len(episodes)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    # --- Driving an environment ---

    def run_episode(self, env: gym.Env[Any, Any], seed: int | None = None) -> Episode:
        """Play one episode on ``env`` (reset with ``seed`` when given), learn from it and return it."""
        observation, _ = env.reset(seed=seed)
        self.begin_episode()
        episode_return = 0.0
        done = False
        while not done:
            observation, reward, terminated, truncated, _ = env.step(self.act(observation))
            episode_return += float(reward)
            done = terminated or truncated
        return self.end_episode(episode_return)


@dataclass
class HybridRun:
    """Result of ``run_hybrid``: per-episode returns and lengths, the wall time and the agent."""

    returns: np.ndarray
    lengths: np.ndarray
    seconds: float
    agent: HybridRLAgent

    @property
    def steps(self) -> int:
        return int(self.lengths.sum())


def make_env(env: str | gym.Env[Any, Any], max_episode_steps: int | None = None, **env_kwargs: Any
             ) -> gym.Env[Any, Any]:
    """Build ``env`` (an id for ``gymnasium.make``, or an env) and check it ends every episode."""
    if isinstance(env, str):
        env = gym.make(env, max_episode_steps=max_episode_steps, **env_kwargs)
    elif env_kwargs:
        raise ValueError(f"env_kwargs {sorted(env_kwargs)} need an environment id, not an env object.")
    elif max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps)
    if env.spec is None or env.spec.max_episode_steps is None:
        if max_episode_steps is None and not isinstance(env, gym.wrappers.TimeLimit):
            raise ValueError(
                f"{env} has no time limit, so an episode may never end; pass max_episode_steps "
                "(for example 200)."
            )
    return env


def run_hybrid(env: str | gym.Env[Any, Any], episodes: int | None = None, seed: int = 0,
               max_steps: int | None = None, max_episode_steps: int | None = None,
               env_kwargs: dict[str, Any] | None = None, **config: Any) -> HybridRun:
    """Train the hybrid agent on ``env`` for ``episodes`` episodes or ``max_steps`` environment steps.

    Args:
        env: a Gymnasium id (built with ``gymnasium.make(env, **env_kwargs)``) or an environment.
        episodes: number of episodes to play.
        seed: seed of the agent and of the first ``reset`` of the environment. Later resets continue
            the environment's own generator, so the same seed gives the same returns.
        max_steps: stop at the end of the episode in which this many environment steps are reached.
        max_episode_steps: time limit per episode, required for an environment without one.
        env_kwargs: keyword arguments of ``gymnasium.make``.
        **config: fields of ``HybridRLConfig``.

    Returns the per-episode returns and lengths in a ``HybridRun``.
    """
    if episodes is None and max_steps is None:
        raise ValueError("run_hybrid needs episodes or max_steps (or both); both are None.")
    for name, value in (("episodes", episodes), ("max_steps", max_steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be an int >= 1 or None, got {value!r}.")
    environment = make_env(env, max_episode_steps, **(env_kwargs or {}))
    seed_sequence = np.random.SeedSequence(seed)
    agent_seed, env_seed = seed_sequence.spawn(2)
    agent = HybridRLAgent(environment.observation_space, environment.action_space, seed=agent_seed, **config)

    returns: list[float] = []
    lengths: list[int] = []
    steps = 0
    started = time.perf_counter()
    first_seed: int | None = int(env_seed.generate_state(1)[0])
    while (episodes is None or len(returns) < episodes) and (max_steps is None or steps < max_steps):
        episode = agent.run_episode(environment, seed=first_seed)
        first_seed = None
        returns.append(episode.episode_return)
        lengths.append(len(episode))
        steps += len(episode)
    environment.close()
    return HybridRun(np.array(returns), np.array(lengths, dtype=np.int64), time.perf_counter() - started, agent)


def greedy_return(agent: HybridRLAgent, env: gym.Env[Any, Any], seed: int | None = None) -> float:
    """Play one episode with the policy's most probable action at every step, without learning."""
    observation, _ = env.reset(seed=seed)
    agent._reset_history()  # no parent and no random draw, so evaluation leaves the agent's generators alone
    total, done = 0.0, False
    while not done:
        action = int(np.argmax(agent.action_probabilities(observation)))
        agent._actions.append(action)  # the GRU policy reads the previous action
        observation, reward, terminated, truncated, _ = env.step(action + agent.action_start)
        total += float(reward)
        done = terminated or truncated
    return total


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``seqopt-rl`` command: train the hybrid agent on a Gymnasium task and print its returns."""
    parser = argparse.ArgumentParser(
        prog="seqopt-rl", description="Train the Evo-NAS hybrid agent on a Gymnasium task and print its returns.")
    parser.add_argument("env", help="Gymnasium id, for example FrozenLake-v1")
    parser.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                        help="keyword arguments of gymnasium.make; values are JSON (map_name='\"8x8\"' or 8x8)")
    parser.add_argument("--episodes", type=int, default=None, help="episodes to play")
    parser.add_argument("--max-steps", type=int, default=None, help="environment steps to play")
    parser.add_argument("--max-episode-steps", type=int, default=None, help="time limit per episode")
    parser.add_argument("--seed", type=int, default=0, help="seed of the agent and the environment")
    parser.add_argument("--window", type=int, default=100, help="episodes in the reported mean return")
    for name, default in vars(HybridRLConfig()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default,
                            help=f"HybridRLConfig.{name} (default {default})")
    args = parser.parse_args(argv)

    env_kwargs = {}
    for item in args.env_kwargs:
        key, separator, value = item.partition("=")
        if not separator:
            parser.error(f"--env-kwargs expects KEY=VALUE, got {item!r}.")
        env_kwargs[key] = _parse_value(value)
    config = {name: getattr(args, name) for name in vars(HybridRLConfig())}
    if args.episodes is None and args.max_steps is None:
        args.episodes = 1000

    run = run_hybrid(args.env, episodes=args.episodes, seed=args.seed, max_steps=args.max_steps,
                     max_episode_steps=args.max_episode_steps, env_kwargs=env_kwargs, **config)
    window = run.returns[-args.window:]
    print(f"{len(run.returns)} episodes, {run.steps} steps in {run.seconds:.1f} s; "
          f"mean return of the last {len(window)}: {window.mean():.4g}; best return {run.returns.max():.4g}")


if __name__ == "__main__":
    main()
