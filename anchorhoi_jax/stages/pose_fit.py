"""Pose from the anchor (paper Sec. 4, Eq. 2): fit s, r_s^h, t_s^h and θ_s to multi-view 2D skeletons.

    L_align = Σ_{i,j} c_j^i ρ(‖Π^i(Ĵ)_j − J_j^i‖²)                                          (Eq. 2)

Ĵ are the body's 3D keypoints (OpenPose-18, mapped from the body model's joints and extra points),
Π^i projects into canonical view i, J_j^i are detected 2D keypoints with confidence c_j^i, and ρ is
Geman-McClure (`losses.robust.geman_mcclure`). A pose prior (an L2 pull towards the rest pose plus a
soft anatomical joint-limit box) keeps unobserved degrees of freedom (spine split, twists) plausible.

Everything is written for ONE fit; batch fits (seeds, bodies, synthetic benchmarks) with `jax.vmap`.

Schedule (all static step counts, all weights traced):
1. Global stage: scale s (log-parameterised), global rotation (6D) and translation on the torso
   keypoints only (neck, shoulders, hips), from `num_hypotheses` initial yaws evenly spaced around the
   vertical: the body's rest pose cannot match bent limbs, and gradient descent from a single yaw
   can fall into the front/back-flipped minimum. The hypothesis with the lowest final loss is kept
   (`select_hypothesis`).
2. Pose stage: all parameters on all 18 keypoints, with the Geman-McClure σ annealed geometrically
   from `sigma_start` to `sigma_end` (graduated non-convexity: a wide kernel while residuals are large,
   a tight one that ignores gross outliers at the end).

Human placement follows CONVENTIONS.md: rotation about the shaped rest root joint, scale about the
root joint, then `transl` (exactly `body.skinning.pose_joints`).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as onp
import optax
from flax import struct
from jaxtyping import Array, Bool, Float, Int

from anchorhoi_jax.body.model import BodyModel, BodyParams
from anchorhoi_jax.body.skinning import pose_joints, rest_joints
from anchorhoi_jax.geometry.cameras import Camera, intrinsics_from_fov, look_at, project
from anchorhoi_jax.geometry.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_rot6d,
    matrix_to_axis_angle,
    rot6d_to_matrix,
)
from anchorhoi_jax.losses.robust import geman_mcclure

HIGHEST = jax.lax.Precision.HIGHEST

# ---------------------------------------------------------------------------------------------------
# OpenPose-18 from SMPL-X joint names (CONVENTIONS.md order). The neck and hips are the SMPL-X
# kinematic joints (as SMPLify-X maps them); face points are SMPL-X's vertex joints.
# ---------------------------------------------------------------------------------------------------
OPENPOSE18_FROM_SMPLX: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip
# Torso keypoints for the global stage: neck, shoulders, hips (rigid enough in any pose).
TORSO_KEYPOINTS: tuple[int, ...] = (1, 2, 5, 8, 11)

# Approximate anatomical range (radians) of each local axis-angle component for SMPL-X body joints.
# SMPL-X rest frames are world-aligned (x = body's left, y = up, z = forward), so e.g. knee flexion is
# +x, left-elbow flexion −y, right-elbow flexion +y, left-shoulder adduction (arm down) −z. Used both
# as the soft limit prior of the fit and as the box that benchmarks sample "plausible" poses from.
_L = {
    "spine1": ((-0.3, 0.8), (-0.4, 0.4), (-0.3, 0.3)),
    "spine2": ((-0.2, 0.5), (-0.3, 0.3), (-0.2, 0.2)),
    "spine3": ((-0.2, 0.5), (-0.3, 0.3), (-0.2, 0.2)),
    "neck": ((-0.4, 0.6), (-0.6, 0.6), (-0.3, 0.3)),
    "head": ((-0.3, 0.4), (-0.4, 0.4), (-0.3, 0.3)),
    "left_hip": ((-1.8, 0.4), (-0.5, 0.5), (-0.2, 0.8)),
    "right_hip": ((-1.8, 0.4), (-0.5, 0.5), (-0.8, 0.2)),
    "left_knee": ((0.0, 2.2), (-0.1, 0.1), (-0.1, 0.1)),
    "right_knee": ((0.0, 2.2), (-0.1, 0.1), (-0.1, 0.1)),
    "left_ankle": ((-0.5, 0.7), (-0.3, 0.3), (-0.3, 0.3)),
    "right_ankle": ((-0.5, 0.7), (-0.3, 0.3), (-0.3, 0.3)),
    "left_foot": ((-0.2, 0.2), (-0.1, 0.1), (-0.1, 0.1)),
    "right_foot": ((-0.2, 0.2), (-0.1, 0.1), (-0.1, 0.1)),
    "left_collar": ((-0.2, 0.2), (-0.3, 0.3), (-0.2, 0.4)),
    "right_collar": ((-0.2, 0.2), (-0.3, 0.3), (-0.4, 0.2)),
    "left_shoulder": ((-0.9, 0.9), (-1.4, 0.6), (-1.3, 0.8)),
    "right_shoulder": ((-0.9, 0.9), (-0.6, 1.4), (-0.8, 1.3)),
    "left_elbow": ((-0.3, 0.3), (-2.3, 0.0), (-0.2, 0.2)),
    "right_elbow": ((-0.3, 0.3), (0.0, 2.3), (-0.2, 0.2)),
    "left_wrist": ((-0.6, 0.6), (-0.4, 0.4), (-0.7, 0.7)),
    "right_wrist": ((-0.6, 0.6), (-0.4, 0.4), (-0.7, 0.7)),
}
SMPLX_JOINT_LIMITS: dict[str, tuple[tuple[float, float], ...]] = _L
_UNLIMITED = ((-math.pi, math.pi),) * 3


# ---------------------------------------------------------------------------------------------------
# Static setup derived once (outside jit) from a concrete body model.
# ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PoseFitSetup:
    """What the fit needs to know about a body model's layout (hashable, closed over by jit).

    Attributes:
      keypoint_index: (18,) index into `pose_joints(...)` output (joints ++ extra) per OpenPose-18
        keypoint, 0 where the model has no such point.
      keypoint_valid: (18,) whether the model provides that keypoint (missing ones get zero weight).
      fit_joints: local joints (excluding the root) whose rotation moves at least one keypoint.
      limits_lo, limits_hi: (len(fit_joints), 3) axis-angle boxes for the joint-limit prior.
    """

    keypoint_index: tuple[int, ...]
    keypoint_valid: tuple[bool, ...]
    fit_joints: tuple[int, ...]
    limits_lo: tuple[tuple[float, float, float], ...]
    limits_hi: tuple[tuple[float, float, float], ...]
    num_joints: int


def openpose18_indices(model: BodyModel) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """Index of each OpenPose-18 keypoint in `pose_joints(model, ...)` (joints ++ extra), by name.

    Uses `anchorhoi_jax.body.keypoints` when the body provides its own mapping; otherwise matches the
    SMPL-X joint/extra names of `OPENPOSE18_FROM_SMPLX`.
    """
    names = tuple(model.joint_names) + tuple(model.extra_names)
    index, valid = [], []
    for name in OPENPOSE18_FROM_SMPLX:
        if name in names:
            index.append(names.index(name))
            valid.append(True)
        else:
            index.append(0)
            valid.append(False)
    if sum(valid) < len(TORSO_KEYPOINTS) or not all(valid[k] for k in TORSO_KEYPOINTS):
        raise ValueError(
            "body model lacks the OpenPose-18 torso keypoints (neck, shoulders, hips) by SMPL-X joint names"
        )
    return tuple(index), tuple(valid)


def _moving_joints(model: BodyModel, keypoint_index, keypoint_valid) -> tuple[int, ...]:
    """Non-root joints whose local rotation changes the position of some keypoint."""
    parents = model.parents
    J = len(parents)

    def ancestors(j):
        out = []
        while parents[j] >= 0:
            j = parents[j]
            out.append(j)
        return out

    lbs = onp.asarray(model.lbs_weights)
    extra_ids = onp.asarray(model.extra_vertex_ids)
    moving: set[int] = set()
    for idx, ok in zip(keypoint_index, keypoint_valid):
        if not ok:
            continue
        if idx < J:  # a kinematic joint moves with its strict ancestors' rotations
            moving.update(ancestors(idx))
        else:  # an extra point moves with every joint skinning its source vertices, and their ancestors
            w = lbs[extra_ids[idx - J]].sum(0)
            for j in onp.nonzero(w > 1e-6)[0]:
                moving.add(int(j))
                moving.update(ancestors(int(j)))
    moving.discard(0)
    return tuple(sorted(moving))


def make_setup(model: BodyModel) -> PoseFitSetup:
    """Derive the static fit layout from a concrete body model (call outside jit)."""
    index, valid = openpose18_indices(model)
    fit = _moving_joints(model, index, valid)
    names = model.joint_names
    lims = [SMPLX_JOINT_LIMITS.get(names[j] if j < len(names) else "", _UNLIMITED) for j in fit]
    lo = tuple(tuple(float(a[0]) for a in lim) for lim in lims)
    hi = tuple(tuple(float(a[1]) for a in lim) for lim in lims)
    return PoseFitSetup(index, valid, fit, lo, hi, model.num_joints)


# ---------------------------------------------------------------------------------------------------
# Config, weights, data, state.
# ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PoseFitConfig:
    """Static settings (they change compiled shapes or the program); weights live in `PoseFitWeights`."""

    global_steps: int = 120
    pose_steps: int = 360
    num_hypotheses: int = 4
    robust: bool = True  # Geman-McClure (Eq. 2); False = plain confidence-weighted L2 (the ablation)

    def __post_init__(self):
        if self.global_steps < 1 or self.pose_steps < 0:
            raise ValueError(f"need global_steps >= 1 and pose_steps >= 0, got {self.global_steps}, {self.pose_steps}")
        if self.num_hypotheses < 1:
            raise ValueError(f"num_hypotheses must be >= 1, got {self.num_hypotheses}")


@struct.dataclass
class PoseFitWeights:
    """Traced loss weights and schedules: a sweep over these never recompiles."""

    lr: Float[Array, ""] = 0.03  # Adam step (radians / metres / log-scale units per step)
    lr_end: Float[Array, ""] = 0.01  # reached at the end of the pose stage (Adam hovers ~lr around a minimum)
    reprojection: Float[Array, ""] = 1.0
    prior_l2: Float[Array, ""] = 2.0  # px² per rad², pulls unobserved DoF to the rest pose
    prior_limits: Float[Array, ""] = 2000.0  # px² per rad² outside the anatomical box
    prior_scale: Float[Array, ""] = 0.0  # px² per (log s)², optional pull of s towards 1
    sigma_start: Float[Array, ""] = 100.0  # Geman-McClure σ (pixels) at the start of the pose stage
    sigma_end: Float[Array, ""] = 10.0  # ... and at its end

    @classmethod
    def default(cls) -> "PoseFitWeights":
        return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), cls())


@struct.dataclass
class MultiViewKeypoints:
    """2D skeletons of V views of one subject and the views' cameras (OpenCV, pixels)."""

    keypoints: Float[Array, "V 18 2"]
    confidence: Float[Array, "V 18"]
    K: Float[Array, "V 3 3"]
    T_cam_world: Float[Array, "V 4 4"]


