"""Pose from the anchor (paper Sec. 4, Eq. 2): fit s, r_s^h, t_s^h and θ_s to multi-view 2D skeletons.

    L_align = Σ_{i,j} c_j^i ρ(‖Π^i(Ĵ)_j − J_j^i‖²)                                          (Eq. 2)

Ĵ are the body's 3D keypoints (OpenPose-18 from `body.keypoints`: SMPL-X joints and vertex joints,
or Anny's COCO vertex regressor), Π^i projects into canonical view i, J_j^i are detected 2D keypoints
with confidence c_j^i, and ρ is Geman-McClure (`losses.robust.geman_mcclure`). The weight-free pose
prior of `body.pose_prior` (L2 angle prior + squared-hinge anatomical joint limits) keeps the degrees
of freedom that no keypoint sees (spine split, twists) plausible.

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

import jax
import jax.numpy as jnp
import numpy as onp
import optax
from flax import struct
from jaxtyping import Array, Bool, Float, Int

from anchorhoi_jax.body import pose_prior as pp
from anchorhoi_jax.body.keypoints import KeypointRegressor, keypoint_regressor, regress_keypoints
from anchorhoi_jax.body.model import BodyModel, BodyParams
from anchorhoi_jax.body.skinning import pose, pose_joints, rest_joints
from anchorhoi_jax.geometry.cameras import Camera, intrinsics_from_fov, look_at, project
from anchorhoi_jax.geometry.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_rot6d,
    matrix_to_axis_angle,
    rot6d_to_matrix,
)
from anchorhoi_jax.losses.robust import geman_mcclure

HIGHEST = jax.lax.Precision.HIGHEST

# Torso keypoints (OpenPose-18 indices) for the global stage: neck, shoulders, hips.
TORSO_KEYPOINTS: tuple[int, ...] = (1, 2, 5, 8, 11)


# ---------------------------------------------------------------------------------------------------
# Static layout and constants derived once (outside jit) from a concrete body model.
# ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PoseFitSetup:
    """What the fit needs to know statically about a body model (hashable, closed over by jit).

    Attributes:
      fit_joints: local joints (excluding the root) whose rotation moves at least one keypoint;
        only these are optimised, the rest stay at the rest pose.
      num_joints: J of the model.
      needs_vertices: the keypoint regressor reads posed vertices (Anny), so the full `pose` runs
        instead of the joints-only fast path.
    """

    fit_joints: tuple[int, ...]
    num_joints: int
    needs_vertices: bool


@struct.dataclass
class PoseFitBody:
    """Traced constants of the fit: the body model, its OpenPose-18 regressor and its pose prior."""

    model: BodyModel
    regressor: KeypointRegressor
    prior: pp.PosePrior


def _moving_joints(model: BodyModel, reg: KeypointRegressor) -> tuple[int, ...]:
    """Non-root joints whose local rotation changes the position of some keypoint."""
    parents = model.parents
    J = len(parents)

    def with_ancestors(joints):
        out = set()
        for j in joints:
            while j >= 0:
                out.add(int(j))
                j = parents[j]
        return out

    pw = onp.abs(onp.asarray(reg.point_weights)).sum(0) > 0  # (JE,)
    lbs = onp.asarray(model.lbs_weights)
    moving: set[int] = set()
    for idx in onp.nonzero(pw)[0]:
        if idx < J:  # a kinematic joint moves with its strict ancestors' rotations
            moving |= with_ancestors([parents[idx]]) if parents[idx] >= 0 else set()
        else:  # an extra point moves with every joint skinning its source vertices, and their ancestors
            ids = onp.asarray(model.extra_vertex_ids)[idx - J]
            moving |= with_ancestors(onp.nonzero(lbs[ids].sum(0) > 1e-6)[0])
    if reg.needs_vertices:  # regressed from vertices (Anny): the joints skinning its support
        support = onp.nonzero(onp.abs(onp.asarray(reg.vertex_weights)).sum(0) > 0)[0]
        moving |= with_ancestors(onp.nonzero(lbs[support].max(0) > 1e-6)[0])
    moving.discard(0)
    return tuple(sorted(moving))


def make_setup(model_or_body, betas=None) -> tuple[PoseFitSetup, PoseFitBody]:
    """Static layout and traced constants of the fit for a SMPL-X `BodyModel` or an Anny body.

    Args:
      model_or_body: SMPL-X `BodyModel` (joint/extra names as the smplx package) or `AnnyBody`.
      betas: optional shape whose rest skeleton defines the prior's limit frames.
    """
    model: BodyModel = getattr(model_or_body, "model", model_or_body)
    reg = keypoint_regressor(model_or_body, "openpose18")
    prior = pp.make_pose_prior(model_or_body, betas)
    setup = PoseFitSetup(_moving_joints(model, reg), model.num_joints, bool(reg.needs_vertices))
    return setup, PoseFitBody(model=model, regressor=reg, prior=prior)


# ---------------------------------------------------------------------------------------------------
# Config, weights, data, state.
# ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PoseFitConfig:
    """Static settings (they change compiled shapes or the program); weights live in `PoseFitWeights`."""

    global_steps: int = 120
    pose_steps: int = 600
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

    lr: Float[Array, ""] = 0.05  # Adam step (radians / metres / log-scale units per step)
    lr_end: Float[Array, ""] = 0.01  # reached at the end of the pose stage (Adam hovers ~lr around a minimum)
    reprojection: Float[Array, ""] = 1.0
    prior_l2: Float[Array, ""] = 2.0  # px² per rad² (`angle_prior_loss`), pulls unobserved DoF to rest
    prior_limits: Float[Array, ""] = 2000.0  # px² per rad² outside the anatomical ranges (`joint_limit_loss`)
    prior_scale: Float[Array, ""] = 0.0  # px² per (log s)², optional pull of s towards 1
    # Geman-McClure σ (pixels): wide at the start of the pose stage so limbs far from their detections
    # still feel them (a 512-px view sees a 1.7 m body over ~300 px), tight at the end so gross
    # outliers (residuals of hundreds of px) contribute ≈ σ² and no gradient.
    sigma_start: Float[Array, ""] = 200.0
    sigma_end: Float[Array, ""] = 5.0

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
def full_pose(setup: PoseFitSetup, params: PoseFitParams) -> Float[Array, "J 3"]:
    """Local axis-angles of all joints: root from 6D, fitted joints, zeros (rest) elsewhere."""
    out = jnp.zeros((setup.num_joints, 3), params.transl.dtype)
    out = out.at[0].set(matrix_to_axis_angle(rot6d_to_matrix(params.global_rot6d)))
    if setup.fit_joints:
        out = out.at[jnp.asarray(setup.fit_joints)].set(params.body_pose)
    return out


def fit_rotations(setup: PoseFitSetup, params: PoseFitParams) -> Float[Array, "J 3 3"]:
    """Local rotations of all joints: 6D root (no axis-angle round trip), axis-angle fitted joints."""
    R = jnp.broadcast_to(jnp.eye(3, dtype=params.transl.dtype), (setup.num_joints, 3, 3))
    R = R.at[0].set(rot6d_to_matrix(params.global_rot6d))
    if setup.fit_joints:
        R = R.at[jnp.asarray(setup.fit_joints)].set(axis_angle_to_matrix(params.body_pose))
    return R


def to_body_params(setup: PoseFitSetup, params: PoseFitParams, betas: Float[Array, "S"]) -> BodyParams:
    """The fit as `BodyParams` (axis-angle pose, STATIC.npz layout)."""
    return BodyParams(betas=betas, pose=full_pose(setup, params), transl=params.transl, scale=jnp.exp(params.log_scale))


def body_keypoints3d(
    body: PoseFitBody, setup: PoseFitSetup, params: BodyParams, rotations: Float[Array, "J 3 3"] | None = None
) -> Float[Array, "18 3"]:
    """World OpenPose-18 keypoints of a posed body (joints-only fast path unless the regressor needs
    vertices)."""
    if setup.needs_vertices:
        posed = pose(body.model, params, rotations=rotations)
        return regress_keypoints(body.regressor, posed.all_joints, posed.vertices)
    return regress_keypoints(body.regressor, pose_joints(body.model, params, rotations=rotations))


def keypoints3d(
    body: PoseFitBody, setup: PoseFitSetup, params: PoseFitParams, betas: Float[Array, "S"]
) -> Float[Array, "18 3"]:
    """World OpenPose-18 keypoints Ĵ of the fit's current parameters (scale and translation included)."""
    bp = BodyParams(
        betas=betas,
        pose=jnp.zeros((setup.num_joints, 3), params.transl.dtype),  # replaced by `rotations`
        transl=params.transl,
        scale=jnp.exp(params.log_scale),
    )
    return body_keypoints3d(body, setup, bp, fit_rotations(setup, params))


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
    prior: pp.PosePrior, pose_full: Float[Array, "J 3"], w_l2: Float[Array, ""], w_limits: Float[Array, ""]
) -> tuple[Float[Array, ""], dict]:
    """Pose prior of `body.pose_prior`: w_l2 Σ_j |a_j|² + w_limits Σ squared hinge outside the limits."""
    l2, _ = pp.angle_prior_loss(prior, pose_full)
    viol, _ = pp.joint_limit_loss(prior, pose_full)
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
    body: PoseFitBody,
    setup: PoseFitSetup,
    betas: Float[Array, "S"],
    data: MultiViewKeypoints,
    weights: PoseFitWeights,
    step: Int[Array, ""],
    cfg: PoseFitConfig,
) -> tuple[Float[Array, ""], dict]:
    """All terms of the fit, weighted in one place. Before `global_steps` only torso keypoints count."""
    torso = jnp.zeros((18,), jnp.float32).at[jnp.asarray(TORSO_KEYPOINTS)].set(1.0)
    mask = jnp.where(step < cfg.global_steps, torso, jnp.ones_like(torso))
    sigma = _sigma_at(step, cfg, weights)
    kp3d = keypoints3d(body, setup, params, betas)
    l_rep, a_rep = reprojection_term(kp3d, data, mask, sigma, robust=cfg.robust)
    l_pri, a_pri = pose_prior_term(body.prior, full_pose(setup, params), weights.prior_l2, weights.prior_limits)
    l_sc, a_sc = scale_prior_term(params.log_scale, weights.prior_scale)
    loss = weights.reprojection * l_rep + l_pri + l_sc
    return loss, {"loss": loss, "reprojection": l_rep, "sigma": sigma, **a_rep, **a_pri, **a_sc}


