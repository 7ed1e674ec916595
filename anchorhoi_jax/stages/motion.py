"""Keypoint-anchored 4D tracking (paper Sec. 4 "Motion optimization with anchor keypoint", Eq. 4-6).

Optimised per frame i: human global rotation r_i^h, translation t_i^h, body pose θ_i, object
rotation r_i^o and translation t_i^o. Fixed from the static instance: human scale s, shape β
(and hands/jaw pose), object geometry Φ. Objective (Eq. 4):

    L_total = λ_J L_J + λ_C L_C + λ_pen L_pen + λ_reg L_reg

with L_J (Eq. 5, losses/reprojection.py), L_C (Eq. 6, losses/contact.py), L_pen (object SDF at
human vertices + part occupancy at object points, losses/penetration.py) and L_reg (temporal
smoothness of joints and object, self-penetration, pose prior, rendered-frame MSE;
losses/regularizers.py). Adam, lr 0.01, 1000 iterations (paper Sec. 5); every frame starts at the
static instance.

Structure (STYLE.md): `prepare_motion_data` (host, once) builds the constant `MotionData`;
`make_motion_step(cfg) -> (init, update)`: `update` runs `cfg.steps_per_call` Adam steps in one
`lax.scan` and is the jit boundary. Loss weights are a `MotionWeights` pytree of traced scalars,
so ablations and sweeps reuse one compiled program. Seeds: `init` per key, `vmap` over states.

Speed: only the vertices the objective reads are skinned (keypoint vertices, contact vertices and
a farthest-point subset for L_pen), not the full mesh; FK unrolls over tree depth.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as onp
import optax
from flax import struct
from jaxtyping import Array, Float, Int

from anchorhoi_jax.body.model import BodyModel, BodyParams, depth_levels
from anchorhoi_jax.body.part_volumes import PartVolumes, fit_part_volumes, inside_depth, pose_part_volumes
from anchorhoi_jax.body.skinning import forward_kinematics, pose, rest_joints, rest_orientations, rest_vertices, rodrigues
from anchorhoi_jax.body.skinning import _round_tf32, _tf32x3_product
from anchorhoi_jax.geometry.cameras import project
from anchorhoi_jax.geometry.mesh import farthest_point_sampling, vertex_normals
from anchorhoi_jax.geometry.rotations import axis_angle_to_matrix
from anchorhoi_jax.geometry.sdf import SDFGrid, sample_sdf, sdf_grid_from_mesh
from anchorhoi_jax.kernels.capsules import resolve_impl
from anchorhoi_jax.kernels.lbs import host_joint_entries, joint_entries, lbs_transform_grad_pallas
from anchorhoi_jax.kernels.reductions import plane_sums_pallas
from anchorhoi_jax.losses.anchor import static_anchor, static_pose_anchor
from anchorhoi_jax.losses.contact import contact_loss
from anchorhoi_jax.losses.depth_smoothness import (
    body_smoothness_at_depth, depth_rescale, joint_smoothness_at_depth, object_smoothness_at_depth,
)
from anchorhoi_jax.losses.floor import floor_penetration, floor_support, static_floor_height
from anchorhoi_jax.losses.object_rest import object_rest
from anchorhoi_jax.losses.object_static import object_static_anchor, static_object_frames
from anchorhoi_jax.losses.penetration import object_sdf_penetration_world, part_occupancy_penetration
from anchorhoi_jax.losses.regularizers import (
    PosePrior,
    joint_smoothness,
    object_smoothness,
    pose_prior_l2,
    render_mse,
    self_penetration,
)
from anchorhoi_jax.losses.reprojection import reprojection_loss
from anchorhoi_jax.losses.silhouette import silhouette_coverage, silhouette_inside, silhouette_targets
from anchorhoi_jax.stages.contacts import ContactPairs, extract_contacts, object_surface_points

HIGHEST = jax.lax.Precision.HIGHEST
LOSS_TERMS = ("keypoints", "contact", "pen_object", "pen_parts", "smooth_joints", "smooth_object", "self_pen",
              "pose_prior", "render", "silhouette", "static_anchor", "static_pose_anchor", "smooth_joints_refdepth",
              "smooth_object_refdepth", "smooth_body_refdepth", "floor", "floor_support", "object_rest",
              "object_static")
SMPLX_BODY_JOINTS = tuple(range(1, 22))  # SMPL-X body_pose: joints 1..21 (63 values)


@struct.dataclass
class StaticInstance:
    """The static HOI X_s the motion starts from (paper Sec. 4)."""

    betas: Float[Array, "S"]
    scale: Float[Array, ""]
    pose: Float[Array, "J 3"]  # full local pose; [0] = global orientation
    transl: Float[Array, "3"]
    R_world_obj: Float[Array, "3 3"]
    t_world_obj: Float[Array, "3"]


@struct.dataclass
class MotionWeights:
    """λ's of Eq. 4 (L_reg split into its parts). Traced leaves: changing them never recompiles."""

    keypoints: Float[Array, ""] = 1.0
    contact: Float[Array, ""] = 1.0
    # L_pen's object-SDF part is a *sum* over the L_pen vertices (2048 by default, half of them within
    # 10 cm of the object): at weight 1 it outweighed L_J so much that the full-size runs tracked far
    # worse than reduced ones (carry, 48 frames, CPU: MPJPE 36.9 mm with 512 vertices, 60.1 mm with
    # 2048; 38.7 at weight 0.25, 32.7 at 0.05; max penetration 0.2-1.8 mm throughout). 0.05 was chosen
    # on separate random draws (benchmarks/results/motion.md, session 4), not on the benchmark scenes.
    pen_object: Float[Array, ""] = 0.05
    # ... and its weight in the last `MotionConfig.pen_final_steps` steps (`motion_phases`): once the motion
    # has settled under the weak weight, a short clean-up at full weight pushes out the few deep vertices.
    pen_object_final: Float[Array, ""] = 1.0
    pen_parts: Float[Array, ""] = 1.0
    # 0.3 (was 0.1): chosen on the dev draws only, H100, 120 frames, with the Gauss-Newton translation init
    # (MotionConfig.init_gauss_newton): MPJPE carry@h4 / push@h5 / sit@h6 39.8 / 30.1 / 65.6 = 45.2 at 0.1 →
    # 40.3 / 27.2 / 41.8 = 36.4 at 0.3 (benchmarks/results/motion.md, session 6).
    smooth_joints: Float[Array, ""] = 0.3
    smooth_object: Float[Array, ""] = 0.1
    # The same two smoothness terms measured at the static instance's depth along the camera ray
    # (losses/depth_smoothness.py): the metric ones pull the fit toward the camera (the image-consistent
    # root path shrinks with depth), these have no gradient along that direction.
    smooth_joints_refdepth: Float[Array, ""] = 0.0
    smooth_object_refdepth: Float[Array, ""] = 0.0
    smooth_body_refdepth: Float[Array, ""] = 0.0  # whole body (root path and articulation) at the reference depth
    self_pen: Float[Array, ""] = 1.0
    pose_prior: Float[Array, ""] = 1e-5
    # Graduated pose prior (as SMPLify anneals its prior weights): `motion_phases` scales it geometrically
    # over the full stage's calls down to `pose_prior × pose_prior_anneal` (kept in the clean-up stage).
    # Default 1 = constant: the L2 pull to the static pose looked like a bias (sit, 48 frames, CPU: the
    # estimate scores lower Eq. 4 than the ground truth, half of it through this term), but annealing it
    # to 1 % did not lower MPJPE (sit 47.4 → 47.7 mm; H100 dev draws 50.1 → 51.3 mm, motion.md session 5).
    pose_prior_anneal: Float[Array, ""] = 1.0
    render: Float[Array, ""] = 0.0
    # Mask silhouettes (part of L_reg's rendered-frame comparison, losses/silhouette.py); active only
    # when the data carries masks (prepare_motion_data(human_masks=..., object_masks=...)).
    # Default 0: on the selection draws it did not lower MPJPE at weight 1-3 (sit scenes got worse,
    # benchmarks/results/motion.md); the term and the mask plumbing stay for masks of real videos.
    silhouette: Float[Array, ""] = 0.0
    # Static-instance anchor (losses/anchor.py) at the frames `MotionConfig.static_frames` (the video was
    # generated from X_s's render, so its frame 0 shows X_s): human root + object pose, and the body pose.
    # 0.01 chosen on the dev draws (CPU, 24 frames, 512/512 points: MPJPE mean 42.4 → 36.9 mm; 1.0 the same,
    # 36.9), then measured on the benchmark and held-out scenes (benchmarks/results/motion.md, session 5 MACC2).
    # The body-pose part was not measured (default 0).
    static_anchor: Float[Array, ""] = 0.01
    static_pose_anchor: Float[Array, ""] = 0.0
    # Floor (losses/floor.py; world y up, plane y = MotionData.floor_height, by default X_s's lowest point):
    # `floor` = no L_pen body vertex or object support point below it (one-sided, per frame);
    # `floor_support` = the clip's mean lowest point on it (two-sided, one number per sequence).
    floor: Float[Array, ""] = 0.0
    floor_support: Float[Array, ""] = 0.0
    # Object-at-rest prior (losses/object_rest.py, part of L_reg): robust (Geman-McClure) cost of the object's
    # velocity per frame with scale `object_rest_scale` (m per frame; ≤ 0 = plain quadratic). The object has no
    # observation of its own (only L_C of Eq. 6 moves it), so without it a static object inherits the human's
    # smooth depth errors and holds the human at them; the robust form leaves a carried object's motion (well
    # above the scale) nearly free. Default 0: not selected. On the dev draws (H100, 120 frames, init_smoothness
    # 1000) it pulled sit@h6 from 40.3 to 31-40 mm but pushed carry@h4/push@h5 up by 0.6-26 mm at every weight
    # tried (quadratic 0.1-1, robust σ 1-5 mm/frame at 10-1000; the stronger ones also let the human sink up to 25 mm
    # into the held object); best mean 31.1 (0.1, quadratic) vs 29.65 without it (benchmarks/results/motion.md).
    object_rest: Float[Array, ""] = 0.0
    object_rest_scale: Float[Array, ""] = 0.0
    # The object's own observation of rest (losses/object_static.py): in the frames whose object mask shows the
    # object inside its X_s silhouette (MotionData.object_static_frames, from the instance masks), its pose is tied
    # to X_s's. 0 without masks or with a moving object. 1.0 chosen on 6 dev draws (H100, 120 frames, masks; with the
    # mask-aware object init): dev mean MPJPE 0.01 → 33.46, 0.1 → 33.50, 1 → 33.50, 10 → 33.52 mm (flat; sit@h6 26.5 →
    # 23.9 from 0.01 to 1), 37.90 with the mask init alone, 38.07 before (benchmarks/results/motion.md, session 8).
    object_static: Float[Array, ""] = 1.0
    # Update gates (not loss weights): multiply the Adam updates of the body pose and of the object
    # motion; 0 freezes them (the global stage of `motion_phases`). Traced like the weights.
    pose_update: Float[Array, ""] = 1.0
    object_update: Float[Array, ""] = 1.0

    @classmethod
    def default(cls, **overrides) -> "MotionWeights":
        w = cls(**overrides)
        return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), w)


