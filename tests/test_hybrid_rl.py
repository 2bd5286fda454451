"""The Evo-NAS hybrid policy on closed-loop Gymnasium tasks."""

import copy
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from seqopt.agents.hybrid_rl import (
    Episode,
    HybridRLAgent,
    PriorityQueue,
    greedy_return,
    make_env,
    run_hybrid,
)
from seqopt.agents.policy import sample_categorical

FROZEN_LAKE_8X8 = {"map_name": "8x8", "is_slippery": False}


@pytest.fixture(autouse=True)
def one_torch_thread():
    # Tiny networks on a shared machine run faster on one thread; restore the setting afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TwoArmedBandit(gym.Env[int, int]):
    """One step per episode: action 1 pays 1, action 0 pays 0."""

    observation_space = gym.spaces.Discrete(1)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return 0, {}

    def step(self, action):
        return 0, float(action == 1), True, False, {}


def _fill_population(agent: HybridRLAgent, env: gym.Env, count: int) -> None:
    for episode in range(count):
        agent.run_episode(env, seed=episode)


def test_p0_replays_parent_exactly():
    env = make_env("FrozenLake-v1", **FROZEN_LAKE_8X8)
    agent = HybridRLAgent(env.observation_space, env.action_space, seed=1, mutation_probability=0.0,
                          population_size=4, sample_size=4)
    _fill_population(agent, env, 4)
    members = list(agent.population)

    child = agent.run_episode(env)
    parent = agent.parent

    assert any(parent is member for member in members)
    np.testing.assert_array_equal(child.actions, parent.actions)
    np.testing.assert_array_equal(child.observations, parent.observations)
    assert child.episode_return == parent.episode_return
    assert not child.mutated.any()


def test_p1_is_plain_policy():
    env = make_env("FrozenLake-v1", **FROZEN_LAKE_8X8)
    agent = HybridRLAgent(env.observation_space, env.action_space, seed=2, mutation_probability=1.0,
                          population_size=3, sample_size=2)
    _fill_population(agent, env, 5)
    policy = copy.deepcopy(agent.policy)
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = agent.action_rng.bit_generator.state

    child = agent.run_episode(env, seed=9)

    # The base policy alone, with the same generator, takes the same actions.
    observation, _ = env.reset(seed=9)
    actions = []
    done = False
    while not done:
        with torch.no_grad():
            logits, _ = policy.step(torch.from_numpy(agent.encoder(observation)), -1, None)
        probabilities = torch.softmax(logits.double(), dim=-1).numpy()
        action = int(sample_categorical(probabilities[None], rng)[0])
        actions.append(action)
        observation, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    assert agent.parent is not None
    np.testing.assert_array_equal(child.actions, actions)
    assert child.mutated.all()


def test_child_action_distribution_matches_formula():
    # With a fresh (uniform) policy over 4 actions, P(a = parent's) = (1 - p) + p / 4.
    env = make_env("FrozenLake-v1", **FROZEN_LAKE_8X8)
    p = 0.4
    agent = HybridRLAgent(env.observation_space, env.action_space, seed=3, mutation_probability=p,
                          population_size=1, sample_size=1)
    agent.population.append(Episode(np.zeros((1, 64), np.float32), np.array([2]), 0.0))
    observation, _ = env.reset(seed=0)
    draws = 8000
    counts = np.zeros(4)
    for _ in range(draws):
        agent.begin_episode()
        counts[agent.act(observation)] += 1
    expected = np.array([p / 4, p / 4, 1 - p + p / 4, p / 4])
    standard_error = np.sqrt(expected * (1 - expected) / draws)
    assert np.all(np.abs(counts / draws - expected) < 4 * standard_error)


def test_shorter_parent_leaves_later_steps_to_policy():
    env = make_env("FrozenLake-v1", **FROZEN_LAKE_8X8)
    agent = HybridRLAgent(env.observation_space, env.action_space, seed=4, mutation_probability=0.0,
                          population_size=1, sample_size=1)
    # A parent of two steps that moves right twice (action 2) and never reaches a hole.
    agent.population.append(Episode(np.zeros((2, 64), np.float32), np.array([2, 2]), 0.0))
    child = agent.run_episode(env, seed=0)
    assert child.actions[:2].tolist() == [2, 2]
    assert len(child) > 2
    assert not child.mutated[:2].any()
    assert child.mutated[2:].all()