@struct.dataclass
class PoseFitParams:
    """Optimised variables of one fit: log s, global rotation (6D), translation, local axis-angles."""

    log_scale: Float[Array, ""]
    global_rot6d: Float[Array, "6"]
    transl: Float[Array, "3"]
    body_pose: Float[Array, "P 3"]  # rows follow `PoseFitSetup.fit_joints`


@struct.dataclass
class PoseFitState:
    params: PoseFitParams
    opt_state: optax.OptState
    step: Int[Array, ""]


def check_keypoints(data: MultiViewKeypoints) -> None:
    """Validate shapes (eagerly, before any jit): one-line errors for bad inputs."""
    kp, c = data.keypoints, data.confidence
    if kp.ndim != 3 or kp.shape[-2:] != (18, 2):
        raise ValueError(f"keypoints must have shape (V, 18, 2), got {tuple(kp.shape)}")
    if c.shape != kp.shape[:2]:
        raise ValueError(f"confidence must have shape {tuple(kp.shape[:2])}, got {tuple(c.shape)}")
    V = kp.shape[0]
    if data.K.shape != (V, 3, 3) or data.T_cam_world.shape != (V, 4, 4):
        raise ValueError(
            f"cameras must be K (V,3,3) and T_cam_world (V,4,4) with V={V}, got {tuple(data.K.shape)}, "
            f"{tuple(data.T_cam_world.shape)}"
        )
    if not bool(jnp.any(c > 0)):
        raise ValueError("all keypoint confidences are zero: nothing to fit")


