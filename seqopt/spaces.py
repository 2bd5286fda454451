"""Categorical choice spaces: the sequences that every seqopt problem is made of."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Choice:
    """One named categorical decision with its list of allowed values."""

    name: str
    values: tuple[Any, ...]

    def __init__(self, name: str, values: Sequence[Any]) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Choice name must be a non-empty string, got {name!r}.")
        values = tuple(values)
        if len(values) == 0:
            raise ValueError(f"Choice {name!r} has no values; give at least one.")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "values", values)

    @property
    def cardinality(self) -> int:
        return len(self.values)


class ChoiceSpace:
    """An ordered list of named categorical choices.

    A sequence of the space is given either as indices (one int per choice, the form that agents
    and environments use) or as values (the form a user reads). ``encode`` turns values into
    indices and ``decode`` turns indices into values.
    """

    def __init__(self, choices: Sequence[Choice]) -> None:
        choices = tuple(choices)
        if not choices:
            raise ValueError("ChoiceSpace needs at least one choice.")
        names = [c.name for c in choices]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"Choice names must be unique; repeated: {duplicates}.")
        self.choices: tuple[Choice, ...] = choices
        self.names: tuple[str, ...] = tuple(names)
        self.cardinalities: np.ndarray = np.array([c.cardinality for c in choices], dtype=np.int64)
        self.cardinalities.setflags(write=False)
        self._value_to_index: list[dict[Hashable, int] | None] = []
        for c in choices:
            try:
                self._value_to_index.append({v: i for i, v in enumerate(c.values)})
            except TypeError:  # unhashable values fall back to a linear scan
                self._value_to_index.append(None)

    @classmethod
    def from_dict(cls, choices: dict[str, Sequence[Any]]) -> ChoiceSpace:
        """Build a space from ``{name: values}`` in insertion order."""
        return cls([Choice(name, values) for name, values in choices.items()])

    def __len__(self) -> int:
        return len(self.choices)

    def __repr__(self) -> str:
        inner = ", ".join(f"{c.name}[{c.cardinality}]" for c in self.choices)
        return f"ChoiceSpace({inner})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChoiceSpace) and self.choices == other.choices

    def __hash__(self) -> int:
        return hash(self.choices)

    @property
    def size(self) -> int:
        """Number of distinct sequences (an exact Python int, which may exceed 2**63)."""
        return math.prod(int(k) for k in self.cardinalities)

    @property
    def max_cardinality(self) -> int:
        return int(self.cardinalities.max())

    def validate(self, indices: Sequence[int] | np.ndarray) -> tuple[int, ...]:
        """Check an index sequence and return it as a tuple of ints.

        Raises:
            ValueError: on a wrong length, or at the first position whose index is out of range,
                naming the position, the choice, the index and the allowed range.
        """
        seq = tuple(indices)
        if len(seq) != len(self.choices):
            raise ValueError(
                f"Sequence has length {len(seq)} but the space has {len(self.choices)} choices {list(self.names)}."
            )
        out = []
        for position, (index, choice) in enumerate(zip(seq, self.choices)):
            if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
                raise ValueError(
                    f"Position {position} ({choice.name!r}): index must be an int, got {index!r} "
                    f"of type {type(index).__name__}."
                )
            if not 0 <= index < choice.cardinality:
                raise ValueError(
                    f"Position {position} ({choice.name!r}): index {index} is out of range; allowed indices "
                    f"are 0..{choice.cardinality - 1} for values {list(choice.values)}."
                )
            out.append(int(index))
        return tuple(out)

    def encode(self, values: Sequence[Any]) -> tuple[int, ...]:
        """Turn a sequence of values into indices.

        Raises:
            ValueError: naming the position, the value and the allowed values when a value is not
                one of its choice's values.
        """
        values = tuple(values)
        if len(values) != len(self.choices):
            raise ValueError(
                f"Sequence has length {len(values)} but the space has {len(self.choices)} choices {list(self.names)}."
            )
        out = []
        for position, (value, choice, lookup) in enumerate(zip(values, self.choices, self._value_to_index)):
            index = None
            if lookup is not None:
                try:
                    index = lookup.get(value)
                except TypeError:
                    index = None
            if index is None:
                matches = [i for i, v in enumerate(choice.values) if v == value]
                index = matches[0] if matches else None
            if index is None:
                raise ValueError(
                    f"Position {position} ({choice.name!r}): value {value!r} is not allowed; "
                    f"allowed values: {list(choice.values)}."
                )
            out.append(index)
        return tuple(out)

    def decode(self, indices: Sequence[int] | np.ndarray) -> tuple[Any, ...]:
        """Turn an index sequence into its values (validating it first)."""
        seq = self.validate(indices)
        return tuple(choice.values[i] for choice, i in zip(self.choices, seq))

    def decode_dict(self, indices: Sequence[int] | np.ndarray) -> dict[str, Any]:
        """Turn an index sequence into ``{choice name: value}``."""
        return dict(zip(self.names, self.decode(indices)))

    def sample(self, rng: np.random.Generator, count: int | None = None) -> np.ndarray:
        """Draw sequences uniformly at random.

        Returns an int64 array of shape ``(n,)`` when ``count`` is None, else ``(count, n)``.
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}.")
        shape = (len(self.choices),) if count is None else (int(count), len(self.choices))
        return (rng.random(shape) * self.cardinalities).astype(np.int64)
