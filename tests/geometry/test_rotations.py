"""Rotation conversions vs SciPy float64; safe gradients at zero angle; invariants."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest
from scipy.spatial.transform import Rotation

from anchorhoi_jax.geometry import rotations as rot


@pytest.fixture(scope="module")
def rotvecs():
    rng = onp.random.default_rng(0)
    v = rng.normal(size=(256, 3))
    v = v / onp.linalg.norm(v, axis=-1, keepdims=True) * rng.uniform(0, onp.pi - 1e-3, size=(256, 1))
    v[:4] = [[0, 0, 0], [1e-9, 0, 0], [0, 1e-5, 0], [0, 0, onp.pi - 1e-3]]
    return v


def test_axis_angle_to_matrix_matches_scipy(rotvecs):
    R = onp.asarray(rot.axis_angle_to_matrix(jnp.asarray(rotvecs, jnp.float32)))
    onp.testing.assert_allclose(R, Rotation.from_rotvec(rotvecs).as_matrix(), atol=2e-6)


def test_matrix_round_trips(rotvecs):
    R = rot.axis_angle_to_matrix(jnp.asarray(rotvecs, jnp.float32))
    aa = onp.asarray(rot.matrix_to_axis_angle(R))
    onp.testing.assert_allclose(Rotation.from_rotvec(aa).as_matrix(), onp.asarray(R), atol=2e-5)
    R6 = rot.rot6d_to_matrix(rot.matrix_to_rot6d(R))
    onp.testing.assert_allclose(onp.asarray(R6), onp.asarray(R), atol=1e-6)
    q = rot.matrix_to_quaternion(R)
    onp.testing.assert_allclose(onp.asarray(rot.quaternion_to_matrix(q)), onp.asarray(R), atol=2e-6)


def test_rotations_are_orthonormal(rotvecs):
    R = rot.rot6d_to_matrix(jnp.asarray(onp.random.default_rng(1).normal(size=(64, 6)), jnp.float32))
    RtR = jnp.einsum("nba,nbc->nac", R, R)
    onp.testing.assert_allclose(onp.asarray(RtR), onp.broadcast_to(onp.eye(3), RtR.shape), atol=1e-5)
    onp.testing.assert_allclose(onp.asarray(jnp.linalg.det(R)), 1.0, atol=1e-5)


def test_gradients_finite_and_exact_at_zero():
    f = lambda v: jnp.sum(rot.axis_angle_to_matrix(v) * jnp.arange(9.0).reshape(3, 3))
    g = jax.grad(f)(jnp.zeros(3))
    # d/dv of Σ W ∘ (I + [v]x) at 0 is (W[2,1]-W[1,2], W[0,2]-W[2,0], W[1,0]-W[0,1]).
    W = onp.arange(9.0).reshape(3, 3)
    onp.testing.assert_allclose(onp.asarray(g), [W[2, 1] - W[1, 2], W[0, 2] - W[2, 0], W[1, 0] - W[0, 1]], atol=1e-6)
    g2 = jax.grad(lambda R: jnp.sum(rot.matrix_to_axis_angle(R)))(jnp.eye(3))
    assert onp.isfinite(onp.asarray(g2)).all()
    g3 = jax.grad(lambda d: jnp.sum(rot.rot6d_to_matrix(d)))(jnp.array([1.0, 0, 0, 0, 1.0, 0]))
    assert onp.isfinite(onp.asarray(g3)).all()


def test_gradient_matches_finite_differences():
    v = jnp.array([0.3, -0.2, 0.5], jnp.float64) if jax.config.jax_enable_x64 else jnp.array([0.3, -0.2, 0.5])
    W = jnp.asarray(onp.random.default_rng(2).normal(size=(3, 3)), v.dtype)
    f = lambda v: jnp.sum(rot.axis_angle_to_matrix(v) * W)
    g = onp.asarray(jax.grad(f)(v))
    eps = 1e-3
    fd = [(f(v.at[i].add(eps)) - f(v.at[i].add(-eps))) / (2 * eps) for i in range(3)]
    onp.testing.assert_allclose(g, onp.asarray(fd), rtol=2e-3, atol=2e-4)


def test_geodesic_angle(rotvecs):
    R = rot.axis_angle_to_matrix(jnp.asarray(rotvecs[4:20], jnp.float32))
    ang = rot.geodesic_angle(jnp.broadcast_to(jnp.eye(3), R.shape), R)
    onp.testing.assert_allclose(onp.asarray(ang), onp.linalg.norm(rotvecs[4:20], axis=-1), atol=1e-3)