# ---------------------------------------------------------------------------------------------------
# Model → keypoints.
# ---------------------------------------------------------------------------------------------------
def fit_rotations(setup: PoseFitSetup, params: PoseFitParams) -> Float[Array, "J 3 3"]:
    """Local rotations of all joints: 6D root, axis-angle fitted joints, identity elsewhere."""
    R = jnp.broadcast_to(jnp.eye(3, dtype=params.transl.dtype), (setup.num_joints, 3, 3))
    R = R.at[0].set(rot6d_to_matrix(params.global_rot6d))
    if setup.fit_joints:
        R = R.at[jnp.asarray(setup.fit_joints)].set(axis_angle_to_matrix(params.body_pose))
    return R


def to_body_params(setup: PoseFitSetup, params: PoseFitParams, betas: Float[Array, "S"]) -> BodyParams:
    """The fit as `BodyParams` (axis-angle pose, STATIC.npz layout)."""
    pose = jnp.zeros((setup.num_joints, 3), params.transl.dtype)
    pose = pose.at[0].set(matrix_to_axis_angle(rot6d_to_matrix(params.global_rot6d)))
    if setup.fit_joints:
        pose = pose.at[jnp.asarray(setup.fit_joints)].set(params.body_pose)
    return BodyParams(betas=betas, pose=pose, transl=params.transl, scale=jnp.exp(params.log_scale))


