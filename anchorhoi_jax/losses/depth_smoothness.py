"""Temporal smoothness (part of L_reg, Eq. 4) measured at a fixed reference depth along the camera ray.

Why: under a monocular camera the keypoints of Eq. 5 fix each point's ray; the image-consistent trajectory
of the root at depth z is X_i = z r_i, so its acceleration, and with it the part of the keypoint noise the
fit follows, scales with z: the metric smoothness terms (losses/regularizers.py) are cheaper for a
sequence moved nearer the camera (root path scaled about the camera centre, the body's size unchanged).
Measured (benchmarks/results/motion.md, session 6): this is NOT what made the fits sit nearer than the truth
(that was the keypoint translation init, fixed in stages/motion.keypoint_translations); with these terms in
place of the metric ones the depth bias hardly moved (dev carry@h4, 48 frames: −45.9 → −44.5 / −43.5 mm).
They stay available, weight 0 by default.

The fix keeps the smoothing and removes only its opinion about the global depth: the root trajectory
(and the object's, which L_C ties to the human) is rescaled about the camera centre by
c = z_ref / z̄ (z̄: mean root depth of the sequence, differentiated; z_ref: a constant, the static
instance's root depth) before the second differences are taken, the body's root-relative joints are
not. Scaling the root and object paths about the camera centre by any k leaves the value unchanged
(c X_0 is invariant), so the term has no gradient along that direction; at z̄ = z_ref it equals the
metric term. A constant offset added by the rescaling (the camera centre) drops out of the second
differences, so world coordinates are used directly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

HIGHEST = jax.lax.Precision.HIGHEST


def depth_rescale(
    root_world: Float[Array, "L 3"], T_cam_world: Float[Array, "4 4"], reference_depth: Float[Array, ""]
) -> tuple[Float[Array, ""], dict]:
    """c = z_ref / z̄: the factor that moves the sequence's mean root depth z̄ (camera z, metres) to `reference_depth`.

    z̄ is clamped to ≥ 1 cm (a root behind the camera gives no meaningful scale). Aux: z̄ (m)."""
    with jax.named_scope("loss.depth_rescale"):
        z = root_world @ T_cam_world[2, :3] + T_cam_world[2, 3]
        z_mean = jnp.mean(z)
        return reference_depth / jnp.maximum(z_mean, 0.01), {"mean_depth": z_mean}


def joint_smoothness_at_depth(joints: Float[Array, "L J 3"], scale: Float[Array, ""], *, root: int = 0) -> tuple[Float[Array, ""], dict]:
    """Mean squared second difference (metres²) of the joints with the root path scaled: Y_j + c X_root.

    Y_j = X_j − X_root (root-relative joints, the body's own size); c = `scale` (`depth_rescale`). At c = 1
    this is regularizers.joint_smoothness exactly."""
    with jax.named_scope("loss.smooth_joints_refdepth"):
        r = joints[:, root : root + 1]
        q = joints - (1.0 - scale) * r
        acc = q[2:] - 2.0 * q[1:-1] + q[:-2]
        return jnp.mean(jnp.sum(acc**2, -1)), {"acceleration": acc}


def body_smoothness_at_depth(joints: Float[Array, "L J 3"], scale: Float[Array, ""]) -> tuple[Float[Array, ""], dict]:
    """Mean squared second difference (metres²) of the whole body scaled by c = `scale` about the camera centre:
    c² · regularizers.joint_smoothness. Unlike `joint_smoothness_at_depth` the root-relative joints are scaled too:
    the part of the keypoint noise the fitted articulation follows is also a 3D displacement ∝ depth, so only the
    whole-body form makes that part's cost depth-independent (it charges real articulation less when farther)."""
    with jax.named_scope("loss.smooth_body_refdepth"):
        acc = scale * (joints[2:] - 2.0 * joints[1:-1] + joints[:-2])
        return jnp.mean(jnp.sum(acc**2, -1)), {"acceleration": acc}


def object_smoothness_at_depth(
    R: Float[Array, "L 3 3"], t: Float[Array, "L 3"], scale: Float[Array, ""], *, rot_weight: float = 0.1
) -> tuple[Float[Array, ""], dict]:
    """regularizers.object_smoothness of the object path scaled by c = `scale` (rotations are depth-free).

    `rot_weight` as there, ≈ (0.3 m)²."""
    with jax.named_scope("loss.smooth_object_refdepth"):
        at = scale * (t[2:] - 2.0 * t[1:-1] + t[:-2])
        aR = R[2:] - 2.0 * R[1:-1] + R[:-2]
        value = jnp.mean(jnp.sum(at**2, -1)) + rot_weight * jnp.mean(jnp.sum(aR**2, (-1, -2)))
        return value, {"translation_acceleration": at}