@struct.dataclass
class MotionParams:
    """Per-frame optimised variables (axis-angle rotations; object rotation as a left delta on the static one)."""

    global_orient: Float[Array, "L 3"]
    body_pose: Float[Array, "L B 3"]
    transl: Float[Array, "L 3"]
    object_delta_rot: Float[Array, "L 3"]
    object_translation: Float[Array, "L 3"]


@struct.dataclass
class MotionData:
    """Everything constant during tracking. Subset arrays index `sub_*` (the skinned vertex subset)."""

    static: StaticInstance
    j_rest: Float[Array, "J 3"]
    R_rest: Float[Array, "J 3 3"]
    sub_rest: Float[Array, "S 3"]  # shaped rest positions of the skinned vertex subset
    # Pose correctives of the subset, coordinate-major columns [x of all S | y | z] (a GEMM output that
    # reshapes to (3, S) planes with no transpose, see frame_forward).
    sub_posedirs: Float[Array, "P S3"]
    sub_skin_ids: Int[Array, "S K"]  # each subset vertex's non-zero skinning joints
    sub_skin_w: Float[Array, "S K"]
    extra_idx: Int[Array, "E 3"]
    extra_bary: Float[Array, "E 3"]
    openpose: Int[Array, "18"]  # into joints ++ extra points
    contact_idx: Int[Array, "C"]
    contacts: ContactPairs
    pen_idx: Int[Array, "N"]
    pen_vertex_ids: Int[Array, "N"]  # the same points as mesh vertex ids (for metrics and baselines)
    sdf: SDFGrid
    object_points: Float[Array, "M 3"]  # object frame
    parts: PartVolumes
    keypoints: Float[Array, "L 18 2"]
    confidence: Float[Array, "L 18"]
    K: Float[Array, "3 3"]
    T_cam_world: Float[Array, "4 4"]
    image_size: Float[Array, "2"]
    frames: Any = None  # optional video frames (L,H,W,3) for the rendered-frame MSE
    masks: Any = None  # optional (L,H,W) masks
    # Dense skinning weights of the subset (S, J) for `MotionConfig.lbs == "dense"` (see frame_forward).
    sub_lbs_weights: Any = None
    # Eq. 6 targets in the object frame (C, 3): where each pair's human vertex sat relative to the
    # object in the static instance (`contact_target="static"`); None = the sampled surface point.
    contact_target: Any = None
    # Keypoints from a `body.keypoints.KeypointRegressor` (set when `openpose_ids` is one):
    # (18, J+E) weights over joints ++ extra points, and (18, J, 4) joint-space moments of its
    # vertex weights (see `_joint_moments`); None = plain indices `openpose`.
    kp_point_weights: Any = None
    kp_joint_moments: Any = None
    # Per object point (M,): capsule depth tolerated by the part term of L_pen (`pen_parts_static_allowance`).
    pen_parts_allowance: Any = None
    # The pairs L_C (Eq. 6) sums over, compacted (`max_contact_pairs`): indices into `contacts` (C',)
    # with the valid pairs first, and their mask; None = all N_o slots of `contacts` (mostly masked).
    contact_slots: Any = None
    contact_slot_mask: Any = None
    # Per-frame human/object instance masks as silhouette tables (losses/silhouette.SilhouetteTargets),
    # and (2,) the surface-sample spacing (m) of the projected body points (the L_pen subset) and of
    # the object points, which sets the coverage tolerance; None = no masks (term off).
    silhouette: Any = None
    silhouette_spacing: Any = None
    # Floor height (scalar, m, world y) and the object's support points (H, 3), object frame: the vertices of
    # its convex hull (a rigid body's lowest point in any orientation is one of them); None = no floor terms.
    floor_height: Any = None
    object_support_points: Any = None
    # `sub_skin_ids`/`sub_skin_w`'s non-zero entries grouped by joint (kernels/lbs.joint_entries, built on the
    # host): the sparse LBS gradient kernel's input; None = built in the backward (sorts in every step).
    sub_skin_entries: Any = None
    # (L,) 1.0 in the frames whose instance masks show the object at rest at X_s's placement
    # (losses/object_static.static_object_frames), 0.0 elsewhere; None = no masks (the object follows the
    # human's keypoint translation in the init, as before, and the `object_static` term is 0).
    object_static_frames: Any = None

    @property
    def num_frames(self) -> int:
        return self.keypoints.shape[0]


class _Tree(NamedTuple):
    """What forward_kinematics reads from a BodyModel: the static kinematic tree."""

    parents: tuple[int, ...]
    levels: tuple[tuple[int, ...], ...]
    rest_orient: str


@dataclasses.dataclass(frozen=True)
class MotionConfig:
    """Static settings (they change compiled shapes or code), hashable."""

    parents: tuple[int, ...]
    rest_orient: str = "identity"  # BodyModel.rest_orient
    pose_joints: tuple[int, ...] = SMPLX_BODY_JOINTS
    steps_per_call: int = 100
    learning_rate: float = 0.01
    sigma_px: float = 100.0  # final σ of Eq. 5 (paper default)
    # Graduated non-convexity for Eq. 5: σ starts at the image size (ρ ≈ plain squared error, so
    # frames far from the static pose still get a full-strength gradient) and shrinks geometrically
    # to `sigma_px` over the first `sigma_anneal_steps` Adam steps. 0 = constant σ (paper as written).
    sigma_anneal_steps: int = 400
    # Initialisation from the keypoints (before step 0): per-frame human translation from the torso
    # keypoints (weighted linear least squares, `keypoint_translations`), and the object carried
    # along with the human's displacement (the paper assumes the contact holds throughout).
    init_translation: bool = True
    # Weight of the second-difference prior in that least squares. Session 7 (object copying the human's init path):
    # dev draws (H100, 120 frames, 1000 steps; MPJPE mean carry@h4/push@h5/sit@h6) 1 → 36.4, 100 → 33.2, 300 → 32.3,
    # 1000 → 31.9, 3000 → 32.5, 1e4 → 29.65 mm, but 1e4 broke the max-penetration target on the benchmark (sit_chair
    # 17.4 mm, the chair dragged along the smoothed depth error). Session 8, with the object's own mask test of rest
    # (MotionWeights.object_static = 1, object_init_from_masks), 6 dev draws (h4-h9) selected under max penetration
    # ≤ 5 mm / contact ≤ 10 mm: 1 → 33.50, **300 → 28.93**, 1000 → 28.2-28.4 (max pen 5.5-6.1 mm: excluded), 1e4 → 31.1
    # (5.5 mm) (benchmarks/results/motion.md, session 8).
    init_smoothness: float = 300.0
    init_gauss_newton: int = 3  # Gauss-Newton steps on the pixel error after that algebraic solve (0: algebraic only)
    object_follows_human: bool = True
    # With MotionData.object_static_frames (instance masks): the object follows the human's init displacement only
    # in the frames its mask shows it moved, from the human's position at the last frame it was seen at rest
    # (`keypoint_initial_params`); False = it follows in every frame (the init without masks).
    object_init_from_masks: bool = True
    # Reference of that displacement once the mask test says the object moved: "since_rest" = from the human's init
    # position at the last frames the object was seen at rest (`displacement_since_rest`: an object lying still while
    # the human walks up to it); "absolute" = from the static placement X_s, i.e. the static human-object relative pose
    # kept (`displacement_absolute`; the paper's video starts at the static interaction, in contact), which does not
    # inherit the human's walk in early frames the 4 px test wrongly calls at rest (a box carried toward the camera).
    # Session 8b, 6 dev draws (h4-h9, H100, --select): since_rest 28.92 -> **absolute 28.47** mm (max pen 4.12 / 3.82);
    # benchmark once with it: MPJPE 23.6 mm, held-out carry@h1 51.7 -> 38.2 mm (benchmarks/results/motion.md, session 8b).
    object_init_reference: str = "absolute"
    pen_margin: float = 0.0
    init_noise: float = 0.0  # radians of body-pose jitter per seed (0: all seeds start identical)
    global_steps: int = 200  # first stage of `motion_phases`: human global motion from L_J only
    # Last stage of `motion_phases`: L_pen's SDF part at weights.pen_object_final. Off (0) by default: the
    # 20× weight jump mid-run meets Adam's second moment (β2 = 0.999, ~1000-step memory) at its old scale, so
    # the first clean-up steps are ~20× the learning rate and a scene with penetrating vertices at the switch
    # blows up (push_box, 24 frames, CPU: MPJPE 22.8 → 65.1 mm, contact 3.1 → 20.5 mm; H100, 120 frames:
    # 72 mm). It was added for sit_chair, whose ground truth itself was inside the backrest (fixed since).
    pen_final_steps: int = 0
    # Skinning of the vertex subset: "sparse" = each vertex's K non-zero weights gathered from the
    # joint transforms (backward: a scatter-add of S·K rows into J rows per frame); "dense" =
    # (S×J)·(J×12) product per frame (backward: a GEMM). Same values (tests). The scatter-add was
    # suspected of making 8 vmapped seeds cost 6× one seed; measured on the H100 it is not: dense
    # 1.34 s / 9.26 s (1 / 8 seeds), sparse 1.38 s / 8.03 s (benchmarks/results/motion.md).
    lbs: str = "sparse"
    # GEMM of the per-frame pose correctives (`_pose_correctives`, the largest products of a step):
    # "highest" = float32 FFMA GEMM; "fp32_3xtf32" = float32-accurate error-compensated TF32 tensor-core
    # product on CUDA (forward and gradient, body/skinning.with_tf32x3_blend; elsewhere bit-identical to
    # "highest"), measured slower (H100, 8 seeds: 2.64 vs 2.56 s per 1000 steps, motion_speed_s5.md);
    # "tf32x3" (default) = XLA's own 3-pass TF32 algorithm (DotAlgorithmPreset.TF32_TF32_F32_X3, forward and
    # transpose) on CUDA, "highest" elsewhere (bit-identical on CPU): H100, same process, 1 seed 0.384 ->
    # 0.371 s, 8 seeds 1.195 -> 1.164 s per 1000 steps; gradients vs "highest" 1.1e-6 relative (float32
    # level), loss terms <= 1e-7 relative (benchmarks/results/motion_speed_s8.md). Also "bf16x6", "bf16x9",
    # and "tf32" (one pass: 1.3e-4 relative gradient error, changes the objective's rounding; A/B only).
    gemm: str = "tf32x3"
    # Terms of Eq. 4 removed from the compiled program (a zero weight still computes them): for
    # speed diagnosis, or a term a caller never uses. Names as in MotionWeights.
    skip_terms: tuple[str, ...] = ()
    pose_prior: PosePrior = pose_prior_l2
    render_fn: Callable | None = None  # (vertices (V,3), R_obj, t_obj, frame_index) -> (image, mask)
    render_model: Any = None  # BodyModel for full-mesh skinning when render_fn is set
    # Silhouette term (losses/silhouette.py): hinge of the inside side (mask boundary imperfection,
    # pixels) and of the coverage side (τ_inside + factor × sample spacing projected at each frame's depth).
    silhouette_tolerance_px: float = 1.0
    silhouette_spacing_factor: float = 1.0
    # Frames of the video that show the static instance X_s (the static anchor terms tie them to it).
    # (0,): the pipeline generated the video from X_s's render (paper Sec. 4 (a)); () for a user video.
    static_frames: tuple[int, ...] = (0,)

    def __post_init__(self):
        if self.lbs not in ("dense", "sparse"):
            raise ValueError(f"MotionConfig.lbs must be 'dense' or 'sparse', got {self.lbs!r}")
        if self.gemm not in _GEMM_CHOICES:
            raise ValueError(f"MotionConfig.gemm must be one of {_GEMM_CHOICES}, got {self.gemm!r}")
        if self.object_init_reference not in _OBJECT_INIT_REFERENCES:
            raise ValueError(f"MotionConfig.object_init_reference must be one of {_OBJECT_INIT_REFERENCES}, "
                             f"got {self.object_init_reference!r}")
        if any(int(f) < 0 for f in self.static_frames):
            raise ValueError(f"MotionConfig.static_frames must be non-negative frame indices, got {self.static_frames}")
        unknown = sorted(set(self.skip_terms) - set(LOSS_TERMS))
        if unknown:
            raise ValueError(f"MotionConfig.skip_terms: unknown term(s) {unknown}; expected names from {LOSS_TERMS}")

    @property
    def tree(self) -> _Tree:
        return _Tree(self.parents, depth_levels(self.parents), self.rest_orient)

    @classmethod
    def for_model(cls, model: BodyModel, **kw) -> "MotionConfig":
        return cls(parents=model.parents, rest_orient=model.rest_orient, **kw)