def keypoints3d(
    model: BodyModel, setup: PoseFitSetup, params: PoseFitParams, betas: Float[Array, "S"]
) -> Float[Array, "18 3"]:
    """World OpenPose-18 keypoints Ĵ of the fitted body (scale and translation included)."""
    body = BodyParams(
        betas=betas,
        pose=jnp.zeros((setup.num_joints, 3), params.transl.dtype),
        transl=params.transl,
        scale=jnp.exp(params.log_scale),
    )
    joints = pose_joints(model, body, rotations=fit_rotations(setup, params))
    return joints[jnp.asarray(setup.keypoint_index)]


def body_keypoints3d(model: BodyModel, setup: PoseFitSetup, body: BodyParams) -> Float[Array, "18 3"]:
    """World OpenPose-18 keypoints of a body given as `BodyParams` (used to make ground truth)."""
    return pose_joints(model, body)[jnp.asarray(setup.keypoint_index)]


# ---------------------------------------------------------------------------------------------------
# Loss terms, each (value, aux).
# ---------------------------------------------------------------------------------------------------
def reprojection_term(
    kp3d: Float[Array, "18 3"],
    data: MultiViewKeypoints,
    weight_mask: Float[Array, "18"],
    sigma: Float[Array, ""],
    *,
    robust: bool,
) -> tuple[Float[Array, ""], dict]:
    """Eq. 2: Σ_i Σ_j c_j^i ρ(‖Π^i(Ĵ)_j − J_j^i‖²) / V, in pixels² (ρ = Geman-McClure or identity)."""
    with jax.named_scope("loss.reprojection"):
        uv, depth = jax.vmap(project, in_axes=(0, 0, None))(data.K, data.T_cam_world, kp3d)
        sq = jnp.sum((uv - data.keypoints) ** 2, -1)
        rho = geman_mcclure(sq, sigma) if robust else sq
        w = data.confidence * weight_mask[None, :] * (depth > 0)
        value = jnp.sum(w * rho) / data.keypoints.shape[0]
        rms = jnp.sqrt(jnp.sum(w * sq) / jnp.maximum(jnp.sum(w), 1e-9))
        return value, {"reproj_rms_px": rms}


