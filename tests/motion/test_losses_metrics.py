"""Loss terms of Eq. 4-6 and the physical metrics against NumPy float64 and hand-made cases."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as onp
import pytest
from synthetic_scenes import box_mesh

from anchorhoi_jax import metrics as M
from anchorhoi_jax.geometry.cameras import intrinsics_from_fov, look_at, project
from anchorhoi_jax.geometry.sdf import sdf_grid_from_mesh
from anchorhoi_jax.losses.contact import contact_loss
from anchorhoi_jax.losses.penetration import object_sdf_penetration, part_occupancy_penetration
from anchorhoi_jax.losses.regularizers import joint_smoothness, object_smoothness
from anchorhoi_jax.losses.reprojection import reprojection_loss

K = intrinsics_from_fov(45.0, 480, 640)
T = look_at(jnp.array([0.0, 1.0, 4.0]), jnp.array([0.0, 1.0, 0.0]))
SIZE = jnp.array([640.0, 480.0])


def test_reprojection_eq5_vs_numpy():
    rng = onp.random.default_rng(0)
    X = jnp.asarray(rng.uniform([-0.5, 0.2, -0.3], [0.5, 1.8, 0.3], (18, 3)), jnp.float32)
    uv, _ = project(K, T, X)
    zero, _ = reprojection_loss(X, uv, jnp.ones(18), K, T, SIZE)
    assert float(zero) < 1e-12
    kp = uv + jnp.asarray(rng.normal(0, 30, (18, 2)), jnp.float32)
    w = jnp.asarray(rng.uniform(0, 1, 18), jnp.float32)
    val, aux = reprojection_loss(X, kp, w, K, T, SIZE, sigma_px=100.0)
    r2 = (((onp.asarray(uv, onp.float64) - onp.asarray(kp)) / 640.0) ** 2).sum(-1)
    s2 = (100.0 / 640.0) ** 2
    ref = onp.mean(onp.asarray(w) * s2 * r2 / (s2 + r2))
    assert float(val) == pytest.approx(ref, rel=1e-4)
    # A wild outlier costs at most σ²/N (robustness of ρ); zero confidence removes a keypoint.
    far = kp.at[0].add(1e5)
    assert float(reprojection_loss(X, far, w, K, T, SIZE)[0]) - float(val) < float(w[0]) * s2 / 18 + 1e-7
    w0 = w.at[0].set(0.0)
    assert float(reprojection_loss(X, far, w0, K, T, SIZE)[0]) == pytest.approx(float(reprojection_loss(X, kp, w0, K, T, SIZE)[0]))


def test_contact_eq6_and_penetration():
    h = jnp.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    o = jnp.array([[0.0, 0.1, 0.0], [1.0, 0.0, 0.2], [5.0, 5.0, 5.0]])
    m = jnp.array([1.0, 1.0, 0.0])
    val, aux = contact_loss(h, o, m)
    assert float(val) == pytest.approx((0.01 + 0.04) / 2)  # masked pair ignored, mean over valid
    v, f = box_mesh((0.4, 0.4, 0.4))
    grid = sdf_grid_from_mesh(v, f, resolution=41, padding=0.1)
    pts = jnp.array([[0.0, 0.19, 0.0], [0.0, 0.25, 0.0], [0.0, 0.17, 0.0]])  # 1 cm, outside, 3 cm deep
    val, aux = object_sdf_penetration(pts, grid)
    onp.testing.assert_allclose(onp.asarray(aux["depth"]), [0.01, 0.0, 0.03], atol=2e-3)
    assert float(val) == pytest.approx(0.01**2 + 0.03**2, rel=0.15)
    p0, p1, r = jnp.array([[0.0, 0.0, 0.0]]), jnp.array([[0.0, 1.0, 0.0]]), jnp.array([0.1])
    val, aux = part_occupancy_penetration(jnp.array([[0.05, 0.5, 0.0], [0.3, 0.5, 0.0]]), p0, p1, r)
    onp.testing.assert_allclose(onp.asarray(aux["depth"]), [0.05, 0.0], atol=1e-6)


def test_smoothness_zero_for_constant_velocity():
    t = jnp.arange(6.0)[:, None, None]
    joints = jnp.broadcast_to(jnp.array([[[0.1, 0.2, 0.3]]]) * t, (6, 4, 3))
    assert float(joint_smoothness(joints)[0]) == pytest.approx(0.0, abs=1e-12)
    assert float(joint_smoothness(joints.at[3, 0, 0].add(0.01))[0]) > 0
    R = jnp.broadcast_to(jnp.eye(3), (6, 3, 3))
    assert float(object_smoothness(R, joints[:, 0])[0]) == pytest.approx(0.0, abs=1e-12)


def test_metrics_on_known_sequences():
    v, f = box_mesh((0.4, 0.4, 0.4))
    grid = sdf_grid_from_mesh(v, f, resolution=41, padding=0.1)
    L = 10
    verts = jnp.zeros((L, 2, 3)).at[:, 0, 1].set(0.25).at[:, 1, 1].set(jnp.where(jnp.arange(L) < 3, 0.18, 0.30))
    R, t = jnp.broadcast_to(jnp.eye(3), (L, 3, 3)), jnp.zeros((L, 3))
    pen = M.penetration_metrics(verts, R, t, grid, threshold_mm=10.0)
    assert pen["pen_max_mm"] == pytest.approx(20.0, abs=2.0)
    assert pen["pen_frames_pct"] == pytest.approx(30.0)
    c = M.contact_metrics(verts, R, t, jnp.array([0, 1]), jnp.array([[0.0, 0.2, 0.0], [0.0, 0.2, 0.0]]), jnp.array([1.0, 0.0]))
    assert c["contact_mm"] == pytest.approx(50.0, abs=1e-3) and c["contact_ratio"] == 0.0 and c["contact_pairs"] == 1
    # Jitter: constant velocity has none; acceleration error against itself is zero.
    x = jnp.broadcast_to(jnp.arange(L, dtype=jnp.float32)[:, None, None] * 0.01, (L, 3, 3))
    assert M.jitter(x, 24.0)["jitter_mm_per_frame2"] == pytest.approx(0.0, abs=1e-4)
    assert M.acceleration_error(x, x) == 0.0 and M.mpjpe(x, x + jnp.array([0.0, 0.0, 0.003])[None, None]) == pytest.approx(3.0, rel=1e-4)
    # Foot skating (GMD): a grounded foot sliding 3 cm/frame skates; a lifted one does not.
    feet = jnp.zeros((L, 2, 3)).at[:, 0, 0].set(0.03 * jnp.arange(L)).at[:, 1, 1].set(0.2).at[:, 1, 0].set(0.03 * jnp.arange(L))
    fs = M.foot_skating(feet)
    assert fs["foot_skate_ratio"] == 1.0 and fs["foot_grounded_slide_mm"] == pytest.approx(30.0, rel=1e-4)
    assert M.foot_skating(feet.at[:, 0, 0].set(0.0))["foot_skate_ratio"] == 0.0
