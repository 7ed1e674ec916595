"""Shape initialisation (nerf/shape_init.py): winding number vs a float64 NumPy reference and an analytic
box, occupancy grid, trilinear sampling, the density fit, and the bad-input errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.nerf import field as nerf_field
from anchorhoi_jax.nerf import shape_init as si

CFG = nerf_field.FieldConfig(n_levels=4, log2_table_size=12, base_resolution=4, max_resolution=64, hidden=16,
                             geo_features=7, blob_density=0.0)
EXT = onp.array([0.8, 1.2, 0.6])


def _box(extents=EXT, center=(0.0, 0.0, 0.0)):
    """Closed box, triangles wound outward (normals by the right-hand rule point away from the centre)."""
    c = onp.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)]) * extents + center
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = []
    for a, b, cc, d in quads:
        faces += [(a, b, cc), (a, cc, d)]
    faces = onp.array(faces)
    # orient each face outward (robust to the table above)
    cen = onp.asarray(center)
    for i, (a, b, cc) in enumerate(faces):
        n = onp.cross(c[b] - c[a], c[cc] - c[a])
        if onp.dot(n, c[[a, b, cc]].mean(0) - cen) < 0:
            faces[i] = (a, cc, b)
    return c.astype(onp.float32), faces.astype(onp.int32)


def _np_winding(v, f, p):
    v, p = v.astype(onp.float64), p.astype(onp.float64)
    out = onp.zeros(len(p))
    for a, b, c in f:
        A, B, C = v[a] - p, v[b] - p, v[c] - p
        la, lb, lc = (onp.linalg.norm(x, axis=-1) for x in (A, B, C))
        det = onp.einsum("ij,ij->i", A, onp.cross(B, C))
        den = la * lb * lc + (A * B).sum(-1) * lc + (B * C).sum(-1) * la + (C * A).sum(-1) * lb
        out += 2 * onp.arctan2(det, den)
    return out / (4 * onp.pi)


def test_winding_number_matches_numpy_and_the_box():
    v, f = _box()
    rng = onp.random.default_rng(0)
    p = rng.uniform(-0.9, 0.9, (300, 3)).astype(onp.float32)
    got = onp.asarray(si.winding_number(jnp.asarray(v), jnp.asarray(f), jnp.asarray(p), chunk=64))
    onp.testing.assert_allclose(got, _np_winding(v, f, p), atol=1e-4)
    inside = onp.all(onp.abs(p) < EXT / 2, -1)
    near = onp.any(onp.abs(onp.abs(p) - EXT / 2) < 1e-3, -1)
    onp.testing.assert_allclose(got[~near], inside[~near].astype(onp.float64), atol=1e-4)
    with pytest.raises(ValueError, match="faces must be \\(F, 3\\)"):
        si.winding_number(jnp.asarray(v), jnp.asarray(f[:, :2]), jnp.asarray(p))


def test_occupancy_grid_volume_and_trilinear_sampling():
    v, f = _box()
    R = 20
    g = si.occupancy_grid(jnp.asarray(v), jnp.asarray(f), CFG, R)
    assert g.shape == (R, R, R)
    # cell centres at +-0.95, +-0.85, ...: 8 x 12 x 6 of them inside the 0.8 x 1.2 x 0.6 box
    assert int(jnp.sum(g > 0.5)) == 8 * 12 * 6
    pts = si.grid_points(CFG, R).reshape(-1, 3)
    onp.testing.assert_allclose(si.sample_occupancy(g, CFG, pts), g.reshape(-1), atol=1e-6)
    # midway between two cell centres: the mean of the two
    x = jnp.array([[0.0, 0.05, 0.05]], jnp.float32)  # between centres -0.05 and 0.05 on x
    onp.testing.assert_allclose(si.sample_occupancy(g, CFG, x), 1.0, atol=1e-6)
    x = jnp.array([[0.4, 0.05, 0.05]], jnp.float32)  # between 0.35 (inside) and 0.45 (outside)
    onp.testing.assert_allclose(si.sample_occupancy(g, CFG, x), 0.5, atol=1e-6)
    lo, hi = si.occupied_bounds(g, CFG, pad=0.0)
    onp.testing.assert_allclose(lo, [-0.35, -0.55, -0.25], atol=1e-6)
    onp.testing.assert_allclose(hi, [0.35, 0.55, 0.25], atol=1e-6)


def test_fit_density_follows_the_shape():
    v, f = _box()
    g = si.occupancy_grid(jnp.asarray(v), jnp.asarray(f), CFG, 24)
    p0 = jax.jit(nerf_field.init, static_argnums=1)(jax.random.key(0), CFG)
    scfg = si.ShapeInitConfig(steps=150, points=2048)
    p, info = jax.jit(si.fit_density, static_argnums=(2, 4))(jax.random.key(1), p0, CFG, g, scfg)
    assert float(info["loss_last"]) < 0.1 * float(info["loss_first"])
    x_in = jnp.array([[0.0, 0.0, 0.0], [0.25, 0.4, 0.15], [-0.2, -0.45, -0.1]], jnp.float32)
    x_out = jnp.array([[0.7, 0.0, 0.0], [0.0, 0.85, 0.0], [0.0, 0.0, 0.6], [0.9, -0.9, 0.9]], jnp.float32)
    assert onp.all(onp.asarray(nerf_field.raw_density(p, CFG, x_in)) > 2.0)
    assert onp.all(onp.asarray(nerf_field.raw_density(p, CFG, x_out)) < -4.0)
    # the albedo MLP is not part of the fit
    for k in ("c1", "c2"):
        onp.testing.assert_array_equal(p[k]["kernel"][...], p0[k]["kernel"][...])


def test_raw_density_is_the_activation_input():
    cfg = nerf_field.FieldConfig(n_levels=4, log2_table_size=10, base_resolution=4, max_resolution=32, hidden=16,
                                 geo_features=7, blob_density=3.0, blob_radius=0.4)
    p = jax.jit(nerf_field.init, static_argnums=1)(jax.random.key(2), cfg)
    x = jnp.array([[0.0, 0.1, 0.0], [0.5, -0.3, 0.2]], jnp.float32)
    onp.testing.assert_allclose(nerf_field.density(p, cfg, x), jnp.exp(nerf_field.raw_density(p, cfg, x)), rtol=1e-5)


@pytest.mark.parametrize("kw, msg", [
    (dict(steps=0), "steps >= 1"),
    (dict(grid_resolution=1), "grid_resolution >= 2"),
    (dict(lr=0.0), "lr must be > 0"),
    (dict(inside=-7.0), "inside \\(-7.0\\) must exceed outside"),
])
def test_config_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        si.ShapeInitConfig(**kw)
