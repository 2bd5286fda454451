"""Problems as objectives and Gymnasium environments. Installed as ``seqopt.envs``.

Importing this package registers every environment with Gymnasium under ``seqopt/<Name>-v0``.
"""

from seqopt.envs.learn_to_count import LearnToCount, learn_to_count_reward
from seqopt.envs.registration import ENV_IDS, make_objective_env, register_envs
from seqopt.envs.sequence_env import SequenceEnv

register_envs()

__all__ = ["ENV_IDS", "LearnToCount", "SequenceEnv", "learn_to_count_reward", "make_objective_env", "register_envs"]
