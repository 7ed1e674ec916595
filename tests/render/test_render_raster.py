"""Mesh rasterizer: oracles against float64 NumPy, finite-difference gradients, fitting, vmap, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import optax
import pytest

from anchorhoi_jax.geometry.cameras import orbit_cameras, project
from anchorhoi_jax.render import raster
from anchorhoi_jax.render.raster import downsample, supersampled_camera, vertex_normals

from render_helpers import camera, stack, uv_sphere

# jit once per static configuration: eager dispatch of the two passes is slow on CPU.
rasterize = jax.jit(raster.rasterize, static_argnames=("mode", "sigma", "cull_backfaces", "near", "far",
                                                      "max_fragments"))
rasterize_views = jax.jit(raster.rasterize_views, static_argnames=("mode", "sigma", "background"))

TRI = onp.array([[-0.5, -0.4, 0.0], [0.6, -0.5, 0.0], [0.1, 0.55, 0.0]], onp.float32)
COL = onp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], onp.float32)


def _np_tri_reference(tri_uv, z, cols, H, W):
    """float64 point-in-triangle, perspective-correct colour and depth at pixel centres."""
    cov = onp.zeros((H, W), bool)
    rgb = onp.zeros((H, W, 3))
    dep = onp.zeros((H, W))
    a, b, c = tri_uv.astype(onp.float64)
    area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    for y in range(H):
        for x in range(W):
            p = onp.array([x + 0.5, y + 0.5])
            w0 = ((b[0] - p[0]) * (c[1] - p[1]) - (b[1] - p[1]) * (c[0] - p[0])) / area
            w1 = ((c[0] - p[0]) * (a[1] - p[1]) - (c[1] - p[1]) * (a[0] - p[0])) / area
            w = onp.array([w0, w1, 1 - w0 - w1])
            if (w >= 0).all():
                cov[y, x] = True
                pc = w / z
                dep[y, x] = 1.0 / pc.sum()
                rgb[y, x] = (pc / pc.sum()) @ cols
    return cov, rgb, dep


def test_hard_single_triangle_matches_numpy():
    cam = camera(eye=(0.3, 0.2, 2.5), size=24)
    out = rasterize(jnp.asarray(TRI), jnp.array([[0, 1, 2]]), jnp.asarray(COL), cam, mode="hard",
                    cull_backfaces=False)
    uv, z = project(cam.K, cam.T_cam_world, jnp.asarray(TRI))
    cov, rgb, dep = _np_tri_reference(onp.asarray(uv), onp.asarray(z, onp.float64), COL.astype(onp.float64), 24, 24)
    assert cov.sum() > 50
    onp.testing.assert_array_equal(onp.asarray(out["alpha"]) > 0.5, cov)
    onp.testing.assert_allclose(onp.asarray(out["rgb"])[cov], rgb[cov], atol=2e-5)
    onp.testing.assert_allclose(onp.asarray(out["depth"])[cov], dep[cov], rtol=1e-5)
    assert onp.all(onp.asarray(out["depth"])[~cov] == 0.0)
    n = onp.asarray(out["normal"])[cov]
    onp.testing.assert_allclose(n, onp.broadcast_to([0.0, 0.0, 1.0], n.shape), atol=1e-5)


def test_backface_culling_and_nearest_face_wins():
    cam = camera(size=16)
    back = TRI[::-1].copy()  # clockwise seen from the camera
    f = jnp.array([[0, 1, 2]])
    assert float(rasterize(jnp.asarray(back), f, jnp.asarray(COL), cam, mode="hard")["alpha"].sum()) == 0.0
    assert float(rasterize(jnp.asarray(back), f, jnp.asarray(COL), cam, mode="hard",
                           cull_backfaces=False)["alpha"].sum()) > 0.0
    # Two overlapping triangles: the nearer (z = +0.3, toward the camera at z = 3) is red everywhere it covers.
    v = onp.concatenate([TRI + [0, 0, 0.3], TRI * 1.3 - [0, 0, 0.3]]).astype(onp.float32)
    c = onp.concatenate([onp.tile([[1.0, 0, 0]], (3, 1)), onp.tile([[0, 0, 1.0]], (3, 1))]).astype(onp.float32)
    out = rasterize(jnp.asarray(v), jnp.array([[0, 1, 2], [3, 4, 5]]), jnp.asarray(c), cam, mode="hard")
    fid = onp.asarray(out["face_ids"])
    front = rasterize(jnp.asarray(v[:3]), f, jnp.asarray(c[:3]), cam, mode="hard")["alpha"] > 0.5
    assert onp.all(fid[onp.asarray(front)] == 0)
    assert onp.any(fid == 1)


def test_soft_alpha_is_continuous_and_exact_inside():
    cam = camera(size=24)
    v, f = uv_sphere()
    col = jnp.ones((v.shape[0], 3))
    hard = rasterize(jnp.asarray(v), jnp.asarray(f), col, cam, mode="hard")
    soft = rasterize(jnp.asarray(v), jnp.asarray(f), col, cam, mode="soft", sigma=1.0)
    inside = onp.asarray(hard["alpha"]) > 0.5
    onp.testing.assert_allclose(onp.asarray(soft["alpha"])[inside], 1.0)
    a = onp.asarray(soft["alpha"])[~inside]
    assert a.max() > 0.2 and a.min() == 0.0 and onp.all(a < 1.0)


def _fd_check(fun, x, eps, rtol, atol):
    g = onp.asarray(jax.grad(fun)(x))
    xn = onp.asarray(x)
    num = onp.zeros_like(xn)
    for idx in onp.ndindex(xn.shape):
        e = onp.zeros_like(xn)
        e[idx] = eps
        num[idx] = (float(fun(jnp.asarray(xn + e))) - float(fun(jnp.asarray(xn - e)))) / (2 * eps)
    onp.testing.assert_allclose(g, num, rtol=rtol, atol=atol)
    return g


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_gradients_match_finite_differences(mode):
    with jax.enable_x64(True):
        cam = camera(eye=(0.4, 0.3, 2.5), size=20, dtype=jnp.float64)
        v, f = uv_sphere(6, 8, radius=0.6)
        v = jnp.asarray(v, jnp.float64)
        f = jnp.asarray(f)
        rng = onp.random.default_rng(0)
        col = jnp.asarray(rng.uniform(0.2, 0.9, (v.shape[0], 3)))
        w_rgb = jnp.asarray(rng.normal(size=(20, 20, 3)))
        w_a = jnp.asarray(rng.normal(size=(20, 20)))

        def loss_t(t):  # global translation: moves silhouettes and interior barycentrics
            out = rasterize(v + t[None], f, col, cam, mode=mode, sigma=1.5, background=0.3)
            return jnp.sum(out["rgb"] * w_rgb) + jnp.sum(out["alpha"] * w_a)

        def loss_c(c):
            return jnp.sum(rasterize(v, f, c, cam, mode=mode, sigma=1.5, background=0.3)["rgb"] * w_rgb)

        if mode == "soft":
            g = _fd_check(loss_t, jnp.array([0.01, -0.02, 0.03]), 1e-6, rtol=1e-3, atol=1e-4)
            assert onp.abs(g).max() > 1.0  # silhouettes move: a real, non-trivial gradient
        # Colours enter linearly: the gradient is exact for any step.
        g_c = jax.grad(loss_c)(col)
        e = jnp.zeros_like(col).at[5, 1].set(1.0)
        assert abs(float(loss_c(col + e) - loss_c(col)) - float(g_c[5, 1])) < 1e-8


def test_soft_fitting_recovers_translation_and_colours():
    v, f = uv_sphere(8, 12, radius=0.5)
    v, f = jnp.asarray(v), jnp.asarray(f)
    rng = onp.random.default_rng(1)
    col_true = jnp.asarray(rng.uniform(0.1, 0.9, (v.shape[0], 3)), jnp.float32)
    t_true = jnp.array([0.08, -0.05, 0.06])
    cams = orbit_cameras(4, height=16, width=16, distance=3.0, elevation_deg=20.0, fov_deg=35.0)
    kw = dict(mode="soft", sigma=1.0, background=0.5)
    gt = rasterize_views(v + t_true[None], f, col_true, cams, **kw)["rgb"]
    params = dict(t=jnp.zeros(3), c=jnp.full_like(col_true, 0.5))
    opt = optax.adam(2e-2)

    @jax.jit
    def step(p, s):
        def loss(p):
            return jnp.mean((rasterize_views(v + p["t"][None], f, p["c"], cams, **kw)["rgb"] - gt) ** 2)

        l, g = jax.value_and_grad(loss)(p)
        u, s = opt.update(g, s)
        return optax.apply_updates(p, u), s, l

    s = opt.init(params)
    for _ in range(120):
        params, s, l = step(params, s)
    assert float(jnp.linalg.norm(params["t"] - t_true)) < 0.01
    vis = onp.asarray(jnp.abs(params["c"] - 0.5).sum(-1) > 0)  # vertices seen at all
    assert float(jnp.mean(jnp.abs(params["c"] - col_true)[vis])) < 0.08


def test_vmapped_seeds_equal_looped():
    v, f = uv_sphere()
    v, f = jnp.asarray(v), jnp.asarray(f)
    offs = jnp.array([[0.0, 0.0, 0.0], [0.1, -0.05, 0.0], [-0.1, 0.1, 0.2]])
    cams = orbit_cameras(1, height=12, width=12, distance=3.0)
    col = jnp.tile(jnp.array([[0.2, 0.5, 0.9]]), (v.shape[0], 1))
    fn = lambda o: rasterize_views(v + o[None], f, col, cams, mode="soft")["rgb"]  # noqa: E731
    batched = jax.vmap(fn)(offs)
    looped = jnp.stack([fn(o) for o in offs])
    onp.testing.assert_allclose(onp.asarray(batched), onp.asarray(looped), atol=1e-6)


def test_vertex_normals_and_supersampling():
    v, f = uv_sphere(10, 16)
    n = onp.asarray(vertex_normals(jnp.asarray(v), jnp.asarray(f)))
    radial = v / onp.linalg.norm(v, axis=-1, keepdims=True)
    assert onp.min(onp.sum(n * radial, -1)) > 0.95
    cam = camera(size=16)
    big = supersampled_camera(cam, 2)
    assert big.height == 32 and float(big.K[0, 0]) == pytest.approx(2 * float(cam.K[0, 0]))
    img = jnp.arange(2 * 4 * 4 * 1, dtype=jnp.float32).reshape(2, 4, 4, 1)
    onp.testing.assert_allclose(onp.asarray(downsample(img, 2))[0, 0, 0, 0], (0 + 1 + 4 + 5) / 4)


def test_bad_inputs():
    cam = camera(size=8)
    v, f, c = jnp.asarray(TRI), jnp.array([[0, 1, 2]]), jnp.asarray(COL)
    rasterize, rasterize_views = raster.rasterize, raster.rasterize_views
    with pytest.raises(ValueError, match="mode must be 'soft' or 'hard'"):
        rasterize(v, f, c, cam, mode="wire")
    with pytest.raises(ValueError, match=r"vertices must be \(V, 3\)"):
        rasterize(v[:, :2], f, c, cam)
    with pytest.raises(ValueError, match=r"faces must be \(F, 3\)"):
        rasterize(v, f[:, :2], c, cam)
    with pytest.raises(ValueError, match=r"vertex_colors must be \(V, C\) with V = 3"):
        rasterize(v, f, c[:2], cam)
    with pytest.raises(ValueError, match="sigma must be a positive Python float"):
        rasterize(v, f, c, cam, sigma=0.0)
    with pytest.raises(ValueError, match="camera must be a single view"):
        rasterize(v, f, c, stack([cam, cam]))
    with pytest.raises(ValueError, match="cameras must carry a leading view axis"):
        rasterize_views(v, f, c, cam)
