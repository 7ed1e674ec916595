"""L_J of Eq. 5: confidence-weighted Geman-McClure reprojection error of the body keypoints.

    L_J = 1/N Σ_i w_i ρ(ĵ_i − j_i)                                                          (Eq. 5)

ĵ_i: the body model's OpenPose-18 points (joints/vertices chosen per body model) projected by the
video camera; j_i, w_i: the detected keypoints and confidences. As in the paper the residual is in
normalised pixel coordinates (pixels / max(image width, height)), so weights do not depend on the
video resolution; σ is given in pixels and normalised the same way.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from anchorhoi_jax.geometry.cameras import project
from anchorhoi_jax.losses.robust import geman_mcclure


def reprojection_loss(
    points_world: Float[Array, "18 3"],
    keypoints: Float[Array, "18 2"],
    confidence: Float[Array, "18"],
    K: Float[Array, "3 3"],
    T_cam_world: Float[Array, "4 4"],
    image_size: Float[Array, "2"],
    *,
    sigma_px: float | Float[Array, ""] = 100.0,
) -> tuple[Float[Array, ""], dict]:
    """Eq. 5 for one frame. Returns (L_J, aux{residual_px (18,)}). Points behind the camera get no weight."""
    with jax.named_scope("loss.reprojection"):
        uv, depth = project(K, T_cam_world, points_world)
        norm = jnp.max(image_size)
        r2 = jnp.sum(((uv - keypoints) / norm) ** 2, -1)
        w = confidence * (depth > 0)
        value = jnp.mean(w * geman_mcclure(r2, sigma_px / norm))
        return value, {"residual_px": jnp.sqrt(r2) * norm}