@struct.dataclass
class MotionState:
    """A stage's state: params, opt_state, step, key — nothing hidden (STYLE.md)."""

    params: MotionParams
    opt_state: Any
    step: Int[Array, ""]
    key: jax.Array


class FrameOutputs(NamedTuple):
    joints: Float[Array, "J 3"]
    openpose: Float[Array, "18 3"]
    contact_points: Float[Array, "C 3"]
    pen_points: Float[Array, "N 3"]
    R_obj: Float[Array, "3 3"]
    t_obj: Float[Array, "3"]
    capsules: tuple


# ----------------------------------------------------------------------------------------------
# Host-side preparation
# ----------------------------------------------------------------------------------------------


def prepare_motion_data(
    model: BodyModel,
    static: StaticInstance,
    object_vertices,
    object_faces,
    *,
    keypoints,
    confidence,
    K,
    T_cam_world,
    image_size,
    contact_candidates,
    openpose_ids,
    key: jax.Array,
    num_object_points: int = 1024,
    num_pen_vertices: int = 2048,
    sdf_resolution: int = 64,
    contact_thresholds: dict | None = None,
    frames=None,
    masks=None,
    pen_near_fraction: float = 0.5,
    pen_near_distance: float = 0.1,
    contact_target: str = "static",
    pen_parts_static_allowance: bool = False,
    max_contact_pairs: int = 256,
    human_masks=None,
    object_masks=None,
    silhouette_samples: int = 128,
    silhouette_stride: int = 2,
    floor_height: float | str | None = "static",
    max_support_points: int = 256,
    static_mask_tolerance_px: float = 4.0,
) -> MotionData:
    """Precompute contacts (Eq. 3), object SDF grid, part capsules and the skinned vertex subset.

    `contact_candidates`: C(V_h) vertex ids; `openpose_ids`: (18,) indices into joints ++ extra
    points (body/keypoints.py per body model). `key` drives the surface sampling.
    `max_contact_pairs`: L_C skins only this many pair slots (valid pairs first; if Eq. 3 keeps
    more, a farthest-point subset of them, which leaves Eq. 6's mean nearly unchanged); 0 = all
    N_o slots. `data.contacts` keeps the full Eq. 3 result either way.
    `human_masks`, `object_masks`: optional per-frame instance masks (L, H, W) (H, W from
    `image_size` = (W, H)) for the silhouette part of L_reg (losses/silhouette.py): boundary samples
    per mask and frame (`silhouette_samples`) and distance tables subsampled by `silhouette_stride`.
    With masks, MotionData.object_static_frames marks the frames whose masks show the object at rest at X_s
    (losses/object_static.py; `static_mask_tolerance_px`: the segmentation error budget in pixels).
    """
    _check_masks(human_masks, object_masks, keypoints, image_size)
    posed = pose(model, BodyParams(betas=static.betas, pose=static.pose, transl=static.transl, scale=static.scale))
    nrm = vertex_normals(posed.vertices, model.faces)
    k_surf, _ = jax.random.split(key)
    obj_v = jnp.asarray(object_vertices, jnp.float32)
    obj_f = jnp.asarray(object_faces, jnp.int32)
    o_pts, o_nrm = object_surface_points(obj_v, obj_f, num_object_points, key=k_surf)
    contacts = extract_contacts(
        o_pts, o_nrm, static.R_world_obj, static.t_world_obj, posed.vertices, nrm,
        jnp.asarray(contact_candidates, jnp.int32), **(contact_thresholds or {}),
    )
    v_rest = rest_vertices(model, static.betas)
    j_rest = rest_joints(model, static.betas)
    R_rest = rest_orientations(model, static.betas)
    parts = fit_part_volumes(v_rest, j_rest, R_rest, model.lbs_weights, model.faces, model.parents)
    sdf = sdf_grid_from_mesh(obj_v, obj_f, resolution=sdf_resolution, corner_table=True)  # L_pen kernel gathers
    pen_vertices = _pen_vertex_subset(model, v_rest, posed.vertices, sdf, static, num_pen_vertices,
                                      pen_near_fraction, pen_near_distance)
    slots, slot_mask = _contact_slots(contacts, max_contact_pairs)
    extra_src = onp.asarray(model.extra_vertex_ids).reshape(-1)
    pair_vertex = onp.asarray(contacts.human_vertex)[slots]
    sub = onp.concatenate([extra_src, pair_vertex, onp.asarray(pen_vertices)]).astype(onp.int32)
    E, C = extra_src.shape[0], pair_vertex.shape[0]
    w_sub = onp.asarray(model.lbs_weights)[sub]
    k_max = max(1, int((w_sub > 0).sum(1).max()))
    skin_ids = onp.argsort(-w_sub, axis=1)[:, :k_max].astype(onp.int32)
    skin_w = onp.take_along_axis(w_sub, skin_ids, 1).astype(onp.float32)
    sub_j = jnp.asarray(sub)
    if model.posedirs.shape[0]:
        pd = jnp.swapaxes(model.posedirs.reshape(model.posedirs.shape[0], -1, 3)[:, sub_j], 1, 2).reshape(
            model.posedirs.shape[0], -1)
    else:
        pd = jnp.zeros((0, 3 * len(sub)), jnp.float32)
    kp_point_weights = kp_moments = None
    if hasattr(openpose_ids, "point_weights"):  # a KeypointRegressor
        reg = openpose_ids
        if reg.point_weights.shape[0] != 18:
            raise ValueError(f"the keypoint regressor must give the 18 OpenPose points, got {reg.point_weights.shape[0]}")
        kp_point_weights = jnp.asarray(reg.point_weights, jnp.float32)
        if reg.needs_vertices:
            if model.posedirs.shape[0]:
                raise ValueError("a vertex keypoint regressor needs a body model without pose correctives (Anny)")
            kp_moments = _joint_moments(reg.vertex_weights, model.lbs_weights, v_rest)
        openpose_ids = jnp.argmax(kp_point_weights, axis=1)  # informative only (frame_forward uses the weights)
    q_static = (posed.vertices[jnp.asarray(pair_vertex)] - static.t_world_obj[None]) @ static.R_world_obj
    allowance = None
    if pen_parts_static_allowance:
        caps = pose_part_volumes(parts, posed.T_world_joint, static.scale)  # as frame_forward places them
        o_w = o_pts @ static.R_world_obj.T + static.t_world_obj[None]
        allowance = jax.nn.relu(inside_depth(o_w, *caps))
    silhouette = spacing = object_static_frames = None
    if human_masks is not None:
        silhouette = silhouette_targets(human_masks, object_masks, num_samples=silhouette_samples, stride=silhouette_stride)
        spacing = jnp.asarray([float(static.scale) * _sample_spacing(v_rest[jnp.asarray(pen_vertices)]),
                               _sample_spacing(o_pts)], jnp.float32)
        sil0 = _static_object_silhouette(obj_v, obj_f, static, K, T_cam_world, image_size)
        object_static_frames = jnp.asarray(static_object_frames(object_masks, human_masks, sil0,
                                                                tolerance_px=static_mask_tolerance_px)[0])
    return MotionData(
        static=static,
        j_rest=j_rest,
        R_rest=R_rest,
        sub_rest=v_rest[sub_j],
        sub_posedirs=pd,
        sub_skin_ids=skin_ids,
        sub_skin_w=skin_w,
        extra_idx=jnp.arange(E, dtype=jnp.int32).reshape(-1, 3),
        extra_bary=jnp.asarray(model.extra_bary),
        openpose=jnp.asarray(openpose_ids, jnp.int32),
        contact_idx=jnp.arange(E, E + C, dtype=jnp.int32),
        contacts=contacts,
        pen_idx=jnp.arange(E + C, len(sub), dtype=jnp.int32),
        pen_vertex_ids=jnp.asarray(pen_vertices, jnp.int32),
        sdf=sdf,
        object_points=o_pts,
        parts=parts,
        keypoints=jnp.asarray(keypoints, jnp.float32),
        confidence=jnp.asarray(confidence, jnp.float32),
        K=jnp.asarray(K, jnp.float32),
        T_cam_world=jnp.asarray(T_cam_world, jnp.float32),
        image_size=jnp.asarray(image_size, jnp.float32),
        frames=None if frames is None else jnp.asarray(frames, jnp.float32),
        masks=None if masks is None else jnp.asarray(masks, jnp.float32),
        sub_lbs_weights=jnp.asarray(onp.asarray(model.lbs_weights)[sub], jnp.float32),
        contact_target=q_static if contact_target == "static" else None,
        contact_slots=jnp.asarray(slots, jnp.int32),
        contact_slot_mask=jnp.asarray(slot_mask, jnp.float32),
        kp_point_weights=kp_point_weights,
        kp_joint_moments=kp_moments,
        pen_parts_allowance=allowance,
        silhouette=silhouette,
        silhouette_spacing=spacing,
        **_floor_data(floor_height, obj_v, posed.vertices[pen_vertices], static, max_support_points),
        sub_skin_entries=host_joint_entries(skin_ids, skin_w, w_sub.shape[1]),
        object_static_frames=object_static_frames,
    )


