"""Shared fixtures: one persistent XLA cache for the session (in-process runs and subprocesses), the
synthetic static instance, and the reference smoke `animate` run the other tests compare against."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import REPO, SMOKE_ANIMATE, anny_static  # noqa: E402

# Kill/resume needs a motion stage long enough to be caught mid-way: 6 progress calls.
RUN_OVERRIDES = ["motion.steps=60", "motion.log_every=10"]


@pytest.fixture(scope="session")
def xla_cache(tmp_path_factory):
    """Compiled programs persist across this session's runs (results are the same bits either way)."""
    import jax

    d = tmp_path_factory.mktemp("xla")
    jax.config.update("jax_compilation_cache_dir", str(d))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return d


@pytest.fixture(scope="session")
def sub_env(xla_cache):
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                JAX_COMPILATION_CACHE_DIR=str(xla_cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                PYTHONUNBUFFERED="1")


@pytest.fixture(scope="session")
def static_npz(tmp_path_factory):
    return anny_static(tmp_path_factory.mktemp("static") / "static.npz")


def animate_argv(static, out, *extra):
    return ["animate", "--static", str(static), "--prompt", "a person leans on a box", "--config", str(SMOKE_ANIMATE),
            "--out", str(out), *extra, *RUN_OVERRIDES]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, static_npz, xla_cache):
    """The reference run: smoke animate of the synthetic static instance, in this process."""
    from anchorhoi_jax.cli import main

    out = tmp_path_factory.mktemp("runs") / "reference"
    assert main(animate_argv(static_npz, out)) == 0
    return out
