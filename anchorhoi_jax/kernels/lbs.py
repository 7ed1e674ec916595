"""The skinning transforms' gradient of the motion stage's subset LBS as a sparse Pallas (Triton) kernel.

stages/motion._skin_sparse skins each subset vertex with its K non-zero weights; the backward's ∂/∂A,
∂L/∂A[j, a, b] = Σ_s W[s, j] g_a[s] [v; 1]_b[s], was a dense (12, S)·(S, J) product per frame. The weights
are sparse: SMPL-X's benchmark subset has 3406 non-zero entries of W's 2520 × 55 = 138 600 (2.5 %), so the
dense product spends 97.5 % of its multiply-adds on zeros, and XLA first writes the (12, S) operand of
every frame to memory (H100, 8 seeds × 120 frames: the fused GEMM 174 µs + its operand 60 + 20 µs of a
1414 µs Adam step, benchmarks/results/motion_speed_s7.md). Here the non-zero entries are listed per joint
(`joint_entries`, a stable sort of the (vertex, k) slots by joint, built once on the host by
prepare_motion_data) and one program per frame walks them: a (joints, chunk) tile of entries per iteration,
the frame's g and v gathered (the frame's 60 KB stay in L1), twelve register accumulators per entry slot,
one reduction over the chunk axis at the end. The sums are the dense product's with the zero terms left
out, in another order: equal to float32 rounding.

Under the frame and seed vmaps, pallas_call's batching rule adds the leading grid axes (one program per
frame); the entry lists are not batched.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as onp
from jaxtyping import Array, Float, Int


def joint_entries(ids: Int[Array, "S K"], w: Float[Array, "S K"], num_joints: int):
    """The non-zero (vertex, weight) entries of the sparse skinning weights grouped by joint.

    Returns (seg, vertex, weight): seg (J_pad + 1,) int32 start offsets per joint (rows ≥ J empty; J_pad = the
    next power of two ≥ J), vertex / weight (S·K,) the entries sorted by joint (stable: by vertex within a
    joint; zero weights, which the forward multiplies but which add nothing, sorted last and outside every
    joint's range). NumPy in → NumPy out (prepare_motion_data builds them once on the host: on the GPU the
    sort and the binary search would run in every Adam step, XLA does not hoist them out of the scan);
    JAX arrays in → JAX arrays out."""
    xp = onp if isinstance(ids, onp.ndarray) and isinstance(w, onp.ndarray) else jnp
    k = ids.shape[1]
    j_pad = max(1, 1 << (num_joints - 1).bit_length())
    key = xp.where(w != 0, ids, num_joints).reshape(-1).astype(xp.int32)
    order = onp.argsort(key, kind="stable") if xp is onp else jnp.argsort(key, stable=True)
    skey = key[order]
    nnz_end = xp.searchsorted(skey, num_joints, side="left")
    seg = xp.minimum(xp.searchsorted(skey, xp.arange(j_pad + 1, dtype=xp.int32), side="left"), nnz_end)
    return seg.astype(xp.int32), (order // k).astype(xp.int32), w.reshape(-1)[order].astype(xp.float32)


def host_joint_entries(ids, w, num_joints: int) -> tuple[Array, Array, Array]:
    """`joint_entries` built on the host (NumPy sort and search) from any arrays, returned as device arrays:
    the MotionData.sub_skin_entries every builder stores (prepare_motion_data, seed stacking, cached data)."""
    return tuple(jnp.asarray(a) for a in joint_entries(onp.asarray(ids), onp.asarray(w), num_joints))


def _lbs_grad_kernel(chunk, seg_ref, vert_ref, wt_ref, g_ref, v_ref, o_ref):
    from jax.experimental.pallas import triton as plt

    j_pad = seg_ref.shape[0] - 1
    rows = jax.lax.broadcasted_iota(jnp.int32, (j_pad,), 0)
    lo, hi = seg_ref[rows], seg_ref[rows + 1]
    steps = (jnp.max(hi - lo) + chunk - 1) // chunk
    lane = jax.lax.broadcasted_iota(jnp.int32, (j_pad, chunk), 1)

    def step(i, acc):
        e = lo[:, None] + i * chunk + lane
        live = e < hi[:, None]
        # Masked loads: the (joints × chunk) tile is mostly padding (SMPL-X subset: 3406 entries, the largest
        # joint 244), and a padding slot then issues no memory request.
        s = plt.load(vert_ref.at[e], mask=live, other=0)
        wt = plt.load(wt_ref.at[e], mask=live, other=0.0)
        gw = [wt * plt.load(g_ref.at[a, s], mask=live, other=0.0) for a in range(3)]
        vb = [plt.load(v_ref.at[b, s], mask=live, other=0.0) for b in range(3)]
        return tuple(acc[4 * a + b] + (gw[a] * vb[b] if b < 3 else gw[a]) for a in range(3) for b in range(4))

    zero = jnp.zeros((j_pad, chunk), jnp.float32)
    acc = jax.lax.fori_loop(0, steps, step, (zero,) * 12)
    for r in range(12):
        o_ref[r, :] = jnp.sum(acc[r], axis=1)


def lbs_transform_grad_pallas(
    g: Float[Array, "3 S"], v: Float[Array, "3 S"], entries, *, interpret: bool = False, chunk: int = 32,
    num_warps: int = 8,
) -> Float[Array, "12 Jp"]:
    """∂L/∂A of the subset LBS (stages/motion._skin_sparse) for one frame, from the output's cotangent g
    (3, S) and the pre-skinning vertices v (3, S): (12, J_pad) rows [4a + b] = Σ_s W[s, j] g_a[s] [v; 1]_b[s]
    (slice [:, :J] and transpose for A's (J, 12) layout). `entries` = joint_entries(ids, w, J)."""
    from jax.experimental import pallas as pl

    if chunk & (chunk - 1):
        raise ValueError(f"chunk must be a power of two, got {chunk}")
    seg, vert, wt = entries
    j_pad = seg.shape[0] - 1
    full = lambda a: pl.BlockSpec(a.shape, lambda: (0,) * a.ndim)  # noqa: E731
    args = (seg, vert, wt, g.astype(jnp.float32), v.astype(jnp.float32))
    compiler_params = None
    if not interpret:
        from jax.experimental.pallas import triton as plt

        compiler_params = plt.CompilerParams(num_warps=num_warps, num_stages=1)
    return pl.pallas_call(
        functools.partial(_lbs_grad_kernel, chunk),
        out_shape=jax.ShapeDtypeStruct((12, j_pad), jnp.float32),
        in_specs=[full(a) for a in args],
        out_specs=pl.BlockSpec((12, j_pad), lambda: (0, 0)),
        compiler_params=compiler_params,
        interpret=interpret,
        name="lbs_transform_grad",
    )(*args)