def _static_object_silhouette(obj_v, obj_f, static: StaticInstance, K, T_cam_world, image_size) -> onp.ndarray:
    """(H, W) bool: the object alone at X_s's placement, hard-rasterised (its full silhouette, occluders ignored)."""
    from anchorhoi_jax.geometry.cameras import Camera
    from anchorhoi_jax.render.raster import rasterize

    W, H = (int(x) for x in onp.asarray(image_size).reshape(-1)[:2])
    v = obj_v @ static.R_world_obj.T + static.t_world_obj[None]
    cam = Camera(K=jnp.asarray(K, jnp.float32), T_cam_world=jnp.asarray(T_cam_world, jnp.float32), height=H, width=W)
    fid = rasterize(v, obj_f, jnp.zeros((v.shape[0], 1), jnp.float32), cam, mode="hard", cull_backfaces=False)["face_ids"]
    return onp.asarray(fid) >= 0


def _check_masks(human_masks, object_masks, keypoints, image_size) -> None:
    """One-line errors for the silhouette inputs: both or neither, each (L, H, W) matching the keypoints and image."""
    if human_masks is None and object_masks is None:
        return
    if human_masks is None or object_masks is None:
        raise ValueError("prepare_motion_data: give both human_masks and object_masks (or neither)")
    L = onp.shape(keypoints)[0]
    W, H = (int(x) for x in onp.asarray(image_size).reshape(-1)[:2])
    for name, m in (("human_masks", human_masks), ("object_masks", object_masks)):
        if onp.shape(m) != (L, H, W):
            raise ValueError(f"prepare_motion_data: {name} must be (L, H, W) = ({L}, {H}, {W}) (keypoint frames, "
                             f"image_size), got {onp.shape(m)}")


def _sample_spacing(points) -> float:
    """90th percentile of the nearest-neighbour distance (m) in a point sample: how far apart its points are."""
    from scipy.spatial import cKDTree

    p = onp.asarray(points, onp.float64)
    if len(p) < 2:
        return 0.0
    d, _ = cKDTree(p).query(p, k=2)
    return float(onp.percentile(d[:, 1], 90))


def _contact_slots(contacts: ContactPairs, max_pairs: int):
    """Indices (C',) into the Eq. 3 pairs for L_C, valid first, and their mask (host NumPy).

    Eq. 3 returns N_o fixed slots (typically a few % valid); skinning all of them per frame and seed
    is the largest part of the skinned subset. C' = max_pairs (fixed, so seeds and objects share one
    compiled program) or N_o when max_pairs is 0 or ≥ N_o."""
    mask = onp.asarray(contacts.mask) > 0
    n = mask.shape[0]
    if max_pairs <= 0 or max_pairs >= n:
        return onp.arange(n, dtype=onp.int32), mask.astype(onp.float32)
    valid = onp.flatnonzero(mask)
    if len(valid) > max_pairs:
        valid = valid[onp.asarray(farthest_point_sampling(contacts.object_point[jnp.asarray(valid)], max_pairs))]
    slots = onp.zeros(max_pairs, onp.int32)
    slots[: len(valid)] = valid
    m = onp.zeros(max_pairs, onp.float32)
    m[: len(valid)] = 1.0
    return slots, m


def _joint_moments(vertex_weights, lbs_weights, v_rest) -> Float[Array, "K J 4"]:
    """m_kj = Σ_v w_kv W_vj [v_rest_v; 1]: a vertex-regressed keypoint in joint space.

    With LBS and no pose correctives, keypoint k = Σ_v w_kv Σ_j W_vj A_j [v_v; 1] = Σ_j A_j m_kj,
    exactly, so the 18 keypoints cost 18·J·12 products per frame instead of skinning the thousands
    of vertices Anny's COCO regressor averages (up to 4,105 per ear).
    """
    vh = jnp.concatenate([v_rest, jnp.ones_like(v_rest[:, :1])], -1)
    return jnp.einsum("kv,vj,vc->kjc", jnp.asarray(vertex_weights, jnp.float32), jnp.asarray(lbs_weights, jnp.float32),
                      vh, precision=HIGHEST)


def _pen_vertex_subset(model, v_rest, v_static, sdf, static, num, near_fraction, near_distance):
    """Body vertices at which L_pen samples the object SDF (mesh vertex ids, length min(num, |used|)).

    A farthest-point subset of the whole mesh spaces ~2k points 3-4 cm apart, coarser than a
    finger: a hand can sink a centimetre into the object between samples. The paper assumes the
    static contact holds through the motion, so the body parts near the object in the static
    instance are the ones that can penetrate it; they get a denser farthest-point subset of their
    own (`near_fraction` of the budget), the rest covers the whole body (legs against a pushed box).
    """
    used = onp.unique(onp.asarray(model.faces))
    n = min(num, len(used))
    p_obj = (v_static[jnp.asarray(used)] - static.t_world_obj[None]) @ static.R_world_obj  # object frame
    near = used[onp.asarray(sample_sdf(sdf, p_obj)) < near_distance]
    n_near = min(len(near), int(round(near_fraction * n)))
    parts = []
    if n_near > 0:
        parts.append(near[onp.asarray(farthest_point_sampling(v_rest[jnp.asarray(near)], n_near))])
    if n - n_near > 0:
        parts.append(used[onp.asarray(farthest_point_sampling(v_rest[jnp.asarray(used)], n - n_near))])
    return jnp.asarray(onp.concatenate(parts), jnp.int32)


def _mm(a, b):
    """3×3 products written elementwise (exact f32; fuse on the GPU instead of tiny GEMMs)."""
    return a[..., :, 0:1] * b[..., 0:1, :] + a[..., :, 1:2] * b[..., 1:2, :] + a[..., :, 2:3] * b[..., 2:3, :]


def _mv(a, v):
    return a[..., :, 0] * v[..., 0:1] + a[..., :, 1] * v[..., 1:2] + a[..., :, 2] * v[..., 2:3]


# ----------------------------------------------------------------------------------------------
# Forward model for one frame
# ----------------------------------------------------------------------------------------------


def _pose_correctives(data: MotionData, cfg: MotionConfig, R_local) -> Float[Array, "S 3"]:
    """Pose-corrective offsets of the skinned subset: Σ_j (R_j − I) · posedirs_j over joints 1..J−1.

    Only the optimised joints (cfg.pose_joints) change between frames and steps; the others (hands,
    jaw, eyes: 33 of SMPL-X's 54) stay at the static pose, so their share is one product that does not
    depend on the frame (vmap leaves it unbatched; it is loop-invariant in the Adam scan). Per frame
    and seed only the optimised joints' rows take part in the GEMM (SMPL-X: 189 of 486 rows, 2.6×
    less work forward and backward)."""
    P = data.sub_posedirs.shape[0]
    J = P // 9 + 1
    var = sorted({j for j in cfg.pose_joints if 0 < j < J})
    fixed = [j for j in range(1, J) if j not in set(var)]
    eye = jnp.eye(3, dtype=R_local.dtype)[None]

    def part(R, joints, split=False):
        feat = (R - eye).reshape(-1)
        rows = onp.concatenate([onp.arange(9 * (j - 1), 9 * j) for j in joints])
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        pd = data.sub_posedirs[lo:hi] if hi - lo == len(rows) else data.sub_posedirs[jnp.asarray(rows)]
        if not split:
            return jnp.matmul(feat, pd, precision=HIGHEST)
        if cfg.gemm in _GEMM_PRESETS:  # XLA's dot-algorithm presets (tensor cores) on CUDA, "highest" elsewhere
            alg = getattr(jax.lax.DotAlgorithmPreset, _GEMM_PRESETS[cfg.gemm])
            return jax.lax.platform_dependent(feat, pd, cuda=lambda f, m: jnp.matmul(f, m, precision=alg),
                                              default=lambda f, m: jnp.matmul(f, m, precision=HIGHEST))
        return jax.lax.platform_dependent(feat, pd, cuda=lambda f, m: _tf32x3_product(f, tf32x3_stack(m)),
                                          default=lambda f, m: jnp.matmul(f, m, precision=HIGHEST))

    contiguous = bool(var) and var[-1] - var[0] + 1 == len(var)
    split = cfg.gemm != "highest"  # the per-frame product only (the fixed joints' share is computed once)
    out = part(R_local[var[0]:var[-1] + 1] if contiguous else R_local[jnp.asarray(var)], var, split) if var else 0.0
    if fixed:
        R_static = rodrigues(data.static.pose[jnp.asarray(fixed)])  # as full_pose leaves them
        out = out + part(R_static, fixed)
    return jnp.reshape(out, (3, -1))


# MotionConfig.gemm values beyond "highest" / "fp32_3xtf32": XLA dot-algorithm presets for the per-frame
# pose-corrective product (forward and its transpose) on CUDA. "tf32x3" / "bf16x6" / "bf16x9": float32-accurate
# multi-pass tensor-core products; "tf32": one TF32 pass (~1e-4 relative error: changes the objective's
# rounding, A/B only). Measured in benchmarks/results/motion_speed_s8.md (MotionConfig.gemm says the numbers).
_GEMM_PRESETS = {"tf32": "TF32_TF32_F32", "tf32x3": "TF32_TF32_F32_X3", "bf16x6": "BF16_BF16_F32_X6",
                 "bf16x9": "BF16_BF16_F32_X9"}
_GEMM_CHOICES = ("highest", "fp32_3xtf32", *_GEMM_PRESETS)
_OBJECT_INIT_REFERENCES = ("since_rest", "absolute")  # MotionConfig.object_init_reference


def tf32x3_stack(M):
    """[M_hi; M_lo; M_hi] (rows) for `skinning._tf32x3_product`: M = M_hi + M_lo + O(2⁻²²|M|), both parts
    exact in TF32 (as body/skinning.with_tf32x3_blend, here in the graph: the posedirs rows are a
    traced constant of the motion step, and the split is loop-invariant in the Adam scan)."""
    hi = _round_tf32(M)
    return jnp.concatenate([hi, _round_tf32(M - hi), hi], 0)


