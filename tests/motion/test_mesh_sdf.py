"""geometry/mesh.py and geometry/sdf.py against float64 NumPy oracles."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest
from synthetic_scenes import box_mesh

from anchorhoi_jax.geometry.mesh import (
    MeshError, check_mesh, face_areas, farthest_point_sampling, sample_surface, vertex_normals,
)
from anchorhoi_jax.geometry.sdf import sample_sdf, sdf_grid_from_mesh, signed_distance

SIZE = onp.array([0.4, 0.3, 0.2])


def box_sdf64(p, size=SIZE):
    """Exact signed distance of an axis-aligned box centred at 0 (float64)."""
    q = onp.abs(p) - 0.5 * size
    out = onp.linalg.norm(onp.maximum(q, 0.0), axis=-1)
    return out + onp.minimum(q.max(-1), 0.0)


def test_box_passes_and_bad_meshes_fail_with_one_line():
    v, f = box_mesh(SIZE)
    check_mesh(v, f)
    with pytest.raises(MeshError, match="not watertight, 3 boundary edges"):
        check_mesh(v, f[:-1])
    with pytest.raises(MeshError, match="oriented inward"):
        check_mesh(v, f[:, ::-1])
    vd = v.copy()
    vd[1] = vd[0]
    with pytest.raises(MeshError, match="degenerate, .* zero-area faces"):
        check_mesh(vd, f)
    with pytest.raises(MeshError, match="NaN or inf"):
        check_mesh(onp.where(onp.arange(8)[:, None] == 3, onp.nan, v), f)
    with pytest.raises(MeshError, match="out of range"):
        check_mesh(v, onp.where(f == 7, 8, f))
    with pytest.raises(MeshError, match="non-manifold or flipped"):
        check_mesh(v, onp.concatenate([f, f[:1]]))


def test_signed_distance_exact_vs_numpy():
    v, f = box_mesh(SIZE)
    p = onp.random.default_rng(0).uniform(-0.4, 0.4, (500, 3))
    sd = onp.asarray(signed_distance(jnp.asarray(p, jnp.float32), v, f))
    onp.testing.assert_allclose(sd, box_sdf64(p), atol=2e-6)


def test_grid_sampling_and_gradient():
    v, f = box_mesh(SIZE)
    grid = sdf_grid_from_mesh(v, f, resolution=48, padding=0.1)
    p = onp.random.default_rng(1).uniform(-0.3, 0.3, (300, 3))
    s = onp.asarray(sample_sdf(grid, jnp.asarray(p, jnp.float32)))
    # Trilinear interpolation of a 1-Lipschitz field: error below one cell diagonal.
    assert onp.abs(s - box_sdf64(p)).max() < float(jnp.linalg.norm(grid.spacing))
    # Off the medial axis the SDF is linear in a cell, so gradients match finite differences.
    x = jnp.array([0.17, 0.01, 0.02], jnp.float32)
    g = jax.grad(lambda q: sample_sdf(grid, q))(x)
    eps = 1e-3
    fd = [(sample_sdf(grid, x.at[i].add(eps)) - sample_sdf(grid, x.at[i].add(-eps))) / (2 * eps) for i in range(3)]
    onp.testing.assert_allclose(onp.asarray(g), onp.asarray(fd), atol=2e-2)
    onp.testing.assert_allclose(onp.asarray(g), [1.0, 0.0, 0.0], atol=2e-2)
    # Far outside: positive, growing, gradient pointing away.
    far = jnp.array([2.0, 0.0, 0.0], jnp.float32)
    assert float(sample_sdf(grid, far)) == pytest.approx(1.8, abs=2e-2)
    assert float(jax.grad(lambda q: sample_sdf(grid, q))(far)[0]) > 0.9


def test_fps_matches_numpy_greedy():
    p = onp.random.default_rng(2).normal(size=(400, 3)).astype(onp.float32)
    idx = onp.asarray(farthest_point_sampling(jnp.asarray(p), 32))
    ref = [0]
    dmin = onp.full(400, onp.inf)
    for _ in range(31):
        dmin = onp.minimum(dmin, ((p.astype(onp.float64) - p[ref[-1]]) ** 2).sum(1))
        ref.append(int(onp.argmax(dmin)))
    assert idx.tolist() == ref
    with pytest.raises(ValueError, match="asked for 401 points from 400"):
        farthest_point_sampling(jnp.asarray(p), 401)


def test_surface_samples_lie_on_surface_with_outward_normals():
    v, f = box_mesh(SIZE)
    pts, nrm, _ = sample_surface(jnp.asarray(v, jnp.float32), jnp.asarray(f), 2000, key=jax.random.key(0))
    assert onp.abs(box_sdf64(onp.asarray(pts, onp.float64))).max() < 1e-5
    # Outward: stepping along the normal leaves the box.
    assert (box_sdf64(onp.asarray(pts + 0.01 * nrm, onp.float64)) > 0.009).all()
    # Area weighting: the share of samples on the two ±x faces ≈ their share of area.
    on_x = onp.isclose(onp.abs(onp.asarray(pts)[:, 0]), 0.2, atol=1e-5).mean()
    area_x = 2 * 0.3 * 0.2 / (2 * (0.4 * 0.3 + 0.4 * 0.2 + 0.3 * 0.2))
    assert abs(on_x - area_x) < 0.04
    assert float(face_areas(jnp.asarray(v), jnp.asarray(f)).sum()) == pytest.approx(2 * (0.12 + 0.08 + 0.06), rel=1e-5)
    n = onp.asarray(vertex_normals(jnp.asarray(v, jnp.float32), jnp.asarray(f)))
    assert (onp.sum(n * v, -1) > 0).all()  # corner normals point away from the centre
