"""Shading of field samples (DreamFusion Sec. 3.1): albedo, lambertian, textureless, normals."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

SHADING_MODES = ("albedo", "lambertian", "textureless", "normal")


def shade(
    albedo: Float[Array, "N 3"],
    normals: Float[Array, "N 3"] | None,
    light_dir: Float[Array, "3"] | None,
    *,
    mode: str,
    ambient: float | Float[Array, ""] = 0.1,
) -> Float[Array, "N 3"]:
    """Colour of each sample.

    lambertian: ρ ⊙ (a + (1 − a)·max(0, n·l)); textureless: the same with ρ = 1 (geometry only);
    normal: (n + 1)/2; albedo: ρ. `light_dir` is the unit direction toward the light (world).
    """
    if mode not in SHADING_MODES:
        raise ValueError(f"shade: mode must be one of {SHADING_MODES}, got {mode!r}")
    if mode == "albedo":
        return albedo
    if normals is None:
        raise ValueError(f"shade: mode {mode!r} needs normals")
    if mode == "normal":
        return 0.5 * (normals + 1.0)
    if light_dir is None:
        raise ValueError(f"shade: mode {mode!r} needs light_dir")
    diffuse = jnp.maximum(jnp.sum(normals * jnp.broadcast_to(light_dir, normals.shape), -1, keepdims=True), 0.0)
    lum = ambient + (1.0 - ambient) * diffuse
    return albedo * lum if mode == "lambertian" else jnp.broadcast_to(lum, albedo.shape)


def sample_light(key, camera_center: Float[Array, "3"], target: Float[Array, "3"], *, spread: float = 0.5):
    """A random light near the camera (DreamFusion): position = camera + spread·|camera − target|·N(0, I).

    Returns the unit direction from `target` toward the light.
    """
    offset = camera_center - target
    pos = camera_center + spread * jnp.linalg.norm(offset) * jax.random.normal(key, (3,), camera_center.dtype)
    d = pos - target
    return d / jnp.maximum(jnp.linalg.norm(d), 1e-9)