@jax.custom_vjp
def _skin_sparse(A, v, ids, w, W, entries=None):
    """Linear blend skinning of the subset: Σ_k w_k A[ids_k] applied to [v; 1] (A: (J, 12) rows of
    3×4 transforms; v and the result: (3, S) coordinate planes). Forward: each vertex's K non-zero
    weights gathered (fuses into one pass). Backward: ∂/∂A as ONE product of the per-vertex outer
    products dv ⊗ [v; 1] (12 × S per frame: a GEMM over the flat frame axis) with the dense weights
    W (S, J), instead of the gathers' K scatter-adds of S rows into J (few addresses, contended:
    0.48 of 5.9 ms per Adam step for 8 seeds on the H100, benchmarks/results/motion_speed_s4.md). On CUDA
    (LBS_GRAD_IMPL) ∂/∂A is instead a kernel over W's non-zero `entries` (kernels/lbs.py)."""
    T = sum(w[:, k, None] * A[ids[:, k]] for k in range(ids.shape[1]))  # (S, 12)
    return jnp.stack([T[:, 4 * i] * v[0] + T[:, 4 * i + 1] * v[1] + T[:, 4 * i + 2] * v[2] + T[:, 4 * i + 3]
                      for i in range(3)], 0)


def _skin_sparse_fwd(A, v, ids, w, W, entries=None):
    return _skin_sparse(A, v, ids, w, W, entries), (A, v, ids, w, W, entries)


def _skin_sparse_bwd(res, g):
    A, v, ids, w, W, entries = res
    T = sum(w[:, k, None] * A[ids[:, k]] for k in range(ids.shape[1]))
    dv = jnp.stack([T[:, c] * g[0] + T[:, 4 + c] * g[1] + T[:, 8 + c] * g[2] for c in range(3)], 0)  # Rᵀ g
    impl = resolve_impl(LBS_GRAD_IMPL)
    if impl != "xla":
        # ∂/∂A over W's non-zero entries only (2.5 % of the dense product's terms for the SMPL-X subset), one
        # program per frame (kernels/lbs.py; H100, 8 seeds: see benchmarks/results/motion_speed_s7.md).
        ent = joint_entries(ids, w, A.shape[0]) if entries is None else entries
        dA = lbs_transform_grad_pallas(g, v, ent, interpret=impl == "interpret", chunk=LBS_GRAD_CHUNK)
        return dA[:, : A.shape[0]].T, dv, None, None, None, None
    # ∂/∂A[j, a, b] = Σ_s W[s, j] g_a[s] v_b[s] (b < 3; b = 3: Σ_s W[s, j] g_a[s]) as two products of broadcast
    # planes, (9, S)·(S, J) and (3, S)·(S, J). With g assembled vertex-major (before `_place_planes`' kernel),
    # the earlier single product of a stacked (12, S) operand [g_a v_b | g_a] was emitted by XLA as a
    # concatenate along a minor axis of 12 plus a tiled transpose (H100, 8 seeds: 600 µs per Adam step).
    # Once g arrives as row-major planes the stack is cheap again: same process, 8 seeds, 1.358 s per 1000
    # steps with the stack vs 1.385 s with these two products (benchmarks/results/motion_speed_s6.md, call 3);
    # these are what the complete 1- and 8-seed timings of session 6 ran.
    d_lin = jnp.matmul((g[:, None, :] * v[None, :, :]).reshape(9, -1), W, precision=HIGHEST)  # (9, J): [3a + b]
    d_t = jnp.matmul(g, W, precision=HIGHEST)  # (3, J)
    dA = jnp.concatenate([d_lin.reshape(3, 3, -1), d_t[:, None, :]], 1)  # (3, 4, J): [a, b, j]
    return jnp.transpose(dA, (2, 0, 1)).reshape(-1, 12), dv, None, None, None, None


_skin_sparse.defvjp(_skin_sparse_fwd, _skin_sparse_bwd)

# `_skin_sparse`'s ∂/∂A: "auto" (the sparse Pallas kernel of kernels/lbs.py on CUDA, the dense products elsewhere),
# "xla" (the dense products) or "interpret". Read at trace time; benchmarks/motion_profile.py --ab sets it.
LBS_GRAD_IMPL = "auto"
LBS_GRAD_CHUNK = 32  # entries per joint row and iteration of the kernel (a power of two)


# Σ over the vertex planes in `_place_planes`' backward: "auto" (a Pallas kernel on CUDA, jnp.sum elsewhere),
# "xla" or "interpret" (kernels/reductions.py). Read at trace time; benchmarks/motion_profile.py --ab sets it.
PLANE_SUM_IMPL = "auto"


@jax.custom_vjp
def _place_planes(v, root, s, transl):
    """root + s·(v − root) + transl on (3, S) coordinate planes (CONVENTIONS.md placement about the root)."""
    return root[:, None] + s * (v - root[:, None]) + transl[:, None]


def _place_planes_fwd(v, root, s, transl):
    return _place_planes(v, root, s, transl), (v, root, s)


def _place_planes_bwd(res, g):
    # The translation's gradient Σ_s g[:, s] (and the root's) as row sums of the planes by a kernel that
    # takes them row-major: autodiff left it to XLA, which reduced the middle axis of a vertex-major
    # (frames, S, 3) copy of g serially (H100, 8 seeds: 355 µs per Adam step; kernels/reductions.py).
    v, root, s = res
    impl = resolve_impl(PLANE_SUM_IMPL)
    gsum = jnp.sum(g, 1) if impl == "xla" else plane_sums_pallas(g, interpret=impl == "interpret")
    return s * g, (1.0 - s) * gsum, jnp.sum((v - root[:, None]) * g), gsum


_place_planes.defvjp(_place_planes_fwd, _place_planes_bwd)


def full_pose(data: MotionData, cfg: MotionConfig, global_orient, body_pose) -> Float[Array, "J 3"]:
    """Static pose with the optimised joints substituted (hands, jaw, eyes stay as in X_s)."""
    p = data.static.pose.at[0].set(global_orient)
    return p.at[jnp.asarray(cfg.pose_joints)].set(body_pose)


def frame_forward(
    data: MotionData, cfg: MotionConfig, global_orient, body_pose, transl, object_delta_rot, object_translation
) -> FrameOutputs:
    """Pose the human (FK + LBS of the vertex subset) and the object for one frame."""
    with jax.named_scope("motion.frame_forward"):
        R_local = rodrigues(full_pose(data, cfg, global_orient, body_pose))
        R_world, t_world = forward_kinematics(cfg.tree, R_local, data.j_rest, data.R_rest)
        A_R = _mm(R_world, jnp.swapaxes(data.R_rest, -1, -2))
        A_t = t_world - _mv(A_R, data.j_rest)
        A = jnp.concatenate([A_R, A_t[..., None]], -1).reshape(-1, 12)
        # The subset's vertices as (3, S) coordinate planes (structure of arrays): the pose-corrective GEMM
        # writes them directly and every term below reads whole planes, no (S, 3) ↔ (3, S) transposes
        # (H100, 8 seeds: ~0.2 ms per step of transposes with the vertex-major layout).
        v = data.sub_rest.T
        if data.sub_posedirs.shape[0]:
            v = v + _pose_correctives(data, cfg, R_local)
        if cfg.lbs == "dense" and data.sub_lbs_weights is not None:
            # (S×J)·(J×12): under the frame/seed vmaps this is one GEMM forward and backward.
            T = jnp.matmul(data.sub_lbs_weights, A, precision=HIGHEST).reshape(-1, 3, 4)
            v = (_mv(T[..., :3], v.T) + T[..., 3]).T
        elif data.sub_lbs_weights is not None:
            v = _skin_sparse(A, v, data.sub_skin_ids, data.sub_skin_w, data.sub_lbs_weights, data.sub_skin_entries)
        else:  # sparse: each vertex's K non-zero weights, as explicit sums (fuses into one pass)
            T = sum(data.sub_skin_w[:, k, None] * A[data.sub_skin_ids[:, k]] for k in range(data.sub_skin_ids.shape[1]))
            T = T.reshape(-1, 3, 4)
            v = (_mv(T[..., :3], v.T) + T[..., 3]).T
        root, s = data.j_rest[0], data.static.scale
        place = lambda x: root[None] + s * (x - root[None]) + transl[None]  # noqa: E731  (CONVENTIONS.md placement)
        v = _place_planes(v, root, s, transl)  # `place` on the planes
        joints = place(t_world)
        # The subset is laid out [extra-point vertices | contact vertices | L_pen vertices]
        # (prepare_motion_data), so static slices replace gathers (no scatter-add in the backward).
        E, C = data.extra_idx.size, data.contact_idx.shape[0]
        ve = v[:, :E].reshape(3, -1, 3)  # (xyz, point, corner)
        bary = data.extra_bary
        extra = (ve[:, :, 0] * bary[None, :, 0] + ve[:, :, 1] * bary[None, :, 1] + ve[:, :, 2] * bary[None, :, 2]).T
        pts = jnp.concatenate([joints, extra], 0)
        if data.kp_point_weights is None:
            op = jnp.matmul(jax.nn.one_hot(data.openpose, pts.shape[0], dtype=pts.dtype), pts, precision=HIGHEST)
        else:
            op = jnp.matmul(data.kp_point_weights, pts, precision=HIGHEST)
        if data.kp_joint_moments is not None:  # vertex-regressed keypoints, in joint space (exact)
            m = data.kp_joint_moments
            raw = jnp.einsum("kjc,jrc->kr", m, A.reshape(-1, 3, 4), precision=HIGHEST)
            wsum = jnp.sum(m[..., 3], -1)[:, None]  # each row's total vertex weight (1 for Anny)
            op = op + wsum * (root[None] + transl[None]) + s * (raw - wsum * root[None])
        T_world_joint = jnp.concatenate([R_world, joints[..., None]], -1)
        capsules = pose_part_volumes(data.parts, T_world_joint, s)
        R_obj = _mm(rodrigues(object_delta_rot), data.static.R_world_obj)
        return FrameOutputs(joints, op, v[:, E : E + C].T, v[:, E + C :].T, R_obj, object_translation, capsules)


def frame_terms(data: MotionData, cfg: MotionConfig, out: FrameOutputs, kp, conf, body_pose, static_body_pose,
                sigma_px=None):
    """Per-frame loss terms of Eq. 4, each (value, aux). `sigma_px`: traced σ of Eq. 5 (default cfg.sigma_px)."""
    sigma_px = cfg.sigma_px if sigma_px is None else sigma_px
    R, t = out.R_obj, out.t_obj
    p0, p1, r = out.capsules
    # Object points in the world, built per coordinate ((N,) planes, the same products and sums as _mv) and
    # stacked: the backward into R and t is then 12 sums over (N,) planes instead of a reduction over the
    # middle axis of (frames, N, 3); the capsule kernels (kernels/capsules.py) read and write planes, so
    # the stack and their slicing cancel.
    op = data.object_points
    obj_world = jnp.stack([R[i, 0] * op[:, 0] + R[i, 1] * op[:, 1] + R[i, 2] * op[:, 2] + t[i] for i in range(3)], -1)
    if data.contact_slots is None:  # data built before compaction existed: all N_o slots
        target, mask = data.contacts.object_point, data.contacts.mask
    else:
        target, mask = data.contacts.object_point[data.contact_slots], data.contact_slot_mask
    if data.contact_target is not None:
        target = data.contact_target
    terms = {
        "keypoints": lambda: reprojection_loss(out.openpose, kp, conf, data.K, data.T_cam_world, data.image_size,
                                               sigma_px=sigma_px),
        "contact": lambda: contact_loss(out.contact_points, _mv(R[None], target) + t[None], mask),
        "pen_object": lambda: object_sdf_penetration_world(out.pen_points, R, t, data.sdf, margin=cfg.pen_margin),
        "pen_parts": lambda: part_occupancy_penetration(obj_world, p0, p1, r, data.pen_parts_allowance),
        "self_pen": lambda: self_penetration(data.parts, p0, p1, r),
        "pose_prior": lambda: cfg.pose_prior(body_pose, static_body_pose),
    }
    zero = (jnp.zeros((), jnp.float32), {})
    return {k: zero if k in cfg.skip_terms else f() for k, f in terms.items()}


