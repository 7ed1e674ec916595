"""Pallas (Triton) kernels for the capsule terms of L_pen (Eq. 4) and of the self-penetration regulariser.

Both terms reduce a small per-frame capsule table (55 parts) against many query elements: 2048 object
points per frame (inside depth, its max and argmax over the parts) and 1351 part pairs × 5 samples
per frame (overlap depth). Written in plain JAX, XLA materialises or re-reads the (points, parts)
and (pairs, samples) intermediates, or splits the work into many kernels (H100, 8 seeds × 120 frames:
the (max, argmax) reduction 377 µs and the self-penetration forward 223 µs of a ~2.1 ms Adam step,
benchmarks/results/motion_speed_s5.md). Here each GPU thread keeps its points (or pairs) in registers
and walks the capsule table (scalar loads of a few hundred bytes per frame, cache resident), so the
only global traffic is the points in and the depth/argmax out.

The arithmetic is the XLA twins' (body/part_volumes.py `_depth_max`, `_self_pen_planes`) operation
for operation, in the same order; results agree to float32 rounding (the compilers may contract
a·b + c into FMAs differently), and the argmax ties go to the lower part index as in jnp.argmax.
Only forwards are kernels: the backwards (custom VJPs in body/part_volumes.py) recompute the winning
part's geometry per point / pair, which is O(points), not O(points × parts).

Under the frame and seed vmaps of the motion stage, pallas_call's batching rule adds a leading grid
axis: one program per (frame, block of points), the per-frame table shared by the block.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

IMPLS = ("auto", "xla", "pallas", "interpret")


def resolve_impl(impl: str) -> str:
    """"auto" → "pallas" on CUDA GPUs, "xla" elsewhere; "xla" / "pallas" / "interpret" (the Pallas kernel run
    by the Pallas interpreter: any backend, slow, for tests) pass through."""
    if impl not in IMPLS:
        raise ValueError(f"unknown kernel impl {impl!r}; expected one of {IMPLS}")
    if impl == "auto":
        return "pallas" if jax.default_backend() == "gpu" else "xla"
    return impl


def capsule_table(p0: Float[Array, "P 3"], p1: Float[Array, "P 3"], inv: Float[Array, "P"], radius: Float[Array, "P"]):
    """(8, P) rows [p0 x, y, z | ab x, y, z | 1/|ab|² | r] with ab = p1 − p0 (the per-frame kernel input)."""
    ab = p1 - p0
    return jnp.stack([p0[:, 0], p0[:, 1], p0[:, 2], ab[:, 0], ab[:, 1], ab[:, 2], inv, radius], 0)


def _planes(points, block):
    """The (N, 3) points as three (N_pad,) coordinate planes (contiguous per-program blocks; under the
    frame vmap XLA produces them from the points' producer, and the stack/slice pair of the caller
    cancels when that producer is itself planes, as stages/motion.frame_terms builds the object points)."""
    if block & (block - 1):
        raise ValueError(f"block must be a power of two, got {block}")
    n = points.shape[0]
    n_pad = -(-n // block) * block
    return [jnp.pad(points[:, c].astype(jnp.float32), (0, n_pad - n)) for c in range(3)]


def _compiler_params(num_warps: int):
    from jax.experimental.pallas import triton as plt

    return plt.CompilerParams(num_warps=num_warps, num_stages=1)


def _capsule_kernel(num_parts, unroll, tab_ref, x_ref, y_ref, z_ref, depth_ref, idx_ref):
    x, y, z = x_ref[...], y_ref[...], z_ref[...]
    block = x.shape[0]

    def part(p, carry):
        best, arg = carry
        xa, ya, za = x - tab_ref[0, p], y - tab_ref[1, p], z - tab_ref[2, p]
        abx, aby, abz = tab_ref[3, p], tab_ref[4, p], tab_ref[5, p]
        t = jnp.minimum(jnp.maximum((xa * abx + ya * aby + za * abz) * tab_ref[6, p], 0.0), 1.0)
        dx, dy, dz = xa - t * abx, ya - t * aby, za - t * abz
        depth = tab_ref[7, p] - jnp.sqrt(dx * dx + dy * dy + dz * dz + 1e-12)
        take = depth > best  # strict: ties keep the lower part index (jnp.argmax's rule)
        return jnp.where(take, depth, best), jnp.where(take, jnp.int32(p) if isinstance(p, int) else p, arg)

    carry = (jnp.full((block,), -jnp.inf, jnp.float32), jnp.zeros((block,), jnp.int32))
    if unroll:  # static part indices: the table loads are plain scalar loads the compiler can schedule early
        for p in range(num_parts):
            carry = part(p, carry)
    else:
        carry = jax.lax.fori_loop(0, num_parts, part, carry)
    best, arg = carry
    depth_ref[...] = best
    idx_ref[...] = arg


def capsule_depth_max_pallas(
    points: Float[Array, "N 3"], table: Float[Array, "8 P"], *, interpret: bool = False, block: int = 512,
    num_warps: int = 4, unroll: bool = True,
) -> tuple[Float[Array, "N"], Int[Array, "N"]]:
    """max_p (r_p − dist(x_n, segment p)) and its argmax for every point, one kernel (see module doc).

    Args:
      points: (N, 3) query points (metres). table: `capsule_table(p0, p1, 1/|ab|², r)`.
      block: points per program (a power of two); N is padded up to a multiple of it. With 4 warps (128
        threads) a block of 512 gives each thread 4 points, over which each part's 8 table loads are shared.
      unroll: the loop over the parts unrolled at trace time (P static) instead of a fori_loop.
    Returns: depth (N,) float32 and the part index (N,) int32."""
    from jax.experimental import pallas as pl

    planes = _planes(points, block)
    n, n_pad = points.shape[0], planes[0].shape[0]
    spec = pl.BlockSpec((block,), lambda i: (i,))
    depth, idx = pl.pallas_call(
        functools.partial(_capsule_kernel, table.shape[1], unroll),
        out_shape=(jax.ShapeDtypeStruct((n_pad,), jnp.float32), jax.ShapeDtypeStruct((n_pad,), jnp.int32)),
        grid=(n_pad // block,),
        in_specs=[pl.BlockSpec(table.shape, lambda i: (0, 0)), spec, spec, spec],
        out_specs=(spec, spec),
        compiler_params=None if interpret else _compiler_params(num_warps),
        interpret=interpret,
        name="capsule_depth_max",
    )(table.astype(jnp.float32), *planes)
    return depth[:n], idx[:n]


def _pair_geometry(tab_ref, a, b):
    """Per pair (a, b) of the block, from the capsule table: a's start and axis, b's start and axis (3 planes each),
    1 / |b's axis|², and the radius sum (shared by the self-penetration forward and backward kernels)."""
    a0 = [tab_ref[k, a] for k in range(3)]
    da = [tab_ref[3 + k, a] for k in range(3)]
    b0 = [tab_ref[k, b] for k in range(3)]
    bb = [tab_ref[3 + k, b] for k in range(3)]
    inv = 1.0 / jnp.maximum(bb[0] * bb[0] + bb[1] * bb[1] + bb[2] * bb[2], 1e-12)
    return a0, da, b0, bb, inv, tab_ref[7, a] + tab_ref[7, b]


