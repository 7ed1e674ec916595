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


# ----------------------------------------------------------------------------------------------
# Rays, orbits and random views (SDS-style view sampling).
# ----------------------------------------------------------------------------------------------

# View tags for view-dependent prompting ("front view", "side view", "back view", "overhead view").
VIEW_FRONT, VIEW_SIDE, VIEW_BACK, VIEW_OVERHEAD = 0, 1, 2, 3
VIEW_TAG_NAMES = ("front", "side", "back", "overhead")


def pixel_centers(height: int, width: int, dtype=jnp.float32) -> Float[Array, "H W 2"]:
    """(u, v) pixel-centre coordinates, (u+0.5, v+0.5), of an H×W image (CONVENTIONS.md)."""
    u = jnp.arange(width, dtype=dtype) + 0.5
    v = jnp.arange(height, dtype=dtype) + 0.5
    uu, vv = jnp.meshgrid(u, v, indexing="xy")
    return jnp.stack([uu, vv], -1)


def generate_rays(camera: Camera) -> tuple[Float[Array, "H W 3"], Float[Array, "H W 3"]]:
    """World-space rays through every pixel centre of one camera.

    Returns:
        origins (H, W, 3): the camera centre, repeated.
        directions (H, W, 3): unit directions. A point at ray distance t has camera depth
        t * (direction · camera z axis); `ray_z_scale` gives that factor.
    """
    K = camera.K
    uv = pixel_centers(camera.height, camera.width, K.dtype)
    d_cam = jnp.stack(
        [(uv[..., 0] - K[0, 2]) / K[0, 0], (uv[..., 1] - K[1, 2]) / K[1, 1], jnp.ones(uv.shape[:-1], K.dtype)], -1
    )
    R = camera.R_cam_world
    d_world = jnp.einsum("ba,hwb->hwa", R, d_cam, precision=HIGHEST)  # Rᵀ d_cam
    d_world = d_world / jnp.linalg.norm(d_world, axis=-1, keepdims=True)
    origins = jnp.broadcast_to(camera.center_world, d_world.shape)
    return origins, d_world


def ray_z_scale(camera: Camera, directions: Float[Array, "*n 3"]) -> Float[Array, "*n"]:
    """Camera-z depth per unit of ray distance: depth = t * (d · z_cam)."""
    z_axis = camera.R_cam_world[2]
    return jnp.sum(directions * jnp.broadcast_to(z_axis, directions.shape), -1)


def spherical_eye(target, elevation_deg, azimuth_deg, distance) -> Float[Array, "*n 3"]:
    """Camera position on a sphere about `target`.

    Azimuth 0 is in front of a body facing +z (eye on +z); positive azimuth turns toward +x (the
    body's left); elevation is the angle above the horizontal plane (y up).
    """
    el = jnp.deg2rad(jnp.asarray(elevation_deg, jnp.float32))
    az = jnp.deg2rad(jnp.asarray(azimuth_deg, jnp.float32))
    d = jnp.asarray(distance, jnp.float32)
    offset = jnp.stack([jnp.cos(el) * jnp.sin(az), jnp.sin(el), jnp.cos(el) * jnp.cos(az)], -1) * d[..., None]
    return jnp.broadcast_to(jnp.asarray(target, jnp.float32), offset.shape) + offset


def view_tags(elevation_deg, azimuth_deg, *, front_deg: float = 60.0, overhead_deg: float = 60.0):
    """Front/side/back/overhead tags (int32) as in DreamFusion-style view-dependent prompting.

    front: |azimuth| < front_deg/2; back: |azimuth| > 180 - front_deg/2; side otherwise;
    overhead wins when elevation > overhead_deg.
    """
    az = jnp.mod(jnp.asarray(azimuth_deg, jnp.float32) + 180.0, 360.0) - 180.0  # wrap to [-180, 180)
    a = jnp.abs(az)
    tag = jnp.where(a < 0.5 * front_deg, VIEW_FRONT, jnp.where(a > 180.0 - 0.5 * front_deg, VIEW_BACK, VIEW_SIDE))
    tag = jnp.where(jnp.asarray(elevation_deg) > overhead_deg, VIEW_OVERHEAD, tag)
    return tag.astype(jnp.int32)


