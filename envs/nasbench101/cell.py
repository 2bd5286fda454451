"""NAS-Bench-101 cells: the 26-choice encoding, pruning, validity and the isomorphism-invariant hash.

Ying et al. 2019, "NAS-Bench-101: Towards Reproducible Neural Architecture Search"
(arXiv:1902.09635). A cell is a DAG of at most 7 vertices: the input, 5 intermediate vertices that
each apply one operation, and the output. Its upper-triangular 7x7 adjacency matrix has 21 free
bits. Before a cell is looked up it is pruned (vertices not on an input-to-output path are
removed); it is valid when the input still reaches the output and at most 9 edges remain. Cells
are identified by a graph hash that is the same for isomorphic cells; the table's keys were made
by the hash of the google-research/nasbench code, which ``graph_hash`` reproduces exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

INPUT = "input"
OUTPUT = "output"
CONV3X3 = "conv3x3-bn-relu"
CONV1X1 = "conv1x1-bn-relu"
MAXPOOL3X3 = "maxpool3x3"
# The canonical order: the hash labels an operation by its position in this tuple.
OPERATIONS = (CONV3X3, CONV1X1, MAXPOOL3X3)
INPUT_LABEL = -1
OUTPUT_LABEL = -2

NUM_VERTICES = 7
MAX_EDGES = 9
# Adjacency bits of the encoding in row-major order of the upper triangle: (0, 1), (0, 2), ..., (5, 6).
EDGE_SLOTS = tuple((source, target) for source in range(NUM_VERTICES) for target in range(source + 1, NUM_VERTICES))
NUM_EDGE_BITS = len(EDGE_SLOTS)
NUM_OPERATION_CHOICES = NUM_VERTICES - 2
ENCODING_LENGTH = NUM_EDGE_BITS + NUM_OPERATION_CHOICES


@dataclass(frozen=True)
class Cell:
    """A cell as an adjacency matrix and one operation per vertex (``input`` first, ``output`` last)."""

    matrix: np.ndarray
    operations: tuple[str, ...]

    def __post_init__(self) -> None:
        matrix = np.asarray(self.matrix, dtype=np.int64)
        size = len(self.operations)
        if matrix.shape != (size, size):
            raise ValueError(f"Cell matrix has shape {matrix.shape} but there are {size} operations; it must be square "
                             "with one row per operation.")
        if size < 2:
            raise ValueError(f"A cell needs at least the input and output vertices, got {size} vertices.")
        if np.any(np.tril(matrix) != 0) or np.any((matrix != 0) & (matrix != 1)):
            raise ValueError(f"Cell matrix must be strictly upper-triangular with 0/1 entries, got\n{matrix}.")
        if self.operations[0] != INPUT or self.operations[-1] != OUTPUT:
            raise ValueError(f"A cell's first and last operations must be {INPUT!r} and {OUTPUT!r}, "
                             f"got {self.operations[0]!r} and {self.operations[-1]!r}.")
        unknown = [op for op in self.operations[1:-1] if op not in OPERATIONS]
        if unknown:
            raise ValueError(f"Unknown cell operations {unknown}; allowed: {list(OPERATIONS)}.")
        object.__setattr__(self, "matrix", matrix)

    @property
    def num_edges(self) -> int:
        return int(self.matrix.sum())

    @property
    def labels(self) -> list[int]:
        """Vertex labels of the hash: -1 for the input, -2 for the output, else the index in ``OPERATIONS``."""
        middle = [OPERATIONS.index(op) for op in self.operations[1:-1]]
        return [INPUT_LABEL, *middle, OUTPUT_LABEL]


def cell_from_indices(indices: Sequence[int]) -> Cell:
    """Decode the 26-choice encoding: 21 adjacency bits (``EDGE_SLOTS`` order), then 5 operation indices."""
    if len(indices) != ENCODING_LENGTH:
        raise ValueError(f"A NAS-Bench-101 encoding has {ENCODING_LENGTH} entries, got {len(indices)}.")
    matrix = np.zeros((NUM_VERTICES, NUM_VERTICES), dtype=np.int64)
    for (source, target), bit in zip(EDGE_SLOTS, indices[:NUM_EDGE_BITS]):
        matrix[source, target] = int(bit)
    operations = (INPUT, *(OPERATIONS[int(i)] for i in indices[NUM_EDGE_BITS:]), OUTPUT)
    return Cell(matrix, operations)


def indices_from_cell(cell: Cell) -> tuple[int, ...]:
    """Encode a 7-vertex cell as 21 adjacency bits and 5 operation indices."""
    if len(cell.operations) != NUM_VERTICES:
        raise ValueError(f"Only {NUM_VERTICES}-vertex cells have an encoding, got {len(cell.operations)} vertices.")
    bits = [int(cell.matrix[source, target]) for source, target in EDGE_SLOTS]
    return (*bits, *(OPERATIONS.index(op) for op in cell.operations[1:-1]))


def prune(cell: Cell) -> Cell | None:
    """Remove the vertices that are not on a path from the input to the output.

    Returns None when the input does not reach the output (the cell computes nothing).
    """
    rows = cell.matrix.tolist()  # plain lists: numpy calls cost more than the work on a 7x7 matrix
    size = len(rows)
    reachable = [False] * size  # reachable from the input
    reachable[0] = True
    for vertex in range(1, size):  # topological order: edges only go to higher vertices
        reachable[vertex] = any(reachable[u] and rows[u][vertex] for u in range(vertex))
    reaching = [False] * size  # reaches the output
    reaching[-1] = True
    for vertex in range(size - 2, -1, -1):
        reaching[vertex] = any(reaching[w] and rows[vertex][w] for w in range(vertex + 1, size))
    if not (reachable[0] and reaching[0]):
        return None
    kept = [v for v in range(size) if reachable[v] and reaching[v]]
    return Cell(cell.matrix[np.ix_(kept, kept)], tuple(cell.operations[i] for i in kept))


def invalid_reason(cell: Cell) -> tuple[Cell | None, str | None]:
    """Prune a cell and check it against the search space.

    Returns the pruned cell and None when it is valid, else the pruned cell (None when
    disconnected) and the reason it is invalid.
    """
    pruned = prune(cell)
    if pruned is None:
        return None, "the input is not connected to the output"
    if pruned.num_edges > MAX_EDGES:
        return pruned, f"{pruned.num_edges} edges after pruning, more than the limit of {MAX_EDGES}"
    if len(pruned.operations) > NUM_VERTICES:
        return pruned, f"{len(pruned.operations)} vertices, more than the limit of {NUM_VERTICES}"
    return pruned, None


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def graph_hash(matrix: np.ndarray, labels: Sequence[int]) -> str:
    """Return the isomorphism-invariant hash of a labelled DAG, as the NAS-Bench-101 table keys it.

    Each vertex starts from the MD5 of the text of (out-degree, in-degree, label). Then, as many
    times as there are vertices, every vertex's digest becomes the MD5 of its predecessors'
    digests sorted and joined, '|', its successors' digests sorted and joined, '|', and its own
    digest. The hash is the MD5 of the text of the sorted list of final digests. Sorting makes the
    result independent of the vertex order; the exact texts (Python ``str`` of a tuple of ints
    and of a list of strings) must match the original to reproduce the table's keys.
    """
    rows = np.asarray(matrix).tolist()
    size = len(rows)
    if len(labels) != size:
        raise ValueError(f"graph_hash needs one label per vertex: {size} vertices, {len(labels)} labels.")
    out_degree = [int(sum(row)) for row in rows]
    in_degree = [int(sum(column)) for column in zip(*rows)]
    digests = [_md5(str((out_degree[v], in_degree[v], int(labels[v])))) for v in range(size)]
    predecessors = [[u for u in range(size) if rows[u][v]] for v in range(size)]
    successors = [[w for w in range(size) if rows[v][w]] for v in range(size)]
    for _ in range(size):
        digests = [
            _md5("".join(sorted(digests[u] for u in predecessors[v])) + "|"
                 + "".join(sorted(digests[w] for w in successors[v])) + "|" + digests[v])
            for v in range(size)
        ]
    return _md5(str(sorted(digests)))


def cell_hash(cell: Cell) -> str:
    """Return the table key of a cell: the graph hash of its pruned form.

    Raises:
        ValueError: when the cell is invalid (see ``invalid_reason``).
    """
    pruned, reason = invalid_reason(cell)
    if reason is not None or pruned is None:
        raise ValueError(f"Cannot hash an invalid NAS-Bench-101 cell: {reason}.")
    return graph_hash(pruned.matrix, pruned.labels)
