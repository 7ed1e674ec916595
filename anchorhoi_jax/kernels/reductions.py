"""Row sums of coordinate planes as a Pallas (Triton) kernel: Σ_s x[c, s] for a (C, S) array.

Why a kernel for a sum: in the motion stage the cotangent of the skinned vertex planes (3, S) per frame
is assembled by XLA from its consumers in a vertex-major (frames, S, 3) layout, and the translation's
gradient Σ_s g[c, s] then became a reduction over the middle axis with a minor axis of 3, which XLA's
reduction emitter ran with one thread per output walking the 2520 vertices serially (H100, 8 seeds ×
120 frames: 355 µs per Adam step for a 29 MB array, benchmarks/results/motion_speed_s6.md). A custom
call takes its operand in row-major (C, S) layout, so XLA writes the planes contiguously (or transposes
once, at memory speed), and each program sums its frame's rows.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jaxtyping import Array, Float


def _rowsum_kernel(num_rows, block, x_ref, o_ref):
    for c in range(num_rows):
        acc = jnp.zeros((block,), jnp.float32)
        for j in range(x_ref.shape[1] // block):
            acc = acc + x_ref[c, pl.ds(j * block, block)]
        o_ref[c] = jnp.sum(acc)


def plane_sums_pallas(x: Float[Array, "C S"], *, interpret: bool = False, block: int = 256,
                      num_warps: int = 4) -> Float[Array, "C"]:
    """Σ_s x[c, s] per row, one program per call (under vmap: per frame); S padded to a multiple of `block`."""
    from jax.experimental.pallas import triton as plt

    if block & (block - 1):
        raise ValueError(f"block must be a power of two, got {block}")
    c, s = x.shape
    s_pad = -(-s // block) * block
    xp = jnp.pad(x.astype(jnp.float32), ((0, 0), (0, s_pad - s)))
    return pl.pallas_call(
        functools.partial(_rowsum_kernel, c, block),
        out_shape=jax.ShapeDtypeStruct((c,), jnp.float32),
        in_specs=[pl.BlockSpec((c, s_pad), lambda: (0, 0))],
        out_specs=pl.BlockSpec((c,), lambda: (0,)),
        compiler_params=None if interpret else plt.CompilerParams(num_warps=num_warps, num_stages=1),
        interpret=interpret,
        name="plane_sums",
    )(xp)
