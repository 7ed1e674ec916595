"""losses/floor.py and its wiring in stages/motion.py: values against NumPy float64, a box on the floor (known
answers), the floor height of the static instance, and the bad-input error."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest
from synthetic_scenes import SCENES, box_mesh, observe, static_of

from anchorhoi_jax.losses.floor import floor_penetration, floor_support, static_floor_height
from anchorhoi_jax.stages.motion import MotionConfig, MotionWeights, initial_params, motion_loss, prepare_motion_data

f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731


def test_values_match_numpy_float64():
    rng = onp.random.default_rng(0)
    P = rng.normal(scale=0.2, size=(50, 3))
    for h, margin in ((0.0, 0.0), (0.1, 0.0), (-0.05, 0.02)):
        v, aux = floor_penetration(f32(P), f32(h), margin=margin)
        d = onp.maximum(h - margin - P[:, 1], 0.0)
        onp.testing.assert_allclose(float(v), (d**2).sum(), rtol=1e-5)
        onp.testing.assert_allclose(onp.asarray(aux["depth"]), d, atol=1e-7)
    low = rng.normal(scale=0.03, size=20)
    v, aux = floor_support(f32(low), f32(0.01))
    onp.testing.assert_allclose(float(aux["gap"]), low.mean() - 0.01, atol=1e-7)
    onp.testing.assert_allclose(float(v), (low.mean() - 0.01) ** 2, rtol=1e-5)
    Q = rng.normal(size=(30, 3))
    onp.testing.assert_allclose(float(static_floor_height(f32(P), f32(Q))), min(P[:, 1].min(), Q[:, 1].min()), rtol=1e-6)


def test_box_on_the_floor_known_answers():
    """A 0.4 m box resting on y = 0: nothing below the floor and no gap; lowered by 3 cm its 4 bottom corners are 3 cm
    deep (4 · 0.03²) and the gap is −0.03 (0.03²); raised by 3 cm nothing penetrates but the gap is +0.03."""
    v, _ = box_mesh((0.4, 0.4, 0.4), center=(0.0, 0.2, 0.0))
    v = f32(v)
    for dy, pen, gap in ((0.0, 0.0, 0.0), (-0.03, 4 * 0.03**2, -0.03), (0.03, 0.0, 0.03)):
        moved = v + f32([[0.0, dy, 0.0]])
        onp.testing.assert_allclose(float(floor_penetration(moved, f32(0.0))[0]), pen, atol=1e-9)
        lowest = jnp.min(moved[:, 1])[None]
        onp.testing.assert_allclose(float(floor_support(lowest, f32(0.0))[1]["gap"]), gap, atol=1e-6)
    # Gradient: pushes a sunk point up, leaves points above the floor alone.
    g = jax.grad(lambda p: floor_penetration(p, f32(0.0))[0])(f32([[0.0, -0.01, 0.0], [0.0, 0.5, 0.0]]))
    onp.testing.assert_allclose(onp.asarray(g), [[0.0, -0.02, 0.0], [0.0, 0.0, 0.0]], atol=1e-7)


def _data(body, **kw):
    model, ex = body
    sc = SCENES["push_box"](model, 4)
    kp, conf, _ = observe(sc, model, ex["openpose18"], noise_px=0.0, dropout=0.0)
    data = prepare_motion_data(model, static_of(sc, model), sc.object_vertices, sc.object_faces, keypoints=kp,
                               confidence=conf, K=sc.K, T_cam_world=sc.T_cam_world, image_size=sc.image_size,
                               contact_candidates=ex["contact_candidates"], openpose_ids=ex["openpose18"],
                               key=jax.random.key(0), num_object_points=64, num_pen_vertices=64, sdf_resolution=16, **kw)
    return model, sc, data


def test_motion_wiring(body):
    model, sc, data = _data(body)
    # push_box: the box stands on y = 0 and is X_s's lowest point; its 8 corners are the hull.
    onp.testing.assert_allclose(float(data.floor_height), 0.0, atol=1e-6)
    assert data.object_support_points.shape == (8, 3)
    cfg = MotionConfig.for_model(model)
    w = MotionWeights.default(floor=1.0, floor_support=1.0)
    p = initial_params(data, cfg)
    _, t0 = motion_loss(p, data, w, cfg)
    assert float(t0["floor"]) == 0.0 and float(t0["floor_support"]) == 0.0
    # Every frame 2 cm lower: the box's 4 bottom corners (+ any body vertex) 2 cm deep, and the mean gap −2 cm.
    down = f32([0.0, -0.02, 0.0])[None]
    q = p.replace(transl=p.transl + down, object_translation=p.object_translation + down)
    _, t1 = motion_loss(q, data, w, cfg)
    assert float(t1["floor"]) >= 4 * 0.02**2 - 1e-7
    onp.testing.assert_allclose(float(t1["floor_support"]), 0.02**2, rtol=1e-3)
    # Given floor height; no floor.
    _, _, d_given = _data(body, floor_height=-0.5)
    onp.testing.assert_allclose(float(d_given.floor_height), -0.5)
    _, _, d_none = _data(body, floor_height=None)
    _, t2 = motion_loss(q, d_none, w, cfg)
    assert float(t2["floor"]) == 0.0 and float(t2["floor_support"]) == 0.0


def test_bad_floor_height(body):
    with pytest.raises(ValueError, match="prepare_motion_data: floor_height must be a number, 'static' or None, got 'low'"):
        _data(body, floor_height="low")
