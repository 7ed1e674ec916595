"""Interaction composition (paper Sec. 4): text → static 3D human-object interaction X_s = (H_s, O_s).

The chain, one function per sub-stage so the pipeline can checkpoint between them (INTERFACES.md):

1. `run_coarse`   coarse HOI NeRF Φ̂ by SDS with T_inter (stages/coarse.py; IF + MVDream guidance).
2. `run_masks`    canonical renders of Φ̂ and their human / object masks (the segmentation prior,
                  priors/segment.py; the paper uses Grounded-SAM).
3. `run_anchor`   the anchor NeRF Φ_A: Φ̂ aligned to its human-masked renders by L_align (stages/anchor.py).
4. `run_avatar`   the canonical avatar Θ = (β, D, C) by SDS with T_human (stages/avatar.py).
5. `run_pose`     canonical views of Φ_A → 2D skeletons (priors/detect.py, BlazePose → OpenPose-18; the
                  paper uses OpenPose) → Eq. 2 fit of s, r_s^h, t_s^h, θ_s with the avatar's β
                  (stages/pose_fit.py), all views and seeds in one jitted program.
6. `run_object`   the object NeRF from the object part of Φ̂, completed by SDS with T_object plus the
                  layout SDS with T_inter on joint renders with the posed avatar (stages/object_stage.py);
                  its mesh by marching cubes.

`compose` runs them in order and returns a `StaticHOI`; `write_static` writes one seed's files.

Order. The paper fits "the generated 3D animatable human avatar" to the anchor NeRF, so the avatar
(which does not depend on the NeRFs) is generated before the pose fit, and the fit uses its β.

What happens when a prior finds nothing. With real priors the coarse renders show a person and an
object; with the tiny random priors of the smoke preset they show noise, the segmenter finds no
person and the detector no skeleton. Each case has an explicit policy in the config, and whatever
policy was applied is recorded per seed in `StaticHOI.info` (never a silent fallback):
* `segmentation.on_empty` — "error" (default): raise; "foreground": treat the whole foreground
  (alpha > 0.5) as the human (when no person is found) / as the object (when no object is left).
* `detection.on_missing` — "error" (default): raise; "rest_pose": keep the standing rest pose with
  s = 1, centred on the anchor NeRF's opacity centroid (no Eq. 2 fit for that seed).
The smoke preset (`smoke_config`) sets both to their non-error values.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as onp
from flax import struct
from jaxtyping import Array, Float

from anchorhoi_jax.body.anny import PHENOTYPE_LABELS, AnnyBody
from anchorhoi_jax.body.model import BodyModel, BodyParams
from anchorhoi_jax.body.skinning import rest_joints
from anchorhoi_jax.geometry.cameras import Camera, orbit_cameras, project
from anchorhoi_jax.priors.guidance import GuidanceConfig
from anchorhoi_jax.render.raster import rasterize, vertex_normals
from anchorhoi_jax.stages import anchor as anchor_stage
from anchorhoi_jax.stages import avatar as avatar_stage
from anchorhoi_jax.stages import coarse as coarse_stage
from anchorhoi_jax.stages import object_stage
from anchorhoi_jax.stages import pose_fit
from anchorhoi_jax.stages.pose_fit import CanonicalViews, PoseFitConfig

_log = logging.getLogger(__name__)

__all__ = [
    "Prompt",
    "parse_prompt",
    "AnchorStageConfig",
    "SegmentationConfig",
    "DetectionConfig",
    "OutputConfig",
    "ComposeConfig",
    "smoke_config",
    "SMOKE",
    "ComposePriors",
    "build_priors",
    "CanonicalRenders",
    "PoseResult",
    "ObjectResult",
    "StaticHOI",
    "run_coarse",
    "run_masks",
    "run_anchor",
    "run_avatar",
    "run_pose",
    "run_object",
    "assemble",
    "clean_mesh",
    "compose",
    "write_static",
    "static_arrays",
    "STATIC_FILES",
]

STATIC_FILES = ("human.obj", "human.ply", "object.obj", "hoi.glb", "static.npz", "render.png", "turntable.mp4")


# ---------------------------------------------------------------------------------------------------
# Prompt.
# ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Prompt:
    """T_inter = {T_human, T_action, T_object} (paper Sec. 4, problem formulation)."""

    human: str
    action: str
    object: str

    @property
    def inter(self) -> str:
        return " ".join(p for p in (self.human, self.action, self.object) if p)


def parse_prompt(prompt) -> Prompt:
    """A `Prompt`, a mapping with keys human/action/object, or "human | action | object"."""
    if isinstance(prompt, Prompt):
        p = prompt
    elif isinstance(prompt, Mapping):
        unknown = set(prompt) - {"human", "action", "object"}
        if unknown:
            raise ValueError(f"prompt: unknown keys {sorted(unknown)}; expected human, action, object")
        p = Prompt(**{k: str(prompt.get(k, "")).strip() for k in ("human", "action", "object")})
    elif isinstance(prompt, str):
        parts = [s.strip() for s in prompt.split("|")]
        if len(parts) != 3:
            raise ValueError(f"prompt: expected 'human | action | object' (3 parts separated by '|'), got {prompt!r}")
        p = Prompt(*parts)
    else:
        raise TypeError(f"prompt: expected a Prompt, a mapping or a string, got {type(prompt).__name__}")
    if not p.human or not p.object:
        raise ValueError(f"prompt: the human and object parts must be non-empty, got human={p.human!r}, "
                         f"object={p.object!r}")
    return p


# ---------------------------------------------------------------------------------------------------
# Config.
# ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AnchorStageConfig:
    """L_align fit of Φ_A (stages/anchor.py): steps (a multiple of steps_per_call), rays per step, Adam lr."""

    steps: int = 500
    steps_per_call: int = 100
    n_rays: int = 4096
    lr: float = 1e-2

    def __post_init__(self):
        if self.steps < 0 or self.steps_per_call < 1 or self.steps % self.steps_per_call:
            raise ValueError(f"AnchorStageConfig: steps ({self.steps}) must be a non-negative multiple of "
                             f"steps_per_call ({self.steps_per_call})")
        if self.n_rays < 1 or not self.lr > 0:
            raise ValueError(f"AnchorStageConfig: need n_rays >= 1 and lr > 0, got {self.n_rays}, {self.lr}")


@dataclasses.dataclass(frozen=True)
class SegmentationConfig:
    """Human / object masks of the canonical coarse renders.

    method: "mediapipe" (person by selfie segmentation, object = foreground − person; offline) or
      "grounded_sam" (GroundingDINO + SAM with the words 'person' and the object prompt; weights needed).
    on_empty: what to do when a seed's masks have no person (or no object) pixel: "error" or
      "foreground" (use the whole foreground for the empty mask; recorded in the info).
    min_pixels: fewer mask pixels than this over all views counts as empty.
    """

    method: Literal["mediapipe", "grounded_sam"] = "mediapipe"
    person_threshold: float = 0.5
    on_empty: Literal["error", "foreground"] = "error"
    min_pixels: int = 16

    def __post_init__(self):
        if self.method not in ("mediapipe", "grounded_sam"):
            raise ValueError(f"SegmentationConfig.method must be 'mediapipe' or 'grounded_sam', got {self.method!r}")
        if self.on_empty not in ("error", "foreground"):
            raise ValueError(f"SegmentationConfig.on_empty must be 'error' or 'foreground', got {self.on_empty!r}")
        if not 0.0 < self.person_threshold < 1.0 or self.min_pixels < 1:
            raise ValueError("SegmentationConfig: person_threshold must be in (0, 1) and min_pixels >= 1")


@dataclasses.dataclass(frozen=True)
class DetectionConfig:
    """2D skeletons on canonical renders of Φ_A (OpenPose BODY-18 order).

    method: "mediapipe" (BlazePose, offline default) or "openpose" (CMU BODY-18 weights needed).
    min_confidence: detections below it get confidence 0 (ignored by Eq. 2).
    min_keypoints: a seed needs at least this many confident keypoints over all views to be fitted.
    on_missing: "error" or "rest_pose" (see the module docstring); recorded in the info.
    """

    method: Literal["mediapipe", "openpose"] = "mediapipe"
    model_complexity: int = 1
    min_confidence: float = 0.3
    min_keypoints: int = 8
    on_missing: Literal["error", "rest_pose"] = "error"

    def __post_init__(self):
        if self.method not in ("mediapipe", "openpose"):
            raise ValueError(f"DetectionConfig.method must be 'mediapipe' or 'openpose', got {self.method!r}")
        if self.on_missing not in ("error", "rest_pose"):
            raise ValueError(f"DetectionConfig.on_missing must be 'error' or 'rest_pose', got {self.on_missing!r}")
        if not 0.0 <= self.min_confidence < 1.0 or self.min_keypoints < 1:
            raise ValueError("DetectionConfig: min_confidence must be in [0, 1) and min_keypoints >= 1")


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """The joint render and turntable of `write_static` (hard rasterisation of both meshes)."""

    render_size: int = 512
    turntable_frames: int = 72
    fps: float = 24.0
    distance: float = 3.2
    elevation_deg: float = 10.0
    fov_deg: float = 40.0

    def __post_init__(self):
        if not 16 <= self.render_size <= 2048 or self.turntable_frames < 1 or not self.fps > 0:
            raise ValueError("OutputConfig: render_size must be in [16, 2048], turntable_frames >= 1 and fps > 0")


@dataclasses.dataclass(frozen=True)
class ComposeConfig:
    """All settings of the composition stage (paper Sec. 5 defaults); loadable by io.config.from_dict.

    canonical: the views rendered from Φ̂ and Φ_A for masks, alignment and skeleton detection.
    """

    coarse: coarse_stage.CoarseConfig = coarse_stage.CoarseConfig()
    anchor: AnchorStageConfig = AnchorStageConfig()
    avatar: avatar_stage.AvatarConfig = avatar_stage.AvatarConfig()
    pose: PoseFitConfig = PoseFitConfig()
    object: object_stage.ObjectConfig = object_stage.ObjectConfig()
    canonical: CanonicalViews = CanonicalViews(azimuths_deg=(0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0),
                                               size=256)
    segmentation: SegmentationConfig = SegmentationConfig()
    detection: DetectionConfig = DetectionConfig()
    guidance: GuidanceConfig = GuidanceConfig()
    output: OutputConfig = OutputConfig()
    render_chunk: int = 16384  # rays per chunk of the canonical NeRF renders (memory bound)

    def __post_init__(self):
        if self.object.field != self.coarse.field or self.object.render != self.coarse.render:
            raise ValueError("ComposeConfig: object.field / object.render must equal coarse.field / coarse.render "
                             "(the object NeRF starts as a copy of the coarse one)")
        if len(self.canonical.azimuths_deg) < 2:
            raise ValueError(f"ComposeConfig.canonical needs at least 2 views, got {len(self.canonical.azimuths_deg)}")
        if self.render_chunk < 1:
            raise ValueError(f"ComposeConfig.render_chunk must be >= 1, got {self.render_chunk}")


# Tiny sizes for CPU smoke runs (minutes) with the tiny random priors: few steps, 32-px renders.
SMOKE: dict[str, Any] = {
    "coarse": {"field": {"n_levels": 4, "log2_table_size": 10, "max_resolution": 64, "hidden": 16},
               "render": {"n_coarse": 12, "n_fine": 0, "proposal": "none", "shading": "lambertian"},
               "resolution": 32, "steps": 2, "views": 4, "log_every": 1,
               "shading": {"albedo_steps": 1}},
    "anchor": {"steps": 4, "steps_per_call": 2, "n_rays": 256},
    "avatar": {"steps": 2, "resolution": 32, "views": 4, "log_every": 1},
    "pose": {"global_steps": 4, "pose_steps": 4, "num_hypotheses": 2},
    "object": {"field": {"n_levels": 4, "log2_table_size": 10, "max_resolution": 64, "hidden": 16},
               "render": {"n_coarse": 12, "n_fine": 0, "proposal": "none", "shading": "lambertian"},
               "resolution": 32, "steps": 2, "views": 4, "log_every": 1, "init_steps": 2, "init_rays": 256,
               "mesh_resolution": 24},
    "canonical": {"azimuths_deg": [0.0, 90.0, 180.0, 270.0], "size": 32},
    "segmentation": {"on_empty": "foreground"},
    "detection": {"on_missing": "rest_pose"},
    "guidance": {"kind": "tiny", "tiny_if_resolution": 16, "tiny_mvdream_resolution": 32},
    "output": {"render_size": 32, "turntable_frames": 4},
    "render_chunk": 4096,
}


def smoke_config(**overrides) -> ComposeConfig:
    """The smoke preset (SMOKE) with optional nested overrides merged on top."""
    from anchorhoi_jax.io.config import _deep_merge, from_dict

    return from_dict(ComposeConfig, _deep_merge(SMOKE, overrides))


# ---------------------------------------------------------------------------------------------------
# Priors.
# ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class ComposePriors:
    """Torch-side priors of one prompt: SDS guidances for T_inter, T_human, T_object (the layout SDS of
    the object stage uses T_inter), the segmenter and the 2D keypoint detector."""

    inter: Any
    human: Any
    object: Any
    segmenter: Any
    detector: Any


def _guidances(prompts: Sequence[str], gcfg: GuidanceConfig, *, device, dtype) -> list:
    """One CombinedGuidance (IF on every view + MVDream on groups of 4) per prompt, sharing the priors:
    every prompt is embedded before the text encoders are freed (priors.guidance.build_guidance does
    the same for one prompt; this loads each prior once for all three)."""
    from anchorhoi_jax.priors import guidance as G
    from anchorhoi_jax.priors.image import make_tiny_if
    from anchorhoi_jax.priors.mvdream import MVDreamPrior, make_tiny_mvdream

    if gcfg.kind == "real":
        G._check_real_weights(gcfg)
    parts: list[list] = [[] for _ in prompts]
    if gcfg.if_weight > 0:
        if gcfg.kind == "tiny":
            prior = make_tiny_if(gcfg.tiny_seed, resolution=gcfg.tiny_if_resolution, device=device, dtype=dtype)
        else:
            prior = G.load_if_prior(gcfg.if_dir, device=device, dtype=dtype, allow_download=gcfg.allow_download)
        for i, p in enumerate(prompts):
            parts[i].append((G.if_guidance(prior, p, gcfg), gcfg.if_weight))
        prior.free_text_encoder()
        # As build_guidance: CUDA-graph replay / NHWC per GuidanceConfig (no-op on CPU), after the prompts are
        # embedded (the text encoder never runs again).
        G.accelerate_prior(prior, gcfg)
    if gcfg.mvdream_weight > 0:
        if gcfg.kind == "tiny":
            prior = make_tiny_mvdream(gcfg.tiny_seed + 1, resolution=gcfg.tiny_mvdream_resolution, device=device,
                                      dtype=dtype)
        else:
            prior = MVDreamPrior.from_pretrained(gcfg.mvdream_dir, gcfg.sd_dir, device=device, dtype=dtype,
                                                 allow_download=gcfg.allow_download)
        for i, p in enumerate(prompts):
            parts[i].append((G.mvdream_guidance(prior, p, gcfg), gcfg.mvdream_weight))
        prior.free_text_encoder()
        G.accelerate_prior(prior, gcfg)
    return [G.CombinedGuidance(ps) for ps in parts]


def make_segmenter(cfg: SegmentationConfig, *, device="cpu"):
    from anchorhoi_jax.priors import segment

    if cfg.method == "mediapipe":
        return segment.MediaPipeHumanObjectSegmenter(person_threshold=cfg.person_threshold)
    return segment.GroundedSAMSegmenter.from_pretrained(device=device)


def make_detector(cfg: DetectionConfig, *, device="cpu"):
    from anchorhoi_jax.priors import detect

    if cfg.method == "mediapipe":
        return detect.MediaPipePoseDetector(model_complexity=cfg.model_complexity)
    return detect.OpenPoseDetector.from_pretrained(device=device)


def build_priors(prompt, cfg: ComposeConfig, *, device="cpu", dtype=None) -> ComposePriors:
    """Guidances for the three prompts (cfg.guidance: tiny or real), segmenter and detector."""
    import torch

    p = parse_prompt(prompt)
    dtype = torch.float32 if dtype is None else dtype
    g_inter, g_human, g_object = _guidances([p.inter, p.human, p.object], cfg.guidance, device=device, dtype=dtype)
    return ComposePriors(inter=g_inter, human=g_human, object=g_object,
                         segmenter=make_segmenter(cfg.segmentation, device=device),
                         detector=make_detector(cfg.detection, device=device))


# ---------------------------------------------------------------------------------------------------
# Sub-stage outputs.
# ---------------------------------------------------------------------------------------------------
@struct.dataclass
class CanonicalRenders:
    """Canonical coarse renders of S seeds and their masks (leading axes S, V)."""

    rgb: Float[Array, "S V H W 3"]  # premultiplied (over black)
    alpha: Float[Array, "S V H W"]
    human_mask: Float[Array, "S V H W"]
    object_mask: Float[Array, "S V H W"]


@struct.dataclass
class PoseResult:
    """Eq. 2 result per seed: body parameters (avatar β), detections, fitted 3D keypoints."""

    params: BodyParams  # leading S
    keypoints2d: Float[Array, "S V 18 2"]
    confidence: Float[Array, "S V 18"]
    keypoints3d: Float[Array, "S 18 3"]
    fitted: Array  # (S,) bool: Eq. 2 was fitted (False: the rest-pose policy was applied)
    reprojection_rms_px: Float[Array, "S"]


@dataclasses.dataclass
class ObjectResult:
    """Object stage result: the (seed-stacked) object NeRF state and each seed's marching-cubes mesh."""

    state: Any
    meshes: list  # per seed (vertices (N,3) world, faces (F,3), colors (N,3)), NumPy
    # per seed: the marching-cubes level and where it came from (object_stage.object_mesh_level)
    infos: list = dataclasses.field(default_factory=list)


