"""Pinhole cameras in the OpenCV convention (CONVENTIONS.md): x right, y down, z forward.

`Camera` is a pytree of one view; stack views/seeds with vmap or by stacking leaves.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from jaxtyping import Array, Float

HIGHEST = jax.lax.Precision.HIGHEST


@struct.dataclass
class Camera:
    """One pinhole view: intrinsics `K` (pixels) and extrinsics `T_cam_world`."""

    K: Float[Array, "3 3"]
    T_cam_world: Float[Array, "4 4"]
    height: int = struct.field(pytree_node=False, default=64)
    width: int = struct.field(pytree_node=False, default=64)

    @property
    def R_cam_world(self) -> Float[Array, "3 3"]:
        return self.T_cam_world[..., :3, :3]

    @property
    def t_cam_world(self) -> Float[Array, "3"]:
        return self.T_cam_world[..., :3, 3]

    @property
    def center_world(self) -> Float[Array, "3"]:
        """Camera centre in world coordinates: −Rᵀ t."""
        return -jnp.einsum("...ba,...b->...a", self.R_cam_world, self.t_cam_world)


def intrinsics_from_fov(fov_y_deg, height: int, width: int) -> Float[Array, "3 3"]:
    """K for a vertical field of view (degrees) and square pixels, principal point at the centre."""
    f = 0.5 * height / jnp.tan(0.5 * jnp.deg2rad(jnp.asarray(fov_y_deg, jnp.float32)))
    z = jnp.zeros_like(f)
    o = jnp.ones_like(f)
    return jnp.stack(
        [jnp.stack([f, z, z + 0.5 * width], -1), jnp.stack([z, f, z + 0.5 * height], -1), jnp.stack([z, z, o], -1)], -2
    )


def look_at(eye: Float[Array, "3"], target: Float[Array, "3"], up=(0.0, 1.0, 0.0)) -> Float[Array, "4 4"]:
    """T_cam_world of a camera at `eye` looking at `target`, world y up mapped to image up (−y_cam)."""
    eye = jnp.asarray(eye, jnp.float32)
    target = jnp.asarray(target, jnp.float32)
    up = jnp.broadcast_to(jnp.asarray(up, jnp.float32), eye.shape)
    z = target - eye
    z = z / jnp.linalg.norm(z, axis=-1, keepdims=True)
    x = jnp.cross(z, up)  # camera x (right) = forward × up for y-down images
    x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-9)
    y = jnp.cross(z, x)
    R = jnp.stack([x, y, z], axis=-2)  # rows: camera axes in world coordinates
    t = -jnp.einsum("...ab,...b->...a", R, eye)
    top = jnp.concatenate([R, t[..., None]], -1)
    bottom = jnp.broadcast_to(jnp.array([0.0, 0.0, 0.0, 1.0], jnp.float32), top.shape[:-2] + (1, 4))
    return jnp.concatenate([top, bottom], -2)


def world_to_camera(T_cam_world: Float[Array, "4 4"], points: Float[Array, "*n 3"]) -> Float[Array, "*n 3"]:
    R, t = T_cam_world[:3, :3], T_cam_world[:3, 3]
    return jnp.einsum("ab,...b->...a", R, points, precision=HIGHEST) + jnp.broadcast_to(t, points.shape)


def project(K: Float[Array, "3 3"], T_cam_world: Float[Array, "4 4"], points: Float[Array, "*n 3"], eps: float = 1e-6):
    """Project world points to pixels. Returns (uv (*n, 2), depth (*n,)); depth ≤ 0 is behind.

    Pixel convention: continuous coordinates, pixel (u, v) spans [u, u+1) so its centre is u + 0.5.
    """
    p = world_to_camera(T_cam_world, points)
    z = p[..., 2]
    zs = jnp.where(jnp.abs(z) < eps, eps, z)
    uv = jnp.stack([K[0, 0] * p[..., 0] / zs + K[0, 2], K[1, 1] * p[..., 1] / zs + K[1, 2]], -1)
    return uv, z
