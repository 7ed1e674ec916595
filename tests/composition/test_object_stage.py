"""Object stage (paper Sec. 4): init from the coarse NeRF's object part removes the human, SDS + layout SDS
step on the joint human-mesh + object-NeRF render, marching-cubes mesh with colours, bad inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest
import torch

from anchorhoi_jax.geometry.cameras import Camera, orbit_cameras
from anchorhoi_jax.nerf import field as nf
from anchorhoi_jax.nerf import fit as nfit
from anchorhoi_jax.priors.sds import GaussianPrior, SDSConfig, SDSGuidance
from anchorhoi_jax.render.raster import rasterize_views
from anchorhoi_jax.render.volume import RenderConfig
from anchorhoi_jax.stages import anchor as an
from anchorhoi_jax.stages import coarse as co
from anchorhoi_jax.stages import object_stage as ob

from .scenes import OBJECT_PART, hoi_scene

S = 32
FIELD = nf.FieldConfig(n_levels=6, log2_table_size=12, max_resolution=96, hidden=32, blob_density=0.0)
CFG = ob.ObjectConfig(field=FIELD, render=RenderConfig(n_coarse=24, n_fine=24, shading="albedo"), resolution=16,
                      steps=50, log_every=1, init_steps=60, init_rays=512, mesh_resolution=48,
                      object_camera=co.CameraSampling(distance_range=(2.0, 2.0), fov_range=(40.0, 40.0)),
                      layout_camera=co.CameraSampling(elevation_range=(0.0, 10.0), distance_range=(3.0, 3.0),
                                                      fov_range=(40.0, 40.0)),
                      shading=co.ShadingConfig(background="white"))


def _stack(*cams: Camera) -> Camera:
    return Camera(K=jnp.concatenate([c.K for c in cams]), T_cam_world=jnp.concatenate([c.T_cam_world for c in cams]),
                  height=cams[0].height, width=cams[0].width)


@pytest.fixture(scope="module")
def scene():
    """A coarse NeRF fitted to renders of a known human + object; canonical coarse renders and object masks."""
    sc = hoi_scene()
    V, F, C = (jnp.asarray(sc[k]) for k in ("vertices", "faces", "colors"))
    nh = sc["num_human_vertices"]
    is_obj = (jnp.arange(V.shape[0]) >= nh).astype(jnp.float32)[:, None]
    train = orbit_cameras(8, height=S, width=S, distance=3.0, elevation_deg=15.0, fov_deg=40.0)
    canon = orbit_cameras(6, height=S, width=S, distance=3.0, elevation_deg=5.0, fov_deg=40.0, azimuth_start_deg=20.0)
    evalc = orbit_cameras(3, height=S, width=S, distance=3.2, elevation_deg=30.0, fov_deg=40.0, azimuth_start_deg=50.0)
    cams = _stack(train, canon, evalc)
    raster = jax.jit(lambda f, c, cm: rasterize_views(V, f, c, cm, mode="hard"))
    ras = raster(F, jnp.concatenate([C, is_obj], -1), cams)
    obj_only = raster(F[sc["num_human_faces"]:], C, evalc)
    hum_only = raster(F[: sc["num_human_faces"]], C, evalc)
    rgb = ras["rgb"][..., :3] * ras["alpha"][..., None]
    opt = nfit.default_optimizer(2e-2, 100)
    run = jax.jit(nfit.make_fit_step(FIELD, CFG.render, opt, n_rays=512, steps_per_call=100))
    rays = nfit.rays_from_views(train, rgb[:8], ras["alpha"][:8])
    coarse, _ = run(nfit.init_fit(jax.random.key(0), FIELD, opt), rays)
    c_rgb, c_alpha = co.render_canonical(coarse.params, CFG, canon)
    visible_obj = (ras["rgb"][8:14, ..., 3] > 0.5).astype(jnp.float32)
    human = (sc["vertices"][:nh], sc["faces"][: sc["num_human_faces"]], sc["colors"][:nh])
    return dict(coarse=coarse.params, canon=canon, c_rgb=c_rgb, c_alpha=c_alpha, mask=visible_obj, evalc=evalc,
                obj_alpha=obj_only["alpha"], hum_alpha=hum_only["alpha"], human=human)


@pytest.fixture(scope="module")
def obj_state(scene):
    return ob.init(jax.random.key(1), scene["coarse"], scene["canon"], scene["c_rgb"], scene["c_alpha"], scene["mask"],
                   CFG)


def test_init_keeps_the_object_and_removes_the_human(scene, obj_state):
    _, a_coarse = co.render_canonical(scene["coarse"], CFG, scene["evalc"])
    _, a_obj = co.render_canonical(obj_state.params, CFG, scene["evalc"])
    iou_coarse = float(an.mask_iou(a_coarse, scene["obj_alpha"]))
    iou_obj = float(an.mask_iou(a_obj, scene["obj_alpha"]))
    human_px = (scene["hum_alpha"] > 0.5) & (scene["obj_alpha"] <= 0.5)
    covered = float(jnp.sum((a_obj > 0.5) & human_px) / jnp.sum(human_px))
    print(f"IoU with the object: coarse {iou_coarse:.3f}, object NeRF {iou_obj:.3f}; human covered {covered:.3f}")
    assert iou_obj > 0.75 and iou_obj > iou_coarse + 0.3, (iou_coarse, iou_obj)
    assert covered < 0.05, covered
    assert int(obj_state.step) == 0
    c = onp.asarray(ob.object_center(obj_state.params, FIELD))
    onp.testing.assert_allclose(c, OBJECT_PART[0], atol=0.08)


def test_object_mesh_is_closed_coloured_and_at_the_object(obj_state):
    v, f, col = ob.object_mesh(obj_state.params, CFG)
    assert v.shape[1] == 3 and f.shape[1] == 3 and col.shape == v.shape and f.dtype == onp.int32
    assert f.max() < v.shape[0] and col.min() >= 0.0 and col.max() <= 1.0
    (cx, cy, cz), (hx, hy, hz), colour = OBJECT_PART
    lo, hi = v.min(0), v.max(0)
    onp.testing.assert_allclose(0.5 * (lo + hi)[[0, 2]], (cx, cz), atol=0.06)
    onp.testing.assert_allclose((hi - lo)[[0, 2]], (2 * hx, 2 * hz), atol=0.12)
    # Every view looks from above, so the crate's underside is unconstrained: its top is sharp, its
    # bottom may sag a little.
    assert abs(hi[1] - (cy + hy)) < 0.06 and -0.1 < (cy - hy) - lo[1] < 0.2, (lo[1], hi[1])
    onp.testing.assert_allclose(onp.median(col, 0), colour, atol=0.12)  # the crate's orange
    # Closed-ish: almost every edge is shared by exactly two faces.
    e = onp.sort(onp.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), 1)
    _, counts = onp.unique(e, axis=0, return_counts=True)
    assert onp.mean(counts == 2) > 0.97, onp.mean(counts == 2)


class _Recording:
    """A guidance that records the images it scores (analytic denoiser underneath)."""

    def __init__(self, inner):
        self.inner, self.value_range, self.dtype, self.seen = inner, inner.value_range, inner.dtype, []

    def __call__(self, x_model, *, views, step, generator):
        self.seen.append((x_model.clone(), views))
        return self.inner(x_model, views=views, step=step, generator=generator)


def _analytic(value: float):
    mu = torch.full((3, CFG.resolution, CFG.resolution), value)
    return SDSGuidance(GaussianPrior(mu, 0.1), "p", SDSConfig(guidance_scale=1.0, view_dependent_prompts=False))


def test_sds_step_on_object_and_joint_renders(scene, obj_state):
    g_obj, g_lay = _Recording(_analytic(0.2)), _Recording(_analytic(-0.2))
    calls = []
    st, hist = ob.fit(obj_state, CFG, ob.ObjectWeights.default(), g_obj, g_lay, scene["human"], until=2,
                      callback=lambda i, s, info: calls.append(i))
    assert calls == [1, 2] and int(st.step) == 2
    assert {"object/sds_loss", "layout/sds_loss", "sparsity"} <= set(hist[-1])
    assert all(onp.isfinite(v) for h in hist for v in h.values())
    changed = [not onp.array_equal(a, b) for a, b in zip(jax.tree.leaves(st.params), jax.tree.leaves(obj_state.params))]
    assert any(changed)
    # The layout chunk shows the (blue-shirted) human; the object chunk, rendered around the object, does not.
    x_obj, v_obj = g_obj.seen[0]
    x_lay, v_lay = g_lay.seen[0]
    assert x_obj.shape == x_lay.shape == (4, 3, CFG.resolution, CFG.resolution)
    blue = lambda x: ((x[:, 2] > x[:, 0] + 0.4) & (x[:, 2] > 0.0)).float().mean().item()  # noqa: E731
    assert blue(x_lay) > 0.01 and blue(x_obj) < 0.2 * blue(x_lay), (blue(x_obj), blue(x_lay))
    assert v_obj.views_per_sample == 4 and v_lay.camera_to_world.shape == (4, 4, 4)


def test_seeded_object_stage(scene, obj_state):
    two = lambda a: jnp.stack([a, a])  # noqa: E731
    cfg = CFG
    # The seed-stacked state (what init_seeds returns; its init is a plain vmap of `init`).
    st = jax.tree.map(two, obj_state).replace(key=jax.random.split(jax.random.key(3), 2))
    assert st.step.shape == (2,)
    v, f, c = (jnp.asarray(a) for a in scene["human"])
    human = (jnp.stack([v, v + jnp.array([[0.05, 0.0, 0.0]])]), f, jnp.stack([c, c]))  # a per-seed placement
    g = _Recording(_analytic(0.0))
    st, hist = ob.fit(st, cfg, ob.ObjectWeights.default(), g, g, human, until=1)
    onp.testing.assert_array_equal(onp.asarray(st.step), [1, 1])
    x, views = g.seen[0]
    assert x.shape[0] == 8 and views.azimuth_deg.shape == (8,)  # 2 seeds x 4 views, per chunk


def test_bad_object_inputs(scene, obj_state):
    cases = [
        (lambda: ob.ObjectConfig(steps=0), "ObjectConfig.steps must be >= 1, got 0"),
        (lambda: ob.ObjectConfig(object_weight=0.0, layout_weight=0.0), "not both 0"),
        (lambda: ob.ObjectConfig(raster_mode="wire"), "raster_mode must be 'hard' or 'soft'"),
        (lambda: ob.ObjectConfig(mesh_threshold=0.0), "mesh_threshold must be a finite density > 0"),
        (lambda: ob.ObjectConfig(init_lr=-1.0), "init_lr must be > 0"),
        (lambda: ob.ObjectConfig(lr_schedule="x"), "lr_schedule must be 'constant' or 'cosine'"),
    ]
    for make, msg in cases:
        with pytest.raises(ValueError, match=msg) as e:
            make()
        assert "\n" not in str(e.value)
    g = _analytic(0.0)
    v, f, c = scene["human"]
    with pytest.raises(ValueError, match="human_mesh must be"):
        ob.fit(obj_state, CFG, ob.ObjectWeights.default(), g, g, (v, f[:, :2], c))
    with pytest.raises(ValueError, match="one seed needs vertices"):
        ob.fit(obj_state, CFG, ob.ObjectWeights.default(), g, g, (onp.stack([v, v]), f, c))
    with pytest.raises(ValueError, match="object_mesh: pass one seed's params"):
        ob.object_mesh(jax.tree.map(lambda a: jnp.stack([a, a]), obj_state.params), CFG)
    with pytest.raises(ValueError, match="alignment_rays: expected rgb"):
        ob.init(jax.random.key(0), scene["coarse"], scene["canon"], scene["c_rgb"], scene["c_alpha"],
                scene["mask"][:, :4], CFG)