@pytest.mark.parametrize("policy", ["mlp", "gru"])
def test_training_log_probs_match_sampling(policy):
    env = make_env("CliffWalking-v1", max_episode_steps=30)
    agent = HybridRLAgent(env.observation_space, env.action_space, seed=5, policy=policy,
                          population_size=2, sample_size=1, learning_rate=0.05)
    for episode in range(3):
        agent.run_episode(env, seed=episode)  # trains, so the weights are no longer the initial ones
    observation, _ = env.reset(seed=0)
    agent.begin_episode()
    stepwise = []
    actions = []
    for _ in range(30):
        actions.append(agent.act(observation))
        stepwise.append(agent.last_probabilities)
        observation, *_ = env.step(actions[-1])
    policy = copy.deepcopy(agent.policy)  # end_episode trains once more
    episode = agent.end_episode(0.0)
    observations = torch.from_numpy(episode.observations)
    np.testing.assert_array_equal(episode.actions, actions)
    actions = torch.tensor(actions)
    with torch.no_grad():
        teacher_forced = torch.softmax(policy.episode_logits(observations, actions).double(), dim=-1)
    np.testing.assert_allclose(np.array(stepwise), teacher_forced.numpy(), rtol=1e-5, atol=1e-6)
    assert np.abs(np.array(stepwise) - 0.25).max() > 1e-3  # trained, not uniform


def test_reinforce_raises_probability_of_rewarded_action():
    env = TwoArmedBandit()
    agent = HybridRLAgent(env.observation_space, env.action_space, seed=6, trainer="reinforce",
                          mutation_probability=1.0, population_size=1, sample_size=1, learning_rate=0.05)
    for _ in range(200):
        agent.run_episode(env)
    agent.begin_episode()
    assert agent.action_probabilities(0)[1] > 0.9

    # Greedy evaluation takes the most probable action and draws nothing from the agent's generators.
    states = [rng.bit_generator.state for rng in (agent.selection_rng, agent.action_rng, agent.hybrid.rng)]
    assert greedy_return(agent, env) == 1.0
    assert [rng.bit_generator.state for rng in (agent.selection_rng, agent.action_rng, agent.hybrid.rng)] == states


def test_pqt_raises_probability_of_queued_action():
    env = TwoArmedBandit()
    agent = HybridRLAgent(env.observation_space, env.action_space, seed=6, trainer="pqt", queue_size=1,
                          mutation_probability=1.0, population_size=1, sample_size=1, learning_rate=0.05)
    for _ in range(100):
        agent.run_episode(env)
    agent.begin_episode()
    assert [episode.actions.tolist() for episode in agent.queue.episodes()] == [[1]]
    assert agent.action_probabilities(0)[1] > 0.9


def test_priority_queue_keeps_best_unique():
    queue = PriorityQueue(2)
    for actions, episode_return in [([0], 1.0), ([1], 3.0), ([1], 9.0), ([2], 2.0), ([3], 0.5)]:
        queue.push(Episode(np.zeros((1, 1), np.float32), np.array(actions), episode_return))
    stored = sorted((e.episode_return, e.actions.tolist()) for e in queue.episodes())
    assert stored == [(2.0, [2]), (3.0, [1])]  # the duplicate [1] with 9.0 was ignored


def test_same_seed_same_returns():
    first = run_hybrid("FrozenLake-v1", episodes=30, seed=3, env_kwargs={"is_slippery": True})
    second = run_hybrid("FrozenLake-v1", episodes=30, seed=3, env_kwargs={"is_slippery": True})
    other = run_hybrid("FrozenLake-v1", episodes=30, seed=4, env_kwargs={"is_slippery": True})
    np.testing.assert_array_equal(first.returns, second.returns)
    np.testing.assert_array_equal(first.lengths, second.lengths)
    assert first.lengths.tolist() != other.lengths.tolist()


def test_max_steps_budget():
    run = run_hybrid("CliffWalking-v1", max_steps=500, seed=0, max_episode_steps=50)
    assert 500 <= run.steps < 550
    assert run.steps == run.lengths.sum()


def test_errors_name_the_fix():
    with pytest.raises(TypeError, match="needs a Discrete action space"):
        HybridRLAgent(gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,)))
    with pytest.raises(ValueError, match="pass max_episode_steps"):
        make_env(gym.make("CliffWalking-v1").unwrapped)
    with pytest.raises(ValueError, match=r"sample_size \(S=5\) must not exceed population_size \(P=2\)"):
        HybridRLAgent(gym.spaces.Discrete(3), gym.spaces.Discrete(2), population_size=2, sample_size=5)
    with pytest.raises(ValueError, match="trainer must be one of"):
        HybridRLAgent(gym.spaces.Discrete(3), gym.spaces.Discrete(2), trainer="ppo")
    with pytest.raises(ValueError, match="episodes or max_steps"):
        run_hybrid("FrozenLake-v1")


@pytest.mark.slow
def test_solves_frozen_lake_8x8():
    # Budget and seed are stated in docs/hybrid_rl.md: 1,500 episodes, seed 2, default settings.
    run = run_hybrid("FrozenLake-v1", episodes=1500, seed=2, env_kwargs=FROZEN_LAKE_8X8)
    assert run.returns.max() == 1.0
    assert run.returns[-100:].mean() >= 0.7


@pytest.mark.slow
def test_command_line():
    completed = subprocess.run(
        [sys.executable, "-m", "seqopt.agents.hybrid_rl", "FrozenLake-v1", "--env-kwargs", "map_name=4x4",
         "is_slippery=false", "--episodes", "40", "--seed", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.startswith("40 episodes,")
    assert "mean return of the last 40" in completed.stdout
