"""Eq. 2 pose fit: recovery on synthetic skeletons, robustness to outliers, vmap, traces, bad inputs."""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.body.model import BodyParams
from anchorhoi_jax.geometry.cameras import project
from anchorhoi_jax.stages import pose_fit as pf

from .bodies import stick_body

CFG = pf.PoseFitConfig(global_steps=80, pose_steps=260, num_hypotheses=4)


@pytest.fixture(scope="module")
def scene():
    model = stick_body()
    setup, body = pf.make_setup(model)
    cams = pf.canonical_cameras(pf.CanonicalViews(size=256))
    return body, setup, cams


def _ground_truth(key, fb, setup):
    model = fb.model
    k_pose, k_yaw, k_s, k_t = jax.random.split(key, 4)
    pose = pf.sample_plausible_pose(k_pose, fb.prior, model.num_joints)
    pose = pose.at[0].set(jnp.array([0.05, 1.0, 0.0]) * jax.random.uniform(k_yaw, (), minval=-3.0, maxval=3.0))
    body = BodyParams(
        betas=jnp.zeros((model.num_shape,)),
        pose=pose,
        transl=-model.j_template[0] + jax.random.uniform(k_t, (3,), minval=-0.2, maxval=0.2),
        scale=jax.random.uniform(k_s, (), minval=0.85, maxval=1.15),
    )
    return body, pf.body_keypoints3d(fb, setup, body)


def _make_runner(scene, cfg):
    """jit(vmap(fit)) over ground-truth keys; noise, outliers and weights are traced arguments."""
    fb, setup, cams = scene
    fit = pf.make_fit(setup, cfg)

    def one(key, noise_px, outliers, w):
        k_gt, k_det = jax.random.split(key)
        body, kp3 = _ground_truth(k_gt, fb, setup)
        uv = pf.simulate_detections(k_det, kp3, cams.K, cams.T_cam_world, cams.width, noise_px, outliers)
        data = pf.MultiViewKeypoints(uv, jnp.ones(uv.shape[:2]), cams.K, cams.T_cam_world)
        fitted, kp_fit, _ = fit(fb, body.betas, data, jnp.zeros(3), w)
        return jnp.linalg.norm(kp_fit - kp3, axis=-1), fitted, body

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(keys, noise_px, outliers, w):
        return jax.vmap(one, in_axes=(0, None, None, None))(keys, noise_px, outliers, w)

    return run


@pytest.fixture(scope="module")
def gm_runner(scene):
    return _make_runner(scene, CFG)


KEYS = jax.random.split(jax.random.key(1), 4)


def test_noise_free_fit_recovers_joints(gm_runner):
    err, fitted, body = gm_runner(KEYS, 0.0, 0.0, pf.PoseFitWeights.default())
    assert float(err.mean()) < 5e-3, f"MPJPE {float(err.mean()) * 1e3:.2f} mm"
    onp.testing.assert_allclose(fitted.scale, body.scale, atol=0.02)


def test_geman_mcclure_beats_l2_with_outliers(scene, gm_runner):
    w = pf.PoseFitWeights.default()
    err_gm, _, _ = gm_runner(KEYS, 2.0, 0.1, w)
    err_l2, _, _ = _make_runner(scene, dataclasses.replace(CFG, robust=False))(KEYS, 2.0, 0.1, w)
    gm, l2 = float(err_gm.mean()), float(err_l2.mean())
    assert gm < 0.03 and gm < 0.5 * l2, (gm, l2)


def test_weight_sweep_does_not_retrace(gm_runner):
    # gm_runner asserts it is traced at most once: weights and noise levels are traced leaves.
    outs = [
        gm_runner(KEYS, 0.0, 0.0, pf.PoseFitWeights.default().replace(prior_l2=jnp.float32(v), lr=jnp.float32(0.02 + v)))[0]
        for v in (0.0, 0.03)
    ]
    assert not onp.allclose(outs[0], outs[1])