@struct.dataclass
class StaticHOI:
    """The static interaction X_s of S seeds (arrays with a leading S; object meshes per seed).

    Human: betas (avatar β), pose (J, 3) axis-angle (pose[0] = r_s^h), transl t_s^h, scale s, the
    avatar's D and C, and the posed, placed vertices (world). Object: its mesh in its own frame
    (centred), object_rotation / object_translation placing it in the world (CONVENTIONS.md).
    """

    betas: Float[Array, "S B"]
    pose: Float[Array, "S J 3"]
    transl: Float[Array, "S 3"]
    scale: Float[Array, "S"]
    displacements: Float[Array, "S V 3"]
    human_colors: Float[Array, "S V 3"]
    human_vertices: Float[Array, "S V 3"]
    human_faces: Array
    phenotype: Float[Array, "S P"]  # Anny phenotype values in [0, 1] (empty for SMPL-X)
    object_vertices: tuple  # per seed (N_s, 3) object frame
    object_faces: tuple
    object_colors: tuple
    object_rotation: Float[Array, "S 3 3"]
    object_translation: Float[Array, "S 3"]
    keypoints2d: Float[Array, "S V 18 2"]
    confidence: Float[Array, "S V 18"]
    body_model: str = struct.field(pytree_node=False, default="anny")
    info: tuple = struct.field(pytree_node=False, default=())  # per seed dicts (JSON-able)

    @property
    def num_seeds(self) -> int:
        return self.betas.shape[0]