def pose_prior_term(
    body_pose: Float[Array, "P 3"],
    lo: Float[Array, "P 3"],
    hi: Float[Array, "P 3"],
    w_l2: Float[Array, ""],
    w_limits: Float[Array, ""],
) -> tuple[Float[Array, ""], dict]:
    """Pose prior: w_l2 ‖θ‖² + w_limits Σ relu(θ − hi)² + relu(lo − θ)² (axis-angle, radians)."""
    with jax.named_scope("loss.pose_prior"):
        l2 = jnp.sum(body_pose**2)
        viol = jnp.sum(jax.nn.relu(body_pose - hi) ** 2 + jax.nn.relu(lo - body_pose) ** 2)
        return w_l2 * l2 + w_limits * viol, {"prior_l2": l2, "limit_violation": viol}


def scale_prior_term(log_scale: Float[Array, ""], w: Float[Array, ""]) -> tuple[Float[Array, ""], dict]:
    """Optional pull of s towards 1 (the avatar's own size)."""
    return w * log_scale**2, {"scale": jnp.exp(log_scale)}


def _pose_progress(step, cfg: PoseFitConfig):
    """0 during the global stage, rising linearly to 1 at the last pose step."""
    return jnp.clip((step - cfg.global_steps) / max(cfg.pose_steps - 1, 1), 0.0, 1.0)


def _sigma_at(step, cfg: PoseFitConfig, weights: PoseFitWeights):
    """Geman-McClure σ: sigma_start during the global stage, then geometric decay to sigma_end."""
    return weights.sigma_start * (weights.sigma_end / weights.sigma_start) ** _pose_progress(step, cfg)


def _lr_at(step, cfg: PoseFitConfig, weights: PoseFitWeights):
    """Adam step size: lr during the global stage, then geometric decay to lr_end."""
    return weights.lr * (weights.lr_end / weights.lr) ** _pose_progress(step, cfg)


def total_loss(
    params: PoseFitParams,
    model: BodyModel,
    setup: PoseFitSetup,
    betas: Float[Array, "S"],
    data: MultiViewKeypoints,
    weights: PoseFitWeights,
    step: Int[Array, ""],
    cfg: PoseFitConfig,
) -> tuple[Float[Array, ""], dict]:
    """All terms of the fit, weighted in one place. Before `global_steps` only torso keypoints count."""
    valid = jnp.asarray(setup.keypoint_valid, jnp.float32)
    torso = jnp.zeros((18,), jnp.float32).at[jnp.asarray(TORSO_KEYPOINTS)].set(1.0)
    in_global = step < cfg.global_steps
    mask = valid * jnp.where(in_global, torso, 1.0)
    sigma = _sigma_at(step, cfg, weights)
    kp3d = keypoints3d(model, setup, params, betas)
    l_rep, a_rep = reprojection_term(kp3d, data, mask, sigma, robust=cfg.robust)
    lo = jnp.asarray(setup.limits_lo, jnp.float32).reshape(-1, 3)
    hi = jnp.asarray(setup.limits_hi, jnp.float32).reshape(-1, 3)
    l_pri, a_pri = pose_prior_term(params.body_pose, lo, hi, weights.prior_l2, weights.prior_limits)
    l_sc, a_sc = scale_prior_term(params.log_scale, weights.prior_scale)
    loss = weights.reprojection * l_rep + l_pri + l_sc
    return loss, {"loss": loss, "reprojection": l_rep, "sigma": sigma, **a_rep, **a_pri, **a_sc}


