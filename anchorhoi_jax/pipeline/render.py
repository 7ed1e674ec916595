"""Rendering the HOI for the video prior and the 4D result video: one camera per seed framing the
static interaction, and a hard-rasterised, Lambert-shaded human + object image (render/raster.py)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as onp
from jaxtyping import Array, Float, Int

from anchorhoi_jax.geometry.cameras import Camera, intrinsics_from_fov, look_at
from anchorhoi_jax.render.raster import rasterize

__all__ = ["framing_camera", "render_scene", "scene_arrays", "render_sequence"]

_LIGHT = onp.array([0.3, 0.8, 0.5]) / onp.linalg.norm([0.3, 0.8, 0.5])  # world direction towards the key light


def framing_camera(points: onp.ndarray, *, height: int, width: int, fov_deg: float, elevation_deg: float,
                   azimuth_deg: float, margin: float) -> tuple[onp.ndarray, onp.ndarray]:
    """K (3,3) and T_cam_world (4,4) of a camera that sees every point (bounding sphere) with `margin`.

    Azimuth 0 puts the camera on the body's +z side (it faces +z, CONVENTIONS.md); positive elevation
    looks down.
    """
    p = onp.asarray(points, onp.float64)
    lo, hi = p.min(0), p.max(0)
    centre = 0.5 * (lo + hi)
    radius = max(0.5 * float(onp.linalg.norm(hi - lo)), 0.05)
    half = 0.5 * onp.deg2rad(fov_deg) * min(1.0, width / height)  # the tighter half-angle
    dist = margin * radius / onp.sin(half)
    el, az = onp.deg2rad(elevation_deg), onp.deg2rad(azimuth_deg)
    eye = centre + dist * onp.array([onp.cos(el) * onp.sin(az), onp.sin(el), onp.cos(el) * onp.cos(az)])
    K = onp.asarray(intrinsics_from_fov(fov_deg, height, width), onp.float32)
    T = onp.asarray(look_at(jnp.asarray(eye, jnp.float32), jnp.asarray(centre, jnp.float32)), onp.float32)
    return K, T


def scene_arrays(human_v, human_f, human_c, object_v, object_f, object_c):
    """One mesh of human + object (object faces offset), for a single raster pass."""
    hv = jnp.asarray(human_v, jnp.float32)
    ov = jnp.asarray(object_v, jnp.float32)
    verts = jnp.concatenate([hv, ov], axis=-2)
    faces = jnp.concatenate([jnp.asarray(human_f, jnp.int32), jnp.asarray(object_f, jnp.int32) + hv.shape[-2]], 0)
    cols = jnp.concatenate([jnp.asarray(human_c, jnp.float32), jnp.asarray(object_c, jnp.float32)], 0)
    return verts, faces, cols


@functools.partial(jax.jit, static_argnames=("height", "width"))
def render_scene(vertices: Float[Array, "V 3"], faces: Int[Array, "F 3"], colors: Float[Array, "V 3"],
                 K: Float[Array, "3 3"], T_cam_world: Float[Array, "4 4"], *, height: int, width: int,
                 ) -> Float[Array, "H W 3"]:
    """Hard raster, Lambert shading with an ambient floor, white background; (H, W, 3) in [0, 1]."""
    with jax.named_scope("pipeline.render_scene"):
        cam = Camera(K=K, T_cam_world=T_cam_world, height=height, width=width)
        out = rasterize(vertices, faces, colors, cam, mode="hard", background=1.0, cull_backfaces=False)
        # Normals are world-frame; two-sided Lambert (object meshes from marching cubes may be open).
        light = jnp.asarray(_LIGHT, jnp.float32).reshape(1, 1, 3)
        shade = 0.35 + 0.65 * jnp.abs(jnp.sum(out["normal"] * light, -1, keepdims=True))
        a = out["alpha"][..., None]
        return jnp.clip(a * out["rgb"] * shade + (1.0 - a) * 1.0, 0.0, 1.0)


def render_sequence(vertices: Float[Array, "L V 3"], faces, colors, K, T_cam_world, *, height: int, width: int
                    ) -> onp.ndarray:
    """`render_scene` per frame (one compiled program, frames in a Python loop to bound memory)."""
    return onp.stack([onp.asarray(render_scene(v, faces, colors, K, T_cam_world, height=height, width=width))
                      for v in vertices])