# ---------------------------------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------------------------------
def _keys(keys) -> jax.Array:
    keys = jnp.asarray(keys) if not isinstance(keys, jax.Array) else keys
    if not jnp.issubdtype(keys.dtype, jax.dtypes.prng_key) or keys.ndim != 1 or keys.shape[0] < 1:
        raise ValueError(f"keys must be a 1-D array of S >= 1 typed PRNG keys (jax.random.split(key, S)), "
                         f"got {keys.dtype} {tuple(keys.shape)}")
    return keys


def _field_render_cfg(cfg: ComposeConfig):
    return dataclasses.replace(cfg.coarse.render, shading="albedo", normals=False)


def canonical_cameras(cfg: ComposeConfig) -> Camera:
    return pose_fit.canonical_cameras(cfg.canonical)


def _model(body) -> BodyModel:
    return body.model if isinstance(body, AnnyBody) else body


def _body_kind(body) -> str:
    return "anny" if isinstance(body, AnnyBody) else "smplx"


# ---------------------------------------------------------------------------------------------------
# 1. Coarse NeRF.
# ---------------------------------------------------------------------------------------------------
def run_coarse(keys, cfg: ComposeConfig, priors: ComposePriors, *, state=None, weights=None, callback=None):
    """Φ̂ of S seeds by SDS with T_inter (resumes from `state`). Returns (state, history)."""
    keys = _keys(keys)
    if state is None:
        state = coarse_stage.init_seeds(keys, cfg.coarse)
    weights = coarse_stage.CoarseWeights.default() if weights is None else weights
    return coarse_stage.fit(state, cfg.coarse, weights, priors.inter, callback=callback)


