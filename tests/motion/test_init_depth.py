"""stages/motion.keypoint_translations with Gauss-Newton steps on the pixel error (MotionConfig.init_gauss_newton):
a rigid walk seen with pixel noise, its depth along the camera ray against the algebraic solve, and the GN result
against a NumPy float64 evaluation of the objective it minimises (a stationary point)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as onp
import pytest
from synthetic_scenes import SCENES, observe, static_of

from anchorhoi_jax.geometry.cameras import project
from anchorhoi_jax.stages.motion import TORSO_OPENPOSE, MotionConfig, frame_forward, keypoint_translations, prepare_motion_data


@pytest.fixture(scope="module")
def noisy_walk(body):
    """40 frames of the static body translated along a straight line (zero second differences), torso keypoints
    projected and perturbed by 2 px of noise (fixed seed)."""
    model, ex = body
    sc = SCENES["push_box"](model, 3)
    st = static_of(sc, model)
    kp, conf, _ = observe(sc, model, ex["openpose18"], noise_px=0.0, dropout=0.0)
    data = prepare_motion_data(model, st, sc.object_vertices, sc.object_faces, keypoints=kp, confidence=conf, K=sc.K,
                               T_cam_world=sc.T_cam_world, image_size=sc.image_size,
                               contact_candidates=ex["contact_candidates"], openpose_ids=ex["openpose18"],
                               key=jax.random.key(0), num_object_points=64, num_pen_vertices=64, sdf_resolution=16)
    cfg = MotionConfig.for_model(model)
    out = frame_forward(data, cfg, st.pose[0], st.pose[1:22], st.transl, jnp.zeros(3), st.t_world_obj)
    L = 40
    t_true = st.transl[None] + jnp.arange(L, dtype=jnp.float32)[:, None] * jnp.array([[0.01, 0.0, 0.02]])
    pts = out.openpose[None] - st.transl[None, None] + t_true[:, None]
    uv, _ = project(data.K, data.T_cam_world, pts)
    uv = uv + 2.0 * jnp.asarray(onp.random.default_rng(3).standard_normal(uv.shape), jnp.float32)
    d = data.replace(keypoints=uv, confidence=jnp.ones((L, 18), jnp.float32))
    return d, cfg, out, t_true


def _depth_bias(d, t, t_true):
    R, c = d.T_cam_world[:3, :3], d.T_cam_world[:3, 3]
    cam = -R.T @ c
    ray = (t_true - cam[None]) / jnp.linalg.norm(t_true - cam[None], axis=-1, keepdims=True)
    return float(jnp.mean(jnp.sum((t - t_true) * ray, -1)))


def test_gauss_newton_removes_the_depth_bias(noisy_walk):
    d, cfg, _, t_true = noisy_walk
    alg = _depth_bias(d, keypoint_translations(d, dataclasses.replace(cfg, init_gauss_newton=0)), t_true)
    gn = _depth_bias(d, keypoint_translations(d, cfg), t_true)
    assert alg < -0.01, alg  # the errors-in-variables solve: nearer than the truth by centimetres
    assert abs(gn) < 0.6 * abs(alg), (gn, alg)  # procedural body: a small torso, so a second-order bias remains


def test_gauss_newton_is_a_stationary_point_of_the_pixel_objective(noisy_walk):
    """float64 oracle: E(t) = Σ_lk w (‖π(R t_l + q_k) − u_lk‖ z̄ / f)² + λ‖D t‖² + ε‖t − t_s‖² with z̄ at the solution;
    its finite-difference gradient is ~0 at the GN result and not at the algebraic one."""
    d, cfg, out, _ = noisy_walk
    idx = onp.asarray(TORSO_OPENPOSE)
    st = d.static
    P = onp.asarray(out.openpose, onp.float64)[idx] - onp.asarray(st.transl, onp.float64)[None]
    T = onp.asarray(d.T_cam_world, onp.float64)
    K = onp.asarray(d.K, onp.float64)
    R, c = T[:3, :3], T[:3, 3]
    q = P @ R.T + c[None]
    u = onp.asarray(d.keypoints, onp.float64)[:, idx]
    w = onp.asarray(d.confidence, onp.float64)[:, idx]
    L = u.shape[0]
    D = onp.zeros((L - 2, L))
    for i in range(L - 2):
        D[i, i : i + 3] = [1.0, -2.0, 1.0]
    ts = onp.asarray(st.transl, onp.float64)

    def energy(t, zbar):
        X = q[None] + (t @ R.T)[:, None]
        uv = K[:2, :2].diagonal() * X[..., :2] / X[..., 2:] + K[:2, 2]
        r = (uv - u) / K[:2, :2].diagonal() * zbar
        return (w[..., None] * r**2).sum() + cfg.init_smoothness * ((D @ t) ** 2).sum() + 1e-6 * ((t - ts) ** 2).sum()

    def grad_norm(t):
        zbar = (q[None] + (t @ R.T)[:, None])[..., 2].mean()
        g = onp.zeros_like(t)
        h = 1e-6
        for i in range(L):
            for a in range(3):
                e = onp.zeros_like(t)
                e[i, a] = h
                g[i, a] = (energy(t + e, zbar) - energy(t - e, zbar)) / (2 * h)
        return onp.linalg.norm(g)

    t_gn = onp.asarray(keypoint_translations(d, cfg), onp.float64)
    t_alg = onp.asarray(keypoint_translations(d, dataclasses.replace(cfg, init_gauss_newton=0)), onp.float64)
    g_gn, g_alg = grad_norm(t_gn), grad_norm(t_alg)
    assert g_gn < 0.05 * g_alg, (g_gn, g_alg)
