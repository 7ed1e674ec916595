"""`anchorhoi track --body anny`: Anny's vertex-regressed OpenPose-18 points in the motion stage (exact,
through joint-space moments), its contact regions, a tiny CLI run, and its bad-input message."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as onp
import pytest
from synthetic_scenes import box_mesh

from anchorhoi_jax.io.formats import read_motion

L = 3


@pytest.fixture(scope="module")
def anny():
    from anchorhoi_jax.body.anny import load_anny

    try:
        return load_anny()
    except FileNotFoundError as e:  # neither the anny package nor a cache: nothing to test against
        pytest.skip(str(e))


def _static_anny(tmp_path, anny, **over):
    from anchorhoi_jax.body.anny import Phenotype, phenotype_to_coeffs

    m = anny.model
    J = m.num_joints
    rng = onp.random.default_rng(0)
    pose = onp.zeros((J, 3), onp.float32)
    pose[1:] = 0.1 * rng.standard_normal((J - 1, 3))
    betas = onp.asarray(phenotype_to_coeffs(anny.extras, Phenotype.neutral()), onp.float32)
    v, f = box_mesh((0.3, 0.3, 0.3))
    d = dict(body_model=onp.array("anny"), betas=betas, scale=onp.float32(1.0), global_orient=pose[0],
             body_pose=pose[1:].reshape(-1), transl=onp.zeros(3, onp.float32), object_vertices=v.astype(onp.float32),
             object_faces=f.astype(onp.int32), object_rotation=onp.eye(3, dtype=onp.float32),
             object_translation=onp.array([0.0, 1.0, 0.3], onp.float32))
    d.update(over)
    p = tmp_path / "STATIC.npz"
    onp.savez(p, **d)
    return p, pose, betas


def _kp(tmp_path):
    p = tmp_path / "KP.npz"
    onp.savez(p, keypoints=onp.full((L, 18, 2), 200.0, onp.float32) + onp.arange(18, dtype=onp.float32)[None, :, None],
              confidence=onp.ones((L, 18), onp.float32), K=onp.array([[500, 0, 320], [0, 500, 240], [0, 0, 1]], onp.float32),
              T_cam_world=onp.diag([1.0, -1.0, -1.0, 1.0]).astype(onp.float32) @ onp.array(
                  [[1, 0, 0, 0], [0, 1, 0, -1.0], [0, 0, 1, -4.0], [0, 0, 0, 1]], onp.float32),
              image_size=onp.array([640, 480], onp.float32), fps=onp.float32(24))
    return p


def test_anny_keypoints_in_motion_stage_match_the_full_mesh_regressor(tmp_path, anny):
    from anchorhoi_jax.body.keypoints import regress_keypoints
    from anchorhoi_jax.body.model import BodyParams
    from anchorhoi_jax.body.skinning import pose
    from anchorhoi_jax.stages.motion import MotionConfig, StaticInstance, frame_forward, prepare_motion_data
    from anchorhoi_jax.track import body_openpose_and_contacts, motion_pose_joints

    m = anny.model
    _, p, betas = _static_anny(tmp_path, anny)
    reg, cand = body_openpose_and_contacts(anny)
    assert reg.needs_vertices and len(cand) > 500
    st = StaticInstance(betas=jnp.asarray(betas), scale=jnp.asarray(1.1), pose=jnp.asarray(p), transl=jnp.array([0.1, 0.0, 0.0]),
                        R_world_obj=jnp.eye(3), t_world_obj=jnp.array([0.0, 1.0, 0.3]))
    v, f = box_mesh((0.3, 0.3, 0.3))
    data = prepare_motion_data(m, st, v, f, keypoints=onp.zeros((L, 18, 2)), confidence=onp.ones((L, 18)),
                               K=onp.eye(3), T_cam_world=onp.eye(4), image_size=onp.array([640, 480]),
                               contact_candidates=cand, openpose_ids=reg, key=jax.random.key(0), num_object_points=32,
                               num_pen_vertices=32, sdf_resolution=16)
    cfg = MotionConfig.for_model(m, pose_joints=motion_pose_joints(m))
    assert len(cfg.pose_joints) == 35  # no fingers, metacarpals, toes, eyes, root
    q = jnp.asarray(p) + 0.2 * jax.random.normal(jax.random.key(1), p.shape)
    t = jnp.array([0.3, -0.1, 0.2])
    out = jax.jit(lambda q: frame_forward(data, cfg, q[0], q[jnp.asarray(cfg.pose_joints)], t, jnp.zeros(3), jnp.zeros(3)))(q)
    # Full pose of the truth: the non-optimised joints keep the static pose (frame_forward substitutes).
    q_full = jnp.asarray(p).at[0].set(q[0]).at[jnp.asarray(cfg.pose_joints)].set(q[jnp.asarray(cfg.pose_joints)])
    posed = pose(m, BodyParams(betas=jnp.asarray(betas), pose=q_full, transl=t, scale=jnp.asarray(1.1)))
    ref = regress_keypoints(reg, posed.all_joints, posed.vertices)
    onp.testing.assert_allclose(onp.asarray(out.openpose), onp.asarray(ref), atol=2e-5)


def test_track_anny_cli(tmp_path, capsys, anny):
    from anchorhoi_jax.cli import main

    st, _, _ = _static_anny(tmp_path, anny)
    kp = _kp(tmp_path)
    out = tmp_path / "run"
    small = ["steps=2", "steps_per_call=1", "global_steps=1", "num_object_points=32", "num_pen_vertices=32",
             "sdf_resolution=16"]
    code = main(["track", "--static", str(st), "--keypoints", str(kp), "--out", str(out), "--body", "anny", *small])
    err = capsys.readouterr().err
    assert code == 0, err
    m = read_motion(out / "motion.npz")
    J = anny.model.num_joints
    assert m["body_model"] == "anny" and m["body_pose"].shape == (L, 3 * (J - 1))
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"pen_max_mm", "contact_mm", "jitter_mm_per_frame2", "foot_skate_ratio"} <= set(metrics)
    # Bad input: an Anny STATIC.npz whose body_pose is the SMPL-X length; nothing written.
    bad, _, _ = _static_anny(tmp_path, anny, body_pose=onp.zeros(63, onp.float32))
    out2 = tmp_path / "run2"
    code = main(["track", "--static", str(bad), "--keypoints", str(kp), "--out", str(out2), "--body", "anny", *small])
    err = capsys.readouterr().err
    assert code == 2 and f"'body_pose' must have {3 * (J - 1)} values for Anny" in err and err.count("\n") == 1, err
    assert not out2.exists()
