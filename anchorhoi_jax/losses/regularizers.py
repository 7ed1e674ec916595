"""L_reg of Eq. 4: temporal smoothness, self-penetration, pose prior, rendered-frame MSE.

The paper's L_reg "includes the mean squared error between the rendered model frame and video
frame, a self-penetration penalty, and a temporal smoothness term"; SMPL-X fitting in the paper
also uses VPoser as a prior. Each piece is its own function returning (value, aux); the motion
stage applies the (traced) weights in one place.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from anchorhoi_jax.body.part_volumes import PartVolumes, self_penetration_depths


def joint_smoothness(joints: Float[Array, "L J 3"]) -> tuple[Float[Array, ""], dict]:
    """Mean squared second difference (acceleration per frame², metres²) of the 3D joints."""
    with jax.named_scope("loss.smooth_joints"):
        acc = joints[2:] - 2.0 * joints[1:-1] + joints[:-2]
        return jnp.mean(jnp.sum(acc**2, -1)), {"acceleration": acc}


def object_smoothness(R: Float[Array, "L 3 3"], t: Float[Array, "L 3"], *, rot_weight: float = 0.1) -> tuple[Float[Array, ""], dict]:
    """Mean squared second difference of the object translation (m²) and rotation matrix entries.

    `rot_weight` ≈ (0.3 m)²: a rotation change is weighed like the displacement it causes at a
    typical object radius.
    """
    with jax.named_scope("loss.smooth_object"):
        at = t[2:] - 2.0 * t[1:-1] + t[:-2]
        aR = R[2:] - 2.0 * R[1:-1] + R[:-2]
        value = jnp.mean(jnp.sum(at**2, -1)) + rot_weight * jnp.mean(jnp.sum(aR**2, (-1, -2)))
        return value, {"translation_acceleration": at}


def self_penetration(
    parts: PartVolumes, p0: Float[Array, "P 3"], p1: Float[Array, "P 3"], radius: Float[Array, "P"]
) -> tuple[Float[Array, ""], dict]:
    """Σ overlap² (m²) between non-adjacent body-part capsules (body/part_volumes.py) for one frame."""
    with jax.named_scope("loss.self_penetration"):
        d = self_penetration_depths(parts, p0, p1, radius)
        return jnp.sum(d**2), {"max_depth": jnp.max(d, initial=0.0)}


def pose_prior_l2(body_pose: Float[Array, "B 3"], reference: Float[Array, "B 3"]) -> tuple[Float[Array, ""], dict]:
    """Default pose prior: squared axis-angle distance to the static instance's pose (radians²).

    The motion stage starts every frame at the static pose, so this keeps joints that the
    keypoints do not see (occluded, zero confidence) near a plausible configuration. A learned
    prior (e.g. body/pose_prior.py) plugs in through `MotionConfig.pose_prior` with the same
    signature.
    """
    return jnp.sum((body_pose - reference) ** 2), {}


PosePrior = Callable[[Float[Array, "B 3"], Float[Array, "B 3"]], tuple[Float[Array, ""], dict]]


def render_mse(
    rendered: Float[Array, "H W C"],
    frame: Float[Array, "H W C"],
    rendered_mask: Float[Array, "H W"] | None = None,
    mask: Float[Array, "H W"] | None = None,
) -> tuple[Float[Array, ""], dict]:
    """MSE between the rendered model frame and the video frame, plus mask MSE when both masks exist."""
    with jax.named_scope("loss.render_mse"):
        value = jnp.mean((rendered - frame) ** 2)
        if rendered_mask is not None and mask is not None:
            value = value + jnp.mean((rendered_mask - mask) ** 2)
        return value, {}
