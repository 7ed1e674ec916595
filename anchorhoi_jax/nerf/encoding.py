"""Multi-resolution hash-grid encoding (Müller et al. 2022, Instant-NGP), pure JAX.

L levels with resolutions growing geometrically from `base_resolution` to `max_resolution`; each
level stores F features per entry in a table of size T. Coarse levels whose (N+1)³ corner lattice
fits in T are indexed densely (collision-free); finer levels use the spatial hash
h(x) = (x·1 ⊕ y·2654435761 ⊕ z·805459861) mod T. Features of the 8 cell corners are blended
trilinearly, so the encoding is continuous and differentiable in both the table and the position.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as onp
from jaxtyping import Array, Float

_PRIMES = (1, 2654435761, 805459861)
_CORNERS = onp.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], onp.int32)  # (8, 3)


def level_resolutions(n_levels: int, base_resolution: int, max_resolution: int) -> tuple[int, ...]:
    """Per-level grid resolutions N_l = floor(N_min · b^l), b = exp((ln N_max − ln N_min)/(L − 1))."""
    if n_levels == 1:
        return (base_resolution,)
    b = math.exp((math.log(max_resolution) - math.log(base_resolution)) / (n_levels - 1))
    return tuple(int(math.floor(base_resolution * b**level + 1e-6)) for level in range(n_levels))  # 1e-6: 63.99999 → 64


def hash_encode(
    table: Float[Array, "L T F"],
    x: Float[Array, "N 3"],
    resolutions: tuple[int, ...],
) -> Float[Array, "N LF"]:
    """Encode points x ∈ [0, 1]³ (outside is clamped) with the tables of every level.

    Args:
        table: (L, T, F) feature tables.
        x: (N, 3) normalised positions.
        resolutions: static per-level resolutions (len L).
    Returns:
        (N, L·F) concatenated features, level-major.
    """
    L, T, F = table.shape
    if len(resolutions) != L:
        raise ValueError(f"hash_encode: {len(resolutions)} resolutions for a table with {L} levels")
    with jax.named_scope("hash_encode"):
        res = jnp.asarray(resolutions, x.dtype)  # (L,)
        dense = onp.array([(r + 1) ** 3 <= T for r in resolutions])
        x = jnp.clip(x, 0.0, 1.0)
        pos = x[:, None, :] * res[None, :, None]  # (N, L, 3)
        p0 = jnp.floor(pos)
        frac = pos - p0
        p0 = p0.astype(jnp.uint32)
        c = p0[:, :, None, :] + jnp.asarray(_CORNERS, jnp.uint32)[None, None]  # (N, L, 8, 3)
        stride = jnp.asarray([r + 1 for r in resolutions], jnp.uint32)[None, :, None]
        idx_dense = c[..., 0] + stride * (c[..., 1] + stride * c[..., 2])
        idx_hash = (c[..., 0] * jnp.uint32(_PRIMES[0])) ^ (c[..., 1] * jnp.uint32(_PRIMES[1])) ^ (
            c[..., 2] * jnp.uint32(_PRIMES[2])
        )
        idx = jnp.where(jnp.asarray(dense)[None, :, None], idx_dense, idx_hash) % jnp.uint32(T)
        flat = idx.astype(jnp.int32) + (jnp.arange(L, dtype=jnp.int32) * T)[None, :, None]  # (N, L, 8)
        feats = table.reshape(L * T, F)[flat]  # (N, L, 8, F)
        cw = jnp.asarray(_CORNERS, x.dtype)  # (8, 3)
        w = jnp.prod(jnp.where(cw[None, None] > 0, frac[:, :, None, :], 1.0 - frac[:, :, None, :]), -1)  # (N, L, 8)
        out = jnp.sum(w[..., None] * feats, axis=2)  # (N, L, F)
        return out.reshape(x.shape[0], L * F)
