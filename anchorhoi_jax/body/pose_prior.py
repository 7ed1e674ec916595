"""Weight-free pose prior: anatomical joint limits as a smooth penalty, plus an L2 angle prior.

Usable without any downloaded weights (issue 2, item 7), for SMPL-X and Anny alike. Each
constrained joint gets a *limit frame* built from the rest skeleton (CONVENTIONS.md: y up, body
facing +z), so the same anatomical ranges apply whatever the model's own bone axes are:

* twist axis  b = the bone direction (joint → its child joint, rest pose),
* flexion axis h = b × (+z): a positive rotation about h moves the bone's tip *forward* (+z)
  (bones that point forward, the feet, use h = (+y) × b: positive moves the tip down),
* third axis  t = h × b, signed so that a positive rotation moves the tip outward/up (abduction).

A local rotation L_j (axis-angle a_j, about the joint's rest frame R_j) is the world-axis rotation
R_j L_j R_jᵀ, whose rotation vector is R_j a_j; its components in the limit frame are
c_j = [h b t]ᵀ R_j a_j = (flexion, twist, abduction). The penalty is the squared hinge
Σ relu(c − upper)² + relu(lower − c)², C¹ and zero inside the anatomical range, e.g. knees only flex
backward (c_flex ∈ [−2.6, 0]) and elbows only forward (c_flex ∈ [0, 2.6]).

Anny's 104 bones map onto the SMPL-X-like semantic joints in `ANNY_JOINTS` (its spine has five
bones where SMPL-X has three, so each gets a proportionally smaller range; the twist bones of
its limbs get twist-dominated ranges). Anny's rest pose is an A-pose (arms ~45° down) where SMPL-X's
is a T-pose; the shoulder abduction range is wide enough to contain both.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
from flax import struct
from jaxtyping import Array, Float, Int

from anchorhoi_jax.body.model import BodyModel

HIGHEST = jax.lax.Precision.HIGHEST

# (flexion, twist, abduction) ranges in radians, per joint type (see module docstring for axes).
LIMITS: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "hip": ((-0.6, 2.2), (-0.7, 0.7), (-0.4, 0.9)),
    "knee": ((-2.6, 0.05), (-0.3, 0.3), (-0.1, 0.1)),
    "ankle": ((-0.8, 0.8), (-0.4, 0.4), (-0.4, 0.4)),
    "toes": ((-0.6, 0.6), (-0.2, 0.2), (-0.2, 0.2)),
    "spine": ((-0.4, 0.7), (-0.5, 0.5), (-0.35, 0.35)),
    "neck": ((-0.8, 0.8), (-1.0, 1.0), (-0.6, 0.6)),
    "head": ((-0.5, 0.5), (-0.6, 0.6), (-0.4, 0.4)),
    "collar": ((-0.3, 0.3), (-0.3, 0.3), (-0.3, 0.5)),
    "shoulder": ((-1.0, 2.5), (-1.5, 1.5), (-1.6, 1.6)),
    "elbow": ((-0.05, 2.6), (-1.5, 1.5), (-0.1, 0.1)),
    "wrist": ((-1.2, 1.2), (-0.6, 0.6), (-0.6, 0.6)),
    "limb_twist": ((-0.2, 0.2), (-1.2, 1.2), (-0.2, 0.2)),
    "fixed": ((-0.2, 0.2), (-0.2, 0.2), (-0.2, 0.2)),
}

# SMPL-X body joint -> (limit type, child joint giving the bone direction).
SMPLX_JOINTS: dict[str, tuple[str, str]] = {
    **{f"{s}_{j}": v for s in ("left", "right") for j, v in (
        ("hip", ("hip", f"{s}_knee")), ("knee", ("knee", f"{s}_ankle")), ("ankle", ("ankle", f"{s}_foot")),
        ("foot", ("toes", f"{s}_foot")), ("collar", ("collar", f"{s}_shoulder")),
        ("shoulder", ("shoulder", f"{s}_elbow")), ("elbow", ("elbow", f"{s}_wrist")),
        ("wrist", ("wrist", f"{s}_middle1")),
    )},
    "spine1": ("spine", "spine2"), "spine2": ("spine", "spine3"), "spine3": ("spine", "neck"),
    "neck": ("neck", "head"), "head": ("head", "head"),
}  # fmt: skip

# Anny bone -> (limit type, child bone giving the bone direction, SMPL-X semantic joint).
ANNY_JOINTS: dict[str, tuple[str, str, str]] = {
    **{f"{b}.{S}": (t, f"{c}.{S}", f"{s}_{sem}") for S, s in (("L", "left"), ("R", "right")) for b, t, c, sem in (
        ("upperleg01", "hip", "lowerleg01", "hip"), ("upperleg02", "limb_twist", "lowerleg01", "hip"),
        ("lowerleg01", "knee", "foot", "knee"), ("lowerleg02", "limb_twist", "foot", "knee"),
        ("foot", "ankle", "toe3-1", "ankle"), ("pelvis", "fixed", "upperleg01", "hip"),
        ("clavicle", "collar", "upperarm01", "collar"), ("shoulder01", "collar", "upperarm01", "collar"),
        ("upperarm01", "shoulder", "lowerarm01", "shoulder"), ("upperarm02", "limb_twist", "lowerarm01", "shoulder"),
        ("lowerarm01", "elbow", "wrist", "elbow"), ("lowerarm02", "limb_twist", "wrist", "elbow"),
        ("wrist", "wrist", "finger3-1", "wrist"),
    )},
    "spine05": ("spine_anny", "spine04", "spine1"), "spine04": ("spine_anny", "spine03", "spine1"),
    "spine03": ("spine_anny", "spine02", "spine2"), "spine02": ("spine_anny", "spine01", "spine3"),
    "spine01": ("spine_anny", "neck01", "spine3"), "neck01": ("neck_anny", "head", "neck"),
    "neck02": ("neck_anny", "head", "neck"), "neck03": ("neck_anny", "head", "neck"), "head": ("head", "head", "head"),
}  # fmt: skip
# Anny splits SMPL-X's 3 spine joints over 5 bones and its neck over 3: scale their ranges.
LIMITS["spine_anny"] = tuple((lo * 0.6, hi * 0.6) for lo, hi in LIMITS["spine"])  # type: ignore[assignment]
LIMITS["neck_anny"] = tuple((lo * 0.4, hi * 0.4) for lo, hi in LIMITS["neck"])  # type: ignore[assignment]


@struct.dataclass
class PosePrior:
    """Constants of the weight-free prior for one body model.

    Attributes:
      joint_ids: (N,) constrained joints.
      to_limit: (N, 3, 3) maps a local axis-angle vector to (flexion, twist, abduction).
      lower, upper: (N, 3) ranges (radians).
      angle_weights: (J,) per-joint weights of the L2 angle prior (root 0: global orientation free).
      names: names of the constrained joints.
    """

    joint_ids: Int[Array, "N"]
    to_limit: Float[Array, "N 3 3"]
    lower: Float[Array, "N 3"]
    upper: Float[Array, "N 3"]
    angle_weights: Float[Array, "J"]
    names: tuple[str, ...] = struct.field(pytree_node=False, default=())


def _limit_frame(b: onp.ndarray, side: float) -> onp.ndarray:
    """Columns (h, b, t) of the limit frame of a bone with rest direction b (unit)."""
    fwd = onp.array([0.0, 0.0, 1.0])
    h = onp.cross(b, fwd)
    if onp.linalg.norm(h) < 0.5:  # bone points (mostly) forward: the feet
        h = onp.cross(onp.array([0.0, 1.0, 0.0]), b)
    h = h / onp.linalg.norm(h)
    t = onp.cross(h, b)
    tip = onp.cross(t, b)  # where a positive rotation about t moves the tip
    outward_up = onp.array([side, 1.0, 0.0]) if side != 0.0 else onp.array([1.0, 0.0, 0.0])
    if tip @ outward_up < 0:
        t = -t
    return onp.stack([h, b, t], axis=1)


def make_pose_prior(model_or_body, betas: onp.ndarray | None = None) -> PosePrior:
    """Build the joint-limit and angle prior of a SMPL-X `BodyModel` or an Anny body.

    Args:
      model_or_body: SMPL-X `BodyModel`, or an `AnnyBody` (or its `.model`).
      betas: optional shape (S,) whose rest skeleton defines the limit frames (default template).
    """
    from anchorhoi_jax.body.skinning import rest_orientations  # noqa: PLC0415

    model: BodyModel = getattr(model_or_body, "model", model_or_body)
    if not isinstance(model, BodyModel):
        raise TypeError(f"expected a BodyModel or an AnnyBody, got {type(model_or_body).__name__}")
    if model.kind == "smplx":
        table = {k: (t, c) for k, (t, c) in SMPLX_JOINTS.items()}
    elif model.kind == "anny":
        table = {k: (t, c) for k, (t, c, _) in ANNY_JOINTS.items()}
    else:
        raise ValueError(f"no pose prior for body model kind {model.kind!r}; expected 'smplx' or 'anny'")
    b = onp.zeros((model.num_shape,)) if betas is None else onp.asarray(betas, onp.float64)
    if b.shape != (model.num_shape,):
        raise ValueError(f"betas must have shape ({model.num_shape},), got {b.shape}")
    j = onp.asarray(model.j_template, onp.float64) + onp.asarray(model.j_shapedirs, onp.float64) @ b
    R_rest = onp.asarray(rest_orientations(model, jnp.asarray(b, model.j_template.dtype)), onp.float64)
    ids, to_limit, lower, upper, names = [], [], [], [], []
    for name, (kind, child) in table.items():
        for n in (name, child):
            if n not in model.joint_names:
                raise ValueError(f"{model.kind} model has no joint {n!r} needed by the pose prior")
        k, c = model.joint_names.index(name), model.joint_names.index(child)
        d = j[c] - j[k]
        if onp.linalg.norm(d) < 1e-6:  # end joints (head, toes): continue the parent bone's direction
            d = j[k] - j[model.parents[k]]
        d = d / onp.linalg.norm(d)
        side = float(onp.sign(j[k, 0])) if abs(j[k, 0]) > 0.02 else 0.0
        F = _limit_frame(d, side)
        ids.append(k)
        to_limit.append(F.T @ R_rest[k])  # c = Fᵀ (R_rest a): world-axis rotation vector in the limit frame
        lo, hi = zip(*LIMITS[kind])
        lower.append(lo)
        upper.append(hi)
        names.append(name)
    w = onp.ones((model.num_joints,), onp.float32)
    w[0] = 0.0  # global orientation is free
    dtype = model.j_template.dtype
    return PosePrior(
        joint_ids=jnp.asarray(ids, jnp.int32),
        to_limit=jnp.asarray(onp.stack(to_limit), dtype),
        lower=jnp.asarray(lower, dtype),
        upper=jnp.asarray(upper, dtype),
        angle_weights=jnp.asarray(w, dtype),
        names=tuple(names),
    )


def _check_pose(prior: PosePrior, pose: Array) -> None:
    J = prior.angle_weights.shape[0]
    if pose.shape != (J, 3):
        raise ValueError(f"pose must be ({J}, 3) axis-angle local rotations, got {tuple(pose.shape)}")


def limit_components(prior: PosePrior, pose: Float[Array, "J 3"]) -> Float[Array, "N 3"]:
    """(flexion, twist, abduction) of each constrained joint, radians."""
    _check_pose(prior, pose)
    return jnp.einsum("nab,nb->na", prior.to_limit, pose[prior.joint_ids], precision=HIGHEST)


def joint_limit_loss(prior: PosePrior, pose: Float[Array, "J 3"]) -> tuple[Float[Array, ""], dict]:
    """Σ squared hinge outside the anatomical ranges (rad²); aux: per-joint violation (N,)."""
    with jax.named_scope("loss.joint_limits"):
        c = limit_components(prior, pose)
        over = jax.nn.relu(c - prior.upper) + jax.nn.relu(prior.lower - c)
        per_joint = jnp.sum(over**2, axis=-1)
        return jnp.sum(per_joint), {"per_joint": per_joint, "components": c}


def angle_prior_loss(prior: PosePrior, pose: Float[Array, "J 3"]) -> tuple[Float[Array, ""], dict]:
    """Weighted L2 of the local rotation angles, Σ_j w_j |a_j|² (root excluded); aux: per joint."""
    with jax.named_scope("loss.angle_prior"):
        _check_pose(prior, pose)
        per_joint = prior.angle_weights * jnp.sum(pose**2, axis=-1)
        return jnp.sum(per_joint), {"per_joint": per_joint}
