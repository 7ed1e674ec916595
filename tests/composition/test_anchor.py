"""Anchor extraction (paper Sec. 4): the anchor NeRF keeps the human of a coarse human-object NeRF and
drops the object; L_align's masked-RGB features; bad inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.geometry.cameras import Camera, orbit_cameras
from anchorhoi_jax.losses.align import feature_alignment_loss, masked_rgb_features
from anchorhoi_jax.nerf import field as nf
from anchorhoi_jax.nerf import fit as nfit
from anchorhoi_jax.render.raster import rasterize_views
from anchorhoi_jax.render.volume import RenderConfig
from anchorhoi_jax.stages import anchor as an

from .scenes import hoi_scene

S = 40


def _stack(*cams: Camera) -> Camera:
    return Camera(K=jnp.concatenate([c.K for c in cams]), T_cam_world=jnp.concatenate([c.T_cam_world for c in cams]),
                  height=cams[0].height, width=cams[0].width)


def test_masked_rgb_features_and_loss():
    rgb = jnp.array([[0.4, 0.2, 0.1], [0.3, 0.3, 0.3]])
    alpha = jnp.array([0.5, 1.0])
    bg = jnp.array([[1.0, 1.0, 1.0], [0.0, 0.5, 1.0]])
    f = masked_rgb_features(rgb, alpha, jnp.array([1.0, 0.0]), bg)
    # Inside the mask: C + (1 − α)·b; outside: the background alone (the object is removed).
    onp.testing.assert_allclose(f, [[0.9, 0.7, 0.6], [0.0, 0.5, 1.0]], atol=1e-6)
    v, aux = feature_alignment_loss(f, f + jnp.array([[0.1, 0.0, 0.0], [0.0, 0.0, 0.0]]), jnp.array([1.0, 3.0]))
    onp.testing.assert_allclose(v, 0.01 / 4, rtol=1e-5)
    assert float(aux["align_mse"]) == pytest.approx(float(v))


def test_anchor_nerf_keeps_the_human_and_drops_the_object():
    sc = hoi_scene()
    V, F, C = (jnp.asarray(sc[k]) for k in ("vertices", "faces", "colors"))
    is_human = (jnp.arange(V.shape[0]) < sc["num_human_vertices"]).astype(jnp.float32)[:, None]
    train = orbit_cameras(10, height=S, width=S, distance=3.0, elevation_deg=15.0, fov_deg=40.0)
    align = orbit_cameras(8, height=S, width=S, distance=3.0, elevation_deg=5.0, fov_deg=40.0, azimuth_start_deg=22.5)
    evalc = orbit_cameras(4, height=S, width=S, distance=3.2, elevation_deg=30.0, fov_deg=40.0, azimuth_start_deg=10.0)
    cams = _stack(train, align, evalc)
    # One pass renders colour and which surface is visible (the segmentation prior's stand-in), one
    # pass the human alone (the reference silhouette, occluded parts included).
    scene = rasterize_views(V, F, jnp.concatenate([C, is_human], -1), cams, mode="hard")
    human = rasterize_views(V, F[: sc["num_human_faces"]], C, evalc, mode="hard")
    rgb = scene["rgb"][..., :3] * scene["alpha"][..., None]
    visible_human = scene["rgb"][..., 3] > 0.5
    n_t, n_a = 10, 8

    fcfg = nf.FieldConfig(n_levels=6, log2_table_size=12, max_resolution=96, hidden=32, blob_density=0.0)
    rcfg = RenderConfig(n_coarse=24, n_fine=24)
    opt = nfit.default_optimizer(2e-2, 150)
    run = jax.jit(nfit.make_fit_step(fcfg, rcfg, opt, n_rays=512, steps_per_call=150))
    coarse, _ = run(nfit.init_fit(jax.random.key(0), fcfg, opt), nfit.rays_from_views(train, rgb[:n_t], scene["alpha"][:n_t]))

    render = jax.jit(lambda p, c: an.render_views(p, fcfg, c, None, rcfg))
    c_rgb, c_alpha = render(coarse.params, align)
    rays = an.alignment_rays(align, c_rgb, c_alpha, visible_human[n_t : n_t + n_a])
    update = jax.jit(an.make_update(fcfg, an.AnchorConfig(steps_per_call=50, n_rays=512, render=rcfg)))
    state, aux = update(an.init(jax.random.key(1), coarse.params), rays, an.AnchorWeights.default())

    _, coarse_eval = render(coarse.params, evalc)
    _, anchor_eval = render(state.params, evalc)
    iou_coarse = float(an.mask_iou(coarse_eval, human["alpha"]))
    iou_anchor = float(an.mask_iou(anchor_eval, human["alpha"]))
    obj = (scene["alpha"][n_t + n_a :] > 0.5) & (human["alpha"] <= 0.5)
    obj_covered = float(jnp.sum((anchor_eval > 0.5) & obj) / jnp.sum(obj))
    print(f"IoU with the human: coarse {iou_coarse:.3f}, anchor {iou_anchor:.3f}; object covered {obj_covered:.3f}")
    assert iou_anchor > 0.8 and iou_anchor > iou_coarse + 0.15, (iou_coarse, iou_anchor)
    assert obj_covered < 0.05, obj_covered


def test_alignment_rays_bad_shapes():
    cams = orbit_cameras(2, height=4, width=4)
    with pytest.raises(ValueError, match="alignment_rays: expected rgb"):
        an.alignment_rays(cams, jnp.zeros((2, 4, 4, 3)), jnp.zeros((2, 4, 4)), jnp.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="do not match the renders"):
        an.alignment_rays(cams, jnp.zeros((3, 4, 4, 3)), jnp.zeros((3, 4, 4)), jnp.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="need steps_per_call >= 1"):
        an.AnchorConfig(steps_per_call=0)
