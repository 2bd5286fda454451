"""HybridPolicy: the per-step Evo-NAS rule between a parent's action and a base policy's action."""

from __future__ import annotations

import numpy as np
import pytest

from seqopt.agents.hybrid import HybridPolicy


class RecordingBase:
    """Base policy that returns 100 + row number + 1000 * step and records every call."""

    def __init__(self) -> None:
        self.calls: list[np.ndarray] = []
        self.step = 0

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        self.calls.append(rows.copy())
        return 100 + rows + 1000 * self.step


def run_lockstep(hybrid: HybridPolicy, base: RecordingBase, steps: int) -> np.ndarray:
    actions = []
    for step in range(steps):
        base.step = step
        actions.append(hybrid.act(base))
    return np.stack(actions, axis=1)


def test_zero_probability_returns_parent() -> None:
    parents = np.array([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]])
    hybrid = HybridPolicy(0.0, np.random.default_rng(0))
    base = RecordingBase()
    hybrid.begin(parents)
    children = run_lockstep(hybrid, base, 5)
    np.testing.assert_array_equal(children, parents)
    assert base.calls == []
    assert not hybrid.mask_array(5).any()


def test_probability_one_asks_base_for_every_step() -> None:
    parents = np.array([[3, 1, 4], [9, 2, 6]])
    hybrid = HybridPolicy(1.0, np.random.default_rng(0))
    base = RecordingBase()
    hybrid.begin(parents)
    children = run_lockstep(hybrid, base, 3)
    np.testing.assert_array_equal(children, [[100, 1100, 2100], [101, 1101, 2101]])
    assert all(np.array_equal(rows, [0, 1]) for rows in base.calls)
    assert hybrid.mask_array(3).all()


def test_actions_follow_mask() -> None:
    parents = np.arange(40 * 12).reshape(40, 12)
    hybrid = HybridPolicy(0.3, np.random.default_rng(1))
    base = RecordingBase()
    hybrid.begin(parents)
    children = run_lockstep(hybrid, base, 12)
    mask = hybrid.mask_array(12)
    np.testing.assert_array_equal(children[~mask], parents[~mask])
    rows, steps = np.nonzero(mask)
    np.testing.assert_array_equal(children[rows, steps], 100 + rows + 1000 * steps)
    # The base policy is called only for the rows whose mask is set at that step.
    for step, called in enumerate(base.calls):
        np.testing.assert_array_equal(called, np.flatnonzero(mask[:, step]))


def test_mask_rate_is_p() -> None:
    hybrid = HybridPolicy(0.3, np.random.default_rng(2))
    hybrid.begin(np.zeros((2000, 10), dtype=np.int64))
    run_lockstep(hybrid, RecordingBase(), 10)
    rate = hybrid.mask_array(10).mean()
    # 20,000 Bernoulli(0.3) draws: standard deviation 0.0032.
    assert abs(rate - 0.3) < 0.015


def test_base_decides_past_shorter_parent() -> None:
    hybrid = HybridPolicy(0.0, np.random.default_rng(0))
    base = RecordingBase()
    hybrid.begin([[7, 8], None, [5, 6, 7, 8]])
    children = run_lockstep(hybrid, base, 4)
    np.testing.assert_array_equal(children[0], [7, 8, 2100, 3100])
    np.testing.assert_array_equal(children[1], [101, 1101, 2101, 3101])
    np.testing.assert_array_equal(children[2], [5, 6, 7, 8])
    np.testing.assert_array_equal(hybrid.mask_array(4), [[0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]])


def test_rows_let_episodes_advance_separately() -> None:
    """Closed-loop use: episodes step at different times, as in a vector environment."""
    parents = [[10, 11, 12, 13], [20, 21], [30, 31, 32]]
    hybrid = HybridPolicy(0.5, np.random.default_rng(3))
    hybrid.begin(parents)
    taken: dict[int, list[int]] = {0: [], 1: [], 2: []}
    asked: dict[int, list[int]] = {0: [], 1: [], 2: []}

    def base(rows: np.ndarray) -> np.ndarray:
        for row in rows.tolist():
            asked[row].append(len(taken[row]))
        return -1 - rows

    for rows in ([0, 2], [0], [1, 2], [0, 1, 2], [2], [1], [0]):
        actions = hybrid.act(base, np.array(rows))
        for row, action in zip(rows, actions.tolist()):
            taken[row].append(action)

    masks = hybrid.masks
    for row, parent in enumerate(parents):
        assert len(masks[row]) == len(taken[row])
        for step, (action, mutated) in enumerate(zip(taken[row], masks[row].tolist())):
            if mutated:
                assert action == -1 - row
                assert step in asked[row]
            else:
                assert action == parent[step]
        # Steps past the parent's length are always mutated.
        assert all(masks[row][len(parent):])


def test_rows_path_matches_lockstep_distribution() -> None:
    parents = np.zeros((4000, 6), dtype=np.int64)
    hybrid = HybridPolicy(0.25, np.random.default_rng(4))
    hybrid.begin(parents)
    for _ in range(6):
        hybrid.act(lambda rows: np.ones(len(rows), dtype=np.int64), np.arange(4000)[::-1])
    rate = np.mean([mask.mean() for mask in hybrid.masks])
    assert abs(rate - 0.25) < 0.02


def test_same_generator_same_masks() -> None:
    masks = []
    for _ in range(2):
        hybrid = HybridPolicy(0.4, np.random.default_rng(7))
        hybrid.begin(np.zeros((5, 8), dtype=np.int64))
        run_lockstep(hybrid, RecordingBase(), 8)
        masks.append(hybrid.mask_array(8))
    np.testing.assert_array_equal(masks[0], masks[1])


@pytest.mark.parametrize("probability", [-0.1, 1.5, True, "0.3"])
def test_rejects_bad_probability(probability: object) -> None:
    with pytest.raises(ValueError, match=r"mutation_probability \(p\) must be a number in \[0, 1\]"):
        HybridPolicy(probability, np.random.default_rng(0))  # type: ignore[arg-type]