def forward_all(data: MotionData, cfg: MotionConfig, params: MotionParams) -> FrameOutputs:
    """vmap of `frame_forward` over the L frames."""
    return jax.vmap(lambda g, b, t, dr, dt: frame_forward(data, cfg, g, b, t, dr, dt))(
        params.global_orient, params.body_pose, params.transl, params.object_delta_rot, params.object_translation
    )


def motion_loss(params: MotionParams, data: MotionData, weights: MotionWeights, cfg: MotionConfig, sigma_px=None):
    """L_total of Eq. 4 (weights applied here, in one place). Returns (loss, per-term values).

    `sigma_px`: the (traced) σ of Eq. 5 for this step (see `sigma_schedule`); default cfg.sigma_px."""
    one = jax.tree.map(lambda x: x[None], params)
    sig = None if sigma_px is None else jnp.reshape(jnp.asarray(sigma_px, jnp.float32), (1,))
    _, (total, values) = motion_loss_seeds(one, data, weights, cfg, sig)
    return total[0], {k: v[0] for k, v in values.items()}


def motion_loss_seeds(params: MotionParams, data: MotionData, weights: MotionWeights, cfg: MotionConfig, sigma_px=None):
    """Eq. 4 for S seeds sharing `data`; params carry a leading seed axis (S, L, ...).

    Returns (Σ_s L_total(s), (L_total per seed (S,), per-term values (S,) each)). The seeds are
    independent problems, so the gradient of the sum is each seed's own gradient, and Adam is
    elementwise, so one Adam step on the stacked parameters is S independent Adam steps.

    Why not vmap over seeds: the per-frame model is written for one frame and vmapped over frames;
    a second vmap over seeds gives XLA 5-D batched shapes (seeds × frames × points × parts × 3) that
    it fused and laid out far worse than the 1-seed program (8 seeds cost 7.5× one seed on the
    H100). Here the S·L frames are one flat frame axis — the 1-seed program with a longer batch —
    and only the per-seed reductions (means over frames, temporal smoothness) see the seed axis.
    `sigma_px`: (S,) traced σ of Eq. 5 per seed, default cfg.sigma_px.
    """
    with jax.named_scope("motion.loss"):
        S, L = params.transl.shape[:2]
        flat = jax.tree.map(lambda x: x.reshape((S * L,) + x.shape[2:]), params)
        out = forward_all(data, cfg, flat)
        static_bp = data.static.pose[jnp.asarray(cfg.pose_joints)]
        sig = jnp.full((S,), cfg.sigma_px, jnp.float32) if sigma_px is None else jnp.asarray(sigma_px, jnp.float32)
        kp = jnp.broadcast_to(data.keypoints[None], (S,) + data.keypoints.shape).reshape((S * L,) + data.keypoints.shape[1:])
        conf = jnp.broadcast_to(data.confidence[None], (S,) + data.confidence.shape).reshape(S * L, -1)
        terms = jax.vmap(lambda o, k, c, bp, sg: frame_terms(data, cfg, o, k, c, bp, static_bp, sg))(
            out, kp, conf, flat.body_pose, jnp.repeat(sig, L)
        )
        values = {k: jnp.mean(v[0].reshape(S, L), axis=1) for k, v in terms.items()}
        joints = out.joints.reshape((S, L) + out.joints.shape[1:])
        R_obj, t_obj = out.R_obj.reshape(S, L, 3, 3), out.t_obj.reshape(S, L, 3)
        zero = jnp.zeros((S,), jnp.float32)
        values["smooth_joints"] = zero if "smooth_joints" in cfg.skip_terms else jax.vmap(joint_smoothness)(joints)[0]
        values["smooth_object"] = (zero if "smooth_object" in cfg.skip_terms
                                   else jax.vmap(object_smoothness)(R_obj, t_obj)[0])
        (values["smooth_joints_refdepth"], values["smooth_object_refdepth"],
         values["smooth_body_refdepth"]) = _refdepth_smoothness(data, cfg, joints, R_obj, t_obj, S)
        if cfg.render_fn is not None and data.frames is not None and "render" not in cfg.skip_terms:
            values["render"] = jax.vmap(lambda p: _render_term(p, data, cfg))(params)
        else:
            values["render"] = zero
        if data.silhouette is not None and "silhouette" not in cfg.skip_terms:
            values["silhouette"] = _silhouette_term(data, cfg, out, S, L)
        else:
            values["silhouette"] = zero
        values["static_anchor"], values["static_pose_anchor"] = _static_anchor_terms(params, data, cfg, out, S, L)
        values["floor"], values["floor_support"] = _floor_terms(data, cfg, out, S, L)
        values["object_rest"] = (zero if "object_rest" in cfg.skip_terms
                                 else jax.vmap(lambda R, t: object_rest(R, t, weights.object_rest_scale)[0])(R_obj, t_obj))
        st = data.static
        values["object_static"] = (zero if data.object_static_frames is None or "object_static" in cfg.skip_terms
                                   else jax.vmap(lambda R, t: object_static_anchor(R, t, data.object_static_frames,
                                                                                   st.R_world_obj, st.t_world_obj)[0])(R_obj, t_obj))
        total = sum(getattr(weights, k) * v for k, v in values.items())  # Eq. 4, per seed
        return jnp.sum(total), (total, values)


def _refdepth_smoothness(data: MotionData, cfg: MotionConfig, joints, R_obj, t_obj, S: int):
    """Smoothness at the static instance's root depth (losses/depth_smoothness.py) per seed (S,) each."""
    zero = jnp.zeros((S,), jnp.float32)
    skip_j, skip_o = "smooth_joints_refdepth" in cfg.skip_terms, "smooth_object_refdepth" in cfg.skip_terms
    skip_b = "smooth_body_refdepth" in cfg.skip_terms
    if skip_j and skip_o and skip_b:
        return zero, zero, zero
    root_static = data.j_rest[0] + data.static.transl  # the root joint of X_s in the world (CONVENTIONS placement)
    z_ref = root_static @ data.T_cam_world[2, :3] + data.T_cam_world[2, 3]
    c = jax.vmap(lambda j: depth_rescale(j[:, 0], data.T_cam_world, z_ref)[0])(joints)  # (S,)
    sj = zero if skip_j else jax.vmap(joint_smoothness_at_depth)(joints, c)[0]
    so = zero if skip_o else jax.vmap(object_smoothness_at_depth)(R_obj, t_obj, c)[0]
    sb = zero if skip_b else jax.vmap(body_smoothness_at_depth)(joints, c)[0]
    return sj, so, sb


def _floor_data(floor_height, object_vertices, human_points_static, static: StaticInstance, max_points: int) -> dict:
    """MotionData fields of the floor terms: the object's convex-hull vertices (object frame; at most `max_points`,
    a farthest-point subset beyond) and the floor height: given (m), "static" = X_s's lowest point (its L_pen
    body vertices and the object's hull, losses/floor.static_floor_height), or None (no floor terms)."""
    from scipy.spatial import ConvexHull, QhullError

    if floor_height is None:
        return {}
    if not (isinstance(floor_height, (int, float)) or floor_height == "static"):
        raise ValueError(f"prepare_motion_data: floor_height must be a number, 'static' or None, got {floor_height!r}")
    v = onp.asarray(object_vertices, onp.float64)
    try:
        hull = v[ConvexHull(v).vertices]
    except (QhullError, ValueError):  # flat or degenerate object: every vertex
        hull = v
    if len(hull) > max_points:
        hull = hull[onp.asarray(farthest_point_sampling(jnp.asarray(hull, jnp.float32), max_points))]
    hull = jnp.asarray(hull, jnp.float32)
    if floor_height == "static":
        floor = static_floor_height(human_points_static, hull @ static.R_world_obj.T + static.t_world_obj[None])
    else:
        floor = jnp.asarray(floor_height, jnp.float32)
    return {"floor_height": floor, "object_support_points": hull}


def _floor_terms(data: MotionData, cfg: MotionConfig, out: FrameOutputs, S: int, L: int):
    """The floor terms (losses/floor.py) per seed (S,) each: `floor` (mean over frames of the per-frame sum over
    the L_pen body vertices and the object's support points) and `floor_support` (the clip's mean lowest point)."""
    zero = jnp.zeros((S,), jnp.float32)
    if data.floor_height is None or ("floor" in cfg.skip_terms and "floor_support" in cfg.skip_terms):
        return zero, zero
    hull = data.object_support_points
    obj = jnp.einsum("fab,hb->fha", out.R_obj, hull, precision=HIGHEST) + out.t_obj[:, None]  # (S·L, H, 3)
    pts = jnp.concatenate([out.pen_points, obj], 1)
    floor = zero
    if "floor" not in cfg.skip_terms:
        floor = jnp.mean(jax.vmap(lambda p: floor_penetration(p, data.floor_height)[0])(pts).reshape(S, L), 1)
    support = zero
    if "floor_support" not in cfg.skip_terms:
        lowest = jnp.min(pts[..., 1], -1).reshape(S, L)
        support = jax.vmap(lambda y: floor_support(y, data.floor_height)[0])(lowest)
    return floor, support


def _static_anchor_terms(params: MotionParams, data: MotionData, cfg: MotionConfig, out: FrameOutputs, S: int, L: int):
    """The static anchor terms (losses/anchor.py) per seed (S,) each, at the frames cfg.static_frames."""
    zero = jnp.zeros((S,), jnp.float32)
    if not cfg.static_frames:
        return zero, zero
    if max(cfg.static_frames) >= L:
        raise ValueError(f"MotionConfig.static_frames {cfg.static_frames} out of range for {L} frames")
    fr = jnp.asarray(cfg.static_frames)
    st = data.static
    anchor = zero
    if "static_anchor" not in cfg.skip_terms:
        R_root = axis_angle_to_matrix(params.global_orient[:, fr])  # (S, F, 3, 3)
        R_obj, t_obj = out.R_obj.reshape(S, L, 3, 3)[:, fr], out.t_obj.reshape(S, L, 3)[:, fr]
        R_root_s = axis_angle_to_matrix(st.pose[0])
        anchor = jax.vmap(lambda a, b, c, d: static_anchor(a, b, c, d, R_root_s, st.transl, st.R_world_obj,
                                                           st.t_world_obj)[0])(R_root, params.transl[:, fr], R_obj, t_obj)
    pose_anchor = zero
    if "static_pose_anchor" not in cfg.skip_terms:
        static_bp = st.pose[jnp.asarray(cfg.pose_joints)]
        pose_anchor = jax.vmap(lambda b: static_pose_anchor(b, static_bp)[0])(params.body_pose[:, fr])
    return anchor, pose_anchor