# ---------------------------------------------------------------------------------------------------
# 2. Canonical renders and masks.
# ---------------------------------------------------------------------------------------------------
def run_masks(coarse_params, cfg: ComposeConfig, priors: ComposePriors) -> tuple[CanonicalRenders, list[dict]]:
    """Canonical renders of Φ̂ (all seeds) and their human / object masks. Returns (renders, per-seed info)."""
    cams = canonical_cameras(cfg)
    rgb, alpha = coarse_stage.render_canonical(coarse_params, cfg.coarse, cams, None, chunk=cfg.render_chunk)
    rgb_h, alpha_h = onp.asarray(rgb), onp.asarray(alpha)
    S, V = alpha_h.shape[:2]
    seg = priors.segmenter
    human, obj, infos = [], [], []
    for s in range(S):
        m = seg(rgb_h[s], alpha=alpha_h[s])
        person, fg = onp.asarray(m["person"], bool), onp.asarray(m["foreground"], bool)
        objm = onp.asarray(m["object"], bool)
        info = {"person_pixels": int(person.sum()), "object_pixels": int(objm.sum()),
                "foreground_pixels": int(fg.sum()), "human_mask_source": "segmenter",
                "object_mask_source": "segmenter"}
        for name, mask in (("human", person), ("object", objm)):
            if mask.sum() < cfg.segmentation.min_pixels:
                what = "person" if name == "human" else "object"
                if cfg.segmentation.on_empty == "error":
                    raise ValueError(f"segmentation found no {what} in the canonical renders of seed {s} "
                                     f"({int(mask.sum())} px); set segmentation.on_empty=foreground to use the "
                                     "foreground instead")
                if name == "human":
                    person = fg.copy()
                else:
                    objm = fg.copy()
                info[f"{name}_mask_source"] = (f"foreground (segmentation.on_empty=foreground: the segmenter found "
                                               f"{int(mask.sum())} {what} px)")
        human.append(person)
        obj.append(objm)
        infos.append(info)
    out = CanonicalRenders(rgb=rgb, alpha=alpha, human_mask=jnp.asarray(onp.stack(human), jnp.float32),
                           object_mask=jnp.asarray(onp.stack(obj), jnp.float32))
    return out, infos


# ---------------------------------------------------------------------------------------------------
# 3. Anchor NeRF.
# ---------------------------------------------------------------------------------------------------
_ANCHOR_FNS: dict = {}


