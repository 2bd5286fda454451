"""NAS-Bench-101: cell encoding, graph hash, a reader of the official data file, and the objective."""

from seqopt.envs.nasbench101.cell import (
    EDGE_SLOTS,
    MAX_EDGES,
    NUM_VERTICES,
    OPERATIONS,
    Cell,
    cell_from_indices,
    cell_hash,
    graph_hash,
    indices_from_cell,
    invalid_reason,
    prune,
)
from seqopt.envs.nasbench101.objective import NASBench101, nasbench101_space
from seqopt.envs.nasbench101.records import EvaluationData, ModelMetrics, RecordFormatError, Row, write_rows
from seqopt.envs.nasbench101.table import NASBench101Table, load_table, read_table

__all__ = [
    "EDGE_SLOTS",
    "MAX_EDGES",
    "NUM_VERTICES",
    "OPERATIONS",
    "Cell",
    "EvaluationData",
    "ModelMetrics",
    "NASBench101",
    "NASBench101Table",
    "RecordFormatError",
    "Row",
    "cell_from_indices",
    "cell_hash",
    "graph_hash",
    "indices_from_cell",
    "invalid_reason",
    "load_table",
    "nasbench101_space",
    "prune",
    "read_table",
    "write_rows",
]
