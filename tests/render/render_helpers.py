"""Small meshes and cameras shared by the render tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp

from anchorhoi_jax.geometry.cameras import Camera, intrinsics_from_fov, look_at


def uv_sphere(n_lat: int = 8, n_lon: int = 12, radius: float = 0.5, center=(0.0, 0.0, 0.0)):
    """Closed UV sphere, counter-clockwise faces seen from outside. Returns numpy (V, 3), (F, 3)."""
    verts = [[0.0, radius, 0.0]]
    for i in range(1, n_lat):
        th = onp.pi * i / n_lat
        for j in range(n_lon):
            ph = 2 * onp.pi * j / n_lon
            verts.append([radius * onp.sin(th) * onp.sin(ph), radius * onp.cos(th), radius * onp.sin(th) * onp.cos(ph)])
    verts.append([0.0, -radius, 0.0])
    v = onp.asarray(verts) + onp.asarray(center)
    faces = []
    ring = lambda i, j: 1 + (i - 1) * n_lon + (j % n_lon)  # noqa: E731
    for j in range(n_lon):
        faces.append([0, ring(1, j), ring(1, j + 1)])
    for i in range(1, n_lat - 1):
        for j in range(n_lon):
            a, b, c, d = ring(i, j), ring(i, j + 1), ring(i + 1, j), ring(i + 1, j + 1)
            faces += [[a, c, d], [a, d, b]]
    last = len(verts) - 1
    for j in range(n_lon):
        faces.append([last, ring(n_lat - 1, j + 1), ring(n_lat - 1, j)])
    f = onp.asarray(faces, onp.int32)
    # Make the winding outward (counter-clockwise seen from outside) whatever the construction order.
    tri = v[f]
    n = onp.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flip = onp.sum(n * (tri.mean(1) - onp.asarray(center)), -1) < 0
    f[flip] = f[flip][:, ::-1]
    return v.astype(onp.float32), f


def camera(eye=(0.0, 0.0, 3.0), target=(0.0, 0.0, 0.0), fov=40.0, size=32, dtype=jnp.float32) -> Camera:
    K = intrinsics_from_fov(fov, size, size).astype(dtype)
    T = look_at(jnp.asarray(eye, jnp.float32), jnp.asarray(target, jnp.float32)).astype(dtype)
    return Camera(K=K, T_cam_world=T, height=size, width=size)


def stack(cams) -> Camera:
    return jax.tree.map(lambda *a: jnp.stack(a), *cams)
