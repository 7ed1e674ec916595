"""Mesh extraction from a NeRF: marching cubes on the density grid, vertex colours from the field.

Marching cubes runs on the host (scikit-image); the density grid and vertex colours are evaluated
with jitted field queries in chunks.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as onp

from anchorhoi_jax.nerf import field as nerf_field


@functools.partial(jax.jit, static_argnums=(1,))
def _query_chunk(params, cfg, x):
    return nerf_field.query(params, cfg, x)


def _query(params, cfg, x: onp.ndarray, chunk: int):
    n = x.shape[0]
    pad = (-n) % chunk
    xp = onp.concatenate([x, onp.zeros((pad, 3), x.dtype)]) if pad else x
    sig, alb = [], []
    for i in range(0, xp.shape[0], chunk):
        s, a = _query_chunk(params, cfg, jnp.asarray(xp[i : i + chunk]))
        sig.append(onp.asarray(s))
        alb.append(onp.asarray(a))
    return onp.concatenate(sig)[:n], onp.concatenate(alb)[:n]


def density_grid(params, cfg: nerf_field.FieldConfig, resolution: int = 128, chunk: int = 65536):
    """σ sampled at resolution³ points spanning the field box (corners included), index order (x, y, z)."""
    if resolution < 2:
        raise ValueError(f"density_grid: resolution must be >= 2, got {resolution}")
    t = onp.linspace(-cfg.bound, cfg.bound, resolution, dtype=onp.float32)
    g = onp.stack(onp.meshgrid(t, t, t, indexing="ij"), -1).reshape(-1, 3) + onp.asarray(cfg.center, onp.float32)
    sigma, _ = _query(params, cfg, g, chunk)
    return sigma.reshape(resolution, resolution, resolution)


def extract_mesh(params, cfg: nerf_field.FieldConfig, *, resolution: int = 128, threshold: float = 10.0,
                 chunk: int = 65536):
    """Iso-surface σ = threshold of the field with per-vertex albedo.

    Returns (vertices (V, 3) world metres, faces (F, 3) int32 with outward normals, colors (V, 3) in [0, 1]).
    Raises ValueError if the density never crosses the threshold.
    """
    from skimage import measure

    grid = density_grid(params, cfg, resolution, chunk)
    if not (grid.min() < threshold < grid.max()):
        raise ValueError(
            f"extract_mesh: density range [{grid.min():.3g}, {grid.max():.3g}] does not cross threshold {threshold}"
        )
    step = 2.0 * cfg.bound / (resolution - 1)
    verts, faces, _, _ = measure.marching_cubes(grid, level=threshold, spacing=(step, step, step))
    verts = (verts - cfg.bound + onp.asarray(cfg.center)).astype(onp.float32)
    faces = faces.astype(onp.int32)
    # Orient faces outward: density decreases outward, so face normals should oppose ∇σ.
    tri = verts[faces]
    n = onp.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    cen = tri.mean(1)
    eps = 0.5 * step
    s_plus, _ = _query(params, cfg, (cen + eps * n / (onp.linalg.norm(n, axis=-1, keepdims=True) + 1e-12)), chunk)
    s_minus, _ = _query(params, cfg, (cen - eps * n / (onp.linalg.norm(n, axis=-1, keepdims=True) + 1e-12)), chunk)
    if onp.mean(s_plus > s_minus) > 0.5:
        faces = faces[:, ::-1].copy()
    _, colors = _query(params, cfg, verts, chunk)
    return verts, faces, onp.clip(colors, 0.0, 1.0).astype(onp.float32)


def export_mesh(path: str, vertices, faces, colors) -> None:
    """Write a vertex-coloured mesh (format from the suffix: .ply, .obj, .glb) through trimesh."""
    import trimesh

    c8 = onp.clip(onp.asarray(colors) * 255.0 + 0.5, 0, 255).astype(onp.uint8)
    rgba = onp.concatenate([c8, onp.full((c8.shape[0], 1), 255, onp.uint8)], -1)
    mesh = trimesh.Trimesh(vertices=onp.asarray(vertices), faces=onp.asarray(faces), vertex_colors=rgba, process=False)
    mesh.export(path)


__all__ = ["density_grid", "extract_mesh", "export_mesh"]