def _self_pen_kernel(samples, block, tab_ref, pa_ref, pb_ref, *out_refs):
    from jax.experimental import pallas as pl

    sl = pl.ds(pl.program_id(0) * block, block)
    a, b = pa_ref[sl], pb_ref[sl]
    a0, da, b0, bb, inv, rsum = _pair_geometry(tab_ref, a, b)
    for k, ref in enumerate(out_refs):
        tau = k / (samples - 1) if samples > 1 else 0.0
        xb = [a0[c] + tau * da[c] - b0[c] for c in range(3)]
        u = jnp.minimum(jnp.maximum((xb[0] * bb[0] + xb[1] * bb[1] + xb[2] * bb[2]) * inv, 0.0), 1.0)
        d = [xb[c] - u * bb[c] for c in range(3)]
        ref[...] = jnp.maximum(rsum - jnp.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2] + 1e-12), 0.0)


def self_pen_depths_pallas(
    table: Float[Array, "8 P"], pair_a: Int[Array, "Q"], pair_b: Int[Array, "Q"], samples: int, *,
    interpret: bool = False, block: int = 256, num_warps: int = 4,
) -> Float[Array, "Q samples"]:
    """Overlap depth relu(r_a + r_b − dist(sample_k of a's axis, capsule b)) for every pair and sample.

    `table` as `capsule_table` (its 1/|ab|² row is not read: the pair term computes its own, as its XLA
    twin does). Pairs are padded to a multiple of `block` with the pair (0, 0) and sliced off."""
    from jax.experimental import pallas as pl

    if block & (block - 1):
        raise ValueError(f"block must be a power of two, got {block}")
    q = pair_a.shape[0]
    q_pad = -(-q // block) * block
    pa = jnp.pad(pair_a.astype(jnp.int32), (0, q_pad - q))
    pb = jnp.pad(pair_b.astype(jnp.int32), (0, q_pad - q))
    pair_spec = pl.BlockSpec((q_pad,), lambda i: (0,))
    out_spec = pl.BlockSpec((block,), lambda i: (i,))
    planes = pl.pallas_call(
        functools.partial(_self_pen_kernel, samples, block),
        out_shape=tuple(jax.ShapeDtypeStruct((q_pad,), jnp.float32) for _ in range(samples)),
        grid=(q_pad // block,),
        in_specs=[pl.BlockSpec(table.shape, lambda i: (0, 0)), pair_spec, pair_spec],
        out_specs=tuple(out_spec for _ in range(samples)),
        compiler_params=None if interpret else _compiler_params(num_warps),
        interpret=interpret,
        name="self_pen_depths",
    )(table.astype(jnp.float32), pa, pb)
    return jnp.stack([p[:q] for p in planes], -1)


def _scatter_add(ref, index, val, live, interpret):
    """ref[index] += val where `live` (float atomics on the GPU: only live elements issue an add). The
    Pallas interpreter's discharge of a vector atomic add keeps one of duplicate indices, so interpret
    mode adds element by element (exact; for CPU tests only)."""
    from jax.experimental.pallas import triton as plt

    if not interpret:
        plt.atomic_add(ref, (index,), val, mask=live)
        return
    v = jnp.where(live, val, 0.0)

    def one(i, carry):
        plt.atomic_add(ref, (index[i],), v[i])
        return carry

    jax.lax.fori_loop(0, index.shape[0], one, 0)


def _capsule_bwd_kernel(interpret, tab_ref, x_ref, y_ref, z_ref, idx_ref, g_ref, zero_ref, dx_ref, dy_ref, dz_ref,
                        caps_ref):
    """Backward of the capsule max: per point, the winning part's geometry recomputed (as
    body/part_volumes._inside_depth_bwd): ∂/∂x = −e·g, and (e·g(1 − t), e·g·t, g) added to that part."""
    del zero_ref  # aliased to caps_ref (zero-initialised accumulator)
    p, g = idx_ref[...], g_ref[...]
    xa = [ref[...] - tab_ref[c, p] for c, ref in enumerate((x_ref, y_ref, z_ref))]
    ab = [tab_ref[3 + c, p] for c in range(3)]
    t = jnp.minimum(jnp.maximum((xa[0] * ab[0] + xa[1] * ab[1] + xa[2] * ab[2]) * tab_ref[6, p], 0.0), 1.0)
    d = [xa[c] - t * ab[c] for c in range(3)]
    norm = jnp.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2] + 1e-12)
    ge = [g * d[c] / norm for c in range(3)]
    live = g != 0
    for c, ref in enumerate((dx_ref, dy_ref, dz_ref)):
        ref[...] = -ge[c]
        _scatter_add(caps_ref, p * 7 + c, ge[c] * (1.0 - t), live, interpret)
        _scatter_add(caps_ref, p * 7 + 3 + c, ge[c] * t, live, interpret)
    _scatter_add(caps_ref, p * 7 + 6, g, live, interpret)