def _anchor_fn(field_cfg, render_cfg, acfg: AnchorStageConfig):
    key = (field_cfg, render_cfg, acfg.steps_per_call, acfg.n_rays)
    if key not in _ANCHOR_FNS:
        update = anchor_stage.make_update(field_cfg, anchor_stage.AnchorConfig(
            steps_per_call=acfg.steps_per_call, n_rays=acfg.n_rays, render=render_cfg))
        _ANCHOR_FNS[key] = jax.jit(jax.vmap(update, in_axes=(0, 0, None)))
    return _ANCHOR_FNS[key]


def run_anchor(keys, coarse_params, renders: CanonicalRenders, cfg: ComposeConfig, *, state=None, callback=None):
    """Φ_A of S seeds: a copy of Φ̂ fitted by L_align to its human-masked canonical renders.

    Returns (anchor state (leading S), history)."""
    keys = _keys(keys)
    cams = canonical_cameras(cfg)
    rays = jax.vmap(lambda r, a, m: anchor_stage.alignment_rays(cams, r, a, m))(
        renders.rgb, renders.alpha, renders.human_mask)
    if state is None:
        state = jax.vmap(anchor_stage.init)(keys, coarse_params)
    # Committed device arrays like the update's outputs (eager ones would compile a second variant).
    state = jax.device_put(state, jax.devices()[0])
    update = _anchor_fn(cfg.coarse.field, _field_render_cfg(cfg), cfg.anchor)
    w = anchor_stage.AnchorWeights(lr=jnp.float32(cfg.anchor.lr))
    history = []
    done = int(onp.asarray(state.step).reshape(-1)[0])
    while done < cfg.anchor.steps:
        state, aux = update(state, rays, w)
        done += cfg.anchor.steps_per_call
        rec = {"step": done, **{k: float(onp.mean(v)) for k, v in jax.device_get(aux).items()}}
        history.append(rec)
        if callback is not None:
            callback(done, state, rec)
    return state, history


# ---------------------------------------------------------------------------------------------------
# 4. Canonical avatar.
# ---------------------------------------------------------------------------------------------------
def run_avatar(keys, body, cfg: ComposeConfig, priors: ComposePriors, *, state=None, weights=None, callback=None):
    """Θ = (β, D, C) of S seeds by SDS with T_human (resumable). Returns (state, history)."""
    keys = _keys(keys)
    if state is None:
        state = avatar_stage.init_seeds(keys, body, cfg.avatar)
    weights = avatar_stage.AvatarWeights.default() if weights is None else weights
    return avatar_stage.fit(state, body, cfg.avatar, weights, priors.human, callback=callback)


# ---------------------------------------------------------------------------------------------------
# 5. Pose from the anchor (Eq. 2).
# ---------------------------------------------------------------------------------------------------
_POSE_FNS: dict = {}


def _pose_fn(setup: pose_fit.PoseFitSetup, pcfg: PoseFitConfig):
    key = (setup, pcfg)
    if key not in _POSE_FNS:
        fit = pose_fit.make_fit(setup, pcfg)
        _POSE_FNS[key] = jax.jit(jax.vmap(fit, in_axes=(None, 0, 0, 0, None)))
    return _POSE_FNS[key]


def detect_skeletons(anchor_params, cfg: ComposeConfig, priors: ComposePriors):
    """Canonical renders of Φ_A over white and their 2D skeletons: (images (S,V,H,W,3), kp (S,V,18,2), conf)."""
    cams = canonical_cameras(cfg)
    rgb, alpha = coarse_stage.render_canonical(anchor_params, cfg.coarse, cams, None, chunk=cfg.render_chunk)
    images = onp.clip(onp.asarray(rgb) + (1.0 - onp.asarray(alpha))[..., None], 0.0, 1.0)  # over white
    kp, conf = priors.detector(images)
    conf = onp.where(conf >= cfg.detection.min_confidence, conf, 0.0).astype(onp.float32)
    return images, onp.asarray(kp, onp.float32), conf, onp.asarray(alpha)


def run_pose(anchor_params, body, betas, cfg: ComposeConfig, priors: ComposePriors, *, anchor_centers=None):
    """s, r_s^h, t_s^h, θ_s of S seeds by Eq. 2 on skeletons detected in canonical renders of Φ_A.

    Args:
      anchor_params: Φ_A (leading S). body: AnnyBody or BodyModel. betas: (S, B) the avatars' β.
      anchor_centers: optional (S, 3) where each body starts (default: Φ_A's opacity centroid).
    Returns:
      (PoseResult, per-seed info dicts).
    """
    _, kp, conf, _ = detect_skeletons(anchor_params, cfg, priors)
    S, V = conf.shape[:2]
    centers = (object_stage.object_center(anchor_params, cfg.coarse.field) if anchor_centers is None
               else jnp.asarray(anchor_centers, jnp.float32))
    cams = canonical_cameras(cfg)
    n_conf = (conf > 0).sum(axis=(1, 2))
    ok = n_conf >= cfg.detection.min_keypoints
    infos = []
    for s in range(S):
        info = {"confident_keypoints": int(n_conf[s]), "pose_source": "eq2_fit"}
        if not ok[s]:
            if cfg.detection.on_missing == "error":
                raise ValueError(f"skeleton detection found {int(n_conf[s])} confident keypoints in the canonical "
                                 f"anchor renders of seed {s} (need {cfg.detection.min_keypoints}); set "
                                 "detection.on_missing=rest_pose to keep the standing pose instead")
            info["pose_source"] = (f"rest_pose (detection.on_missing=rest_pose: {int(n_conf[s])} confident keypoints "
                                   f"< {cfg.detection.min_keypoints})")
        infos.append(info)
    setup, pbody = pose_fit.make_setup(body)
    betas = jnp.asarray(betas, jnp.float32)
    data = pose_fit.MultiViewKeypoints(keypoints=jnp.asarray(kp), confidence=jnp.asarray(conf),
                                       K=jnp.broadcast_to(cams.K, (S, V, 3, 3)),
                                       T_cam_world=jnp.broadcast_to(cams.T_cam_world, (S, V, 4, 4)))
    model = _model(body)
    roots = jax.vmap(lambda b: rest_joints(model, b)[0])(betas)
    rest = BodyParams(betas=betas, pose=jnp.zeros((S, model.num_joints, 3), jnp.float32), transl=centers - roots,
                      scale=jnp.ones((S,), jnp.float32))
    rest_kp3d = jax.vmap(lambda p: pose_fit.body_keypoints3d(pbody, setup, p))(rest)
    if ok.any():
        # Seeds without skeletons still run through the one vmapped program (their result is replaced by
        # the rest pose below); a confidence of 1 on the rest pose's projections keeps their fit finite.
        rest_uv = jax.vmap(jax.vmap(project, in_axes=(0, 0, None)), in_axes=(0, 0, 0))(
            data.K, data.T_cam_world, rest_kp3d)[0]
        okj = jnp.asarray(ok)[:, None, None]
        data = data.replace(keypoints=jnp.where(okj[..., None], data.keypoints, rest_uv),
                            confidence=jnp.where(okj, data.confidence, 1.0))
        for s in range(S):
            if ok[s]:
                pose_fit.check_keypoints(jax.tree.map(lambda a: a[s], data))
        fit = _pose_fn(setup, cfg.pose)
        params, kp3d, aux = fit(pbody, betas, data, centers, pose_fit.PoseFitWeights.default())
        sel = lambda a, b: jnp.where(jnp.asarray(ok).reshape((S,) + (1,) * (a.ndim - 1)), a, b)  # noqa: E731
        params = jax.tree.map(sel, params, rest)
        kp3d = sel(kp3d, rest_kp3d)
        rms = jnp.where(jnp.asarray(ok), aux["reproj_rms_px"], jnp.nan)
    else:
        params, kp3d, rms = rest, rest_kp3d, jnp.full((S,), jnp.nan)
    for s in range(S):
        infos[s]["reprojection_rms_px"] = float(rms[s])
    res = PoseResult(params=params, keypoints2d=jnp.asarray(kp), confidence=jnp.asarray(conf), keypoints3d=kp3d,
                     fitted=jnp.asarray(ok), reprojection_rms_px=rms)
    return res, infos


