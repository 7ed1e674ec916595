"""Pallas (Triton) kernel for the object-SDF part of L_pen (Eq. 4): value and gradient in one pass.

The term (losses/penetration.object_sdf_penetration_world) moves N human vertices into the object frame,
samples the object's SDF grid trilinearly (geometry/sdf.sample_sdf_xyz) and sums relu(margin − sdf)².
Written in JAX, XLA split it into four kernels per Adam step (object-frame coordinates and cell indices
written out as seven (frames, N) arrays, the value with its 8 corner gathers, the backward re-gathering the
corners and reducing into R and t): 165 µs per step for 8 seeds × 120 frames × 2048 vertices on the H100
(benchmarks/results/motion_speed_s8.md). Here one program per (frame, block of points) reads the three
coordinate planes once, gathers the 8 corners once, and writes the per-point gradient planes plus the block's
partial sums [value | ∂/∂R (9) | ∂/∂t (3)]; the backward (a custom VJP in `sdf_penetration`) is then a
multiply of those planes by the term's cotangent, which XLA fuses into its consumer.

The arithmetic is the JAX reference's (geometry/sdf._trilinear_xyz, penetration.object_sdf_penetration_world)
operation for operation; the derivative is the one JAX's autodiff takes of it, written out: ∂/∂u of the clamp
is 1 strictly inside [0, R−1], ½ on its boundary (lax.max/min split ties), 0 outside; floor has none; the
outside-distance norm's is (u − u_c)·h/‖·‖ (0 at the norm's own 0, the double-where). Results agree with the
reference to float32 rounding (tests/motion/test_speed_s8.py; the compilers may contract a·b + c differently).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from anchorhoi_jax.kernels.capsules import _compiler_params, resolve_impl  # noqa: F401  (resolve_impl: callers)

# losses/penetration.object_sdf_penetration_world's implementation: "auto" (this kernel on CUDA, the JAX reference
# elsewhere) | "xla" | "pallas" | "interpret" (kernels/capsules.resolve_impl). Read at trace time.
PEN_IMPL = "auto"

_PRM = 32  # per-frame parameter row: R (9, row-major) | t (3) | origin (3) | spacing (3) | pad


def _clip_grad(u, hi):
    """d/du of min(max(u, 0), hi) as JAX differentiates it (ties split evenly)."""
    lo_g = jnp.where(u > 0.0, 1.0, jnp.where(u == 0.0, 0.5, 0.0))
    hi_g = jnp.where(u < hi, 1.0, jnp.where(u == hi, 0.5, 0.0))
    return lo_g * hi_g


def corner_table(values: Float[Array, "A B C"]) -> Float[Array, "cells8"]:
    """Each cell's 8 corner values side by side ((A−1)(B−1)(C−1) cells × 8, corner (dx, dy, dz) at 4dx + 2dy + dz):
    a point's trilinear gathers then touch one 32-byte sector instead of eight scattered ones (the kernel's
    gathers are bound by L2 sector throughput: H100, 8 seeds, 87 µs per step with the plain grid)."""
    A, B, C = values.shape
    return jnp.stack([values[dx:dx + A - 1, dy:dy + B - 1, dz:dz + C - 1]
                      for dx in (0, 1) for dy in (0, 1) for dz in (0, 1)], -1).reshape(-1)


# Gather layout of the kernel: True = `corner_table` (8 corners per cell, contiguous), False = the plain grid.
PEN_CORNERS = True
# Where the corner table comes from when the caller passes one (geometry/sdf.SDFGrid.corners, built once with the
# grid): "given" uses it; "step" ignores it and rebuilds the table from the values in the traced step (session 8's
# code, kept for the A/B in benchmarks/motion_profile.py). Read at trace time.
PEN_TABLE = "given"


def _sdf_pen_kernel(res, n, block, margin, corners, prm_ref, grid_ref, x_ref, y_ref, z_ref, gx_ref, gy_ref, gz_ref,
                    red_ref):
    from jax.experimental import pallas as pl

    p = [prm_ref[k] for k in range(18)]
    R = [[p[3 * a + b] for b in range(3)] for a in range(3)]
    t, origin, spacing = p[9:12], p[12:15], p[15:18]
    rows = pl.program_id(0) * block + jax.lax.broadcasted_iota(jnp.int32, (block,), 0)
    live = rows < n
    d = [x_ref[...] - t[0], y_ref[...] - t[1], z_ref[...] - t[2]]
    q = [R[0][i] * d[0] + R[1][i] * d[1] + R[2][i] * d[2] for i in range(3)]  # p = Rᵀ(x − t), as the reference
    u, uc, f, i0, e = [], [], [], [], []
    sq = None
    for k in range(3):
        uk = (q[k] - origin[k]) / spacing[k]
        uck = jnp.minimum(jnp.maximum(uk, 0.0), res[k] - 1.0)
        ek = ((uk - uck) * spacing[k]) ** 2
        sq = ek if sq is None else sq + ek
        ik = jnp.minimum(jnp.maximum(jnp.floor(uck), 0.0), res[k] - 2.0)
        u.append(uk)
        uc.append(uck)
        f.append(uck - ik)
        i0.append(ik.astype(jnp.int32))
    pos = sq > 0
    norm = jnp.sqrt(jnp.where(pos, sq, 1.0))
    outside = jnp.where(pos, norm, 0.0)
    if corners:
        base = ((i0[0] * (res[1] - 1) + i0[1]) * (res[2] - 1) + i0[2]) * 8
    else:
        base = (i0[0] * res[1] + i0[1]) * res[2] + i0[2]
    corner = {}
    acc = jnp.zeros((block,), jnp.float32)
    for dx in (0, 1):
        wx = f[0] if dx else 1.0 - f[0]
        for dy in (0, 1):
            wy = f[1] if dy else 1.0 - f[1]
            for dz in (0, 1):
                wz = f[2] if dz else 1.0 - f[2]
                v = grid_ref[base + ((4 * dx + 2 * dy + dz) if corners else ((dx * res[1] + dy) * res[2] + dz))]
                corner[dx, dy, dz] = v
                acc = acc + wx * wy * wz * v
    depth = jnp.maximum(margin - (acc + outside), 0.0)
    depth = jnp.where(live, depth, 0.0)
    gs = jnp.where(depth > 0, -2.0 * depth, 0.0)  # ∂(depth²)/∂sdf (relu's derivative 0 at 0)
    # ∂acc/∂f_k: differences of the corner values along k, weighted by the other two axes' weights.
    w = [(1.0 - f[k], f[k]) for k in range(3)]
    dacc = [
        sum(w[1][b] * w[2][c] * (corner[1, b, c] - corner[0, b, c]) for b in (0, 1) for c in (0, 1)),
        sum(w[0][a] * w[2][c] * (corner[a, 1, c] - corner[a, 0, c]) for a in (0, 1) for c in (0, 1)),
        sum(w[0][a] * w[1][b] * (corner[a, b, 1] - corner[a, b, 0]) for a in (0, 1) for b in (0, 1)),
    ]
    gq = []
    for k in range(3):
        ds = dacc[k] * _clip_grad(u[k], res[k] - 1.0) / spacing[k]
        ds = ds + jnp.where(pos, (u[k] - uc[k]) * spacing[k] / norm, 0.0)
        gq.append(gs * ds)
    gxw = [R[k][0] * gq[0] + R[k][1] * gq[1] + R[k][2] * gq[2] for k in range(3)]  # ∂/∂x (world) = R ∂/∂p
    for k, ref in enumerate((gx_ref, gy_ref, gz_ref)):
        ref[...] = gxw[k]
    sums = [jnp.sum(depth * depth)]
    sums += [jnp.sum(d[a] * gq[b]) for a in range(3) for b in range(3)]  # ∂/∂R[a, b] = Σ (x − t)_a ∂/∂p_b
    sums += [-jnp.sum(gxw[k]) for k in range(3)]  # ∂/∂t = −Σ ∂/∂x
    lane = jax.lax.broadcasted_iota(jnp.int32, (16,), 0)
    out = jnp.zeros((16,), jnp.float32)
    for j, s in enumerate(sums):
        out = jnp.where(lane == j, s, out)
    red_ref[...] = out


def sdf_penetration_pallas(
    x: Float[Array, "N"], y: Float[Array, "N"], z: Float[Array, "N"], R: Float[Array, "3 3"], t: Float[Array, "3"],
    values: Float[Array, "A B C"], origin: Float[Array, "3"], spacing: Float[Array, "3"], margin: float, *,
    interpret: bool = False, block: int = 512, num_warps: int = 4, corners: bool | None = None,
    table: Float[Array, "cells8"] | None = None,
):
    """Σ relu(margin − sdf(Rᵀ(x − t)))² over N world points given as coordinate planes, and its gradient.

    Returns (value (), ∂/∂(x, y, z) three (N,) planes, ∂/∂R (3, 3), ∂/∂t (3,)). `block`: points per program
    (a power of two); N is padded to a multiple of it (padding rows masked). `corners`: gather from
    `corner_table(values)` (None: PEN_CORNERS); the same values either way. `table`: that corner table, built
    by the caller once (geometry/sdf.with_corner_table); None (or PEN_TABLE "step"): built here from `values`."""
    from jax.experimental import pallas as pl

    if block & (block - 1):
        raise ValueError(f"block must be a power of two, got {block}")
    cells8 = 8 * (values.shape[0] - 1) * (values.shape[1] - 1) * (values.shape[2] - 1)
    if table is not None and table.shape != (cells8,):
        raise ValueError(f"corner table must have shape ({cells8},) for a {values.shape} grid, got {table.shape}")
    n = x.shape[0]
    n_pad = -(-n // block) * block
    planes = [jnp.pad(c.astype(jnp.float32), (0, n_pad - n)) for c in (x, y, z)]
    prm = jnp.concatenate([R.reshape(9), t, origin, spacing]).astype(jnp.float32)
    prm = jnp.pad(prm, (0, _PRM - prm.shape[0]))
    res = tuple(int(s) for s in values.shape)
    corners = PEN_CORNERS if corners is None else corners
    if not corners:
        table = values.reshape(-1)
    elif table is None or PEN_TABLE == "step":
        table = corner_table(values)
    nb = n_pad // block
    spec = pl.BlockSpec((block,), lambda i: (i,))
    full = lambda shape: pl.BlockSpec(shape, lambda i: (0,) * len(shape))  # noqa: E731
    *g, red = pl.pallas_call(
        functools.partial(_sdf_pen_kernel, res, n, block, float(margin), bool(corners)),
        out_shape=(*(jax.ShapeDtypeStruct((n_pad,), jnp.float32) for _ in range(3)),
                   jax.ShapeDtypeStruct((nb * 16,), jnp.float32)),
        grid=(nb,),
        in_specs=[full((_PRM,)), full(table.shape), spec, spec, spec],
        out_specs=(spec, spec, spec, pl.BlockSpec((16,), lambda i: (i,))),
        compiler_params=None if interpret else _compiler_params(num_warps),
        interpret=interpret,
        name="sdf_penetration",
    )(prm, table.astype(jnp.float32), *planes)
    red = jnp.sum(red.reshape(nb, 16), 0)
    return red[0], g[0][:n], g[1][:n], g[2][:n], red[1:10].reshape(3, 3), red[10:13]


@functools.partial(jax.custom_vjp, nondiff_argnums=(8, 9))
def sdf_penetration(x, y, z, R, t, values, origin, spacing, margin: float, interpret: bool = False, table=None):
    """`sdf_penetration_pallas`'s value, differentiable: the gradient comes from the same pass (custom VJP). The
    grid's own cotangents (a constant of the objective; never needed by the motion step, where XLA drops them)
    are those of the JAX reference; the corner table `table` (a copy of the values) gets none."""
    return sdf_penetration_pallas(x, y, z, R, t, values, origin, spacing, margin, interpret=interpret, table=table)[0]


def _reference(x, y, z, R, t, values, origin, spacing, margin):
    from anchorhoi_jax.geometry.sdf import _trilinear_xyz

    d = [x - t[0], y - t[1], z - t[2]]
    q = [R[0, i] * d[0] + R[1, i] * d[1] + R[2, i] * d[2] for i in range(3)]
    return jnp.sum(jax.nn.relu(margin - _trilinear_xyz(values, origin, spacing, *q)) ** 2)


def _fwd(x, y, z, R, t, values, origin, spacing, margin, interpret, table):
    val, gx, gy, gz, gR, gt = sdf_penetration_pallas(x, y, z, R, t, values, origin, spacing, margin, interpret=interpret,
                                                     table=table)
    return val, (gx, gy, gz, gR, gt, (x, y, z, R, t, values, origin, spacing))


def _bwd(margin, interpret, res, g):
    gx, gy, gz, gR, gt, prim = res
    _, vjp = jax.vjp(lambda v, o, s: _reference(*prim[:5], v, o, s, margin), *prim[5:])
    return (g * gx, g * gy, g * gz, g * gR, g * gt, *vjp(g), None)


sdf_penetration.defvjp(_fwd, _bwd)
