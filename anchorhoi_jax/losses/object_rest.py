"""Object-at-rest prior (part of L_reg of Eq. 4): an object moves only when the evidence moves it.

In the paper's motion stage (Sec. 4, Eq. 4-6) the object has no observation of its own: only the human is
observed (Eq. 5, keypoints), and the object's per-frame pose is set by the contact term L_C (Eq. 6), which
ties it to the skinned human, plus L_pen and L_reg's smoothness. The smoothness term penalises the second
difference (acceleration), so any *smooth* path of the object costs nothing there — and a monocular human
track has exactly such smooth errors along the camera ray (the body's depth is observed only through its
on-screen size; a static torso fitted to a bending one wanders by several centimetres). Through L_C the
object then wanders with the human's depth error, even when it stands still in the video (a chair being sat
on), and holds the human at the wrong depth in turn (benchmarks/results/motion.md, session 6 diagnosis:
sit_chair's chair frozen at X_s lowered MPJPE 52.0 -> 24.7 mm).

Physically an object is at rest unless a force moves it: here, unless the contacts with a *moving* human
drag it. The penalty below is on the object's velocity (first difference per frame), the least-action form of
that prior: the object follows the human only where the evidence of the human's motion (through L_C)
outweighs it, and otherwise keeps the placement its anchored frames give it (X_s at the frames that show the
static instance, losses/anchor.py).

A plain quadratic velocity cost cannot tell a carried box from a chair: the human's depth along the camera
ray is weakly held by the keypoints, so through L_C the prior would also drag a carried object's (and its
carrier's) real motion along the ray back towards rest (dev draw carry_box@h4, 48 frames, CPU: MPJPE
~29 -> 130 mm at weight 10). So, like the Geman-McClure robustifier the paper uses for Eq. 5, the cost is
redescending with a velocity scale σ (metres per frame), in the manner of static friction: a drift slower
than σ (the smooth few-mm-per-frame depth wander of a monocular track) costs ≈ v², a motion well above it
(walking with a box: ≥ 7 mm per frame at 24 fps) costs at most σ² per frame and is barely resisted.
σ ≤ 0 gives the plain quadratic (for diagnosis).

Measured (session 7, H100, 120 frames, dev draws): neither form passed selection, so MotionWeights.object_rest
defaults to 0. Both lowered sit_chair@h6 (40.3 -> 31-40 mm) but raised carry_box@h4 / push_box@h5 at every weight
tried (quadratic 0.1-1; σ 1-5 mm per frame at weights 10-1000), and the strong settings let the human sink into
the held object (max penetration up to 25 mm): a carried box's motion along the ray is as weakly observed as the
chair's spurious wander, and the per-frame velocities of the two differ only ~4-8x.

Units as `regularizers.object_smoothness`: metres² per frame² for the translation, and `rot_weight` times
the squared matrix-entry difference for the rotation (≈ (0.3 m)², a rotation weighed like the displacement
it causes at a typical object radius); the robust cost acts on their sum. Mean over the L − 1 frame pairs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def object_rest(R: Float[Array, "L 3 3"], t: Float[Array, "L 3"], scale: float | Float[Array, ""] = 0.0, *,
                rot_weight: float = 0.1) -> tuple[Float[Array, ""], dict]:
    """Mean over frame pairs of ρ_σ(‖t_i − t_{i−1}‖² + rot_weight·‖R_i − R_{i−1}‖_F²), the object's velocity per frame.

    ρ_σ(q) = σ² q / (σ² + q) (Geman-McClure on the squared velocity, losses/robust.py) for `scale` σ > 0 (m per
    frame, may be traced), ρ(q) = q for σ ≤ 0. `R`, `t`: the object's world rotation and translation per frame.
    aux: the per-frame translation velocity (L − 1, 3). A single frame has no velocity (value 0)."""
    with jax.named_scope("loss.object_rest"):
        if t.shape[0] < 2:
            return jnp.zeros((), t.dtype), {"velocity": jnp.zeros((0, 3), t.dtype)}
        vt = t[1:] - t[:-1]
        vR = R[1:] - R[:-1]
        q = jnp.sum(vt**2, -1) + rot_weight * jnp.sum(vR**2, (-1, -2))
        s2 = jnp.asarray(scale, q.dtype) ** 2
        # q / (1 + q/σ²) = σ² q / (σ² + q); σ² is replaced by 1 where σ ≤ 0 so that the unused branch (and its
        # gradient, which jnp.where multiplies by 0) stays finite.
        robust = q / (1.0 + q / jnp.where(s2 > 0, s2, 1.0))
        return jnp.mean(jnp.where(s2 > 0, robust, q)), {"velocity": vt}
