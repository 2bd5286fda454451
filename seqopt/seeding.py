"""One seed for every random part: child seeds derived with numpy's SeedSequence."""

from __future__ import annotations

import numpy as np

# Fixed spawn keys so that adding a component never shifts the seeds of the others.
AGENT_STREAM = 1
OBJECTIVE_STREAM = 2
EXECUTOR_STREAM = 3


def child_seed(seed: int, stream: int, *index: int) -> np.random.SeedSequence:
    """Return the SeedSequence of one component (``stream``) or one trial (``index``) of a run."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    return np.random.SeedSequence(entropy=int(seed), spawn_key=(stream, *index))


def child_generator(seed: int, stream: int, *index: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(child_seed(seed, stream, *index)))


def torch_seed(seed_sequence: np.random.SeedSequence) -> int:
    """Return a 63-bit int derived from ``seed_sequence`` for ``torch.Generator.manual_seed``."""
    high, low = (int(word) for word in seed_sequence.generate_state(2, dtype=np.uint32))
    return ((high & 0x7FFFFFFF) << 32) | low
