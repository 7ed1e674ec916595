"""losses/depth_smoothness.py and its wiring in stages/motion.py: values against NumPy float64, the metric terms at
c = 1, a known answer, invariance (no gradient) along the depth direction the metric terms slide along, and skip_terms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest
from synthetic_scenes import SCENES, observe, static_of

from anchorhoi_jax.losses.depth_smoothness import (
    body_smoothness_at_depth, depth_rescale, joint_smoothness_at_depth, object_smoothness_at_depth,
)
from anchorhoi_jax.losses.regularizers import joint_smoothness, object_smoothness
from anchorhoi_jax.stages.motion import MotionConfig, MotionWeights, initial_params, motion_loss, prepare_motion_data

f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731


def _np_terms(X, R, t, T, z_ref, rot_weight=0.1):
    """float64 oracle: c = z_ref / mean root depth; joints Y + c X_root and object path c t, second differences."""
    z = X[:, 0] @ T[2, :3] + T[2, 3]
    c = z_ref / max(z.mean(), 0.01)
    q = X - (1 - c) * X[:, :1]
    aq = q[2:] - 2 * q[1:-1] + q[:-2]
    at = c * (t[2:] - 2 * t[1:-1] + t[:-2])
    aR = R[2:] - 2 * R[1:-1] + R[:-2]
    return c, (aq**2).sum(-1).mean(), (at**2).sum(-1).mean() + rot_weight * (aR**2).sum((-1, -2)).mean()


def _camera():
    from scipy.spatial.transform import Rotation

    T = onp.eye(4)
    T[:3, :3] = Rotation.from_rotvec([0.3, -0.7, 0.1]).as_matrix()
    T[:3, 3] = [0.2, -0.4, 4.0]
    return T


def _random_case(seed, L=9, J=6):
    from scipy.spatial.transform import Rotation

    rng = onp.random.default_rng(seed)
    X = rng.normal(scale=0.3, size=(L, J, 3))
    R = Rotation.from_rotvec(rng.normal(scale=0.3, size=(L, 3))).as_matrix()
    t = rng.normal(scale=0.2, size=(L, 3))
    return X, R, t


def test_values_match_numpy_float64():
    T = _camera()
    for seed in range(3):
        X, R, t = _random_case(seed)
        c_np, sj_np, so_np = _np_terms(X, R, t, T, 3.7)
        c, aux = depth_rescale(f32(X[:, 0]), f32(T), f32(3.7))
        onp.testing.assert_allclose(float(c), c_np, rtol=1e-5)
        onp.testing.assert_allclose(float(aux["mean_depth"]), (X[:, 0] @ T[2, :3] + T[2, 3]).mean(), rtol=1e-5)
        onp.testing.assert_allclose(float(joint_smoothness_at_depth(f32(X), c)[0]), sj_np, rtol=1e-4)
        onp.testing.assert_allclose(float(object_smoothness_at_depth(f32(R), f32(t), c)[0]), so_np, rtol=1e-4)


def test_body_form_numpy_and_whole_scene_invariance():
    """c² · metric smoothness (float64 oracle); the whole body scaled about the camera centre by k (its size too)
    leaves it unchanged, the root-path form does not (it keeps the body's size)."""
    T = _camera()
    cam = -T[:3, :3].T @ T[:3, 3]
    X, _, _ = _random_case(3)
    X = X + (T[:3, :3].T @ onp.array([0.0, 0.0, 4.0]) + cam)[None, None]
    c_np = 3.5 / (X[:, 0] @ T[2, :3] + T[2, 3]).mean()
    acc = X[2:] - 2 * X[1:-1] + X[:-2]
    c, _ = depth_rescale(f32(X[:, 0]), f32(T), f32(3.5))
    onp.testing.assert_allclose(float(body_smoothness_at_depth(f32(X), c)[0]), c_np**2 * (acc**2).sum(-1).mean(), rtol=1e-4)

    def forms(k):
        Xk = f32(cam[None, None] + k * (X - cam[None, None]))
        ck, _ = depth_rescale(Xk[:, 0], f32(T), f32(3.5))
        return float(body_smoothness_at_depth(Xk, ck)[0]), float(joint_smoothness_at_depth(Xk, ck)[0])

    (b1, j1), (b2, j2) = forms(1.0), forms(0.8)
    onp.testing.assert_allclose(b2, b1, rtol=1e-5)
    assert abs(j2 - j1) > 1e-3 * j1


def test_equals_metric_terms_at_unit_scale():
    X, R, t = _random_case(5)
    one = f32(1.0)
    onp.testing.assert_allclose(float(joint_smoothness_at_depth(f32(X), one)[0]), float(joint_smoothness(f32(X))[0]), rtol=1e-6)
    onp.testing.assert_allclose(float(body_smoothness_at_depth(f32(X), one)[0]), float(joint_smoothness(f32(X))[0]), rtol=1e-6)
    onp.testing.assert_allclose(float(object_smoothness_at_depth(f32(R), f32(t), one)[0]),
                                float(object_smoothness(f32(R), f32(t))[0]), rtol=1e-6)


def test_known_answer():
    """Camera at the origin looking down +z; the root zig-zags x_i = a(−1)^i at depth 5, the body rigidly with it:
    every joint's second difference is ±4a along x, so the metric term is 16a², and at z_ref = 4 (c = 0.8) 16a²·0.64."""
    L, J, a = 7, 4, 0.01
    offsets = onp.random.default_rng(0).normal(size=(J, 3)) * 0.2
    offsets[0] = 0
    root = onp.stack([a * (-1.0) ** onp.arange(L), onp.zeros(L), onp.full(L, 5.0)], -1)
    X = root[:, None] + offsets[None]
    T = onp.eye(4)
    c, _ = depth_rescale(f32(X[:, 0]), f32(T), f32(4.0))
    onp.testing.assert_allclose(float(c), 0.8, rtol=1e-6)
    onp.testing.assert_allclose(float(joint_smoothness(f32(X))[0]), 16 * a**2, rtol=1e-4)
    onp.testing.assert_allclose(float(joint_smoothness_at_depth(f32(X), c)[0]), 16 * a**2 * 0.64, rtol=1e-4)
    # A root behind the camera gives no scale: the mean depth is clamped to 1 cm.
    c_back, _ = depth_rescale(f32(X[:, 0] * onp.array([1, 1, -1])), f32(T), f32(4.0))
    onp.testing.assert_allclose(float(c_back), 400.0, rtol=1e-5)


def test_no_gradient_along_the_depth_scaling():
    """Root and object paths scaled about the camera centre by k, root-relative joints kept (the body's size): the
    metric terms fall as k shrinks (the pull toward the camera), the reference-depth terms do not move, and their
    directional derivative at k = 1 is 0."""
    T = _camera()
    cam = -T[:3, :3].T @ T[:3, 3]
    X, R, t = _random_case(7)
    X = X + (T[:3, :3].T @ onp.array([0.0, 0.0, 4.0]) + cam)[None, None]  # the body ~4 m in front of the camera
    Y = X - X[:, :1]

    def scaled(k):
        root = cam + k * (X[:, :1] - cam)
        return Y + root, cam + k * (t - cam)

    def ref_total(k):
        c3, c2 = f32(cam)[None, None], f32(cam)[None]
        Xk = f32(Y) + (c3 + k * (f32(X[:, :1]) - c3))
        tk = c2 + k * (f32(t) - c2)
        c, _ = depth_rescale(Xk[:, 0], f32(T), f32(4.0))
        return joint_smoothness_at_depth(Xk, c)[0] + object_smoothness_at_depth(f32(R), tk, c)[0]

    X9, t9 = scaled(0.9)
    assert float(joint_smoothness(f32(X9))[0]) < float(joint_smoothness(f32(X))[0])
    assert float(object_smoothness(f32(R), f32(t9))[0]) < float(object_smoothness(f32(R), f32(t))[0])
    onp.testing.assert_allclose(float(ref_total(0.9)), float(ref_total(1.0)), rtol=1e-5)
    onp.testing.assert_allclose(float(ref_total(1.3)), float(ref_total(1.0)), rtol=1e-5)
    g = float(jax.grad(ref_total)(1.0))
    assert abs(g) < 1e-5 * float(ref_total(1.0)), g


@pytest.fixture(scope="module")
def scene_data(body):
    model, ex = body
    sc = SCENES["carry_box"](model, 4)
    kp, conf, _ = observe(sc, model, ex["openpose18"], noise_px=0.0, dropout=0.0)
    data = prepare_motion_data(model, static_of(sc, model), sc.object_vertices, sc.object_faces, keypoints=kp,
                               confidence=conf, K=sc.K, T_cam_world=sc.T_cam_world, image_size=sc.image_size,
                               contact_candidates=ex["contact_candidates"], openpose_ids=ex["openpose18"],
                               key=jax.random.key(0), num_object_points=64, num_pen_vertices=64, sdf_resolution=16)
    return model, data


def test_motion_loss_wiring(scene_data):
    model, data = scene_data
    cfg = MotionConfig.for_model(model)
    w = MotionWeights.default(smooth_joints_refdepth=1.0, smooth_object_refdepth=1.0, smooth_body_refdepth=1.0)
    p = initial_params(data, cfg)  # every frame at the static instance: no motion, both terms 0
    _, t0 = motion_loss(p, data, w, cfg)
    assert float(t0["smooth_joints_refdepth"]) == 0.0 and float(t0["smooth_object_refdepth"]) == 0.0
    # Body pose moved at frame 1, the root untouched: the mean root depth is the static one (c = 1), so each
    # term equals its metric twin.
    bent = p.replace(body_pose=p.body_pose.at[1, 3].add(0.3), object_translation=p.object_translation.at[2].add(0.05))
    _, t1 = motion_loss(bent, data, w, cfg)
    assert float(t1["smooth_joints"]) > 0 and float(t1["smooth_object"]) > 0
    onp.testing.assert_allclose(float(t1["smooth_joints_refdepth"]), float(t1["smooth_joints"]), rtol=1e-5)
    onp.testing.assert_allclose(float(t1["smooth_object_refdepth"]), float(t1["smooth_object"]), rtol=1e-5)
    onp.testing.assert_allclose(float(t1["smooth_body_refdepth"]), float(t1["smooth_joints"]), rtol=1e-5)
    # Removed from the compiled program by skip_terms.
    names = ("smooth_joints_refdepth", "smooth_object_refdepth", "smooth_body_refdepth")
    _, t2 = motion_loss(bent, data, w, MotionConfig.for_model(model, skip_terms=names))
    assert all(float(t2[k]) == 0.0 for k in names)