# ---------------------------------------------------------------------------------------------------
# 6. Object.
# ---------------------------------------------------------------------------------------------------
def posed_avatars(avatar_params, body, pose: BodyParams):
    """Posed, placed avatar meshes of S seeds: (vertices (S,V,3), faces (F,3), colours (S,V,3))."""
    verts = jax.jit(jax.vmap(lambda a, p: avatar_stage.avatar_vertices(a, body, p)))(avatar_params, pose)
    return verts, _model(body).faces, jax.nn.sigmoid(avatar_params.color_logits)


def run_object(keys, coarse_params, renders: CanonicalRenders, human_mesh, cfg: ComposeConfig,
               priors: ComposePriors, *, state=None, weights=None, callback=None) -> tuple[ObjectResult, list[dict]]:
    """The object of S seeds: init from the object-masked Φ̂, SDS (T_object) + layout SDS (T_inter) with the
    posed avatars, marching cubes. Returns (ObjectResult, history)."""
    keys = _keys(keys)
    if state is None:
        state = object_stage.init_seeds(keys, coarse_params, canonical_cameras(cfg), renders.rgb, renders.alpha,
                                        renders.object_mask, cfg.object)
    weights = object_stage.ObjectWeights.default() if weights is None else weights
    state, history = object_stage.fit(state, cfg.object, weights, priors.object, priors.inter, human_mesh,
                                      callback=callback)
    S = jax.tree.leaves(state.params)[0].shape[0]
    meshes, infos = [], []
    for s in range(S):
        p = jax.tree.map(lambda a: a[s], state.params)
        try:
            mesh, info = object_stage.extract_object_mesh(p, cfg.object)
            meshes.append(mesh)
            level = info["mesh_threshold"]
        except ValueError as e:
            raise ValueError(f"object stage, seed {s}: {e}") from None
        if cfg.object.mesh_threshold == "auto":
            _log.info("object stage, seed %d: marching-cubes level %.4g (%s; density %.3g..%.3g, %.2f%% of the "
                      "grid inside); %d faces at %d^3", s, level, info["mesh_threshold_source"], info["density_min"],
                      info["density_max"], 100.0 * info["occupied_fraction"], info["mesh_faces"],
                      info["mesh_resolution"])
        infos.append(info)
    return ObjectResult(state=state, meshes=meshes, infos=infos), history


# ---------------------------------------------------------------------------------------------------
# Assembly and the whole chain.
# ---------------------------------------------------------------------------------------------------
def clean_mesh(vertices, faces, colors, *, rel_tol: float = 1e-6, min_area: float = 1e-12, max_rounds: int = 8):
    """Weld coincident vertices and collapse sliver triangles so the mesh is non-degenerate and closed.

    Marching cubes emits zero-area triangles where the iso-surface passes through or next to grid points
    (coincident corners, or three almost collinear ones); STATIC.npz requires a non-degenerate
    watertight mesh (geometry.mesh.check_mesh, zero area = below min_area·extent²). Vertices within
    rel_tol·extent are welded; then, while zero-area triangles remain, each one's shortest edge is
    collapsed (its neighbour across that edge collapses with it, so the surface stays closed) and the
    triangles that lost a corner are dropped.
    """
    v = onp.asarray(vertices, onp.float64)
    f = onp.asarray(faces, onp.int64)
    c = onp.asarray(colors, onp.float32)
    if f.shape[0] == 0:
        return v.astype(onp.float32), f.astype(onp.int32), c
    extent = max(float(onp.ptp(v, axis=0).max()), 1e-9)
    _, first, inv = onp.unique(onp.round(v / (rel_tol * extent)).astype(onp.int64), axis=0, return_index=True,
                               return_inverse=True)
    rep = first[inv.reshape(-1)]  # every vertex -> its representative
    for _ in range(max_rounds):
        f = rep[f]
        f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]
        # A collapse can fold two triangles onto the same three vertices (a zero-volume fin): drop both.
        _, inv_f, cnt = onp.unique(onp.sort(f, 1), axis=0, return_inverse=True, return_counts=True)
        f = f[cnt[inv_f.reshape(-1)] == 1]
        tri = v[f]
        area = 0.5 * onp.linalg.norm(onp.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=-1)
        bad = onp.flatnonzero(area <= min_area * extent**2 * 10.0)
        if bad.size == 0:
            break
        rep = onp.arange(v.shape[0])
        for i in bad:
            e = [(f[i, k], f[i, (k + 1) % 3]) for k in range(3)]
            a, b = min(e, key=lambda ab: onp.sum((v[ab[0]] - v[ab[1]]) ** 2))
            ra, rb = rep[a], rep[b]
            while rep[ra] != ra:
                ra = rep[ra]
            while rep[rb] != rb:
                rb = rep[rb]
            if ra != rb:
                rep[rb] = ra
        for i in range(rep.shape[0]):  # resolve chains
            r = i
            while rep[r] != r:
                r = rep[r]
            rep[i] = r
    used, f = onp.unique(f, return_inverse=True)
    return v[used].astype(onp.float32), f.reshape(-1, 3).astype(onp.int32), c[used]


