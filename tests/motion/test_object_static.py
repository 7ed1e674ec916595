"""losses/object_static.py and its wiring (stages/motion.py): the mask test of rest on known configurations
(occluded static object, shifted object, object moved away, hysteresis), bad inputs, the anchor's value against
NumPy float64 and its zero gradient at rest, the keypoint init's object path (the Eq. 4 wiring is checked in
test_static_anchor.test_motion_loss_wiring, which shares its MotionData)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest
from scipy.spatial.transform import Rotation

from anchorhoi_jax.losses.object_static import object_static_anchor, static_object_frames

H, W = 60, 80


def _square(x0, y0, size):
    m = onp.zeros((H, W), bool)
    m[y0:y0 + size, x0:x0 + size] = True
    return m


def test_mask_test_on_known_configurations():
    sil = _square(20, 20, 20)  # the object at X_s
    human = _square(25, 5, 10) | _square(25, 15, 12)  # stands in front of the object's left part
    frames_o = [
        sil,  # frame 0: X_s, unoccluded
        sil & ~human,  # static, partly hidden by the human (the hidden part is in the union)
        _square(28, 20, 20),  # shifted 8 px to the right
        _square(24, 24, 12),  # moved away: smaller, inside the old silhouette (the inside side sees it)
    ]
    frames_h = [onp.zeros((H, W), bool), human, onp.zeros((H, W), bool), onp.zeros((H, W), bool)]
    s, aux = static_object_frames(onp.stack(frames_o), onp.stack(frames_h), sil, tolerance_px=2.0, departure_frames=5)
    onp.testing.assert_array_equal(s, [1.0, 1.0, 0.0, 0.0])
    assert aux["coverage_px"][2] > 2.0 and aux["coverage_px"][3] == 0.0 and aux["inside_px"][3] > 2.0
    # Hysteresis: after `departure_frames` failing frames in a row, a later pass no longer counts as rest.
    seq_o = onp.stack([sil, _square(28, 20, 20), _square(30, 20, 20), sil, sil])
    seq_h = onp.zeros_like(seq_o)
    onp.testing.assert_array_equal(static_object_frames(seq_o, seq_h, sil, tolerance_px=2.0, departure_frames=2)[0],
                                   [1, 0, 0, 0, 0])
    onp.testing.assert_array_equal(static_object_frames(seq_o, seq_h, sil, tolerance_px=2.0, departure_frames=3)[0],
                                   [1, 0, 0, 1, 1])


def test_mask_test_bad_inputs():
    m = onp.zeros((2, H, W), bool)
    with pytest.raises(ValueError, match="masks must be \\(L, H, W\\) each and the silhouette \\(H, W\\)"):
        static_object_frames(m, m[:1], m[0])
    with pytest.raises(ValueError, match="need 0 < quantile <= 1, tolerance_px >= 0 and departure_frames >= 1"):
        static_object_frames(m, m, m[0], quantile=0.0)
    # An X_s silhouette outside the image: the masks cannot say anything, no frame is at rest.
    onp.testing.assert_array_equal(static_object_frames(m, m, m[0])[0], [0.0, 0.0])


def test_anchor_value_and_gradient():
    rng = onp.random.default_rng(0)
    L = 4
    R = Rotation.random(L, random_state=2).as_matrix()
    t = rng.normal(size=(L, 3))
    Rs, ts = Rotation.random(random_state=3).as_matrix(), rng.normal(size=3)
    w = onp.array([1.0, 0.0, 1.0, 1.0])
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    v, aux = object_static_anchor(f32(R), f32(t), f32(w), f32(Rs), f32(ts))
    gap = onp.sum((t - ts) ** 2, -1) + 0.5 * onp.sum((R - Rs) ** 2, (-2, -1))
    onp.testing.assert_allclose(float(v), onp.mean(w * gap), rtol=1e-5)
    onp.testing.assert_allclose(onp.asarray(aux["gap"]), gap, rtol=1e-5)
    Rr, tr = jnp.broadcast_to(f32(Rs), (L, 3, 3)), jnp.broadcast_to(f32(ts), (L, 3))
    g = jax.grad(lambda x: object_static_anchor(Rr, x, f32(w), f32(Rs), f32(ts))[0])
    assert float(jnp.abs(g(tr)).max()) == 0.0  # exactly at rest: no pull
    d = jnp.zeros((L, 3)).at[1].set(0.1).at[2].set(0.1)
    gd = onp.asarray(g(tr + d))  # frame 2 (a rest frame) pulled back by 2·w·Δ/L; frame 1 (moving) free
    onp.testing.assert_allclose(gd[2], 2 * 0.1 / L, rtol=1e-4)
    assert onp.abs(gd[1]).max() == 0.0


def test_displacement_since_rest():
    from anchorhoi_jax.stages.motion import displacement_since_rest

    rng = onp.random.default_rng(4)
    dt = rng.normal(size=(12, 3))
    rest = onp.array([1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0], onp.float32)  # at rest, moving, at rest again, moving
    got = onp.asarray(displacement_since_rest(jnp.asarray(dt, jnp.float32), jnp.asarray(rest)))
    want = onp.zeros_like(dt)
    want[2:4] = dt[2:4] - dt[[0, 1]].mean(0)  # since the mean over the rest frames 0-1
    want[10:] = dt[10:] - dt[5:10].mean(0)  # the 5 frames up to the last rest frame 9
    onp.testing.assert_allclose(got, want, atol=1e-6)
    # No frame at rest: the displacement since frame 0.
    none = onp.asarray(displacement_since_rest(jnp.asarray(dt, jnp.float32), jnp.zeros(12)))
    onp.testing.assert_allclose(none, dt - dt[0], atol=1e-6)
    # The "absolute" reference: the human's displacement from X_s wherever the object moved.
    from anchorhoi_jax.stages.motion import displacement_absolute

    ab = onp.asarray(displacement_absolute(jnp.asarray(dt, jnp.float32), jnp.asarray(rest)))
    onp.testing.assert_allclose(ab, onp.where(rest[:, None] > 0.5, 0.0, dt), atol=1e-6)
