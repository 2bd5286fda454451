import numpy as np
import pytest

from seqopt import Choice, ChoiceSpace


@pytest.fixture
def space() -> ChoiceSpace:
    return ChoiceSpace.from_dict({"op": ["conv", "pool", "skip"], "width": [16, 32], "act": ["relu"]})


def test_size_and_cardinalities(space):
    assert space.size == 6
    assert space.cardinalities.tolist() == [3, 2, 1]
    assert space.max_cardinality == 3
    assert len(space) == 3


def test_size_exceeds_int64():
    space = ChoiceSpace([Choice(f"c{i}", range(100)) for i in range(20)])
    assert space.size == 100**20


def test_encode_decode_round_trip(space):
    indices = space.encode(["pool", 32, "relu"])
    assert indices == (1, 1, 0)
    assert space.decode(indices) == ("pool", 32, "relu")
    assert space.decode_dict(indices) == {"op": "pool", "width": 32, "act": "relu"}


def test_encode_rejects_unknown_value(space):
    message = r"Position 1 \('width'\): value 64 is not allowed; allowed values: \[16, 32\]"
    with pytest.raises(ValueError, match=message):
        space.encode(["conv", 64, "relu"])


def test_validate_rejects_out_of_range(space):
    with pytest.raises(ValueError, match=r"Position 0 \('op'\): index 3 is out of range; allowed indices are 0..2"):
        space.validate((3, 0, 0))


def test_validate_rejects_negative_index(space):
    with pytest.raises(ValueError, match=r"Position 2 \('act'\): index -1 is out of range"):
        space.validate((0, 0, -1))


def test_validate_rejects_wrong_length(space):
    with pytest.raises(ValueError, match="length 2 but the space has 3 choices"):
        space.validate((0, 0))


def test_validate_rejects_non_integer(space):
    with pytest.raises(ValueError, match=r"index must be an int, got 1\.5"):
        space.validate((0, 1.5, 0))


def test_duplicate_names_rejected():
    with pytest.raises(ValueError, match=r"repeated: \['a'\]"):
        ChoiceSpace([Choice("a", [1]), Choice("a", [2])])


def test_empty_choice_rejected():
    with pytest.raises(ValueError, match="Choice 'x' has no values"):
        Choice("x", [])


def test_sample_is_uniform_and_seeded(space):
    rng = np.random.default_rng(0)
    draws = space.sample(rng, 30000)
    assert draws.shape == (30000, 3)
    counts = np.bincount(draws[:, 0], minlength=3) / len(draws)
    np.testing.assert_allclose(counts, [1 / 3] * 3, atol=0.02)
    assert (draws[:, 2] == 0).all()
    again = space.sample(np.random.default_rng(0), 30000)
    np.testing.assert_array_equal(draws, again)


def test_sample_single_sequence_is_valid(space):
    row = space.sample(np.random.default_rng(1))
    assert row.shape == (3,)
    space.validate(row)


def test_sample_requires_generator(space):
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        space.sample(np.random.RandomState(0))  # type: ignore[arg-type]
