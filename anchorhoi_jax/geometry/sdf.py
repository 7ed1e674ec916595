"""Signed distance of a rigid mesh: a grid precomputed once, trilinear sampling in JAX with gradients.

The object geometry Φ is fixed during motion synthesis (paper Sec. 4), so its signed distance is
tabulated once in the object frame; L_pen (Eq. 4) then samples it at posed human vertices moved
into that frame. Sign: negative inside (generalised winding number > 1/2, Jacobson et al. 2013),
magnitude: exact point-to-triangle distance at every grid node.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from jaxtyping import Array, Float, Int

HIGHEST = jax.lax.Precision.HIGHEST


@struct.dataclass
class SDFGrid:
    """Signed distances on a regular grid (object frame). values[i, j, k] at origin + (i, j, k)·spacing."""

    values: Float[Array, "R R R"]
    origin: Float[Array, "3"]
    spacing: Float[Array, "3"]
    # Optional gather layout of `values` for the L_pen kernel (kernels/sdf.corner_table: each cell's 8 corners side
    # by side), built once with the grid (`with_corner_table`) instead of once per Adam step inside the jitted loop
    # (XLA does not hoist the 8× larger table out of the while loop). None: the kernel builds it from `values`.
    corners: Float[Array, "cells8"] | None = None


def _point_segment_sq(p, a, b):
    ab = b - a
    t = jnp.clip(jnp.sum((p - a) * ab, -1) / jnp.maximum(jnp.sum(ab * ab, -1), 1e-30), 0.0, 1.0)
    d = p - (a + t[..., None] * ab)
    return jnp.sum(d * d, -1)


def point_triangle_distance(
    p: Float[Array, "*n 3"], a: Float[Array, "*n 3"], b: Float[Array, "*n 3"], c: Float[Array, "*n 3"]
) -> Float[Array, "*n"]:
    """Unsigned Euclidean distance from p to triangle (a, b, c): the plane distance when the
    projection falls inside the triangle, else the distance to the nearest edge."""
    n = jnp.cross(b - a, c - a)
    nn = jnp.maximum(jnp.sum(n * n, -1), 1e-30)
    s = jnp.sum((p - a) * n, -1)
    q = p - (s / nn)[..., None] * n
    inside = (
        (jnp.sum(jnp.cross(b - a, q - a) * n, -1) >= 0)
        & (jnp.sum(jnp.cross(c - b, q - b) * n, -1) >= 0)
        & (jnp.sum(jnp.cross(a - c, q - c) * n, -1) >= 0)
    )
    d_plane = s * s / nn
    d_edge = jnp.minimum(jnp.minimum(_point_segment_sq(p, a, b), _point_segment_sq(p, b, c)), _point_segment_sq(p, c, a))
    return jnp.sqrt(jnp.where(inside, d_plane, d_edge))


def winding_number(points: Float[Array, "N 3"], vertices: Float[Array, "V 3"], faces: Int[Array, "F 3"]) -> Float[Array, "N"]:
    """Generalised winding number: Σ_f Ω_f(p) / 4π, with the solid angle of Van Oosterom & Strackee (1983)."""
    tri = vertices[faces][None] - points[:, None, None, :]  # (N, F, 3, 3)
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    la, lb, lc = (jnp.linalg.norm(x, axis=-1) for x in (a, b, c))
    det = jnp.sum(a * jnp.cross(b, c), -1)
    den = la * lb * lc + jnp.sum(a * b, -1) * lc + jnp.sum(b * c, -1) * la + jnp.sum(c * a, -1) * lb
    return jnp.sum(2.0 * jnp.arctan2(det, den), -1) / (4.0 * jnp.pi)


@jax.jit
def _signed_distance_chunk(points, vertices, faces):
    tri = vertices[faces]
    d = point_triangle_distance(points[:, None], tri[None, :, 0], tri[None, :, 1], tri[None, :, 2])
    w = winding_number(points, vertices, faces)
    return jnp.where(w > 0.5, -1.0, 1.0) * jnp.min(d, -1)


def signed_distance(
    points: Float[Array, "N 3"], vertices: Float[Array, "V 3"], faces: Int[Array, "F 3"], *, chunk: int = 4096
) -> Float[Array, "N"]:
    """Exact signed distance (negative inside) of query points to a closed mesh, evaluated in chunks
    so that the (chunk, F) intermediate stays small. Host-side precomputation, not differentiated."""
    points = jnp.asarray(points, jnp.float32)
    vertices = jnp.asarray(vertices, jnp.float32)
    faces = jnp.asarray(faces, jnp.int32)
    # Keep chunk·F bounded (~16M pair evaluations per call) for big meshes.
    chunk = max(64, min(chunk, int(16_000_000 // max(faces.shape[0], 1))))
    n = points.shape[0]
    pad = (-n) % chunk
    pts = jnp.concatenate([points, jnp.broadcast_to(points[:1], (pad, 3))], 0) if pad else points
    out = [_signed_distance_chunk(pts[i : i + chunk], vertices, faces) for i in range(0, pts.shape[0], chunk)]
    return jnp.concatenate(out)[:n]


def sdf_grid_from_mesh(
    vertices: Float[Array, "V 3"], faces: Int[Array, "F 3"], *, resolution: int = 64, padding: float = 0.1,
    corner_table: bool = False,
) -> SDFGrid:
    """Tabulate the signed distance of a closed mesh on a resolution³ grid over its padded bounding cube.

    `padding` (metres) extends the box on every side, so that human vertices approaching the object
    read true distances; outside the grid `sample_sdf` extrapolates conservatively. `corner_table`:
    also store the L_pen kernel's gather table (`with_corner_table`; 8× the grid's memory).
    """
    vertices = jnp.asarray(vertices, jnp.float32)
    lo = vertices.min(0) - padding
    hi = vertices.max(0) + padding
    spacing = (hi - lo) / (resolution - 1)
    ax = [lo[i] + spacing[i] * jnp.arange(resolution, dtype=jnp.float32) for i in range(3)]
    grid = jnp.stack(jnp.meshgrid(*ax, indexing="ij"), -1).reshape(-1, 3)
    vals = signed_distance(grid, vertices, faces).reshape(resolution, resolution, resolution)
    grid = SDFGrid(values=vals, origin=lo, spacing=spacing)
    return with_corner_table(grid) if corner_table else grid


def with_corner_table(grid: SDFGrid) -> SDFGrid:
    """`grid` with `corners` = kernels/sdf.corner_table(grid.values) (rebuilt: call it again after changing values)."""
    from anchorhoi_jax.kernels.sdf import corner_table

    return grid.replace(corners=corner_table(jnp.asarray(grid.values, jnp.float32)))


def sample_sdf(grid: SDFGrid, points: Float[Array, "*n 3"]) -> Float[Array, "*n"]:
    """Trilinear interpolation of the grid at points (object frame); differentiable in the points.

    Points outside the grid are clamped onto its boundary and the distance to the boundary is
    added: positive and growing away from the object, so gradients still point outward.
    """
    return sample_sdf_xyz(grid, points[..., 0], points[..., 1], points[..., 2])


# How `sample_sdf_xyz` is differentiated: "fused" (default) computes each point's value and its three partial
# derivatives in one pass over the 8 gathered corners (a custom VJP; the backward is then 3 multiplies that fuse
# into their consumer) | "autodiff" (JAX differentiates the trilinear gathers; the backward re-reads the corners).
# Same values; gradients equal to float32 rounding (tests/motion/test_speed_s8.py). Read at trace time.
SDF_GRAD_IMPL = "fused"


def sample_sdf_xyz(grid: SDFGrid, x: Float[Array, "*n"], y: Float[Array, "*n"], z: Float[Array, "*n"]) -> Float[Array, "*n"]:
    """`sample_sdf` with the points given as three coordinate arrays (structure of arrays).

    Why: every intermediate is then a plain (*n) array, and the reductions the backward needs over
    the points (e.g. the gradient of an object translation applied to N points) are reductions over
    the minor axis. With (*n, 3) points XLA fused that reduction with the trilinear backward into one
    kernel reducing the middle axis of (frames, N, 3): 1.9 of 5.9 ms per Adam step for 8 seeds on the
    H100 (benchmarks/results/motion_speed_s4.md)."""
    with jax.named_scope("geometry.sample_sdf"):
        if SDF_GRAD_IMPL == "autodiff":
            return _trilinear_xyz(grid.values, grid.origin, grid.spacing, x, y, z)
        if SDF_GRAD_IMPL != "fused":
            raise ValueError(f"geometry.sdf.SDF_GRAD_IMPL must be 'fused' or 'autodiff', got {SDF_GRAD_IMPL!r}")
        return _trilinear_fused(grid.values, grid.origin, grid.spacing, x, y, z)


def _trilinear_xyz(vals, origin, spacing, x, y, z):
    """Trilinear value of the grid at (x, y, z) plus the distance outside the grid's box (see `sample_sdf`)."""
    res = vals.shape
    f, i0 = [], []
    sq = None
    for k, c in enumerate((x, y, z)):
        uk = (c - origin[k]) / spacing[k]
        uck = jnp.clip(uk, 0.0, res[k] - 1.0)
        e = ((uk - uck) * spacing[k]) ** 2
        sq = e if sq is None else sq + e
        ik = jnp.clip(jnp.floor(uck), 0.0, res[k] - 2.0)
        f.append(uck - ik)
        i0.append(ik.astype(jnp.int32))
    # Double-where: the norm's gradient is undefined at 0, the common case (inside the grid).
    outside = jnp.where(sq > 0, jnp.sqrt(jnp.where(sq > 0, sq, 1.0)), 0.0)
    flat = vals.reshape(-1)
    base = (i0[0] * res[1] + i0[1]) * res[2] + i0[2]
    acc = jnp.zeros(x.shape, x.dtype)
    for dx in (0, 1):
        wx = f[0] if dx else 1.0 - f[0]
        for dy in (0, 1):
            wy = f[1] if dy else 1.0 - f[1]
            for dz in (0, 1):
                wz = f[2] if dz else 1.0 - f[2]
                acc = acc + wx * wy * wz * flat[base + ((dx * res[1] + dy) * res[2] + dz)]
    return acc + outside


@jax.custom_vjp
def _trilinear_fused(vals, origin, spacing, x, y, z):
    return _trilinear_xyz(vals, origin, spacing, x, y, z)


def _trilinear_fused_fwd(vals, origin, spacing, x, y, z):
    # The function is pointwise in (x, y, z), so the VJP of a ones cotangent is each point's partials: computed
    # here next to the value from the same gathered corners (XLA fuses both into one pass), kept as residuals.
    val, vjp = jax.vjp(lambda a, b, c: _trilinear_xyz(vals, origin, spacing, a, b, c), x, y, z)
    return val, (vals, origin, spacing, x, y, z, vjp(jnp.ones_like(val)))


def _trilinear_fused_bwd(res, g):
    vals, origin, spacing, x, y, z, (gx, gy, gz) = res
    # The grid's own cotangents (never needed by the motion step: XLA drops them there) by plain autodiff.
    _, vjp_grid = jax.vjp(lambda v, o, s: _trilinear_xyz(v, o, s, x, y, z), vals, origin, spacing)
    return (*vjp_grid(g), g * gx, g * gy, g * gz)


_trilinear_fused.defvjp(_trilinear_fused_fwd, _trilinear_fused_bwd)