def test_vmapped_equals_looped(scene):
    fb, setup, cams = scene
    cfg = pf.PoseFitConfig(global_steps=10, pose_steps=10, num_hypotheses=2)
    fit = pf.make_fit(setup, cfg)
    w = pf.PoseFitWeights.default()
    betas = jnp.zeros((fb.model.num_shape,))

    @jax.jit
    def observe(key):
        _, kp3 = _ground_truth(key, fb, setup)
        uv, _ = jax.vmap(project, in_axes=(0, 0, None))(cams.K, cams.T_cam_world, kp3)
        return pf.MultiViewKeypoints(uv, jnp.ones(uv.shape[:2]), cams.K, cams.T_cam_world)

    batched = jax.vmap(observe)(jax.random.split(jax.random.key(10), 2))
    f = jax.jit(fit)
    looped = jnp.stack([f(fb, betas, jax.tree.map(lambda a: a[i], batched), jnp.zeros(3), w)[1] for i in range(2)])
    vm = jax.jit(jax.vmap(fit, in_axes=(None, None, 0, None, None)))(fb, betas, batched, jnp.zeros(3), w)[1]
    onp.testing.assert_allclose(vm, looped, atol=1e-4)


def test_setup_moving_joints(scene):
    fb, setup, _ = scene
    names = fb.model.joint_names
    moved = {names[j] for j in setup.fit_joints}
    # Wrists, ankles and feet move no OpenPose-18 keypoint; head moves the face points; the root is global.
    assert not moved & {"left_wrist", "right_wrist", "left_ankle", "right_ankle", "left_foot", "pelvis"}
    assert {"head", "left_elbow", "right_knee", "spine2"} <= moved
    assert not setup.needs_vertices


def test_sampled_poses_respect_the_prior_limits(scene):
    fb, _, _ = scene
    from anchorhoi_jax.body import pose_prior as pp

    poses = jax.vmap(lambda k: pf.sample_plausible_pose(k, fb.prior, fb.model.num_joints))(
        jax.random.split(jax.random.key(0), 16)
    )
    viol = jax.vmap(lambda p: pp.joint_limit_loss(fb.prior, p)[0])(poses)
    assert float(viol.max()) < 1e-8
    assert float(jnp.abs(poses).max()) > 0.3  # not degenerate


def test_canonical_front_view_sees_left_on_image_right(scene):
    fb, setup, cams = scene
    model = fb.model
    kp3 = pf.body_keypoints3d(fb, setup, BodyParams.zeros(model).replace(transl=-model.j_template[0]))
    uv, depth = project(cams.K[0], cams.T_cam_world[0], kp3)
    assert bool(jnp.all(depth > 0))
    assert float(uv[5, 0]) > float(uv[2, 0])  # left shoulder right of right shoulder, facing the camera
    uv_back, _ = project(cams.K[2], cams.T_cam_world[2], kp3)
    assert float(uv_back[5, 0]) < float(uv_back[2, 0])


def test_bad_inputs_raise():
    K = jnp.broadcast_to(jnp.eye(3), (4, 3, 3))
    T = jnp.broadcast_to(jnp.eye(4), (4, 4, 4))
    with pytest.raises(ValueError, match=r"keypoints must have shape \(V, 18, 2\)"):
        pf.check_keypoints(pf.MultiViewKeypoints(jnp.zeros((4, 17, 2)), jnp.ones((4, 17)), K, T))
    with pytest.raises(ValueError, match="confidence must have shape"):
        pf.check_keypoints(pf.MultiViewKeypoints(jnp.zeros((4, 18, 2)), jnp.ones((4, 17)), K, T))
    with pytest.raises(ValueError, match="cameras must be K"):
        pf.check_keypoints(pf.MultiViewKeypoints(jnp.zeros((4, 18, 2)), jnp.ones((4, 18)), K[:3], T))
    with pytest.raises(ValueError, match="all keypoint confidences are zero"):
        pf.check_keypoints(pf.MultiViewKeypoints(jnp.zeros((4, 18, 2)), jnp.zeros((4, 18)), K, T))
    with pytest.raises(ValueError, match="need global_steps >= 1"):
        pf.PoseFitConfig(global_steps=0)
    with pytest.raises(ValueError, match="num_hypotheses must be >= 1"):
        pf.PoseFitConfig(num_hypotheses=0)
    renamed = stick_body().replace(extra_names=("a", "b", "c", "d", "e"))
    with pytest.raises(ValueError, match="smplx model has no point 'nose' needed for openpose18"):
        pf.make_setup(renamed)