def assemble(body, avatar_params, pose: PoseResult, obj: ObjectResult, infos: Sequence[dict]) -> StaticHOI:
    """The StaticHOI of S seeds from the sub-stage results (object meshes centred in their own frame)."""
    verts, faces, colors = posed_avatars(avatar_params, body, pose.params)
    S = verts.shape[0]
    if isinstance(body, AnnyBody):
        phen = jax.nn.sigmoid(avatar_params.shape)
    else:
        phen = jnp.zeros((S, 0), jnp.float32)
    ov, of, oc, R, t = [], [], [], [], []
    for v, f, c in obj.meshes:
        v, f, c = clean_mesh(v, f, c)
        center = 0.5 * (v.min(0) + v.max(0))
        ov.append(onp.asarray(v - center, onp.float32))
        of.append(onp.asarray(f, onp.int32))
        oc.append(onp.asarray(c, onp.float32))
        R.append(onp.eye(3, dtype=onp.float32))
        t.append(onp.asarray(center, onp.float32))
    return StaticHOI(
        betas=pose.params.betas, pose=pose.params.pose, transl=pose.params.transl, scale=pose.params.scale,
        displacements=avatar_params.displacements, human_colors=colors, human_vertices=verts, human_faces=faces,
        phenotype=phen, object_vertices=tuple(ov), object_faces=tuple(of), object_colors=tuple(oc),
        object_rotation=jnp.asarray(onp.stack(R)), object_translation=jnp.asarray(onp.stack(t)),
        keypoints2d=pose.keypoints2d, confidence=pose.confidence, body_model=_body_kind(body),
        info=tuple(dict(i) for i in infos))


def compose(prompt, keys, cfg: ComposeConfig, priors: ComposePriors, body, *,
            callback: Callable[[int, Any, dict], None] | None = None) -> StaticHOI:
    """The whole interaction composition of S seeds (paper Sec. 4): Φ̂ → masks → Φ_A → avatar → Eq. 2 → object.

    Args:
      prompt: `Prompt`, mapping or "human | action | object" (validated; the priors must match it).
      keys: (S,) PRNG keys, one per seed.
      priors: `build_priors(prompt, cfg)` (or any ComposePriors).
      body: AnnyBody (default body) or a SMPL-X BodyModel.
      callback: `callback(step, state, info)` forwarded to every sub-stage; info["stage"] names it.
    """
    parse_prompt(prompt)
    keys = _keys(keys)
    k_coarse, k_anchor, k_avatar, k_object = (jax.vmap(lambda k, i=i: jax.random.fold_in(k, i))(keys)
                                              for i in range(4))

    def cb(stage):
        if callback is None:
            return None
        return lambda step, state, info: callback(step, state, {**info, "stage": stage})

    coarse, _ = run_coarse(k_coarse, cfg, priors, callback=cb("coarse"))
    renders, mask_info = run_masks(coarse.params, cfg, priors)
    anchor, _ = run_anchor(k_anchor, coarse.params, renders, cfg, callback=cb("anchor"))
    avatar, _ = run_avatar(k_avatar, body, cfg, priors, callback=cb("avatar"))
    betas = jax.vmap(lambda p: avatar_stage.avatar_betas(p, body))(avatar.params)
    pose, pose_info = run_pose(anchor.params, body, betas, cfg, priors)
    human = posed_avatars(avatar.params, body, pose.params)
    obj, _ = run_object(k_object, coarse.params, renders, human, cfg, priors, callback=cb("object"))
    infos = [{**m, **p, **o} for m, p, o in zip(mask_info, pose_info, obj.infos)]
    return assemble(body, avatar.params, pose, obj, infos)


# ---------------------------------------------------------------------------------------------------
# Output files.
# ---------------------------------------------------------------------------------------------------
def _shaded_joint_render(verts, faces, colors, camera: Camera):
    """Hard-rasterised, Lambert-shaded (light at the camera) image of a mesh over white."""
    n = vertex_normals(verts, faces)
    to_cam = camera.center_world[None] - verts
    to_cam = to_cam / jnp.linalg.norm(to_cam, axis=-1, keepdims=True)
    lum = 0.35 + 0.65 * jnp.maximum(jnp.sum(n * to_cam, -1, keepdims=True), 0.0)
    out = rasterize(verts, faces, colors * lum, camera, mode="hard", background=1.0, cull_backfaces=False)
    return out["rgb"]


_render_views = jax.jit(jax.vmap(_shaded_joint_render, in_axes=(None, None, None, 0)))


