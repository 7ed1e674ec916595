"""Occupancy grid (Instant-NGP style): a cached density grid that proposes where to sample.

With static shapes JAX cannot drop empty samples from a batch, so the grid "skips empty space" by
replacing the coarse (proposal) pass: coarse compositing runs on cheap trilinear lookups of the cached
densities instead of network evaluations, and the fine samples (the only network evaluations) are
importance-sampled inside occupied cells. The grid is refreshed from the field every few steps with an
exponential moving average of the density at jittered cell positions, max'ed with the decayed old
value, so newly appearing geometry is picked up.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from jaxtyping import Array, Float

from anchorhoi_jax.nerf import field as nerf_field


@struct.dataclass
class OccupancyGrid:
    """Cached densities on a resolution³ grid spanning the field's box (cell centres)."""

    density: Float[Array, "R R R"]
    resolution: int = struct.field(pytree_node=False, default=64)


def init_occupancy(resolution: int = 64, initial_density: float = 1e3) -> OccupancyGrid:
    """A grid that starts fully occupied (every cell proposes samples until the first update)."""
    if resolution < 2:
        raise ValueError(f"init_occupancy: resolution must be >= 2, got {resolution}")
    return OccupancyGrid(density=jnp.full((resolution,) * 3, initial_density, jnp.float32), resolution=resolution)


def cell_centers(cfg: nerf_field.FieldConfig, resolution: int) -> Float[Array, "R R R 3"]:
    t = (jnp.arange(resolution, dtype=jnp.float32) + 0.5) / resolution
    g = jnp.stack(jnp.meshgrid(t, t, t, indexing="ij"), -1)  # index order (x, y, z)
    return jnp.asarray(cfg.center, jnp.float32)[None, None, None] + (g - 0.5) * 2.0 * cfg.bound


def update_occupancy(grid: OccupancyGrid, params, cfg: nerf_field.FieldConfig, key, *, decay: float = 0.95):
    """New cached density: max(decay · old, σ at one jittered point per cell)."""
    R = grid.resolution
    cell = 2.0 * cfg.bound / R
    x = cell_centers(cfg, R).reshape(-1, 3)
    x = x + cell * jax.random.uniform(key, x.shape, minval=-0.5, maxval=0.5)
    sigma = jax.lax.stop_gradient(nerf_field.density(params, cfg, x)).reshape(R, R, R)
    return grid.replace(density=jnp.maximum(decay * grid.density, sigma))


def lookup(grid: OccupancyGrid, cfg: nerf_field.FieldConfig, x: Float[Array, "N 3"]) -> Float[Array, "N"]:
    """Trilinear interpolation of the cached density at world points (0 outside the box)."""
    R = grid.resolution
    u = nerf_field.normalize(cfg, x) * R - 0.5  # continuous cell-centre coordinates
    inside = jnp.all((u >= -0.5) & (u <= R - 0.5), -1)
    u = jnp.clip(u, 0.0, R - 1.0)
    i0 = jnp.clip(jnp.floor(u).astype(jnp.int32), 0, R - 2)
    f = u - i0
    out = jnp.zeros(x.shape[:1], grid.density.dtype)
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                w = (f[:, 0] if dx else 1 - f[:, 0]) * (f[:, 1] if dy else 1 - f[:, 1]) * (f[:, 2] if dz else 1 - f[:, 2])
                out = out + w * grid.density[i0[:, 0] + dx, i0[:, 1] + dy, i0[:, 2] + dz]
    return jnp.where(inside, out, 0.0)


def occupied_fraction(grid: OccupancyGrid, threshold: float) -> Float[Array, ""]:
    """Fraction of cells whose cached density exceeds `threshold` (a progress diagnostic)."""
    return jnp.mean((grid.density > threshold).astype(jnp.float32))
