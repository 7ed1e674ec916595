"""losses/silhouette.py and its wiring in stages/motion.py: tables and both chamfer sides against NumPy
float64 brute force, the hinge (zero at the truth, positive off it), bad-input errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest
from synthetic_scenes import SCENES, observe, static_of

from anchorhoi_jax.losses.silhouette import (
    sample_distance, silhouette_coverage, silhouette_inside, silhouette_targets,
)
from anchorhoi_jax.stages.motion import (
    MotionConfig, MotionWeights, StaticInstance, initial_params, motion_loss, prepare_motion_data,
)


def _square_masks(L=2, H=20, W=30):
    hm = onp.zeros((L, H, W), bool)
    om = onp.zeros((L, H, W), bool)
    hm[0, 5:10, 4:12] = True  # frame 0: human rectangle rows 5..9, cols 4..11
    om[0, 12:16, 20:26] = True
    hm[1, 2:6, 2:6] = True  # frame 1: human only
    return hm, om


def _edt_brute(mask):
    """Distance (px) from every pixel centre to the nearest mask pixel centre, float64 brute force."""
    ys, xs = onp.nonzero(mask)
    H, W = mask.shape
    gy, gx = onp.mgrid[0:H, 0:W]
    d = onp.sqrt((gy[..., None] - ys) ** 2 + (gx[..., None] - xs) ** 2)
    return d.min(-1)


def test_targets_tables_and_samples():
    hm, om = _square_masks()
    t = silhouette_targets(hm, om, num_samples=16, stride=1)
    for i in range(2):
        onp.testing.assert_allclose(onp.asarray(t.outside_distance[i]), _edt_brute(hm[i] | om[i]), atol=1e-5)
    # Boundary samples: on the mask, each with a 4-neighbour outside; padding only where the contour is short.
    for i in range(2):
        for s, w, m in ((t.human_samples, t.human_weight, hm[i]), (t.object_samples, t.object_weight, om[i])):
            s, w = onp.asarray(s[i]), onp.asarray(w[i])
            for (u, v), wk in zip(s, w):
                if wk > 0:
                    x, y = int(u - 0.5), int(v - 0.5)
                    assert m[y, x] and not (m[y - 1, x] and m[y + 1, x] and m[y, x - 1] and m[y, x + 1])
    assert float(t.object_weight[1].sum()) == 0.0  # frame 1 has no object
    assert float(t.human_weight[0].sum()) == 16.0
    onp.testing.assert_array_equal(onp.asarray(t.frame_weight), [1.0, 1.0])


def test_sample_distance_bilinear_and_beyond_image():
    rng = onp.random.default_rng(0)
    table = rng.uniform(0, 5, (3, 6, 8)).astype(onp.float32)
    stride = 2
    uv = onp.array([[3.7, 5.2], [1.0, 1.0], [14.2, 10.9], [-4.0, 3.0], [30.0, 5.0]], onp.float32)
    got = onp.asarray(sample_distance(jnp.asarray(table), 2, jnp.asarray(uv), stride))

    def ref(u, v):
        g = (onp.array([u, v], onp.float64) - 0.5) / stride  # cell j = pixel index j·stride, centre + 0.5
        gc = onp.clip(g, 0, [7, 5])
        x0, y0 = min(int(onp.floor(gc[0])), 6), min(int(onp.floor(gc[1])), 4)
        fx, fy = gc[0] - x0, gc[1] - y0
        T = table[2].astype(onp.float64)
        val = (T[y0, x0] * (1 - fx) * (1 - fy) + T[y0, x0 + 1] * fx * (1 - fy) + T[y0 + 1, x0] * (1 - fx) * fy
               + T[y0 + 1, x0 + 1] * fx * fy)
        return val + onp.linalg.norm(g - gc) * stride

    onp.testing.assert_allclose(got, [ref(u, v) for u, v in uv], rtol=1e-5, atol=1e-5)


def test_strided_table_is_zero_on_mask_pixels():
    hm, om = _square_masks()
    t = silhouette_targets(hm, om, num_samples=8, stride=2)
    ys, xs = onp.nonzero(hm[0][::2, ::2])
    uv = onp.stack([2 * xs + 0.5, 2 * ys + 0.5], -1).astype(onp.float32)  # pixels kept by the stride
    d = sample_distance(t.outside_distance, 0, jnp.asarray(uv), 2)
    onp.testing.assert_allclose(onp.asarray(d), 0.0, atol=1e-5)


def test_inside_and_coverage_match_numpy():
    hm, om = _square_masks()
    t = silhouette_targets(hm, om, num_samples=32, stride=1)
    rng = onp.random.default_rng(1)
    uv = rng.uniform(0, 30, (40, 2)).astype(onp.float32)
    w = (rng.uniform(size=40) > 0.2).astype(onp.float32)
    norm, tol = 30.0, 1.0
    got, aux = silhouette_inside(jnp.asarray(uv), jnp.asarray(w), t.outside_distance, 0, 1, norm, tol)
    d = onp.asarray(aux["distance_px"], onp.float64)
    ref = onp.sum(w * (onp.maximum(d - tol, 0) / norm) ** 2) / w.sum()
    onp.testing.assert_allclose(float(got), ref, rtol=1e-5)
    # Points exactly on mask pixel centres are at distance 0.
    on = onp.array([[4.5, 5.5], [11.5, 9.5], [22.5, 13.5]], onp.float32)
    _, a2 = silhouette_inside(jnp.asarray(on), jnp.ones(3), t.outside_distance, 0, 1, norm, tol)
    onp.testing.assert_allclose(onp.asarray(a2["distance_px"]), 0.0, atol=1e-5)
    s, sw = onp.asarray(t.human_samples[0], onp.float64), onp.asarray(t.human_weight[0], onp.float64)
    got_c, _ = silhouette_coverage(jnp.asarray(uv), jnp.asarray(w), t.human_samples[0], t.human_weight[0], norm, 2.0)
    dd = onp.linalg.norm(s[:, None] - uv[None].astype(onp.float64), axis=-1)
    dd = onp.where(w[None] > 0, dd, onp.inf).min(1)
    ref_c = onp.sum(sw * (onp.maximum(dd - 2.0, 0) / norm) ** 2) / sw.sum()
    onp.testing.assert_allclose(float(got_c), ref_c, rtol=1e-5)
    g = jax.grad(lambda x: silhouette_coverage(x, jnp.asarray(w), t.human_samples[0], t.human_weight[0], norm, 2.0)[0])(
        jnp.asarray(uv))
    assert bool(jnp.all(jnp.isfinite(g)))


def test_bad_inputs():
    hm, om = _square_masks()
    with pytest.raises(ValueError, match="must be \\(L, H, W\\) each and equal in shape"):
        silhouette_targets(hm, om[:1])
    with pytest.raises(ValueError, match="num_samples and stride must be >= 1"):
        silhouette_targets(hm, om, stride=0)


@pytest.fixture(scope="module")
def scene_data(body):
    """Carry scene, 3 frames, true static instance; masks = the true projections of the posed L_pen points
    and object points (so the silhouette term must vanish at the truth up to its tolerance)."""
    model, ex = body
    sc = SCENES["carry_box"](model, 3)
    kp, conf, _ = observe(sc, model, ex["openpose18"], noise_px=0.0, dropout=0.0)
    st = static_of(sc, model)
    kw = dict(keypoints=kp, confidence=conf, K=sc.K, T_cam_world=sc.T_cam_world, image_size=sc.image_size,
              contact_candidates=ex["contact_candidates"], openpose_ids=ex["openpose18"], key=jax.random.key(0),
              num_object_points=64, num_pen_vertices=64, sdf_resolution=16)
    return model, sc, st, kw


def test_prepare_mask_errors(scene_data):
    model, sc, st, kw = scene_data
    W, H = sc.image_size
    good = onp.zeros((3, H, W), bool)
    with pytest.raises(ValueError, match="give both human_masks and object_masks"):
        prepare_motion_data(model, st, sc.object_vertices, sc.object_faces, human_masks=good, **kw)
    with pytest.raises(ValueError, match=r"object_masks must be \(L, H, W\) = \(3, 480, 640\)"):
        prepare_motion_data(model, st, sc.object_vertices, sc.object_faces, human_masks=good,
                            object_masks=onp.zeros((3, W, H), bool), **kw)


def test_term_zero_at_truth_positive_off_it(scene_data):
    from anchorhoi_jax.geometry.cameras import project

    model, sc, st, kw = scene_data
    W, H = sc.image_size
    empty = onp.zeros((3, H, W), bool)
    d0 = prepare_motion_data(model, st, sc.object_vertices, sc.object_faces, human_masks=empty, object_masks=empty, **kw)
    cfg = MotionConfig.for_model(model)
    p = initial_params(d0, cfg)  # frame 0 of the truth in every frame
    from anchorhoi_jax.stages.motion import forward_all

    out = forward_all(d0, cfg, p)
    # Masks: every projected point's pixel, dilated by 2 px (a solid silhouette of the sample).
    from scipy.ndimage import binary_dilation

    def paint(points):
        m = onp.zeros((3, H, W), bool)
        for i in range(3):
            uv, _ = project(jnp.asarray(sc.K, jnp.float32), jnp.asarray(sc.T_cam_world, jnp.float32), points[i])
            uv = onp.asarray(uv).astype(int)
            m[i, uv[:, 1], uv[:, 0]] = True
            m[i] = binary_dilation(m[i], iterations=2)
        return m

    obj = jnp.einsum("lab,nb->lna", out.R_obj, d0.object_points) + out.t_obj[:, None]
    hm, om = paint(out.pen_points), paint(obj)
    data = prepare_motion_data(model, st, sc.object_vertices, sc.object_faces, human_masks=hm, object_masks=om, **kw)
    w = MotionWeights.default()
    _, t_true = motion_loss(p, data, w, cfg)
    assert float(t_true["silhouette"]) < 1e-9
    shifted = p.replace(object_translation=p.object_translation + jnp.asarray([[0.06, 0.0, 0.0]]))
    _, t_off = motion_loss(shifted, data, w, cfg)
    assert float(t_off["silhouette"]) > 1e-7
    # No masks: the term is exactly 0 (and so is its contribution).
    _, t_none = motion_loss(shifted, d0.replace(silhouette=None, silhouette_spacing=None), w, cfg)
    assert float(t_none["silhouette"]) == 0.0
