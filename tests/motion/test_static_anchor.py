"""losses/anchor.py and its wiring in stages/motion.py: value against NumPy float64, exactly zero (with a zero
gradient) at the static instance, the gradient pointing back to it, frame selection and bad-config errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest
from scipy.spatial.transform import Rotation
from synthetic_scenes import SCENES, observe, static_of

from anchorhoi_jax.losses.anchor import static_anchor, static_pose_anchor
from anchorhoi_jax.stages.motion import (
    MotionConfig, MotionWeights, StaticInstance, initial_params, motion_loss, prepare_motion_data,
)


def _rand_rot(rng, n):
    return Rotation.random(n, random_state=int(rng.integers(1 << 30))).as_matrix()


def test_value_matches_numpy_float64():
    rng = onp.random.default_rng(0)
    F = 3
    Rh, Ro = _rand_rot(rng, F), _rand_rot(rng, F)
    th, to = rng.normal(size=(F, 3)), rng.normal(size=(F, 3))
    Rhs, Ros = _rand_rot(rng, 1)[0], _rand_rot(rng, 1)[0]
    ths, tos = rng.normal(size=3), rng.normal(size=3)
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    v, aux = static_anchor(f32(Rh), f32(th), f32(Ro), f32(to), f32(Rhs), f32(ths), f32(Ros), f32(tos))
    # Oracle through the relative angle θ of R_sᵀR: ½‖R − R_s‖_F² = 2(1 − cos θ).
    ang = lambda R, Rs: onp.array([onp.linalg.norm(Rotation.from_matrix(Rs.T @ r).as_rotvec()) for r in R])  # noqa: E731
    want = {"human_transl": onp.mean(onp.sum((th - ths) ** 2, -1)), "human_rot": onp.mean(2 * (1 - onp.cos(ang(Rh, Rhs)))),
            "object_transl": onp.mean(onp.sum((to - tos) ** 2, -1)), "object_rot": onp.mean(2 * (1 - onp.cos(ang(Ro, Ros))))}
    for k, w in want.items():
        onp.testing.assert_allclose(float(aux[k]), w, rtol=2e-5, atol=1e-6)
    onp.testing.assert_allclose(float(v), sum(want.values()), rtol=2e-5)
    bp, bps = rng.normal(size=(F, 5, 3)), rng.normal(size=(5, 3))
    vp, _ = static_pose_anchor(f32(bp), f32(bps))
    onp.testing.assert_allclose(float(vp), onp.mean(onp.sum((bp - bps) ** 2, -1)), rtol=2e-5)


def test_zero_with_zero_gradient_at_static_and_gradient_points_back():
    rng = onp.random.default_rng(1)
    R, t = jnp.asarray(_rand_rot(rng, 1), jnp.float32), jnp.asarray(rng.normal(size=(1, 3)), jnp.float32)

    def f(dt):
        return static_anchor(R, t + dt, R, t, R[0], t[0], R[0], t[0])[0]

    assert float(f(jnp.zeros((1, 3)))) == 0.0
    assert float(jnp.abs(jax.grad(f)(jnp.zeros((1, 3)))).max()) == 0.0
    d = jnp.asarray([[0.01, -0.02, 0.03]])
    g = jax.grad(f)(d)
    onp.testing.assert_allclose(onp.asarray(g), 2 * onp.asarray(d), rtol=1e-4)  # d/dt ‖Δt‖² = 2Δt


@pytest.fixture(scope="module")
def scene_data(body):
    model, ex = body
    sc = SCENES["carry_box"](model, 3)
    kp, conf, _ = observe(sc, model, ex["openpose18"], noise_px=0.0, dropout=0.0)
    st = static_of(sc, model)
    data = prepare_motion_data(model, st, sc.object_vertices, sc.object_faces, keypoints=kp, confidence=conf, K=sc.K,
                               T_cam_world=sc.T_cam_world, image_size=sc.image_size,
                               contact_candidates=ex["contact_candidates"], openpose_ids=ex["openpose18"],
                               key=jax.random.key(0), num_object_points=64, num_pen_vertices=64, sdf_resolution=16)
    return model, data


def test_motion_loss_wiring(scene_data):
    model, data = scene_data
    cfg = MotionConfig.for_model(model)  # static_frames = (0,)
    w = MotionWeights.default(static_anchor=1.0, static_pose_anchor=1.0)
    p = initial_params(data, cfg)  # every frame at the static instance
    total0, t0 = motion_loss(p, data, w, cfg)
    assert float(t0["static_anchor"]) == 0.0 and float(t0["static_pose_anchor"]) == 0.0
    # Frame 2 moved: frame 0 is still the static instance, so the anchor stays 0 ...
    far = p.replace(transl=p.transl.at[2].add(0.1), object_translation=p.object_translation.at[2].add(0.1))
    assert float(motion_loss(far, data, w, cfg)[1]["static_anchor"]) == 0.0
    # The object-at-rest prior (losses/object_rest.py) is wired in: 0 at rest, and frame 2's move is one of the
    # 2 frame pairs (3·0.1² / 2); with its weight it enters the total.
    assert float(t0["object_rest"]) == 0.0
    w_rest = w.replace(object_rest=jnp.float32(2.0))
    tot_far, t_far = motion_loss(far, data, w_rest, cfg)
    onp.testing.assert_allclose(float(t_far["object_rest"]), 0.015, rtol=1e-4)
    onp.testing.assert_allclose(float(tot_far - motion_loss(far, data, w.replace(object_rest=jnp.float32(0.0)), cfg)[0]), 2.0 * 0.015, rtol=1e-3)
    # The object's mask test of rest (losses/object_static.py): 0 without masks; with frames 0 and 2 at rest, frame 2's
    # object move counts (3·0.1² / 3 frames), and its weight enters the total.
    assert float(t_far["object_static"]) == 0.0
    d_rest = data.replace(object_static_frames=jnp.asarray([1.0, 0.0, 1.0]))
    w_st = w.replace(object_static=jnp.float32(2.0))
    tot_st, t_st = motion_loss(far, d_rest, w_st, cfg)
    onp.testing.assert_allclose(float(t_st["object_static"]), 0.01, rtol=1e-4)
    onp.testing.assert_allclose(float(tot_st - tot_far), 2.0 * 0.01 - 2.0 * 0.015, rtol=1e-3)
    # ... and counts once frame 2 is an anchored frame: (3·0.1² human + 3·0.1² object) / 2 frames.
    cfg2 = MotionConfig.for_model(model, static_frames=(0, 2))
    onp.testing.assert_allclose(float(motion_loss(far, data, w, cfg2)[1]["static_anchor"]), 0.03, rtol=1e-4)
    # Frame 0 moved: the term, its weight in the total, and the gradient only on frame 0's variables.
    moved = p.replace(transl=p.transl.at[0].add(jnp.asarray([0.0, 0.0, 0.05])),
                      object_delta_rot=p.object_delta_rot.at[0].set(jnp.asarray([0.0, 0.1, 0.0])),
                      body_pose=p.body_pose.at[0, 3].add(0.2))
    total1, t1 = motion_loss(moved, data, w, cfg)
    want_anchor = 0.05**2 + 2 * (1 - onp.cos(0.1))
    onp.testing.assert_allclose(float(t1["static_anchor"]), want_anchor, rtol=1e-4)
    onp.testing.assert_allclose(float(t1["static_pose_anchor"]), 3 * 0.2**2 / len(cfg.pose_joints), rtol=1e-4)  # (0.2, 0.2, 0.2) on 1 joint
    w0 = MotionWeights.default(static_anchor=0.0, static_pose_anchor=0.0)
    g = jax.grad(lambda q: motion_loss(q, data, w, cfg)[0])(moved)
    g_off = jax.grad(lambda q: motion_loss(q, data, w0, cfg)[0])(moved)
    dg = jax.tree.map(lambda a, b: onp.asarray(a - b), g, g_off)
    onp.testing.assert_allclose(dg.transl[0], [0.0, 0.0, 0.1], atol=2e-4)  # 2Δt
    assert onp.abs(dg.transl[1:]).max() < 1e-5 and onp.abs(dg.object_translation[1:]).max() < 1e-5
    assert dg.object_delta_rot[0, 1] > 0.05  # pulls the rotation back
    # A user video (no frame shows the static instance): the terms are off.
    cfg_off = MotionConfig.for_model(model, static_frames=())
    t_off = motion_loss(moved, data, w, cfg_off)[1]
    assert float(t_off["static_anchor"]) == 0.0 and float(t_off["static_pose_anchor"]) == 0.0


def test_bad_static_frames(scene_data):
    model, data = scene_data
    with pytest.raises(ValueError, match="MotionConfig.static_frames must be non-negative frame indices"):
        MotionConfig.for_model(model, static_frames=(-1,))
    cfg = MotionConfig.for_model(model, static_frames=(5,))
    with pytest.raises(ValueError, match=r"MotionConfig.static_frames \(5,\) out of range for 3 frames"):
        motion_loss(initial_params(data, cfg), data, MotionWeights.default(), cfg)


@pytest.mark.parametrize("flag, want", [([], (0,)), (["--no-static-anchor"], ())])
def test_track_cli_static_frames(tmp_path, capsys, monkeypatch, flag, want):
    """`anchorhoi track` ties frame 0 by default (video generated from the static render); --no-static-anchor
    (a user video) leaves no frame tied. The tracking itself is replaced: only the config is checked."""
    from test_formats_track import _kp, _static

    import anchorhoi_jax.track as track
    from anchorhoi_jax.cli import main

    seen = {}
    monkeypatch.setattr(track, "_body_and_maps", lambda args, static: (None, None, None, None, None))
    monkeypatch.setattr(track, "track", lambda model, params, static, kp, cfg, *a, **k: seen.setdefault("cfg", cfg))
    monkeypatch.setattr(track, "_write", lambda *a, **k: None)
    argv = ["track", "--static", str(_static(tmp_path)), "--keypoints", str(_kp(tmp_path)), "--out", str(tmp_path / "run"),
            "--smplx-model", str(tmp_path)] + flag
    assert main(argv) == 0, capsys.readouterr().err
    assert seen["cfg"].static_frames == want
