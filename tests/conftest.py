"""Shared test setup: quiet TensorFlow and Ray, and point the data registry at the local mirror."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

if "SEQOPT_DATA_MIRROR" not in os.environ:
    for candidate in (Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")):
        if candidate.is_dir():
            os.environ["SEQOPT_DATA_MIRROR"] = str(candidate)
            break
