"""losses/object_rest.py: value against NumPy float64, zero (with zero gradient) for an object at rest, the
gradient pulling a moved frame back towards its neighbours, the single-frame case; the wiring into Eq. 4 is
checked in test_static_anchor.test_motion_loss_wiring (shares its MotionData)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
from scipy.spatial.transform import Rotation

from anchorhoi_jax.losses.object_rest import object_rest


def test_value_matches_numpy_float64():
    rng = onp.random.default_rng(0)
    L = 5
    R = Rotation.random(L, random_state=1).as_matrix()
    t = rng.normal(size=(L, 3))
    v, aux = object_rest(jnp.asarray(R, jnp.float32), jnp.asarray(t, jnp.float32), rot_weight=0.3)
    want = onp.mean(onp.sum(onp.diff(t, axis=0) ** 2, -1)) + 0.3 * onp.mean(onp.sum(onp.diff(R, axis=0) ** 2, (-1, -2)))
    onp.testing.assert_allclose(float(v), want, rtol=1e-5)
    onp.testing.assert_allclose(onp.asarray(aux["velocity"]), onp.diff(t, axis=0), rtol=1e-5, atol=1e-6)
    # Robust form: Geman-McClure σ² q / (σ² + q) on each pair's squared velocity q, bounded by σ².
    q = onp.sum(onp.diff(t, axis=0) ** 2, -1) + 0.3 * onp.sum(onp.diff(R, axis=0) ** 2, (-1, -2))
    vr, _ = object_rest(jnp.asarray(R, jnp.float32), jnp.asarray(t, jnp.float32), 0.5, rot_weight=0.3)
    onp.testing.assert_allclose(float(vr), onp.mean(0.25 * q / (0.25 + q)), rtol=1e-5)
    assert float(vr) < 0.25


def test_rest_is_zero_and_gradient_pulls_back():
    R = jnp.broadcast_to(jnp.eye(3, dtype=jnp.float32), (4, 3, 3))
    t = jnp.broadcast_to(jnp.asarray([0.2, 0.0, 3.0], jnp.float32), (4, 3))
    f = lambda tt: object_rest(R, tt)[0]  # noqa: E731
    assert float(f(t)) == 0.0
    assert float(jnp.abs(jax.grad(f)(t)).max()) == 0.0
    # Frame 1 moved by d: two pairs of the three see it, value 2‖d‖²/3, gradient 4d/3 on frame 1, −2d/3 on 0 and 2.
    d = jnp.asarray([0.01, -0.02, 0.03], jnp.float32)
    moved = t.at[1].add(d)
    onp.testing.assert_allclose(float(f(moved)), 2 * float(d @ d) / 3, rtol=1e-4)
    g = onp.asarray(jax.grad(f)(moved))
    onp.testing.assert_allclose(g[1], 4 * onp.asarray(d) / 3, rtol=1e-4)
    onp.testing.assert_allclose(g[0], -2 * onp.asarray(d) / 3, rtol=1e-4)
    onp.testing.assert_allclose(g[3], 0.0, atol=1e-8)
    # A constant velocity is not free (unlike the acceleration term): it costs ‖v‖² per frame pair.
    v = jnp.asarray([0.0, 0.0, 0.04], jnp.float32)
    lin = t + jnp.arange(4, dtype=jnp.float32)[:, None] * v[None]
    onp.testing.assert_allclose(float(f(lin)), float(v @ v), rtol=1e-4)


def test_single_frame_has_no_velocity():
    v, aux = object_rest(jnp.eye(3, dtype=jnp.float32)[None], jnp.ones((1, 3), jnp.float32))
    assert float(v) == 0.0 and aux["velocity"].shape == (0, 3)
