"""Camera projection vs a float64 NumPy reference and the OpenCV/y-up conventions."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as onp

from anchorhoi_jax.geometry.cameras import intrinsics_from_fov, look_at, project


def test_look_at_conventions():
    T = onp.asarray(look_at(jnp.array([0.0, 0.0, 3.0]), jnp.zeros(3)))
    K = onp.asarray(intrinsics_from_fov(40.0, 64, 64))
    uv, z = project(jnp.asarray(K), jnp.asarray(T), jnp.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    uv = onp.asarray(uv)
    onp.testing.assert_allclose(uv[0], [32.0, 32.0], atol=1e-5)  # target at the image centre
    assert uv[1, 1] < 32.0  # world up is image up (v decreases)
    assert uv[2, 0] > 32.0  # +x (the body's left, seen from the front) is image right
    onp.testing.assert_allclose(onp.asarray(z), 3.0, atol=1e-6)
    R = T[:3, :3]
    onp.testing.assert_allclose(R @ R.T, onp.eye(3), atol=1e-6)


def test_project_matches_float64_reference():
    rng = onp.random.default_rng(0)
    eye = rng.normal(size=3) * 3
    T = onp.asarray(look_at(jnp.asarray(eye, jnp.float32), jnp.zeros(3)), onp.float64)
    K = onp.array([[120.0, 0, 60.5], [0, 110.0, 50.5], [0, 0, 1]])
    P = rng.normal(size=(50, 3)) * 0.5
    pc = P @ T[:3, :3].T + T[:3, 3]
    ref = (pc @ K.T)[:, :2] / pc[:, 2:3]
    uv, _ = project(jnp.asarray(K, jnp.float32), jnp.asarray(T, jnp.float32), jnp.asarray(P, jnp.float32))
    onp.testing.assert_allclose(onp.asarray(uv), ref, rtol=1e-4, atol=1e-3)