def _cameras(eyes, target, fov_deg, height: int, width: int) -> Camera:
    target = jnp.broadcast_to(jnp.asarray(target, jnp.float32), eyes.shape)
    T = jax.vmap(look_at)(eyes, target)
    K = intrinsics_from_fov(jnp.broadcast_to(jnp.asarray(fov_deg, jnp.float32), eyes.shape[:1]), height, width)
    return Camera(K=K, T_cam_world=T, height=height, width=width)


def orbit_cameras(
    n_views: int,
    *,
    height: int,
    width: int,
    target=(0.0, 0.0, 0.0),
    distance: float = 3.0,
    elevation_deg: float = 15.0,
    fov_deg: float = 40.0,
    azimuth_start_deg: float = 0.0,
) -> Camera:
    """`n_views` cameras evenly spaced in azimuth on a circle, all looking at `target`.

    Returns a Camera whose leaves have a leading view axis (n_views,).
    """
    if n_views < 1:
        raise ValueError(f"orbit_cameras: n_views must be >= 1, got {n_views}")
    az = azimuth_start_deg + 360.0 * jnp.arange(n_views, dtype=jnp.float32) / n_views
    el = jnp.full((n_views,), elevation_deg, jnp.float32)
    eyes = spherical_eye(target, el, az, jnp.full((n_views,), distance, jnp.float32))
    return _cameras(eyes, target, fov_deg, height, width)


@struct.dataclass
class ViewSample:
    """Random views with their spherical coordinates and prompt tags (leading view axis)."""

    camera: Camera
    elevation_deg: Float[Array, "n"]
    azimuth_deg: Float[Array, "n"]
    distance: Float[Array, "n"]
    fov_deg: Float[Array, "n"]
    tag: Array  # int32 (n,), VIEW_FRONT / VIEW_SIDE / VIEW_BACK / VIEW_OVERHEAD


def sample_views(
    key,
    n_views: int,
    *,
    height: int,
    width: int,
    target=(0.0, 0.0, 0.0),
    elevation_range=(-10.0, 45.0),
    azimuth_range=(-180.0, 180.0),
    distance_range=(2.5, 3.5),
    fov_range=(30.0, 45.0),
    jitter_target: float = 0.0,
    front_deg: float = 60.0,
    overhead_deg: float = 60.0,
) -> ViewSample:
    """Random views as SDS methods draw them: uniform azimuth, elevation, distance and field of view.

    Elevation is drawn uniformly on the sphere band (uniform in sin(elevation)) so views are not
    crowded at the poles; `jitter_target` adds Gaussian noise (metres) to the look-at target.
    """
    if n_views < 1:
        raise ValueError(f"sample_views: n_views must be >= 1, got {n_views}")
    for name, (lo, hi) in (("elevation_range", elevation_range), ("azimuth_range", azimuth_range),
                           ("distance_range", distance_range), ("fov_range", fov_range)):
        if lo > hi:
            raise ValueError(f"sample_views: {name} must be (low, high) with low <= high, got {(lo, hi)}")
    k_el, k_az, k_d, k_f, k_t = jax.random.split(key, 5)
    s_lo, s_hi = jnp.sin(jnp.deg2rad(elevation_range[0])), jnp.sin(jnp.deg2rad(elevation_range[1]))
    el = jnp.rad2deg(jnp.arcsin(jax.random.uniform(k_el, (n_views,), minval=s_lo, maxval=s_hi)))
    az = jax.random.uniform(k_az, (n_views,), minval=azimuth_range[0], maxval=azimuth_range[1])
    dist = jax.random.uniform(k_d, (n_views,), minval=distance_range[0], maxval=distance_range[1])
    fov = jax.random.uniform(k_f, (n_views,), minval=fov_range[0], maxval=fov_range[1])
    tgt = jnp.asarray(target, jnp.float32)[None] + jitter_target * jax.random.normal(k_t, (n_views, 3))
    eyes = spherical_eye(tgt, el, az, dist)
    cam = _cameras(eyes, tgt, fov, height, width)
    tags = view_tags(el, az, front_deg=front_deg, overhead_deg=overhead_deg)
    return ViewSample(camera=cam, elevation_deg=el, azimuth_deg=az, distance=dist, fov_deg=fov, tag=tags)