# ---------------------------------------------------------------------------------------------------
# init / update.
# ---------------------------------------------------------------------------------------------------
_optimizer = optax.scale_by_adam()


def init(
    model: BodyModel,
    setup: PoseFitSetup,
    betas: Float[Array, "S"],
    target: Float[Array, "3"],
    cfg: PoseFitConfig,
) -> PoseFitState:
    """`num_hypotheses` initial states (leading axis H): rest pose, s = 1, root at `target`, yaws 2πh/H."""
    root = rest_joints(model, betas)[0]
    yaw = 2.0 * jnp.pi * jnp.arange(cfg.num_hypotheses, dtype=jnp.float32) / cfg.num_hypotheses
    aa = jnp.stack([jnp.zeros_like(yaw), yaw, jnp.zeros_like(yaw)], -1)
    H, P = cfg.num_hypotheses, len(setup.fit_joints)
    params = PoseFitParams(
        log_scale=jnp.zeros((H,), jnp.float32),
        global_rot6d=axis_angle_to_rot6d(aa),
        transl=jnp.broadcast_to(target - root, (H, 3)).astype(jnp.float32),
        body_pose=jnp.zeros((H, P, 3), jnp.float32),
    )
    return PoseFitState(params=params, opt_state=jax.vmap(_optimizer.init)(params), step=jnp.zeros((H,), jnp.int32))


def make_update(model_setup: PoseFitSetup, cfg: PoseFitConfig, num_steps: int):
    """Factory: `update(state, model, betas, data, weights) -> (state, aux)` running `num_steps` Adam steps
    of ONE hypothesis inside `lax.scan` (vmap it over hypotheses, fits, seeds)."""
    setup = model_setup

    def one_step(state: PoseFitState, model, betas, data, weights):
        (_, aux), g = jax.value_and_grad(total_loss, has_aux=True)(
            state.params, model, setup, betas, data, weights, state.step, cfg
        )
        # Global stage: the body pose stays at rest (its gradient is dropped, Adam moments stay zero).
        keep = (state.step >= cfg.global_steps).astype(jnp.float32)
        g = g.replace(body_pose=g.body_pose * keep)
        upd, opt_state = _optimizer.update(g, state.opt_state, state.params)
        lr = _lr_at(state.step, cfg, weights)
        params = jax.tree.map(lambda p, u: p - lr * u, state.params, upd)
        return PoseFitState(params=params, opt_state=opt_state, step=state.step + 1), aux

    def update(state: PoseFitState, model: BodyModel, betas, data: MultiViewKeypoints, weights: PoseFitWeights):
        def body(s, _):
            return one_step(s, model, betas, data, weights)

        state, aux = jax.lax.scan(body, state, None, length=num_steps)
        return state, jax.tree.map(lambda a: a[-1], aux)

    return update


def select_hypothesis(state: PoseFitState, losses: Float[Array, "H"]) -> PoseFitState:
    """Keep the hypothesis with the lowest loss (drops the leading H axis)."""
    best = jnp.argmin(losses)
    return jax.tree.map(lambda a: a[best], state)


def make_fit(setup: PoseFitSetup, cfg: PoseFitConfig):
    """Factory for the whole Eq. 2 fit of one subject: `fit(model, betas, data, target, weights)` returns
    (BodyParams, keypoints3d (18,3), aux). Pure; vmap over fits and jit at the call site.

    All hypotheses run through both stages in one `lax.scan` (one compiled step instead of two stages
    and a selection in between); the hypothesis with the lowest final loss is kept, which ranks them
    on all 18 keypoints rather than on the torso alone.
    """
    update = make_update(setup, cfg, cfg.global_steps + cfg.pose_steps)

    def fit(model: BodyModel, betas, data: MultiViewKeypoints, target, weights: PoseFitWeights):
        with jax.named_scope("stage.pose_fit"):
            states = init(model, setup, betas, target, cfg)
            states, aux = jax.vmap(update, in_axes=(0, None, None, None, None))(states, model, betas, data, weights)
            best = jnp.argmin(aux["loss"])
            state = select_hypothesis(states, aux["loss"])
            aux = jax.tree.map(lambda a: a[best], aux)
            return (
                to_body_params(setup, state.params, betas),
                keypoints3d(model, setup, state.params, betas),
                aux,
            )

    return fit