def _silhouette_term(data: MotionData, cfg: MotionConfig, out: FrameOutputs, S: int, L: int):
    """Silhouette part of L_reg (losses/silhouette.py) per seed (S,): the posed L_pen body points and
    the object surface points, projected, against frame i's mask tables (inside + both coverages)."""
    sil = data.silhouette
    norm = jnp.max(data.image_size)
    focal = data.K[0, 0]
    tol = cfg.silhouette_tolerance_px

    def one(human, R, t, f):
        obj = _mv(R[None], data.object_points) + t[None]
        uv_h, z_h = project(data.K, data.T_cam_world, human)
        uv_o, z_o = project(data.K, data.T_cam_world, obj)
        w_h, w_o = (z_h > 0.05).astype(jnp.float32), (z_o > 0.05).astype(jnp.float32)
        # Coverage hinge: the sample spacing projected at this frame's depth (not differentiated: a
        # tolerance, not a way to lower the loss by moving away).
        depth = jax.lax.stop_gradient(jnp.stack([jnp.sum(w_h * z_h) / jnp.maximum(jnp.sum(w_h), 1.0),
                                                 jnp.sum(w_o * z_o) / jnp.maximum(jnp.sum(w_o), 1.0)]))
        tol_cov = tol + cfg.silhouette_spacing_factor * data.silhouette_spacing * focal / jnp.maximum(depth, 0.05)
        inside = silhouette_inside(jnp.concatenate([uv_h, uv_o]), jnp.concatenate([w_h, w_o]), sil.outside_distance, f,
                                   sil.stride, norm, tol)[0]
        cov_h = silhouette_coverage(uv_h, w_h, sil.human_samples[f], sil.human_weight[f], norm, tol_cov[0])[0]
        cov_o = silhouette_coverage(uv_o, w_o, sil.object_samples[f], sil.object_weight[f], norm, tol_cov[1])[0]
        return sil.frame_weight[f] * inside + cov_h + cov_o

    frame = jnp.tile(jnp.arange(L, dtype=jnp.int32), S)
    v = jax.vmap(one)(out.pen_points, out.R_obj, out.t_obj, frame)
    return jnp.mean(v.reshape(S, L), axis=1)


def _render_term(params: MotionParams, data: MotionData, cfg: MotionConfig):
    """Rendered-frame MSE (part of L_reg): full-mesh skinning per frame, then cfg.render_fn."""
    model = cfg.render_model

    def one(i, g, b, t, dr, dt):
        bp = BodyParams(betas=data.static.betas, pose=full_pose(data, cfg, g, b), transl=t, scale=data.static.scale)
        verts = pose(model, bp).vertices
        R = jnp.matmul(axis_angle_to_matrix(dr), data.static.R_world_obj, precision=HIGHEST)
        image, mask = cfg.render_fn(verts, R, dt, i)
        return render_mse(image, data.frames[i], mask, None if data.masks is None else data.masks[i])[0]

    L = data.num_frames
    return jnp.mean(
        jax.vmap(one)(jnp.arange(L), params.global_orient, params.body_pose, params.transl, params.object_delta_rot, params.object_translation)
    )


# ----------------------------------------------------------------------------------------------
# init / update
# ----------------------------------------------------------------------------------------------


def initial_params(data: MotionData, cfg: MotionConfig, key: jax.Array | None = None) -> MotionParams:
    """Every frame at the static instance (paper Sec. 4); optional per-seed body-pose jitter."""
    L = data.num_frames
    st = data.static
    bp = jnp.broadcast_to(st.pose[jnp.asarray(cfg.pose_joints)], (L, len(cfg.pose_joints), 3))
    if key is not None and cfg.init_noise > 0:
        bp = bp + cfg.init_noise * jax.random.normal(key, bp.shape, bp.dtype)
    return MotionParams(
        global_orient=jnp.broadcast_to(st.pose[0], (L, 3)),
        body_pose=bp,
        transl=jnp.broadcast_to(st.transl, (L, 3)),
        object_delta_rot=jnp.zeros((L, 3), jnp.float32),
        object_translation=jnp.broadcast_to(st.t_world_obj, (L, 3)),
    )


TORSO_OPENPOSE = (1, 2, 5, 8, 11)  # neck, shoulders, hips: the least pose-dependent OpenPose-18 points


def keypoint_translations(data: MotionData, cfg: MotionConfig) -> Float[Array, "L 3"]:
    """Per-frame human translation that best reprojects the static body's torso onto the keypoints.

    With the static pose's torso points P_k (relative to its translation) and camera [R|c], frame i's
    point k lands at X = R t_i + q_k, q_k = R P_k + c. Its normalised detection (a, b) = K⁻¹(u, v, 1)
    must satisfy a·X_z = X_x and b·X_z = X_y: two equations *linear* in t_i (the algebraic PnP error
    for a translation-only pose). Rows are weighted by the keypoint confidence. One joint linear
    system for all frames adds `cfg.init_smoothness`·Σ‖t_{i-1} − 2t_i + t_{i+1}‖² (monocular depth from
    a ~0.5 m torso is weak per frame) and a 1e-6 pull to the static translation (frames with no
    visible torso). Solved once per tracking run, so a dense (3L)² solve is cheap.
    """
    st = data.static
    bp = st.pose[jnp.asarray(cfg.pose_joints)]
    out = frame_forward(data, cfg, st.pose[0], bp, st.transl, jnp.zeros(3, jnp.float32), st.t_world_obj)
    idx = jnp.asarray(TORSO_OPENPOSE)
    P = out.openpose[idx] - st.transl[None]  # (k, 3)
    R, c = data.T_cam_world[:3, :3], data.T_cam_world[:3, 3]
    q = P @ R.T + c[None]  # (k, 3)
    kp = data.keypoints[:, idx]  # (L, k, 2)
    w = data.confidence[:, idx]  # (L, k)
    ab = (kp - data.K[None, None, :2, 2]) / jnp.diagonal(data.K)[None, None, :2]  # skew-free intrinsics
    rows, rhs = [], []
    for d in range(2):  # x and y image axes
        a = ab[..., d : d + 1]  # (L, k, 1)
        rows.append(a * R[2][None, None] - R[d][None, None])  # (L, k, 3)
        rhs.append(q[None, :, d] - a[..., 0] * q[None, :, 2])  # (L, k)
    A = jnp.concatenate(rows, 1)  # (L, 2k, 3)
    b = jnp.concatenate(rhs, 1)
    ww = jnp.concatenate([w, w], 1)
    L = data.num_frames
    eps = 1e-6
    eye_L = jnp.eye(L, dtype=jnp.float32)
    prior = eps * jnp.eye(3 * L, dtype=jnp.float32)
    if L >= 3:
        D = jnp.zeros((L - 2, L), jnp.float32)
        i = jnp.arange(L - 2)
        D = D.at[i, i].set(1.0).at[i, i + 1].set(-2.0).at[i, i + 2].set(1.0)
        prior = prior + cfg.init_smoothness * jnp.kron(D.T @ D, jnp.eye(3, dtype=jnp.float32))

    def solve(row_w):
        M = jnp.einsum("lna,ln,lnb->lab", A, row_w, A, precision=HIGHEST)  # per-frame normal matrices
        r = jnp.einsum("lna,ln,ln->la", A, row_w, b, precision=HIGHEST)
        H = (eye_L[:, None, :, None] * M[:, :, None, :]).reshape(3 * L, 3 * L) + prior
        return jnp.linalg.solve(H, r.reshape(-1) + eps * jnp.tile(st.transl, L)).reshape(L, 3)

    t = solve(ww)
    # The algebraic residuals above have the detected (noisy) coordinates inside the regressors, an
    # errors-in-variables fit whose scale is biased: noise makes the torso look larger, hence nearer (dev draws,
    # 48 frames: −69 / −30 mm along the camera ray for carry@h4 / push@h5, which the tracking then largely kept).
    # Gauss-Newton steps on the pixel (reprojection) error, where the noise sits in the observations, remove
    # that bias to first order. Residuals are normalised pixels × z̄ (the mean torso depth, fixed per step) so the
    # data rows keep the scale of the algebraic ones relative to the smoothness prior.
    f, cxy = jnp.diagonal(data.K)[:2], data.K[:2, 2]
    for _ in range(cfg.init_gauss_newton):
        X = q[None] + (t @ R.T)[:, None]  # (L, k, 3) camera coordinates
        z = jnp.maximum(X[..., 2], 0.1)
        zbar = jax.lax.stop_gradient(jnp.mean(z))
        res = (f[None, None] * X[..., :2] / z[..., None] + cxy[None, None] - kp) / f[None, None] * zbar  # (L, k, 2)
        # d res / d t = zbar · [[1/z, 0, −x/z²], [0, 1/z, −y/z²]] · R
        dproj = jnp.stack([jnp.stack([1.0 / z, jnp.zeros_like(z), -X[..., 0] / z**2], -1),
                           jnp.stack([jnp.zeros_like(z), 1.0 / z, -X[..., 1] / z**2], -1)], -2) * zbar  # (L,k,2,3)
        Jt = jnp.einsum("lkab,bc->lkac", dproj, R, precision=HIGHEST)
        Jt, rr = Jt.reshape(L, -1, 3), res.reshape(L, -1)
        row_w = jnp.repeat(w, 2, axis=1)
        M = jnp.einsum("lna,ln,lnb->lab", Jt, row_w, Jt, precision=HIGHEST)
        g = -jnp.einsum("lna,ln,ln->la", Jt, row_w, rr, precision=HIGHEST).reshape(-1)
        g = g - prior @ t.reshape(-1) + eps * jnp.tile(st.transl, L)
        H = (eye_L[:, None, :, None] * M[:, :, None, :]).reshape(3 * L, 3 * L) + prior
        t = t + jnp.linalg.solve(H, g).reshape(L, 3)
    # Degenerate detections (e.g. all torso points on one pixel) can put the body behind the camera;
    # such frames keep the static translation.
    depth = (jnp.mean(q, 0)[None] + t @ R.T)[:, 2]
    return jnp.where((depth > 0.1)[:, None] & jnp.all(jnp.isfinite(t), -1, keepdims=True), t, st.transl[None])


_keypoint_translations_jit = jax.jit(keypoint_translations, static_argnums=1)


