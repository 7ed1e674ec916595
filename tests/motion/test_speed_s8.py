"""Session-8 motion speed paths: the object-SDF penetration kernel (kernels/sdf.py, Pallas interpreter on CPU) and
the fused-derivative SDF sampling (geometry/sdf.SDF_GRAD_IMPL) against the JAX reference: same value, same gradient."""

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.geometry import sdf as sdf_mod
from anchorhoi_jax.geometry.rotations import axis_angle_to_matrix
from anchorhoi_jax.kernels import sdf as sdf_kernel
from anchorhoi_jax.losses.penetration import object_sdf_penetration_world


def _grid(key, res=(9, 10, 11)):
    # A ball's signed distance plus noise: points inside (negative), near and outside the grid's box all occur.
    ax = [jnp.linspace(-0.5, 0.5, r) for r in res]
    X, Y, Z = jnp.meshgrid(*ax, indexing="ij")
    vals = jnp.sqrt(X**2 + Y**2 + Z**2) - 0.3 + 0.02 * jax.random.normal(key, res)
    spacing = jnp.asarray([1.0 / (r - 1) for r in res], jnp.float32)
    return sdf_mod.SDFGrid(values=vals.astype(jnp.float32), origin=jnp.full((3,), -0.5, jnp.float32), spacing=spacing)


def _frames(key, frames=3, n=300):
    k1, k2, k3 = jax.random.split(key, 3)
    pts = jax.random.uniform(k1, (frames, n, 3), minval=-0.8, maxval=0.8)
    R = jax.vmap(axis_angle_to_matrix)(0.5 * jax.random.normal(k2, (frames, 3)))
    t = 0.1 * jax.random.normal(k3, (frames, 3))
    return pts, R, t


def _loss(impl, grid, margin):
    def f(pts, R, t):
        old = sdf_kernel.PEN_IMPL
        sdf_kernel.PEN_IMPL = impl
        try:
            per_frame = jax.vmap(lambda p, r, tt: object_sdf_penetration_world(p, r, tt, grid, margin=margin)[0])
            v = per_frame(pts, R, t)
            return jnp.sum(jnp.sin(3.0 * v) + v)
        finally:
            sdf_kernel.PEN_IMPL = old
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))


def test_sdf_penetration_kernel_matches_reference():
    margin = 0.01
    grid = _grid(jax.random.key(0))
    pts, R, t = _frames(jax.random.key(1), frames=2, n=200)
    v_ref, g_ref = _loss("xla", grid, margin)(pts, R, t)
    assert float(v_ref) > 0  # some points penetrate: the test sees non-zero gradients
    # The default 8-corners-per-cell gather table, built once with the grid (SDFGrid.corners, as prepare_motion_data).
    v_k, g_k = _loss("interpret", sdf_mod.with_corner_table(grid), margin)(pts, R, t)
    assert abs(float(v_k) - float(v_ref)) <= 1e-5 * abs(float(v_ref))
    for a, b in zip(g_k, g_ref):
        scale = float(jnp.max(jnp.abs(b)))
        assert scale > 0
        onp.testing.assert_allclose(onp.asarray(a), onp.asarray(b), atol=1e-5 * scale, rtol=0)
    # (The plain-grid gather layout, PEN_CORNERS = False, is compared in the GPU test below.)


def test_sdf_penetration_kernel_bad_block():
    with pytest.raises(ValueError, match="block must be a power of two"):
        sdf_kernel.sdf_penetration_pallas(*(jnp.zeros(4),) * 3, jnp.eye(3), jnp.zeros(3), jnp.zeros((2, 2, 2)),
                                          jnp.zeros(3), jnp.ones(3), 0.0, interpret=True, block=48)