# ---------------------------------------------------------------------------------------------------
# Canonical views and synthetic poses (shared with the composition stage and the benchmark).
# ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CanonicalViews:
    """The V canonical views the anchor NeRF is rendered from (paper Sec. 4): azimuths around +y.

    Azimuth 0 looks at the body's front (camera on +z), 90 from its left (+x), 180 back, 270 right.
    """

    azimuths_deg: tuple[float, ...] = (0.0, 90.0, 180.0, 270.0)
    radius: float = 3.0  # metres from `target`
    elevation_deg: float = 5.0
    fov_y_deg: float = 45.0
    size: int = 512  # square images, pixels
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)


def canonical_cameras(views: CanonicalViews) -> Camera:
    """Stacked `Camera` (leading axis V) of the canonical views."""
    az = jnp.deg2rad(jnp.asarray(views.azimuths_deg, jnp.float32))
    el = jnp.deg2rad(jnp.float32(views.elevation_deg))
    target = jnp.asarray(views.target, jnp.float32)
    eye = target[None, :] + views.radius * jnp.stack(
        [jnp.sin(az) * jnp.cos(el), jnp.broadcast_to(jnp.sin(el), az.shape), jnp.cos(az) * jnp.cos(el)], -1
    )
    T = jax.vmap(lambda e: look_at(e, target))(eye)
    K = jnp.broadcast_to(intrinsics_from_fov(views.fov_y_deg, views.size, views.size), (az.shape[0], 3, 3))
    return Camera(K=K, T_cam_world=T, height=views.size, width=views.size)


def joint_limit_box(model: BodyModel) -> tuple[onp.ndarray, onp.ndarray]:
    """(J,3) lower/upper axis-angle limits per joint by SMPL-X name (zeros for unnamed / root joints)."""
    lo = onp.zeros((model.num_joints, 3), onp.float32)
    hi = onp.zeros((model.num_joints, 3), onp.float32)
    for j, name in enumerate(model.joint_names):
        if name in SMPLX_JOINT_LIMITS:
            lim = onp.asarray(SMPLX_JOINT_LIMITS[name], onp.float32)
            lo[j], hi[j] = lim[:, 0], lim[:, 1]
    return lo, hi


def sample_plausible_pose(
    key, lo: Float[Array, "J 3"], hi: Float[Array, "J 3"], fraction: float = 0.7
) -> Float[Array, "J 3"]:
    """Local axis-angles uniform in the central `fraction` of each joint's limit box (root left at 0)."""
    mid = 0.5 * (lo + hi)
    half = 0.5 * (hi - lo) * fraction
    return mid + half * jax.random.uniform(key, lo.shape, minval=-1.0, maxval=1.0)


def simulate_detections(
    key,
    kp3d: Float[Array, "18 3"],
    K: Float[Array, "V 3 3"],
    T_cam_world: Float[Array, "V 4 4"],
    size: int,
    noise_px: float | Float[Array, ""] = 2.0,
    outlier_fraction: float | Float[Array, ""] = 0.1,
) -> Float[Array, "V 18 2"]:
    """Synthetic 2D detections: projections + Gaussian pixel noise, a fraction replaced by gross outliers
    uniformly over the image (what a mis-detection looks like to Eq. 2)."""
    k_noise, k_out, k_pos = jax.random.split(key, 3)
    uv, _ = jax.vmap(project, in_axes=(0, 0, None))(K, T_cam_world, kp3d)
    uv = uv + noise_px * jax.random.normal(k_noise, uv.shape)
    is_out = jax.random.uniform(k_out, uv.shape[:2]) < outlier_fraction
    anywhere = jax.random.uniform(k_pos, uv.shape, maxval=float(size))
    return jnp.where(is_out[..., None], anywhere, uv)
