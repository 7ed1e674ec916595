"""Triangle-mesh operations: normals, area-weighted surface sampling, farthest point sampling, checks.

The JAX functions are pure and differentiable where it makes sense (normals); the checks
(`check_mesh`) run on the host with NumPy because they guard file input before anything is traced.
Contact keypoint extraction (paper Eq. 3) uses `sample_surface` + `farthest_point_sampling` to get
the representative object points V_o and their outward normals n_o.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
from jaxtyping import Array, Float, Int

HIGHEST = jax.lax.Precision.HIGHEST


def face_normals(
    vertices: Float[Array, "V 3"], faces: Int[Array, "F 3"], *, normalize: bool = True
) -> Float[Array, "F 3"]:
    """Per-face normals (counter-clockwise winding = outward); unnormalised ones have length 2·area."""
    tri = vertices[faces]
    n = jnp.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    if not normalize:
        return n
    return n / jnp.maximum(jnp.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


def face_areas(vertices: Float[Array, "V 3"], faces: Int[Array, "F 3"]) -> Float[Array, "F"]:
    return 0.5 * jnp.linalg.norm(face_normals(vertices, faces, normalize=False), axis=-1)


def vertex_normals(vertices: Float[Array, "V 3"], faces: Int[Array, "F 3"]) -> Float[Array, "V 3"]:
    """Area-weighted vertex normals: the sum of the unnormalised normals of incident faces."""
    fn = face_normals(vertices, faces, normalize=False)
    acc = jnp.zeros_like(vertices)
    for k in range(3):
        acc = acc.at[faces[:, k]].add(fn)
    return acc / jnp.maximum(jnp.linalg.norm(acc, axis=-1, keepdims=True), 1e-12)


def sample_surface(
    vertices: Float[Array, "V 3"], faces: Int[Array, "F 3"], num: int, *, key: jax.Array
) -> tuple[Float[Array, "num 3"], Float[Array, "num 3"], Int[Array, "num"]]:
    """Area-weighted uniform samples on the surface with their (face) normals.

    Returns (points (num,3), normals (num,3), face index (num,)). Barycentrics use the
    square-root trick (Turk 1990), which is uniform on each triangle.
    """
    k_face, k_uv = jax.random.split(key)
    areas = face_areas(vertices, faces)
    # Inverse-CDF face choice: O(F + num·log F) memory. (jax.random.categorical draws (num, F) Gumbel
    # noise: 20k samples of a 680k-face marching-cubes mesh asked the H100 for 54 GB.) Zero-area faces
    # own an empty CDF interval and are never chosen.
    cdf = jnp.cumsum(areas.astype(jnp.float32))
    u = jax.random.uniform(k_face, (num,), dtype=jnp.float32) * cdf[-1]
    fidx = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), faces.shape[0] - 1).astype(jnp.int32)
    uv = jax.random.uniform(k_uv, (num, 2), dtype=vertices.dtype)
    su = jnp.sqrt(uv[:, 0])
    b = jnp.stack([1.0 - su, su * (1.0 - uv[:, 1]), su * uv[:, 1]], -1)
    tri = vertices[faces[fidx]]
    pts = jnp.einsum("nk,nkc->nc", b, tri, precision=HIGHEST)
    return pts, face_normals(vertices, faces)[fidx], fidx


def farthest_point_sampling(
    points: Float[Array, "N 3"], num: int, *, start: int | Int[Array, ""] = 0
) -> Int[Array, "num"]:
    """Indices of `num` points chosen greedily, each the farthest from those already chosen.

    O(num · N) in a `fori_loop`; the classic 2-approximation of the k-centre problem used to get a
    representative subset V_o of the object surface (paper Eq. 3).
    """
    n = points.shape[0]
    if num > n:
        raise ValueError(f"farthest_point_sampling: asked for {num} points from {n}")

    def body(i, carry):
        idx, dmin = carry
        last = points[idx[i - 1]]
        d = jnp.sum((points - last[None]) ** 2, axis=-1)
        dmin = jnp.minimum(dmin, d)
        return idx.at[i].set(jnp.argmax(dmin).astype(idx.dtype)), dmin

    idx0 = jnp.zeros((num,), jnp.int32).at[0].set(jnp.asarray(start, jnp.int32))
    idx, _ = jax.lax.fori_loop(1, num, body, (idx0, jnp.full((n,), jnp.inf, points.dtype)))
    return idx


class MeshError(ValueError):
    """An input mesh that the motion stage cannot use (its message is one line, for the CLI)."""


def check_mesh(vertices, faces, *, name: str = "object mesh", min_area: float = 1e-12) -> None:
    """Raise `MeshError` (one line) unless the mesh is finite, non-degenerate and watertight.

    Watertight here means a closed oriented 2-manifold: every undirected edge is used by exactly two
    faces, once in each direction. The object SDF (sign from the winding number) and the inside
    test of the penetration loss are only meaningful for such meshes.
    """
    v = onp.asarray(vertices)
    f = onp.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < 4:
        raise MeshError(f"{name}: vertices must have shape (N>=4, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] < 4:
        raise MeshError(f"{name}: faces must have shape (M>=4, 3), got {f.shape}")
    if not onp.issubdtype(f.dtype, onp.integer):
        raise MeshError(f"{name}: faces must be integers, got dtype {f.dtype}")
    if not onp.all(onp.isfinite(v)):
        raise MeshError(f"{name}: vertices contain NaN or inf")
    if f.min() < 0 or f.max() >= v.shape[0]:
        raise MeshError(f"{name}: face indices out of range [0, {v.shape[0]})")
    v = v.astype(onp.float64)
    tri = v[f]
    area = 0.5 * onp.linalg.norm(onp.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=-1)
    extent = float(onp.ptp(v, axis=0).max())
    if extent <= 0:
        raise MeshError(f"{name}: degenerate, all vertices coincide")
    bad = onp.flatnonzero(area <= min_area * max(extent, 1e-9) ** 2)
    if bad.size:
        raise MeshError(f"{name}: degenerate, {bad.size} zero-area faces (first: face {bad[0]})")
    directed = onp.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], 0).astype(onp.int64)
    key = directed[:, 0] * v.shape[0] + directed[:, 1]
    uniq, counts = onp.unique(key, return_counts=True)
    if (counts > 1).any():
        raise MeshError(f"{name}: not watertight, {int((counts > 1).sum())} directed edges used twice (non-manifold or flipped faces)")
    rev = directed[:, 1] * v.shape[0] + directed[:, 0]
    missing = ~onp.isin(rev, uniq)
    if missing.any():
        raise MeshError(f"{name}: not watertight, {int(missing.sum())} boundary edges (holes)")
    vol = onp.sum(onp.einsum("fi,fi->f", tri[:, 0], onp.cross(tri[:, 1], tri[:, 2]))) / 6.0
    if vol <= 0:
        raise MeshError(f"{name}: faces are oriented inward (signed volume {vol:.3g} <= 0)")