def keypoint_initial_params(data: MotionData, cfg: MotionConfig, key: jax.Array | None = None) -> MotionParams:
    """`initial_params` plus, per cfg, the keypoint translation init and the object carried along.

    The object follows the human's displacement only when Eq. 3 found contacts (otherwise it stays
    where the static instance put it). With instance masks (MotionData.object_static_frames,
    `cfg.object_init_from_masks`) it stays at X_s in the frames its mask shows it at rest, and elsewhere moves by the
    human's displacement since the last such frame (`cfg.object_init_reference` "since_rest") or since X_s
    ("absolute"): a chair being sat on keeps its place instead of copying the depth wander of the human's init, and
    a box picked up starts moving from where it lay."""
    p = initial_params(data, cfg, key)
    if not cfg.init_translation:
        return p
    t = _keypoint_translations_jit(data, cfg)  # jitted: runs once per tracking run, eager is slow
    p = p.replace(transl=t)
    if cfg.object_follows_human:
        has_contact = jnp.sum(data.contacts.mask) > 0
        dt = t - data.static.transl[None]
        if cfg.object_init_from_masks and data.object_static_frames is not None:
            dt = (displacement_absolute if cfg.object_init_reference == "absolute"
                  else displacement_since_rest)(dt, data.object_static_frames)
        moved = data.static.t_world_obj[None] + dt
        p = p.replace(object_translation=jnp.where(has_contact, moved, p.object_translation))
    return p


def displacement_since_rest(dt: Float[Array, "L 3"], rest: Float[Array, "L"], window: int = 5) -> Float[Array, "L 3"]:
    """The object's init displacement from the human's `dt` (L, 3) and the mask test of rest `rest` (L,) (1 = at rest):
    0 in rest frames; elsewhere dt minus the human's displacement where the object was last seen at rest, taken as
    the mean of dt over the rest frames among the `window` frames up to the last one (one frame's init error is tens
    of mm), or frame 0's dt when no earlier frame was at rest (`keypoint_initial_params`)."""
    r = (rest > 0.5).astype(dt.dtype)
    frames = jnp.arange(dt.shape[0])
    last = jax.lax.cummax(jnp.where(r > 0, frames, 0))
    csum, cnt = jnp.cumsum(r[:, None] * dt, 0), jnp.cumsum(r)
    lo = last - window
    win = csum[last] - jnp.where(lo[:, None] >= 0, csum[jnp.maximum(lo, 0)], 0.0)
    n = cnt[last] - jnp.where(lo >= 0, cnt[jnp.maximum(lo, 0)], 0.0)
    ref = jnp.where(n[:, None] > 0, win / jnp.maximum(n, 1.0)[:, None], dt[0][None])
    return jnp.where(r[:, None] > 0, 0.0, dt - ref)


def displacement_absolute(dt: Float[Array, "L 3"], rest: Float[Array, "L"]) -> Float[Array, "L 3"]:
    """The object's init displacement from the human's `dt` (L, 3) (from the static pose X_s) and the mask test of
    rest `rest` (L,): 0 in rest frames, the human's own dt elsewhere — the object keeps X_s's human-object relative
    pose once it moves (MotionConfig.object_init_reference = "absolute", `keypoint_initial_params`)."""
    return jnp.where((rest > 0.5)[:, None], 0.0, dt)


def sigma_schedule(cfg: MotionConfig, data: MotionData, step) -> Float[Array, ""]:
    """σ of Eq. 5 at Adam step `step` (traced): geometric from max(image size) to cfg.sigma_px."""
    final = jnp.asarray(cfg.sigma_px, jnp.float32)
    if cfg.sigma_anneal_steps <= 0:
        return final
    start = jnp.maximum(jnp.max(data.image_size), final)
    frac = jnp.clip(1.0 - step.astype(jnp.float32) / cfg.sigma_anneal_steps, 0.0, 1.0)
    return final * (start / final) ** frac


def make_motion_step(cfg: MotionConfig):
    """Returns pure (init, update). `update(state, data, weights) -> (state, losses (K,), terms)` runs
    cfg.steps_per_call Adam steps in one lax.scan; jit it (it is the stage-step boundary)."""
    opt = optax.adam(cfg.learning_rate)

    def init(data: MotionData, key: jax.Array) -> MotionState:
        k_init, k_state = jax.random.split(key)
        params = keypoint_initial_params(data, cfg, k_init)
        return MotionState(params=params, opt_state=opt.init(params), step=jnp.zeros((), jnp.int32), key=k_state)

    def update(state: MotionState, data: MotionData, weights: MotionWeights):
        grad_fn = jax.value_and_grad(motion_loss, has_aux=True)

        def one(carry, _):
            params, opt_state, step = carry
            (loss, terms), g = grad_fn(params, data, weights, cfg, sigma_schedule(cfg, data, step))
            upd, opt_state = opt.update(g, opt_state, params)
            upd = _gate_updates(upd, weights)
            return (optax.apply_updates(params, upd), opt_state, step + 1), (loss, terms)

        (params, opt_state, _), (losses, terms) = jax.lax.scan(
            one, (state.params, state.opt_state, state.step), None, length=cfg.steps_per_call
        )
        new = state.replace(params=params, opt_state=opt_state, step=state.step + cfg.steps_per_call)
        return new, losses, jax.tree.map(lambda x: x[-1], terms)

    return init, update


def _gate_updates(upd: MotionParams, weights: MotionWeights) -> MotionParams:
    """Adam steps with the phase gates applied (`motion_phases`: pose / object frozen in the global stage)."""
    return upd.replace(
        body_pose=weights.pose_update * upd.body_pose,
        object_delta_rot=weights.object_update * upd.object_delta_rot,
        object_translation=weights.object_update * upd.object_translation,
    )


def make_seeds_update(cfg: MotionConfig):
    """`update` for S seeds that share `data`: state with a leading seed axis (from vmap(init)).

    Same results as `jax.vmap(update, in_axes=(0, None, None))` (tests/motion/test_motion.py), but
    the seeds' frames form one flat frame axis (see `motion_loss_seeds`). Returns
    `update(state, data, weights) -> (state, losses (S, K), terms {name: (S,)})`; jit it."""
    opt = optax.adam(cfg.learning_rate)

    def update(state: MotionState, data: MotionData, weights: MotionWeights):
        grad_fn = jax.value_and_grad(motion_loss_seeds, has_aux=True)

        def one(carry, _):
            params, opt_state, step = carry
            sigma = jax.vmap(lambda k: sigma_schedule(cfg, data, k))(step)
            (_, (loss, terms)), g = grad_fn(params, data, weights, cfg, sigma)
            upd, opt_state = jax.vmap(opt.update)(g, opt_state, params)  # Adam state per seed (its count)
            upd = _gate_updates(upd, weights)
            return (optax.apply_updates(params, upd), opt_state, step + 1), (loss, terms)

        (params, opt_state, _), (losses, terms) = jax.lax.scan(
            one, (state.params, state.opt_state, state.step), None, length=cfg.steps_per_call
        )
        new = state.replace(params=params, opt_state=opt_state, step=state.step + cfg.steps_per_call)
        return new, losses.T, jax.tree.map(lambda x: x[-1], terms)

    return update


def motion_phases(weights: MotionWeights, cfg: MotionConfig, num_steps: int) -> list[tuple[int, MotionWeights]]:
    """(number of update calls, weights) per stage; both stages share one compiled program.

    Every frame starts at the static instance (paper Sec. 4), but a walking sequence ends metres
    away from it, where the bounded Geman-McClure term of Eq. 5 gives little pull while contact,
    penetration and smoothness anchor the human to the (still static) object. So, as SMPLify-style
    fitting does, a first stage (`cfg.global_steps` of the `num_steps` Adam steps) moves only the
    human's global rotation and translation under L_J (+ smoothness); the second runs the full
    Eq. 4 objective. Set `global_steps=0` for the single-stage schedule. The last `cfg.pen_final_steps`
    of the full stage use `weights.pen_object_final` for L_pen's SDF part (a sum over the L_pen vertices,
    kept weak before so that it does not outweigh L_J while the motion settles; 0 steps: no clean-up).
    With `weights.pose_prior_anneal` ≠ 1 the full stage is one entry per call, its pose-prior weight
    falling geometrically to pose_prior × pose_prior_anneal (the clean-up stage keeps the final value).
    """
    K = cfg.steps_per_call
    n_total = -(-num_steps // K)
    n_global = min(n_total, cfg.global_steps // K)
    n_final = min(n_total - n_global, cfg.pen_final_steps // K)
    n_full = n_total - n_global - n_final
    end = weights.pose_prior * weights.pose_prior_anneal
    final = [(n_final, weights.replace(pen_object=weights.pen_object_final, pose_prior=end))] if n_final > 0 else []
    if float(weights.pose_prior_anneal) == 1.0 or n_full <= 1:
        full = [(n_full, weights)]
    else:  # one call per entry: pose_prior · anneal^(k / (n_full − 1)), k = 0 .. n_full − 1
        full = [(1, weights.replace(pose_prior=weights.pose_prior * weights.pose_prior_anneal ** (k / (n_full - 1))))
                for k in range(n_full)]
    if n_global == 0:
        return full + final
    z = jnp.zeros_like(weights.contact)
    w_global = weights.replace(contact=z, pen_object=z, pen_parts=z, self_pen=z, pose_prior=z, render=z,
                               silhouette=z, pose_update=z, object_update=z)
    return [(n_global, w_global)] + full + final


def run_motion(
    data: MotionData,
    cfg: MotionConfig,
    weights: MotionWeights,
    *,
    num_steps: int = 1000,
    key: jax.Array,
    num_seeds: int = 1,
    update_fn=None,
    callback: Callable[[int, Any], None] | None = None,
):
    """Host driver: `num_seeds` vmapped runs (keys fold_in(key, i)), num_steps rounded up to whole
    calls. Returns (final states with a leading seed axis, losses (seeds, steps)).

    `update_fn`: a jitted, seed-vmapped update to reuse across calls (see `jit_update`).
    """
    init, _ = make_motion_step(cfg)
    update = update_fn or jit_update(cfg)
    keys = jnp.stack([jax.random.fold_in(key, i) for i in range(num_seeds)])
    state = jax.vmap(init, in_axes=(None, 0))(data, keys)
    losses = []
    c = 0
    for n_calls, w in motion_phases(weights, cfg, num_steps):
        for _ in range(n_calls):
            state, l, terms = update(state, data, w)
            losses.append(l)
            c += 1
            if callback is not None:
                callback(c * cfg.steps_per_call, terms)
    return state, jnp.concatenate(losses, axis=1)


def jit_update(cfg: MotionConfig):
    """The stage-step boundary: the S-seed update (seeds share data), jitted, state buffers donated."""
    return jax.jit(make_seeds_update(cfg), donate_argnums=(0,))


def best_seed(losses: Float[Array, "seeds steps"]) -> int:
    """Index of the seed with the lowest final loss."""
    return int(jnp.argmin(losses[:, -1]))


def select_seed(tree, i: int):
    return jax.tree.map(lambda x: x[i], tree)