def capsule_depth_max_bwd_pallas(
    points: Float[Array, "N 3"], table: Float[Array, "8 P"], idx: Int[Array, "N"], g: Float[Array, "N"], *,
    interpret: bool = False, block: int = 256, num_warps: int = 4,
) -> tuple[Float[Array, "N 3"], Float[Array, "P 7"]]:
    """Cotangents of `capsule_depth_max_pallas`'s depth: (∂/∂points (N, 3), per part [∂/∂p0 | ∂/∂p1 | ∂/∂r]
    (P, 7)). Points with g = 0 (outside every capsule after L_pen's relu: almost all) issue no atomics."""
    from jax.experimental import pallas as pl

    planes = _planes(points, block)
    n, n_pad, num_parts = points.shape[0], planes[0].shape[0], table.shape[1]
    idx = jnp.pad(idx.astype(jnp.int32), (0, n_pad - n))
    g = jnp.pad(g.astype(jnp.float32), (0, n_pad - n))
    spec = pl.BlockSpec((block,), lambda i: (i,))
    full = lambda shape: pl.BlockSpec(shape, lambda i: (0,) * len(shape))  # noqa: E731
    *dx, caps = pl.pallas_call(
        functools.partial(_capsule_bwd_kernel, interpret),
        out_shape=(*(jax.ShapeDtypeStruct((n_pad,), jnp.float32) for _ in range(3)),
                   jax.ShapeDtypeStruct((7 * num_parts,), jnp.float32)),
        grid=(n_pad // block,),
        in_specs=[full(table.shape), spec, spec, spec, spec, spec, full((7 * num_parts,))],
        out_specs=(spec, spec, spec, full((7 * num_parts,))),
        input_output_aliases={6: 3},
        compiler_params=None if interpret else _compiler_params(num_warps),
        interpret=interpret,
        name="capsule_depth_max_bwd",
    )(table.astype(jnp.float32), *planes, idx, g, jnp.zeros((7 * num_parts,), jnp.float32))
    return jnp.stack([d[:n] for d in dx], -1), caps.reshape(num_parts, 7)


def _self_pen_bwd_kernel(samples, block, interpret, tab_ref, pa_ref, pb_ref, g_ref, zero_ref, caps_ref):
    """Backward of the self-penetration depths (as body/part_volumes._self_pen_bwd): per pair the
    samples' ten sums in registers, then added to parts a and b (only pairs with a live sample)."""
    from jax.experimental import pallas as pl

    del zero_ref  # aliased to caps_ref (zero-initialised accumulator)
    sl = pl.ds(pl.program_id(0) * block, block)
    rows = pl.program_id(0) * block + jax.lax.broadcasted_iota(jnp.int32, (block,), 0)
    a, b = pa_ref[sl], pb_ref[sl]
    a0, da, b0, bb, inv, rsum = _pair_geometry(tab_ref, a, b)
    t0, t1, gu = [0.0] * 3, [0.0] * 3, [0.0] * 3
    gr, live = 0.0, None
    for k in range(samples):
        tau = k / (samples - 1) if samples > 1 else 0.0
        xb = [a0[c] + tau * da[c] - b0[c] for c in range(3)]
        u = jnp.minimum(jnp.maximum((xb[0] * bb[0] + xb[1] * bb[1] + xb[2] * bb[2]) * inv, 0.0), 1.0)
        d = [xb[c] - u * bb[c] for c in range(3)]
        dist = jnp.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2] + 1e-12)
        depth = jnp.maximum(rsum - dist, 0.0)
        G = jnp.where(depth > 0, g_ref[rows * samples + k], 0.0)
        for c in range(3):
            Ge = G * (d[c] / dist)
            t0[c] = t0[c] + Ge * (1.0 - tau)
            t1[c] = t1[c] + Ge * tau
            gu[c] = gu[c] + Ge * u
        gr = gr + G
        live = (G != 0) if live is None else live | (G != 0)
    cols_a = [-x for x in t0] + [-x for x in t1] + [gr]  # part a: x = a0 + τ(a1 − a0), ∂/∂x = −e
    cols_b = [t0[c] + t1[c] - gu[c] for c in range(3)] + gu + [gr]  # part b: e(1 − u), e·u
    for j in range(7):
        _scatter_add(caps_ref, a * 7 + j, cols_a[j], live, interpret)
        _scatter_add(caps_ref, b * 7 + j, cols_b[j], live, interpret)


