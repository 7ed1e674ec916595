"""Mesh + NeRF compositing (occlusion, weights ≤ 1) and marching-cubes extraction / export."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.geometry.cameras import orbit_cameras
from anchorhoi_jax.nerf import field as nerf_field
from anchorhoi_jax.render.composite import render_mesh_and_nerf
from anchorhoi_jax.render.extract import density_grid, export_mesh, extract_mesh
from anchorhoi_jax.render.volume import RenderConfig

CFG = nerf_field.FieldConfig(n_levels=4, log2_table_size=10, base_resolution=4, max_resolution=32, hidden=16,
                             geo_features=7, bound=1.0, blob_density=14.0, blob_radius=0.3)


@pytest.fixture(scope="module")
def params():
    """Built once per module, init jitted (eager init dispatches hundreds of tiny ops on CPU)."""
    p = jax.jit(nerf_field.init, static_argnums=1)(jax.random.key(0), CFG)
    # Zero the last density layer so the field is exactly the blob: σ = exp(−6 + 14 exp(−|x|²/0.18)),
    # e^8 at the centre and e^−6 (empty) far from it.
    p["d2"]["kernel"].value = jnp.zeros_like(p["d2"]["kernel"].value)
    p["d2"]["bias"].value = jnp.zeros_like(p["d2"]["bias"].value).at[0].set(-6.0)
    return p


def test_mesh_occludes_field_behind_it_and_alpha_at_most_one(params):
    cam = jax.tree.map(lambda a: a[0], orbit_cameras(1, height=16, width=16, distance=3.0, elevation_deg=0.0))
    # A red quad at z = +0.8 (between the camera at z = 3 and the blob), covering the left half of the view.
    v = jnp.array([[-2.0, -2.0, 0.8], [0.0, -2.0, 0.8], [0.0, 2.0, 0.8], [-2.0, 2.0, 0.8]])
    f = jnp.array([[0, 1, 2], [0, 2, 3]])
    c = jnp.tile(jnp.array([[1.0, 0.0, 0.0]]), (4, 1))
    rc = RenderConfig(n_coarse=16, n_fine=16)
    render = jax.jit(lambda p, v: render_mesh_and_nerf(p, CFG, v, f, c, cam, None, render_cfg=rc,
                                                       raster_mode="hard", background=1.0))
    out = render(params, v)
    covered = onp.asarray(out["mesh_alpha"]) > 0.5
    assert covered[:, :7].all() and not covered[:, 9:].any()
    onp.testing.assert_allclose(onp.asarray(out["nerf_alpha"])[covered], 0.0, atol=1e-3)  # blob hidden
    onp.testing.assert_allclose(onp.asarray(out["rgb"])[covered], onp.broadcast_to([1.0, 0.0, 0.0], (covered.sum(), 3)),
                                atol=1e-3)
    assert float(out["nerf_alpha"][8, 9]) > 0.5  # the blob shows where the quad does not cover
    a = onp.asarray(out["alpha"])
    assert onp.all(a <= 1.0 + 1e-6) and onp.all(a >= 0.0)
    # A mesh *behind* the blob is covered by the field instead.
    out2 = render(params, v - jnp.array([[0.0, 0.0, 1.6]]))
    assert float(out2["nerf_alpha"][8, 6]) > 0.5 and float(out2["rgb"][8, 6, 1]) > 0.2


def test_extract_mesh_sphere_and_export(tmp_path, params):
    thr = float(onp.exp(1.0))  # σ = e where 14·exp(−r²/0.18) = 7, i.e. r = 0.3·sqrt(2 ln 2) ≈ 0.353
    v, f, col = extract_mesh(params, CFG, resolution=40, threshold=thr, chunk=8192)
    r = onp.linalg.norm(v, axis=-1)
    assert abs(r.mean() - 0.3 * onp.sqrt(2 * onp.log(2))) < 0.01
    tri = v[f]
    vol = onp.sum(onp.einsum("fi,fi->f", tri[:, 0], onp.cross(tri[:, 1], tri[:, 2]))) / 6.0
    assert vol > 0  # outward faces give a positive signed volume
    assert col.shape == v.shape and col.min() >= 0 and col.max() <= 1
    path = tmp_path / "blob.ply"
    export_mesh(str(path), v, f, col)
    import trimesh

    m = trimesh.load(str(path), process=False)
    assert m.vertices.shape == v.shape and m.faces.shape == f.shape
    g = density_grid(params, CFG, resolution=9)
    assert g.shape == (9, 9, 9) and g[4, 4, 4] == g.max()
    with pytest.raises(ValueError, match="does not cross threshold"):
        extract_mesh(params, CFG, resolution=16, threshold=1e9)
    with pytest.raises(ValueError, match="resolution must be >= 2"):
        density_grid(params, CFG, resolution=1)
