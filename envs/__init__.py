"""Problems as objectives and Gymnasium environments. Installed as ``seqopt.envs``.

Importing this package registers every environment with Gymnasium under ``seqopt/<Name>-v0``.
"""

from seqopt.envs.image_classification import ImageClassification, MnasNetSpace
from seqopt.envs.learn_to_count import LearnToCount, learn_to_count_reward
from seqopt.envs.nasbench101 import NASBench101
from seqopt.envs.nasbench201 import NASBench201
from seqopt.envs.nasbench_macro import NASBenchMacro
from seqopt.envs.registration import ENV_IDS, make_objective_env, register_envs
from seqopt.envs.sequence_env import SequenceEnv
from seqopt.envs.text_classification import TextClassification

register_envs()

__all__ = [
    "ENV_IDS",
    "ImageClassification",
    "LearnToCount",
    "MnasNetSpace",
    "NASBench101",
    "NASBench201",
    "NASBenchMacro",
    "SequenceEnv",
    "TextClassification",
    "learn_to_count_reward",
    "make_objective_env",
    "register_envs",
]
