import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import seqopt  # noqa: F401  (registers the environments)
from seqopt import ChoiceSpace, Evaluation, FunctionObjective
from seqopt.envs import ENV_IDS, LearnToCount, SequenceEnv


def _available_env_ids() -> list[str]:
    return sorted(ENV_IDS)


@pytest.mark.parametrize("env_id", _available_env_ids())
def test_registered_env_passes_checkers(env_id):
    try:
        env = gym.make(env_id)
    except FileNotFoundError as error:  # a tabular benchmark whose data file is not on this machine
        pytest.skip(str(error))
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)


def test_learn_to_count_id_and_kwargs():
    env = gym.make("seqopt/LearnToCount-v0", n=5)
    assert isinstance(env.unwrapped, SequenceEnv)
    assert len(env.unwrapped.space) == 5


def test_optimum_episode_reward():
    env = SequenceEnv(LearnToCount(4))
    observation, info = env.reset(seed=0)
    assert observation.tolist() == [0, 0, 0, 0, 0]
    assert info["action_mask"].tolist() == [True] * 4
    rewards = []
    for action in range(4):
        observation, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
    assert rewards == [0.0, 0.0, 0.0, 1.0]
    assert terminated and not truncated
    assert observation.tolist() == [1, 2, 3, 4, 4]
    assert info["indices"] == (0, 1, 2, 3)
    assert info["status"] == "ok"


def test_action_mask_follows_cardinality():
    space = ChoiceSpace.from_dict({"a": [0, 1, 2], "b": ["x", "y"]})
    env = SequenceEnv(FunctionObjective(space, lambda values: 1.0))
    env.reset(seed=0)
    assert env.action_masks().tolist() == [True, True, True]
    env.step(2)
    assert env.action_masks().tolist() == [True, True, False]


def test_invalid_action_wraps_or_raises():
    space = ChoiceSpace.from_dict({"a": [0, 1, 2], "b": ["x", "y"]})
    wrapping = SequenceEnv(FunctionObjective(space, lambda values: float(values["b"] == "y")))
    wrapping.reset(seed=0)
    wrapping.step(0)
    _, reward, _, _, info = wrapping.step(2)  # 2 % 2 = 0 -> "x"
    assert info["indices"] == (0, 0)
    assert reward == 0.0

    strict = SequenceEnv(FunctionObjective(space, lambda values: 1.0), invalid_action="raise")
    strict.reset(seed=0)
    strict.step(0)
    with pytest.raises(ValueError, match=r"Action 2 is invalid at step 1 \(choice 'b'\); valid actions are 0..1"):
        strict.step(2)


def test_failed_evaluation_gives_failure_reward():
    space = ChoiceSpace.from_dict({"a": [0, 1]})
    env = SequenceEnv(FunctionObjective(space, lambda values: Evaluation(reward=float("nan"))), failure_reward=-1.0)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(1)
    assert terminated
    assert reward == -1.0
    assert info["status"] == "failed"
    assert "non-finite reward" in info["error"]


def test_step_after_end_raises():
    env = SequenceEnv(LearnToCount(2))
    env.reset(seed=0)
    env.step(0)
    env.step(1)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)


def test_maskable_ppo_learns_on_env():
    from sb3_contrib import MaskablePPO

    env = SequenceEnv(LearnToCount(3))
    model = MaskablePPO("MlpPolicy", env, n_steps=32, batch_size=32, seed=0, verbose=0)
    model.learn(total_timesteps=96)
    observation, _ = env.reset(seed=1)
    action, _ = model.predict(observation, action_masks=env.action_masks())
    assert 0 <= int(action) < 3
    assert np.all(env.observation_space.contains(observation))
