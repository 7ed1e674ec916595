"""Shared small fixtures for the motion tests (procedural SMPL-X-layout body, tiny sizes)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def body():
    from synthetic_body import make_synthetic_body

    return make_synthetic_body(n_around=10, n_along=4, n_cap=2)
