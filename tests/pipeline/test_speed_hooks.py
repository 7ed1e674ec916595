"""The pipeline's speed hooks: phase clocks of the split SDS step (same result as the plain step) and the
background stage checkpoints (a failed save is raised at the next save; close only logs it)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import optax
import pytest
import torch

from anchorhoi_jax.priors.bridge import ViewInfo, make_sds_step, record_phases
from anchorhoi_jax.pipeline.store import StageStore


class _ConstGuidance:
    value_range = (-1.0, 1.0)
    dtype = torch.float32

    def __call__(self, x_model, *, views, step, generator):
        return 0.1 * x_model + 0.01, {"n": float(x_model.shape[0])}


def test_record_phases_same_step_and_records():
    init, step = make_sds_step(lambda p, b: jnp.tanh(p["w"] * b), optax.adam(1e-2), _ConstGuidance())
    s0 = init({"w": jnp.ones((2, 4, 4, 3))}, jax.random.key(0))
    batch = jnp.linspace(0.0, 1.0, 2 * 4 * 4 * 3).reshape(2, 4, 4, 3)
    views = ViewInfo(azimuth_deg=onp.zeros(2), elevation_deg=onp.zeros(2))
    plain, _ = step(s0, batch, views)
    sink: list = []
    with record_phases(sink):
        timed, info = step(s0, batch, views)
    step(s0, batch, views)  # outside the block: not recorded
    onp.testing.assert_array_equal(onp.asarray(timed.params["w"]), onp.asarray(plain.params["w"]))
    assert info["n"] == 2.0 and len(sink) == 1
    rec = sink[0]
    assert rec["batch"] == 2
    parts = ("render_vjp", "to_torch", "guidance", "to_jax", "update")
    assert all(rec[k] >= 0.0 for k in parts) and rec["total"] >= sum(rec[k] for k in parts) - 1e-6


def test_background_save_failure_is_raised_at_next_save(tmp_path, caplog):
    store = StageStore(tmp_path / "st")
    state = {"x": jnp.arange(4.0), "step": jnp.int32(1)}
    store.save_state(1, state)
    store.wait_state()
    assert store.state().all_steps() == [1]
    assert store.save_state(1, state) >= 0.0  # an existing step is skipped, never overwritten

    def broken(step, st):
        raise OSError("disk full")

    store.state().save = broken
    store.save_state(2, state)  # returns at once; the worker fails
    with pytest.raises(OSError, match="disk full"):
        store.save_state(3, state)
    store.save_state(4, state)
    store.close()  # the pending failure is logged, not raised
    assert "a background checkpoint save failed: OSError: disk full" in caplog.text