# ---------------------------------------------------------------------------------------------------
# init / update.
# ---------------------------------------------------------------------------------------------------
_optimizer = optax.scale_by_adam()


def init(
    body: PoseFitBody,
    setup: PoseFitSetup,
    betas: Float[Array, "S"],
    target: Float[Array, "3"],
    cfg: PoseFitConfig,
) -> PoseFitState:
    """`num_hypotheses` initial states (leading axis H): rest pose, s = 1, root at `target`, yaws 2πh/H."""
    root = rest_joints(body.model, betas)[0]
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


def make_update(setup: PoseFitSetup, cfg: PoseFitConfig, num_steps: int):
    """Factory: `update(state, body, betas, data, weights) -> (state, aux)` running `num_steps` Adam steps
    of ONE hypothesis inside `lax.scan` (vmap it over hypotheses, fits, seeds)."""

    def one_step(state: PoseFitState, body, betas, data, weights):
        (_, aux), g = jax.value_and_grad(total_loss, has_aux=True)(
            state.params, body, setup, betas, data, weights, state.step, cfg
        )
        # Global stage: the body pose stays at rest (its gradient is dropped, Adam moments stay zero).
        keep = (state.step >= cfg.global_steps).astype(jnp.float32)
        g = g.replace(body_pose=g.body_pose * keep)
        upd, opt_state = _optimizer.update(g, state.opt_state, state.params)
        lr = _lr_at(state.step, cfg, weights)
        params = jax.tree.map(lambda p, u: p - lr * u, state.params, upd)
        return PoseFitState(params=params, opt_state=opt_state, step=state.step + 1), aux

    def update(state: PoseFitState, body: PoseFitBody, betas, data: MultiViewKeypoints, weights: PoseFitWeights):
        def step(s, _):
            return one_step(s, body, betas, data, weights)

        state, aux = jax.lax.scan(step, state, None, length=num_steps)
        return state, jax.tree.map(lambda a: a[-1], aux)

    return update


