"""Body fixtures shared across tests/body modules (session scope): the synthetic SMPL-X file takes seconds to
write and load, and Anny's arrays ~20 MB; building each once per test process keeps the suite fast on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from anchorhoi_jax.body.anny import load_anny
from anchorhoi_jax.body.smplx import load_smplx
from anchorhoi_jax.body.smplx_synthetic import write_synthetic_smplx


@pytest.fixture(scope="session")
def smplx_synthetic_file(tmp_path_factory) -> Path:
    """The synthetic SMPL-X model (seed 0, neutral) as an .npz file in its own directory."""
    return Path(write_synthetic_smplx(tmp_path_factory.mktemp("smplx_synthetic"), seed=0))


@pytest.fixture(scope="session")
def smplx_default_model(smplx_synthetic_file):
    """The synthetic SMPL-X loaded with default options (BodyModel only). Pytrees are immutable: safe to share."""
    return load_smplx(smplx_synthetic_file)[0]


@pytest.fixture(scope="session")
def anny_shared():
    """The Anny body (load_anny(), from its cache). Immutable pytree: safe to share across modules."""
    return load_anny()