def test_sdf_corner_table_given_once():
    grid = _grid(jax.random.key(9), res=(3, 4, 5))
    g2 = sdf_mod.with_corner_table(grid)
    assert g2.corners.shape == (8 * 2 * 3 * 4,)
    # corner (dx, dy, dz) of cell (i, j, k) at 8·cell + 4dx + 2dy + dz
    assert float(g2.corners[8 * ((1 * 3 + 2) * 4 + 3) + 4 + 1]) == float(grid.values[2, 2, 4])
    with pytest.raises(ValueError, match=r"corner table must have shape \(192,\)"):
        sdf_kernel.sdf_penetration_pallas(*(jnp.zeros(4),) * 3, jnp.eye(3), jnp.zeros(3), grid.values, grid.origin,
                                          grid.spacing, 0.0, interpret=True, table=jnp.zeros(10))


def test_sdf_fused_derivative_matches_autodiff():
    grid = _grid(jax.random.key(2))
    pts = jax.random.uniform(jax.random.key(3), (2, 100, 3), minval=-0.9, maxval=0.9)

    def run(impl):
        old = sdf_mod.SDF_GRAD_IMPL
        sdf_mod.SDF_GRAD_IMPL = impl
        try:
            f = lambda p: jnp.sum(jnp.sin(3.0 * jax.vmap(lambda q: sdf_mod.sample_sdf(grid, q))(p)))  # noqa: E731
            return jax.jit(jax.value_and_grad(f))(pts)
        finally:
            sdf_mod.SDF_GRAD_IMPL = old

    (v0, gp0), (v1, gp1) = run("autodiff"), run("fused")
    assert float(v0) == float(v1)
    onp.testing.assert_allclose(onp.asarray(gp1), onp.asarray(gp0), atol=1e-5 * float(jnp.max(jnp.abs(gp0))), rtol=0)


def test_sdf_grad_impl_unknown():
    grid = _grid(jax.random.key(4))
    old = sdf_mod.SDF_GRAD_IMPL
    sdf_mod.SDF_GRAD_IMPL = "nope"
    try:
        with pytest.raises(ValueError, match="SDF_GRAD_IMPL must be"):
            sdf_mod.sample_sdf(grid, jnp.zeros((2, 3)))
    finally:
        sdf_mod.SDF_GRAD_IMPL = old


def test_sdf_penetration_kernel_lowers_to_triton():
    grid = _grid(jax.random.key(5))
    pts, R, t = _frames(jax.random.key(6), frames=2, n=100)
    f = jax.jit(jax.grad(lambda p, r, tt: jnp.sum(jax.vmap(
        lambda a, b, c: sdf_kernel.sdf_penetration(a[:, 0], a[:, 1], a[:, 2], b, c, grid.values, grid.origin,
                                                   grid.spacing, 0.0))(p, r, tt))))
    assert f.trace(pts, R, t).lower(lowering_platforms=("cuda",)).as_text().count("xla.gpu.triton") == 1


@pytest.mark.gpu
def test_sdf_penetration_triton_kernel_matches_reference_on_gpu():
    """The compiled Triton kernel (not the interpreter) with penetrating points, both gather layouts, the corner
    table built in the step or given with the grid (device only)."""
    grid = _grid(jax.random.key(7), res=(64, 64, 64))
    pts, R, t = _frames(jax.random.key(8), frames=16, n=2048)
    v_ref, g_ref = _loss("xla", grid, 0.01)(pts, R, t)
    assert float(v_ref) > 0
    for corners, g in ((True, grid), (False, grid), (True, sdf_mod.with_corner_table(grid))):
        old = sdf_kernel.PEN_CORNERS
        sdf_kernel.PEN_CORNERS = corners
        try:
            v_k, g_k = _loss("pallas", g, 0.01)(pts, R, t)
        finally:
            sdf_kernel.PEN_CORNERS = old
        assert abs(float(v_k) - float(v_ref)) <= 1e-5 * abs(float(v_ref))
        for a, b in zip(g_k, g_ref):
            onp.testing.assert_allclose(onp.asarray(a), onp.asarray(b), atol=1e-5 * float(jnp.max(jnp.abs(b))), rtol=0)