def select_hypothesis(state: PoseFitState, losses: Float[Array, "H"]) -> PoseFitState:
    """Keep the hypothesis with the lowest loss (drops the leading H axis)."""
    best = jnp.argmin(losses)
    return jax.tree.map(lambda a: a[best], state)


def make_fit(setup: PoseFitSetup, cfg: PoseFitConfig):
    """Factory for the whole Eq. 2 fit of one subject: `fit(body, betas, data, target, weights)` returns
    (BodyParams, keypoints3d (18,3), aux). Pure; vmap over fits and jit at the call site.

    All hypotheses run through both stages in one `lax.scan` (one compiled step instead of two stages
    and a selection in between); the hypothesis with the lowest final loss is kept, which ranks them
    on all 18 keypoints rather than on the torso alone.
    """
    update = make_update(setup, cfg, cfg.global_steps + cfg.pose_steps)

    def fit(body: PoseFitBody, betas, data: MultiViewKeypoints, target, weights: PoseFitWeights):
        with jax.named_scope("stage.pose_fit"):
            states = init(body, setup, betas, target, cfg)
            states, aux = jax.vmap(update, in_axes=(0, None, None, None, None))(states, body, betas, data, weights)
            best = jnp.argmin(aux["loss"])
            state = select_hypothesis(states, aux["loss"])
            aux = jax.tree.map(lambda a: a[best], aux)
            return (
                to_body_params(setup, state.params, betas),
                keypoints3d(body, setup, state.params, betas),
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


def sample_plausible_pose(key, prior: pp.PosePrior, num_joints: int, fraction: float = 0.7) -> Float[Array, "J 3"]:
    """Local axis-angles with each constrained joint's (flexion, twist, abduction) uniform in the central
    `fraction` of its anatomical range (`body.pose_prior` limit frames); other joints and the root at 0.

    The limit map c = to_limit · a is orthogonal (limit frame ᵀ · rest rotation), so a = to_limitᵀ c.
    """
    mid = 0.5 * (prior.lower + prior.upper)
    half = 0.5 * (prior.upper - prior.lower) * fraction
    c = mid + half * jax.random.uniform(key, prior.lower.shape, minval=-1.0, maxval=1.0)
    a = jnp.einsum("nba,nb->na", prior.to_limit, c, precision=HIGHEST)
    return jnp.zeros((num_joints, 3), c.dtype).at[prior.joint_ids].set(a)


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