def static_arrays(hoi: StaticHOI, s: int, *, body=None) -> dict:
    """Seed s of a StaticHOI as the arrays of STATIC.npz (io/formats.py layout) plus the pipeline's extras.

    body: the composition's body. For SMPL-X its shape space is num_betas body directions followed by
    the expression directions (body/smplx.py); with the body given, β is split into `betas` and
    `expression` as the STATIC layout (and `load_smplx(num_betas=..., num_expression=...)`) expects.
    """
    pose = onp.asarray(hoi.pose[s], onp.float32)
    betas = onp.asarray(hoi.betas[s], onp.float32)
    expression = None
    if hoi.body_model == "smplx" and body is not None:
        nb = dict(_model(body).metadata or ()).get("num_betas")
        if nb is not None and betas.shape[0] > nb:
            betas, expression = betas[:nb], betas[nb:]
    if hoi.body_model == "smplx":
        # STATIC layout: body joints 1..21; the 55-joint SMPL-X adds jaw, eyes and hands (a reduced
        # SMPL-X-named body, e.g. the tests' skeleton, has no slots for its extra joints: dropped).
        body_pose = pose[1:22].reshape(-1)
    else:
        body_pose = pose[1:].reshape(-1)
    arrays = dict(
        body_model=onp.asarray(hoi.body_model), betas=betas,
        scale=onp.asarray(hoi.scale[s], onp.float32).reshape(()), global_orient=pose[0],
        body_pose=body_pose, transl=onp.asarray(hoi.transl[s], onp.float32),
        object_vertices=hoi.object_vertices[s], object_faces=hoi.object_faces[s],
        object_rotation=onp.asarray(hoi.object_rotation[s], onp.float32),
        object_translation=onp.asarray(hoi.object_translation[s], onp.float32),
        # Extras beside the STATIC layout, read by the pipeline (pipeline/static.py): the avatar's colours
        # and displacements D, and the object's colours.
        human_colors=onp.asarray(hoi.human_colors[s], onp.float32),
        displacements=onp.asarray(hoi.displacements[s], onp.float32),
        object_colors=hoi.object_colors[s],
    )
    if expression is not None:
        arrays["expression"] = expression
    if hoi.body_model == "smplx" and pose.shape[0] == 55:
        for k, (a, b) in {"jaw_pose": (22, 23), "leye_pose": (23, 24), "reye_pose": (24, 25),
                          "left_hand_pose": (25, 40), "right_hand_pose": (40, 55)}.items():
            arrays[k] = pose[a:b].reshape(-1)
    if hoi.body_model == "anny":
        arrays["phenotype_names"] = onp.asarray(PHENOTYPE_LABELS)
        arrays["phenotype_values"] = onp.asarray(hoi.phenotype[s], onp.float32)
    return arrays


def write_static(out_dir, static_hoi: StaticHOI, seed_index: int, body, *, cfg: OutputConfig = OutputConfig()) -> Path:
    """Write seed `seed_index` of a StaticHOI to `out_dir`/static/ (STATIC_FILES), atomically as a folder.

    Files: human.obj and human.ply (posed avatar with vertex colours), object.obj (world frame), hoi.glb
    (both meshes; the object placed by its rotation/translation), static.npz (io/formats STATIC layout,
    validated by read_static, plus human_colors, displacements, object_colors), render.png (front view),
    turntable.mp4 (an orbit). Everything is written into a temporary sibling folder that replaces
    static/ only when complete.
    """
    from anchorhoi_jax.io import export
    from anchorhoi_jax.io.formats import FormatError, read_static

    S = static_hoi.num_seeds
    if not 0 <= seed_index < S:
        raise ValueError(f"write_static: seed_index must be in [0, {S}), got {seed_index}")
    if static_hoi.human_faces.shape[0] != _model(body).faces.shape[0]:
        raise ValueError("write_static: the body does not match the StaticHOI (different face count)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / "static"
    tmp = Path(tempfile.mkdtemp(prefix=".static.", dir=out_dir))
    try:
        s = seed_index
        hv = onp.asarray(static_hoi.human_vertices[s], onp.float32)
        hf = onp.asarray(static_hoi.human_faces, onp.int32)
        hc = onp.clip(onp.asarray(static_hoi.human_colors[s], onp.float32), 0.0, 1.0)
        ov, of, oc = static_hoi.object_vertices[s], static_hoi.object_faces[s], onp.clip(static_hoi.object_colors[s], 0, 1)
        R, t = onp.asarray(static_hoi.object_rotation[s]), onp.asarray(static_hoi.object_translation[s])
        ow = ov @ R.T + t
        export.write_obj(tmp / "human.obj", hv, hf, hc)
        export.write_ply(tmp / "human.ply", hv, hf, hc)
        export.write_obj(tmp / "object.obj", ow, of, oc)
        export.write_glb(tmp / "hoi.glb", [export.SceneMesh("human", hf, hv, hc),
                                           export.SceneMesh("object", of, ov, oc, rotation=R, translation=t)])
        export.write_npz(tmp / "static.npz", static_arrays(static_hoi, s, body=body))
        try:
            read_static(tmp / "static.npz")
        except FormatError as e:
            raise ValueError(f"write_static: the static instance does not validate: {e}") from None
        # One joint mesh (human ++ object) for the render and the turntable, framed on its bounding box.
        V = jnp.asarray(onp.concatenate([hv, ow]))
        F = jnp.asarray(onp.concatenate([hf, of + hv.shape[0]]), jnp.int32)
        C = jnp.asarray(onp.concatenate([hc, oc]), jnp.float32)
        target = tuple(float(x) for x in 0.5 * (onp.asarray(V).min(0) + onp.asarray(V).max(0)))
        n = cfg.turntable_frames
        cams = orbit_cameras(n + 1, height=cfg.render_size, width=cfg.render_size, target=target,
                             distance=cfg.distance, elevation_deg=cfg.elevation_deg, fov_deg=cfg.fov_deg)
        frames = onp.asarray(_render_views(V, F, C, cams))
        export.write_png(tmp / "render.png", frames[0])
        export.write_mp4(tmp / "turntable.mp4", frames[:n], cfg.fps)
        export.atomic_write_text(tmp / "info.json", json.dumps(static_hoi.info[s] if static_hoi.info else {},
                                                              indent=2, default=str))
        # Swap the complete folder in: static/ is either the old complete set or the new one.
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=".static.old.", dir=out_dir))
            os.replace(final, old / "static")
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
