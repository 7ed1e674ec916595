"""Physical plausibility metrics of a 4D human-object sequence, each with its source.

All lengths are reported in millimetres. Inputs are world-frame arrays with a leading frame axis.

* Penetration (CHOIS, Li et al. 2024, "Controllable Human-Object Interaction Synthesis", Sec. 5:
  penetration measured with the object's signed distance field at the human vertices): per frame the
  deepest human vertex inside the object; we report the max and mean over frames, the mean depth of
  penetrating vertices, and the percentage of frames whose deepest vertex exceeds a threshold.
* Contact (pairs of paper Eq. 3): per frame the mean distance of the contact pairs (human vertex
  vs. its object point moved rigidly, Eq. 6 without the square) and the contact ratio, the share of
  pairs closer than a threshold (CHOIS/OMOMO report the share of frames in contact with a 5 cm
  threshold; we report both per pair and per frame).
* Self-penetration: overlap depth of non-adjacent body-part capsules (body/part_volumes.py).
* Jitter: mean norm of the joints' acceleration ‖x_{t+1} − 2x_t + x_{t−1}‖ (mm/frame², and ·fps² in
  m/s²); the acceleration error against ground truth is the HMR/VIBE "Accel" metric.
* Foot skating (GMD, Karunratanakul et al. 2023, Sec. 5.1, used unchanged by HOI-Diff, Peng et al.
  2023): the ratio of frames in which a foot joint is on the ground (height < 5 cm in both frames)
  yet slides horizontally more than 2.5 cm between consecutive frames.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from anchorhoi_jax.body.part_volumes import PartVolumes, pose_part_volumes, self_penetration_depths
from anchorhoi_jax.geometry.sdf import SDFGrid, sample_sdf

HIGHEST = jax.lax.Precision.HIGHEST


def to_object_frame(points_world: Float[Array, "L N 3"], R: Float[Array, "L 3 3"], t: Float[Array, "L 3"]):
    return jnp.einsum("lba,lnb->lna", R, points_world - t[:, None], precision=HIGHEST)


def penetration_metrics(
    human_vertices: Float[Array, "L V 3"], R_obj, t_obj, grid: SDFGrid, *, threshold_mm: float = 10.0
) -> dict:
    """CHOIS-style SDF penetration of human vertices into the object (see module docstring)."""
    sd = sample_sdf(grid, to_object_frame(human_vertices, R_obj, t_obj))
    depth = jax.nn.relu(-sd) * 1000.0  # mm
    per_frame = depth.max(-1)
    n_in = jnp.sum(depth > 0)
    return {
        "pen_max_mm": float(per_frame.max()),
        "pen_mean_mm": float(per_frame.mean()),
        "pen_mean_depth_mm": float(jnp.sum(depth) / jnp.maximum(n_in, 1)),
        "pen_frames_pct": float(100.0 * jnp.mean(per_frame > threshold_mm)),
        "pen_threshold_mm": threshold_mm,
    }


def contact_metrics(
    human_vertices: Float[Array, "L V 3"],
    R_obj,
    t_obj,
    human_vertex_ids: Int[Array, "C"],
    object_points: Float[Array, "C 3"],
    mask: Float[Array, "C"],
    *,
    threshold_mm: float = 20.0,
) -> dict:
    """Distance (mm) and ratio of the Eq. 3 contact pairs over the sequence."""
    ph = human_vertices[:, human_vertex_ids]
    po = jnp.einsum("lab,nb->lna", R_obj, object_points, precision=HIGHEST) + t_obj[:, None]
    d = jnp.linalg.norm(ph - po, axis=-1) * 1000.0
    m = mask[None]
    nv = jnp.maximum(jnp.sum(mask), 1.0)
    per_frame = jnp.sum(d * m, -1) / nv
    close = (d < threshold_mm) * m
    return {
        "contact_pairs": int(jnp.sum(mask)),
        "contact_mm": float(per_frame.mean()),
        "contact_ratio": float(jnp.sum(close) / (nv * d.shape[0])),
        "contact_frames_pct": float(100.0 * jnp.mean(jnp.sum(close, -1) > 0)) if float(jnp.sum(mask)) else 0.0,
        "contact_threshold_mm": threshold_mm,
    }


def surface_contact_distance(human_vertices, R_obj, t_obj, grid: SDFGrid, vertex_ids, frame_mask=None) -> float:
    """Mean unsigned distance (mm) from given human vertices to the object surface (contact frames only)."""
    sd = jnp.abs(sample_sdf(grid, to_object_frame(human_vertices[:, vertex_ids], R_obj, t_obj))) * 1000.0
    per_frame = sd.mean(-1)
    if frame_mask is None:
        return float(per_frame.mean())
    fm = jnp.asarray(frame_mask, per_frame.dtype)
    return float(jnp.sum(per_frame * fm) / jnp.maximum(jnp.sum(fm), 1.0))


def self_penetration_metrics(parts: PartVolumes, T_world_joint: Float[Array, "L J 4 4"], scale) -> dict:
    """Max and mean overlap depth (mm) of non-adjacent part capsules."""
    def one(T):
        p0, p1, r = pose_part_volumes(parts, T, scale)
        d = self_penetration_depths(parts, p0, p1, r)
        return jnp.max(d, initial=0.0)

    per_frame = jax.vmap(one)(T_world_joint) * 1000.0
    return {"self_pen_max_mm": float(per_frame.max()), "self_pen_mean_mm": float(per_frame.mean())}


def jitter(joints: Float[Array, "L J 3"], fps: float) -> dict:
    """Mean joint acceleration: ‖x_{t+1} − 2x_t + x_{t−1}‖ in mm/frame² and m/s²."""
    acc = jnp.linalg.norm(joints[2:] - 2.0 * joints[1:-1] + joints[:-2], axis=-1)
    return {"jitter_mm_per_frame2": float(acc.mean() * 1000.0), "jitter_m_s2": float(acc.mean() * fps**2)}


def acceleration_error(joints: Float[Array, "L J 3"], joints_gt: Float[Array, "L J 3"]) -> float:
    """Mean ‖acc − acc_gt‖ (mm/frame²), the HMR/VIBE acceleration error."""
    a = joints[2:] - 2.0 * joints[1:-1] + joints[:-2]
    b = joints_gt[2:] - 2.0 * joints_gt[1:-1] + joints_gt[:-2]
    return float(jnp.linalg.norm(a - b, axis=-1).mean() * 1000.0)


def mpjpe(joints: Float[Array, "L J 3"], joints_gt: Float[Array, "L J 3"]) -> float:
    """Mean per-joint position error (mm), world frame, no alignment."""
    return float(jnp.linalg.norm(joints - joints_gt, axis=-1).mean() * 1000.0)


def foot_skating(
    foot_joints: Float[Array, "L F 3"], *, height_m: float = 0.05, slide_m: float = 0.025, up_axis: int = 1, ground: float = 0.0
) -> dict:
    """GMD / HOI-Diff foot skating ratio (see module docstring) and the mean slide of grounded feet (mm)."""
    h = foot_joints[..., up_axis] - ground
    horiz = jnp.delete(foot_joints, up_axis, axis=-1, assume_unique_indices=True)
    slide = jnp.linalg.norm(horiz[1:] - horiz[:-1], axis=-1)
    grounded = (h[1:] < height_m) & (h[:-1] < height_m)
    skating = jnp.any(grounded & (slide > slide_m), axis=-1)
    n_g = jnp.sum(grounded)
    return {
        "foot_skate_ratio": float(jnp.mean(skating)),
        "foot_grounded_slide_mm": float(jnp.sum(slide * grounded) / jnp.maximum(n_g, 1) * 1000.0),
    }