def self_pen_depths_bwd_pallas(
    table: Float[Array, "8 P"], pair_a: Int[Array, "Q"], pair_b: Int[Array, "Q"], g: Float[Array, "Q samples"], *,
    interpret: bool = False, block: int = 256, num_warps: int = 4,
) -> Float[Array, "P 7"]:
    """Cotangents of `self_pen_depths_pallas` per part: [∂/∂p0 | ∂/∂p1 | ∂/∂r] (P, 7)."""
    from jax.experimental import pallas as pl

    q, samples = g.shape
    num_parts = table.shape[1]
    q_pad = -(-q // block) * block
    pa = jnp.pad(pair_a.astype(jnp.int32), (0, q_pad - q))
    pb = jnp.pad(pair_b.astype(jnp.int32), (0, q_pad - q))
    gf = jnp.pad(g.astype(jnp.float32), ((0, q_pad - q), (0, 0))).reshape(-1)
    full = lambda shape: pl.BlockSpec(shape, lambda i: (0,) * len(shape))  # noqa: E731
    caps = pl.pallas_call(
        functools.partial(_self_pen_bwd_kernel, samples, block, interpret),
        out_shape=jax.ShapeDtypeStruct((7 * num_parts,), jnp.float32),
        grid=(q_pad // block,),
        in_specs=[full(table.shape), full(pa.shape), full(pb.shape), full(gf.shape), full((7 * num_parts,))],
        out_specs=full((7 * num_parts,)),
        input_output_aliases={4: 0},
        compiler_params=None if interpret else _compiler_params(num_warps),
        interpret=interpret,
        name="self_pen_depths_bwd",
    )(table.astype(jnp.float32), pa, pb, gf, jnp.zeros((7 * num_parts,), jnp.float32))
    return caps.reshape(num_parts, 7)
