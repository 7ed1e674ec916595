"""The object's own observation of rest: frames whose object mask shows it where X_s put it (part of L_reg, Eq. 4).

In the paper's motion stage (Sec. 4, Eq. 4-6) only the human is observed (Eq. 5, keypoints); the object's
per-frame pose is moved by the contact term L_C (Eq. 6) and initialised by carrying it along with the human's
keypoint translation. A monocular human track has smooth errors along the camera ray (its depth is seen only
through the body's on-screen size; a static torso fitted to a bending one wanders by several centimetres), so
a chair being sat on inherits that wander and holds the human at the wrong depth through L_C (motion.md,
session 6 diagnosis: the chair frozen at X_s lowered sit_chair's MPJPE 52.0 -> 24.7 mm). A prior on the
object's velocity alone cannot separate that drift from a carried box's real motion along the ray (session 7:
both are slow and mostly along the ray).

The per-frame instance masks of the video (L_reg's rendered-frame comparison, losses/silhouette.py) do
separate them, and without any depth estimate: a static object's visible mask stays inside its silhouette at
the static instance X_s (frame 0 of the generated video shows X_s), and that silhouette stays covered by the
union of the object and human masks (a human in front hides part of the object, never uncovers pixels
outside it). A box carried or pushed more than a few pixels leaves that silhouette in the image. So
`static_object_frames` tests, per frame, on the host:

* coverage: the `quantile` of the distance (px) of the object-mask pixels to the X_s silhouette;
* inside: the same quantile of the distance of the X_s silhouette's pixels to the union of both masks;

and calls a frame static when both are at most `tolerance_px` (the segmentation error budget: masks eroded or
dilated by a pixel or two, ragged boundaries). Moving along the ray changes the silhouette's size, which the
two sides see only once it exceeds the tolerance (a 0.5 m object 4 m away grows by a pixel per ~10 cm), so an
object carried towards the camera can pass the test again after it has visibly left (dev draw carry_box@h4,
48 frames: frames 0-3 pass, 4-8 fail, 10-14 pass again). Hence a hysteresis: once the test has failed in
`departure_frames` consecutive frames the object has left X_s, and no later frame counts as at rest there (an
object returning to exactly its old placement is far less likely than a depth ambiguity).

Where the test says "at rest", `object_static_anchor` ties the object to X_s's placement in that frame
(squared translation in m² + ½‖R − R_s‖_F², the units of losses/anchor.py), a mean over frames weighted by the
test, so it is 0 for a clip with a moving object and for data without masks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
from jaxtyping import Array, Float

from anchorhoi_jax.losses.anchor import rotation_gap

__all__ = ["static_object_frames", "object_static_anchor"]


def _quantile_distance(dist: onp.ndarray, where: onp.ndarray, q: float) -> float:
    """`q`-quantile of `dist` over the pixels `where` (0 when there are none: nothing contradicts rest)."""
    vals = dist[where]
    return float(onp.quantile(vals, q)) if vals.size else 0.0


def static_object_frames(
    object_masks, human_masks, static_silhouette, *, tolerance_px: float = 4.0, quantile: float = 0.98,
    departure_frames: int = 3,
) -> tuple[onp.ndarray, dict]:
    """Per frame, 1.0 where the object masks show the object at its static-instance placement, else 0.0.

    `object_masks`, `human_masks`: (L, H, W) bool instance masks (visible parts); `static_silhouette`: (H, W) bool,
    the object rendered alone at X_s (its full silhouette). Returns ((L,) float32, {"coverage_px", "inside_px"}
    (L,) each: the two quantile distances the decision used). Frames with an empty object mask count as static
    only if the X_s silhouette is hidden by the human (the inside side) — an object that left the image is not."""
    from scipy.ndimage import distance_transform_edt

    om = onp.asarray(object_masks) > 0.5
    hm = onp.asarray(human_masks) > 0.5
    sil = onp.asarray(static_silhouette) > 0.5
    if om.ndim != 3 or hm.shape != om.shape or sil.shape != om.shape[1:]:
        raise ValueError(f"static_object_frames: masks must be (L, H, W) each and the silhouette (H, W), got object "
                         f"{om.shape}, human {hm.shape}, silhouette {sil.shape}")
    if not 0.0 < quantile <= 1.0 or tolerance_px < 0 or departure_frames < 1:
        raise ValueError(f"static_object_frames: need 0 < quantile <= 1, tolerance_px >= 0 and departure_frames >= 1, got "
                         f"{quantile}, {tolerance_px}, {departure_frames}")
    if not sil.any():  # X_s's object is outside the image: the masks cannot say anything
        L = om.shape[0]
        return onp.zeros((L,), onp.float32), {"coverage_px": onp.full((L,), onp.inf), "inside_px": onp.full((L,), onp.inf)}
    outside_sil = distance_transform_edt(~sil)  # px from each pixel to X_s's silhouette
    cov, ins = [], []
    for i in range(om.shape[0]):
        cov.append(_quantile_distance(outside_sil, om[i], quantile))
        union = om[i] | hm[i]
        ins.append(_quantile_distance(distance_transform_edt(~union), sil, quantile) if union.any() else onp.inf)
    cov, ins = onp.asarray(cov), onp.asarray(ins)
    static = (cov <= tolerance_px) & (ins <= tolerance_px)
    run = 0
    for i in range(len(static)):  # hysteresis: after `departure_frames` failing frames in a row, nothing is at rest
        run = 0 if static[i] else run + 1
        if run >= departure_frames:
            static[i - run + 1:] = False
            break
    return static.astype(onp.float32), {"coverage_px": cov, "inside_px": ins}


def object_static_anchor(
    R_obj: Float[Array, "L 3 3"],
    t_obj: Float[Array, "L 3"],
    frame_weight: Float[Array, "L"],
    R_obj_static: Float[Array, "3 3"],
    t_obj_static: Float[Array, "3"],
) -> tuple[Float[Array, ""], dict]:
    """Mean over the L frames of w_i (‖t_i − t_s‖² + ½‖R_i − R_s‖_F²), w = `static_object_frames`' test.

    A mean over all frames (not over the static ones), so the term's scale does not jump when only a few
    frames are at rest. aux: the per-frame gap (L,)."""
    with jax.named_scope("loss.object_static_anchor"):
        gap = jnp.sum((t_obj - t_obj_static[None]) ** 2, -1) + rotation_gap(R_obj, R_obj_static)
        return jnp.mean(frame_weight * gap), {"gap": gap}
