"""NeRF field: hash encoding vs a float64 NumPy reference, density/normals, init over seeds, fitting, errors."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.nerf import field as nerf_field
from anchorhoi_jax.nerf import fit as nerf_fit
from anchorhoi_jax.nerf.encoding import hash_encode, level_resolutions
from anchorhoi_jax.nerf.shading import sample_light, shade

CFG = nerf_field.FieldConfig(n_levels=4, log2_table_size=10, base_resolution=4, max_resolution=32, hidden=16,
                             geo_features=7, bound=1.0, blob_density=4.0, blob_radius=0.4)


def _np_hash_encode(table, x, resolutions):
    L, T, F = table.shape
    out = onp.zeros((x.shape[0], L, F))
    primes = (1, 2654435761, 805459861)
    for n in range(x.shape[0]):
        for lvl, r in enumerate(resolutions):
            pos = onp.clip(x[n].astype(onp.float64), 0, 1) * r
            p0 = onp.floor(pos).astype(onp.int64)
            fr = pos - p0
            for corner in range(8):
                o = onp.array([corner >> 2 & 1, corner >> 1 & 1, corner & 1])
                c = p0 + o
                if (r + 1) ** 3 <= T:
                    idx = (c[0] + (r + 1) * (c[1] + (r + 1) * c[2])) % T
                else:
                    idx = ((c[0] * primes[0]) ^ (c[1] * primes[1]) ^ (c[2] * primes[2])) % 2**32 % T
                w = onp.prod(onp.where(o > 0, fr, 1 - fr))
                out[n, lvl] += w * table[lvl, idx]
    return out.reshape(x.shape[0], L * F)


def test_hash_encoding_matches_numpy_reference():
    res = level_resolutions(4, 4, 64)
    assert res == (4, 10, 25, 64)
    rng = onp.random.default_rng(0)
    table = rng.normal(size=(4, 2**10, 2)).astype(onp.float32)
    x = rng.uniform(-0.05, 1.05, (40, 3)).astype(onp.float32)  # includes clamped points outside
    got = onp.asarray(hash_encode(jnp.asarray(table), jnp.asarray(x), res))
    onp.testing.assert_allclose(got, _np_hash_encode(table, x, res), atol=1e-4)
    with pytest.raises(ValueError, match="3 resolutions for a table with 4 levels"):
        hash_encode(jnp.asarray(table), jnp.asarray(x), res[:3])


# init jitted once per config: eager (op-by-op) init dispatches hundreds of small ops on CPU.
_init = jax.jit(nerf_field.init, static_argnums=1)


def test_density_blob_inside_box_and_trunc_exp():
    params = _init(jax.random.key(0), CFG)
    x = jnp.array([[0.0, 0.0, 0.0], [0.9, 0.0, 0.0], [1.2, 0.0, 0.0]])
    s = onp.asarray(jax.jit(nerf_field.density, static_argnums=1)(params, CFG, x))
    assert s[0] > s[1] > 0.0 and s[2] == 0.0  # blob at the centre; nothing outside the box
    onp.testing.assert_allclose(onp.asarray(nerf_field.density_blob(CFG, x[:1])), [4.0], rtol=1e-6)
    g = jax.grad(lambda v: nerf_field.trunc_exp(v))(50.0)
    assert onp.isfinite(float(g)) and float(g) == pytest.approx(float(onp.exp(15.0)), rel=1e-5)
    sp = nerf_field.FieldConfig(**{**CFG.__dict__, "density_activation": "softplus"})
    assert float(nerf_field.density(nerf_field.init(jax.random.key(0), sp), sp, x[:1])[0]) > 0.0


def test_normals_are_negative_normalised_density_gradient():
    params = _init(jax.random.key(0), CFG)
    x = jnp.array([[0.3, 0.1, -0.2], [-0.25, 0.2, 0.3]])
    _, _, n = jax.jit(nerf_field.query_with_normals, static_argnums=1)(params, CFG, x)
    eps = 1e-3
    dens = jax.jit(lambda xx: nerf_field.density(params, CFG, xx))
    for i in range(2):
        g = onp.zeros(3)
        for a in range(3):
            e = onp.zeros((1, 3), onp.float32)
            e[0, a] = eps
            xp, xm = x[i : i + 1] + e, x[i : i + 1] - e
            g[a] = (float(dens(xp)[0]) - float(dens(xm)[0])) / (2 * eps)
        onp.testing.assert_allclose(onp.asarray(n[i]), -g / onp.linalg.norm(g), atol=2e-2)


def test_init_vmaps_over_seeds():
    keys = jax.random.split(jax.random.key(4), 3)
    batched = jax.vmap(lambda k: nerf_field.init(k, CFG))(keys)
    for i, k in enumerate(keys):
        single = nerf_field.init(k, CFG)
        chex.assert_trees_all_close(jax.tree.map(lambda a: a[i], batched), single)
    assert nerf_field.graphdef(CFG) is nerf_field.graphdef(CFG)  # cached


def test_shading_modes_and_light():
    alb = jnp.array([[0.5, 0.2, 1.0]])
    n = jnp.array([[0.0, 0.0, 1.0]])
    light = jnp.array([0.0, 0.6, 0.8])
    onp.testing.assert_allclose(onp.asarray(shade(alb, n, light, mode="lambertian", ambient=0.2)),
                                [[0.5 * 0.84, 0.2 * 0.84, 0.84]], rtol=1e-6)
    onp.testing.assert_allclose(onp.asarray(shade(alb, n, light, mode="textureless", ambient=0.2)), [[0.84] * 3],
                                rtol=1e-6)
    onp.testing.assert_allclose(onp.asarray(shade(alb, -n, light, mode="lambertian", ambient=0.2)),
                                onp.asarray(alb) * 0.2, rtol=1e-6)
    onp.testing.assert_allclose(onp.asarray(shade(alb, n, None, mode="normal")), [[0.5, 0.5, 1.0]])
    d = sample_light(jax.random.key(0), jnp.array([0.0, 0.0, 3.0]), jnp.zeros(3))
    assert float(jnp.linalg.norm(d)) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="mode must be one of"):
        shade(alb, n, light, mode="phong")
    with pytest.raises(ValueError, match="needs normals"):
        shade(alb, None, light, mode="lambertian")
    with pytest.raises(ValueError, match="needs light_dir"):
        shade(alb, n, None, mode="textureless")


def test_fit_reduces_error_without_retracing():
    from anchorhoi_jax.geometry.cameras import orbit_cameras
    from anchorhoi_jax.render.volume import RenderConfig, render_nerf_views

    cfg_true = nerf_field.FieldConfig(**{**CFG.__dict__, "blob_density": 6.0, "blob_radius": 0.3})
    cams = orbit_cameras(3, height=6, width=6, distance=2.5)
    rc = RenderConfig(n_coarse=6, n_fine=6)
    # Jitted: an eager (op-by-op) render of the target costs several times the whole fit on CPU.
    gt = jax.jit(lambda p: render_nerf_views(p, cfg_true, cams, None, render_cfg=rc))(
        nerf_field.init(jax.random.key(9), cfg_true))
    rays = nerf_fit.rays_from_views(cams, gt["rgb"], gt["alpha"])
    cfg = nerf_field.FieldConfig(**{**CFG.__dict__, "blob_density": 0.0})
    opt = nerf_fit.default_optimizer(1e-2, 45)
    state = nerf_fit.init_fit(jax.random.key(1), cfg, opt)
    run = jax.jit(chex.assert_max_traces(nerf_fit.make_fit_step(cfg, rc, opt, n_rays=64, steps_per_call=15), n=1))
    chex.clear_trace_counter()
    target = gt["rgb"] + (1.0 - gt["alpha"])[..., None]  # over white
    err = jax.jit(lambda p: jnp.mean((render_nerf_views(p, cfg, cams, None, render_cfg=rc, background=1.0)["rgb"]
                                      - target) ** 2))
    first = float(err(state.params))
    for _ in range(3):
        state, m = run(state, rays)
    assert int(state.step) == 45
    assert float(err(state.params)) < 0.5 * first


def test_bad_field_configs():
    with pytest.raises(ValueError, match="density_activation must be"):
        nerf_field.FieldConfig(density_activation="relu")
    with pytest.raises(ValueError, match="bound must be > 0"):
        nerf_field.FieldConfig(bound=0.0)
    with pytest.raises(ValueError, match="max_resolution must be >= base_resolution"):
        nerf_field.FieldConfig(base_resolution=64, max_resolution=16)


def test_ray_batch_pixel_jitter_stays_inside_the_pixel():
    from anchorhoi_jax.geometry.cameras import orbit_cameras, project

    cams = orbit_cameras(2, height=4, width=5, distance=2.0, elevation_deg=25.0)
    rays = nerf_fit.rays_from_views(cams, jnp.zeros((2, 4, 5, 3)), jnp.zeros((2, 4, 5)))
    d_unit = rays.d_raw / jnp.linalg.norm(rays.d_raw, axis=-1, keepdims=True)
    onp.testing.assert_allclose(onp.asarray(d_unit), onp.asarray(rays.directions), atol=1e-6)
    cam0 = jax.tree.map(lambda a: a[0], cams)
    corner = rays.d_raw[:20] + 0.5 * rays.du[:20] + 0.5 * rays.dv[:20]  # the pixel's lower-right corner
    uv, _ = project(cam0.K, cam0.T_cam_world, rays.origins[:20] + corner)
    u, v = onp.meshgrid(onp.arange(5) + 1.0, onp.arange(4) + 1.0)
    onp.testing.assert_allclose(onp.asarray(uv).reshape(4, 5, 2), onp.stack([u, v], -1), atol=1e-4)
