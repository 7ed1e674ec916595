"""Object NeRF (paper Sec. 4, "Interaction generation", object part): initialise, complete, extract.

1. *Initialise* from the segmented object part of the coarse NeRF Φ̂: the object field starts as a copy
   of Φ̂ and is fitted by the masked feature alignment L_align(F(x), F(x̂)) (losses/align.py, as
   stages/anchor.py does for the human) with the *object* masks of canonical coarse renders, so the
   human disappears and the object stays.
2. *Complete* by SDS: ∇_Φ L^O_SDS with T_object on renders of the object alone (views framing the
   object's centre), jointly with the layout SDS ∇_Φ L^L_SDS with T_inter on joint renders of the
   posed human mesh (rasterised, fixed) and the object NeRF (render/composite.py: the mesh occludes
   the field), which preserves the interaction. Both image sets go to the guidance as one torch batch
   (priors.guidance.StackedGuidance) and one Adam step; the coarse stage's regularisers apply to the
   object-only renders.
3. *Extract* the object mesh by marching cubes (render/extract.py) with per-vertex albedo.

Multi-seed: as in stages/coarse.py (leading seed axis on the state; `init_seeds`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as onp
from flax import struct
from jaxtyping import Array, Float

from anchorhoi_jax.geometry.cameras import Camera
from anchorhoi_jax.nerf import field as nerf_field
from anchorhoi_jax.priors.bridge import SDSState, make_sds_step
from anchorhoi_jax.render.composite import render_mesh_and_nerf
from anchorhoi_jax.render.extract import density_grid, extract_mesh
from anchorhoi_jax.render.volume import RenderConfig
from anchorhoi_jax.stages import anchor
from anchorhoi_jax.stages.coarse import (
    CameraSampling,
    CoarseWeights,
    SDSProgram,
    ShadingConfig,
    StepBatch,
    _GuidanceProxy,
    _inject_loss,
    _optimizer,
    _seeded,
    num_seed_axes,
    regularizers,
    render_batch,
    render_canonical,
    run_sds_loop,
    sample_step_batch,
)

__all__ = [
    "ObjectConfig",
    "ObjectWeights",
    "init",
    "init_seeds",
    "fit",
    "object_center",
    "object_mesh",
    "object_mesh_level",
    "extract_object_mesh",
    "auto_mesh_level",
    "render_canonical",
]

# The object stage's traced weights are the coarse stage's (lr and the same regularisers).
ObjectWeights = CoarseWeights


@dataclasses.dataclass(frozen=True)
class ObjectConfig:
    """Static settings of the object stage.

    field / render: must be those of the coarse stage (the object field starts as a copy of Φ̂).
    object_camera: views of the object alone; their look-at target is the object's centre (density
      centroid of the initialised field), not `object_camera.target`.
    layout_camera: views of the joint human + object render (the whole interaction).
    object_weight / layout_weight: weights of L^O_SDS and L^L_SDS in the shared step.
    init_steps / init_rays / init_lr: the alignment fit of the initialisation.
    mesh_resolution / mesh_threshold: marching cubes grid and density iso-level σ (1/m); keep_largest drops
      floaters (every connected component but the one with the most faces). mesh_threshold="auto" picks
      the level per seed from the field's own density distribution (`auto_mesh_level`: Otsu's split of
      log(1 + σ·cell)), for fields whose densities never cross a fixed level (SDS can saturate a field or
      leave it faint); the chosen level is reported in the stage's infos. With a number (default 10) a
      field that does not cross it is a one-line error.
    mesh_max_faces: None (default) or a face budget: the marching-cubes grid is coarsened until the
      (largest-component) mesh fits it, so a noisy field cannot hand the contact, SDF and export stages
      a multi-million-face mesh; the resolution used is reported in the infos.
    fuse_guidance: run each prior once per step on the object and the layout views together
      (priors.guidance.StackedGuidance(fuse=True): one UNet call of both prompts' batch instead of two;
      same timesteps and noise, equal up to kernel rounding) instead of once per prompt, for torch batches of
      at most 16 images (1-2 seeds; larger batches are compute-bound, where fusing only costs memory).
      H100, 1 seed: object guidance 208 vs 233 ms per step (benchmarks/results/pipeline.md).
    """

    field: nerf_field.FieldConfig = nerf_field.FieldConfig()
    # remat on: measured faster on the H100 (169.7 vs 187.6 ms per coarse iteration, the field's
    # per-sample intermediates cost more HBM traffic than recomputing them) and smaller
    # (benchmarks/results/coarse.md). ComposeConfig keeps coarse and object equal.
    render: RenderConfig = RenderConfig(n_coarse=64, n_fine=64, shading="lambertian", remat=True)
    resolution: int = 64
    steps: int = 3000
    views: int = 4
    log_every: int = 100
    object_camera: CameraSampling = CameraSampling(distance_range=(1.8, 2.6))
    layout_camera: CameraSampling = CameraSampling()
    shading: ShadingConfig = ShadingConfig(albedo_steps=0)
    object_weight: float = 1.0
    layout_weight: float = 1.0
    lr_schedule: Literal["constant", "cosine"] = "constant"
    lr_final_ratio: float = 0.1
    init_steps: int = 300
    init_rays: int = 4096
    init_lr: float = 1e-2
    raster_mode: Literal["hard", "soft"] = "hard"
    mesh_resolution: int = 128
    mesh_threshold: float | Literal["auto"] = 10.0
    keep_largest: bool = True
    mesh_max_faces: int | None = None
    fuse_guidance: bool = False

    def __post_init__(self):
        for name in ("resolution", "steps", "views", "log_every", "init_steps", "init_rays"):
            if getattr(self, name) < 1:
                raise ValueError(f"ObjectConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.resolution < 4:
            raise ValueError(f"ObjectConfig.resolution must be >= 4, got {self.resolution}")
        if self.object_weight < 0 or self.layout_weight < 0 or self.object_weight + self.layout_weight == 0:
            raise ValueError(f"ObjectConfig: object_weight and layout_weight must be >= 0 and not both 0, got "
                             f"{self.object_weight}, {self.layout_weight}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"ObjectConfig.lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if not 0.0 < self.lr_final_ratio <= 1.0:
            raise ValueError(f"ObjectConfig.lr_final_ratio must be in (0, 1], got {self.lr_final_ratio}")
        if self.init_lr <= 0:
            raise ValueError(f"ObjectConfig.init_lr must be > 0, got {self.init_lr}")
        if self.raster_mode not in ("hard", "soft"):
            raise ValueError(f"ObjectConfig.raster_mode must be 'hard' or 'soft', got {self.raster_mode!r}")
        if self.mesh_resolution < 8:
            raise ValueError(f"ObjectConfig.mesh_resolution must be >= 8, got {self.mesh_resolution}")
        if self.mesh_threshold != "auto" and (isinstance(self.mesh_threshold, (str, bool))
                                              or not self.mesh_threshold > 0
                                              or not math.isfinite(self.mesh_threshold)):
            raise ValueError(f"ObjectConfig.mesh_threshold must be a finite density > 0 or 'auto', got "
                             f"{self.mesh_threshold!r}")
        if not isinstance(self.fuse_guidance, bool):
            raise ValueError(f"ObjectConfig.fuse_guidance must be true or false, got {self.fuse_guidance!r}")
        if self.mesh_max_faces is not None and self.mesh_max_faces < 1000:
            raise ValueError(f"ObjectConfig.mesh_max_faces must be >= 1000 or None, got {self.mesh_max_faces}")


# ----------------------------------------------------------------------------------------------
# Initialisation from the coarse NeRF
# ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _align_update(field_cfg, render_cfg, steps: int, n_rays: int):
    cfg = anchor.AnchorConfig(steps_per_call=steps, n_rays=n_rays, render=render_cfg)
    return jax.jit(anchor.make_update(field_cfg, cfg))


def init(
    key,
    coarse_params,
    cameras: Camera,
    rgb: Float[Array, "V H W 3"],
    alpha: Float[Array, "V H W"],
    object_mask: Float[Array, "V H W"],
    cfg: ObjectConfig,
) -> SDSState:
    """Object NeRF of one seed: Φ_O ← Φ̂, fitted by L_align to the object-masked coarse renders.

    Args:
      coarse_params: the coarse field Φ̂ (one seed).
      cameras, rgb, alpha: V canonical views and the coarse renders in them (render_canonical:
        premultiplied colour and opacity).
      object_mask: (V, H, W) in [0, 1], the object's segmentation in those renders.
    """
    k_align, k_run = jax.random.split(key)
    rays = anchor.alignment_rays(cameras, rgb, alpha, object_mask)
    rcfg = dataclasses.replace(cfg.render, shading="albedo", normals=False)
    update = _align_update(cfg.field, rcfg, cfg.init_steps, cfg.init_rays)
    st, _ = update(anchor.init(k_align, coarse_params), rays, anchor.AnchorWeights(lr=jnp.float32(cfg.init_lr)))
    opt = _optimizer(cfg.steps, cfg.lr_schedule, cfg.lr_final_ratio)
    return SDSState(params=st.params, opt_state=opt.init(st.params), step=jnp.zeros((), jnp.int32), key=k_run)


def init_seeds(keys, coarse_params, cameras: Camera, rgb, alpha, object_mask, cfg: ObjectConfig) -> SDSState:
    """`init` vmapped over seeds: keys (S,), coarse_params / rgb / alpha / object_mask with a leading S;
    the canonical cameras are shared."""
    return jax.vmap(lambda k, p, r, a, m: init(k, p, cameras, r, a, m, cfg))(keys, coarse_params, rgb, alpha,
                                                                              object_mask)


@functools.lru_cache(maxsize=None)
def _center_fn(field_cfg, resolution: int):
    def center(params):
        t = (jnp.arange(resolution, dtype=jnp.float32) + 0.5) / resolution * 2.0 - 1.0
        g = jnp.stack(jnp.meshgrid(t, t, t, indexing="ij"), -1).reshape(-1, 3) * field_cfg.bound
        x = g + jnp.asarray(field_cfg.center, jnp.float32)[None]
        cell = 2.0 * field_cfg.bound / resolution
        # Opacity of a cell (1 − e^{−σ·cell}) weighs its position: the centre of the visible mass.
        w = 1.0 - jnp.exp(-nerf_field.density(params, field_cfg, x) * cell)
        c = jnp.sum(w[:, None] * x, 0) / jnp.maximum(jnp.sum(w), 1e-6)
        return jnp.where(jnp.sum(w) > 1e-6, c, jnp.asarray(field_cfg.center, jnp.float32))

    return jax.jit(center)


def object_center(params, field_cfg: nerf_field.FieldConfig, resolution: int = 32) -> Float[Array, "*s 3"]:
    """Opacity-weighted centroid (world, metres) of a field; leading seed axes allowed."""
    f = _center_fn(field_cfg, resolution)
    for _ in range(num_seed_axes(params, field_cfg)):
        f = jax.vmap(f)
    return f(params)


# ----------------------------------------------------------------------------------------------
# Completion by SDS (object prompt) + layout SDS (interaction prompt)
# ----------------------------------------------------------------------------------------------


@struct.dataclass
class ObjectBatch:
    obj: StepBatch
    layout: StepBatch
    vertices: Float[Array, "N 3"]
    faces: Array
    colors: Float[Array, "N 3"]


def _render_layout(params, field_cfg, render_cfg, raster_mode, b: ObjectBatch):
    lit = render_cfg.shading != "albedo"
    keys = jax.random.split(b.layout.key, b.layout.ambient.shape[0])

    def one(cam, light, amb, bg, k):
        out = render_mesh_and_nerf(params, field_cfg, b.vertices, b.faces, b.colors, cam, k, render_cfg=render_cfg,
                                   raster_mode=raster_mode, background=bg, light_dir=light if lit else None,
                                   ambient=amb)
        return out["rgb"]

    return jax.vmap(one)(b.layout.camera, b.layout.light_dir, b.layout.ambient, b.layout.background, keys)


@functools.lru_cache(maxsize=None)
def _object_program(cfg: ObjectConfig, seeded: bool) -> SDSProgram:
    fcfg, rcfg = cfg.field, cfg.render

    def render_one(params, b: ObjectBatch, weights):
        img_o, alpha_o, orient = render_batch(params, fcfg, rcfg, b.obj)
        img_l = _render_layout(params, fcfg, rcfg, cfg.raster_mode, b)
        reg, aux = regularizers(alpha_o, orient, weights)
        return jnp.stack([img_o, img_l]), reg, aux

    def render_fn(params, batch_and_weights):
        b, weights = batch_and_weights
        if seeded:
            images, reg, aux = jax.vmap(render_one, in_axes=(0, 0, None))(params, b, weights)
            images = jnp.moveaxis(images, 0, 1)  # (2, S, V, ...): object chunk, then layout chunk
        else:
            images, reg, aux = render_one(params, b, weights)
        return _inject_loss(images, jnp.sum(reg)), aux

    opt = _optimizer(cfg.steps, cfg.lr_schedule, cfg.lr_final_ratio)
    proxy = _GuidanceProxy()
    _, step = make_sds_step(render_fn, _seeded(opt) if seeded else opt, proxy, has_aux=True)

    def sample_one(key, i, center, verts, faces, colors):
        k = jax.random.fold_in(key, i)
        k_o, k_l = jax.random.split(k)
        obj = sample_step_batch(k_o, i, n_views=cfg.views, resolution=cfg.resolution, camera=cfg.object_camera,
                                shading=cfg.shading, target=center)
        lay = sample_step_batch(k_l, i, n_views=cfg.views, resolution=cfg.resolution, camera=cfg.layout_camera,
                                shading=cfg.shading)
        return ObjectBatch(obj=obj, layout=lay, vertices=verts, faces=faces, colors=colors)

    def sample(keys, i, extra):
        center, verts, faces, colors = extra
        if seeded:
            b = jax.vmap(sample_one, in_axes=(0, None, 0, 0, None, 0))(keys, i, center, verts, faces, colors)
        else:
            b = sample_one(keys, i, center, verts, faces, colors)
        inner_key = jax.random.fold_in(jax.random.fold_in(keys[0] if seeded else keys, i), 0x5D5)

        def views(a_o, a_l):  # the torch batch order: object views (all seeds), then layout views
            return jnp.stack([a_o, a_l], 0)

        arrays = tuple(views(getattr(b.obj, n), getattr(b.layout, n))
                       for n in ("azimuth_deg", "elevation_deg", "camera_to_world"))
        return b, inner_key, arrays

    return SDSProgram(proxy=proxy, step=step, sample=jax.jit(sample), views_per_sample=cfg.views, seeded=seeded)


def fit(
    state: SDSState,
    cfg: ObjectConfig,
    weights: CoarseWeights,
    guidance_object,
    guidance_layout,
    human_mesh: tuple,
    *,
    callback=None,
    until: int | None = None,
) -> tuple[SDSState, list[dict]]:
    """Complete the object by SDS with T_object while the layout SDS with T_inter keeps the interaction.

    Args:
      state: from `init` / `init_seeds` (or a checkpoint of it).
      guidance_object / guidance_layout: bridge.Guidance for T_object and T_inter.
      human_mesh: (vertices (N, 3) or (S, N, 3) world metres, faces (F, 3), colors (N, 3) or (S, N, 3)):
        the posed, placed human (fixed; it occludes the object in the layout renders).
      callback, until: as in coarse.fit.
    Returns:
      (state, history); history keys of the guidance parts are prefixed "object/" and "layout/".
    """
    from anchorhoi_jax.priors.guidance import StackedGuidance

    n_axes = num_seed_axes(state.params, cfg.field)
    if n_axes > 1:
        raise ValueError("object_stage.fit: at most one leading seed axis is supported")
    seeded = n_axes == 1
    verts, faces, colors = (jnp.asarray(a) for a in human_mesh)
    if faces.ndim != 2 or faces.shape[-1] != 3 or verts.shape[-1] != 3 or colors.shape[-1] != 3:
        raise ValueError("object_stage.fit: human_mesh must be (vertices (..., N, 3), faces (F, 3), colors (..., N, 3)),"
                         f" got {tuple(verts.shape)}, {tuple(faces.shape)}, {tuple(colors.shape)}")
    center = object_center(state.params, cfg.field)
    if seeded:
        S = jax.tree.leaves(state.params)[0].shape[0]
        verts = jnp.broadcast_to(verts, (S,) + verts.shape[-2:])
        colors = jnp.broadcast_to(colors, (S,) + colors.shape[-2:])
    elif verts.ndim != 2 or colors.ndim != 2:
        raise ValueError(f"object_stage.fit: one seed needs vertices (N, 3) and colors (N, 3), got "
                         f"{tuple(verts.shape)}, {tuple(colors.shape)}")
    stacked = StackedGuidance([(_Named(guidance_object, "object"), cfg.object_weight),
                               (_Named(guidance_layout, "layout"), cfg.layout_weight)], fuse=cfg.fuse_guidance)
    program = _object_program(cfg, seeded)
    return run_sds_loop(program, state, weights, stacked, total_steps=cfg.steps, log_every=cfg.log_every,
                        sample_extra=(center, verts, faces.astype(jnp.int32), colors), callback=callback,
                        until=until, lr=weights.lr)


class _Named:
    """A guidance under another name (history keys `object/...`, `layout/...`)."""

    transparent = True  # StackedGuidance(fuse=True) may look through it to the CombinedGuidance inside

    def __init__(self, inner, name: str):
        self.inner, self.name = inner, name
        self.value_range, self.dtype = inner.value_range, inner.dtype

    def __call__(self, x_model, *, views, step, generator):
        return self.inner(x_model, views=views, step=step, generator=generator)


# ----------------------------------------------------------------------------------------------
# Mesh extraction
# ----------------------------------------------------------------------------------------------


# Auto level: fewer cells' opacity than this at the densest point means the field is empty, not faint.
AUTO_MIN_CELL_OPACITY = 1e-2
AUTO_BINS = 256


def auto_mesh_level(grid, cell: float) -> tuple[float, dict]:
    """Iso level σ* (1/m) for marching cubes from a density grid's own distribution (mesh_threshold="auto").

    The level is Otsu's threshold (the split that minimises the within-class variance of a 256-bin
    histogram) of u = log(1 + σ·cell), σ·cell being the optical depth of one grid cell: u is linear in σ
    for transparent cells, so an SDF-like density (σ ≈ s inside, → 0 outside) splits at its
    transition, and logarithmic for opaque ones, so a saturated field's heavy tail (σ up to 1e9) does
    not swamp the histogram. σ* = (e^{u*} − 1) / cell.

    Args:
      grid: (R, R, R) densities σ ≥ 0 (render/extract.density_grid).
      cell: grid spacing in metres.
    Returns:
      (σ*, info) with info = {"mesh_threshold": σ*, "mesh_threshold_source": "auto (...)",
      "density_min", "density_max", "occupied_fraction"}.
    Raises:
      ValueError (one line) if the field is empty (the densest cell's opacity 1 − e^{−σ·cell} is below
      1 %) or constant (no level separates anything), or has non-finite values.
    """
    g = onp.asarray(grid, onp.float64).reshape(-1)
    if g.size == 0 or not onp.all(onp.isfinite(g)):
        raise ValueError("auto_mesh_level: the density grid is empty or has non-finite values")
    if not cell > 0:
        raise ValueError(f"auto_mesh_level: cell must be > 0, got {cell}")
    lo, hi = float(g.min()), float(g.max())
    if -math.expm1(-max(hi, 0.0) * cell) < AUTO_MIN_CELL_OPACITY:
        raise ValueError(f"auto_mesh_level: the field is empty (max density {hi:.3g}: one {cell:.3g} m cell is "
                         f"< {AUTO_MIN_CELL_OPACITY:.0%} opaque)")
    u = onp.log1p(onp.maximum(g, 0.0) * cell)
    u_lo, u_hi = float(u.min()), float(u.max())
    if not u_hi - u_lo > 1e-6 * max(1.0, u_hi):
        raise ValueError(f"auto_mesh_level: the density is constant ({lo:.3g}..{hi:.3g}), no level separates "
                         "an object")
    hist, edges = onp.histogram(u, bins=AUTO_BINS, range=(u_lo, u_hi))
    p = hist / hist.sum()
    mids = 0.5 * (edges[1:] + edges[:-1])
    w0 = onp.cumsum(p)[:-1]  # class "outside" = bins 0..k, k = 0..B-2 (each split leaves both classes a bin)
    m0 = onp.cumsum(p * mids)[:-1]
    mu = float(onp.sum(p * mids))
    w1 = 1.0 - w0
    # Between-class variance w0·w1·(μ0 − μ1)²; maximising it = minimising the within-class variance (Otsu).
    between = onp.where((w0 > 0) & (w1 > 0), (mu * w0 - m0) ** 2 / onp.maximum(w0 * w1, 1e-300), -1.0)
    k = int(onp.argmax(between))
    u_star = float(edges[k + 1])
    level = math.expm1(u_star) / cell
    if not lo < level < hi:  # cannot happen for a non-constant grid (edges are strictly inside); guard anyway
        raise ValueError(f"auto_mesh_level: chosen level {level:.3g} outside the density range [{lo:.3g}, {hi:.3g}]")
    info = {"mesh_threshold": level, "mesh_threshold_source": "auto (Otsu on log(1 + density * cell))",
            "density_min": lo, "density_max": hi, "occupied_fraction": float(onp.mean(g > level))}
    return level, info


def object_mesh_level(params, cfg: ObjectConfig, *, resolution: int | None = None) -> tuple[float, dict]:
    """The marching-cubes level of one seed: cfg.mesh_threshold, or `auto_mesh_level` of its density grid."""
    if num_seed_axes(params, cfg.field) != 0:
        raise ValueError("object_mesh_level: pass one seed's params (index the seed axis first)")
    if cfg.mesh_threshold != "auto":
        return float(cfg.mesh_threshold), {"mesh_threshold": float(cfg.mesh_threshold),
                                           "mesh_threshold_source": "config"}
    res = resolution or cfg.mesh_resolution
    grid = density_grid(params, cfg.field, res)
    return auto_mesh_level(grid, 2.0 * cfg.field.bound / (res - 1))


def object_mesh(params, cfg: ObjectConfig, *, resolution: int | None = None, threshold: float | None = None):
    """Marching-cubes mesh of one seed's object field with per-vertex albedo.

    threshold: the iso level σ (1/m); None = cfg.mesh_threshold (with "auto": `object_mesh_level`).
    Returns (vertices (N, 3) float32 world metres, faces (F, 3) int32 outward, colors (N, 3) in [0, 1]),
    NumPy arrays. With cfg.keep_largest only the connected component with the most faces is kept; with
    cfg.mesh_max_faces the grid is coarsened until the mesh has at most that many faces.
    Raises a one-line ValueError if the field's density does not cross the level.
    """
    mesh, _ = extract_object_mesh(params, cfg, resolution=resolution, threshold=threshold)
    return mesh


def extract_object_mesh(params, cfg: ObjectConfig, *, resolution: int | None = None,
                        threshold: float | None = None) -> tuple[tuple, dict]:
    """`object_mesh` with its info: ((vertices, faces, colors), {"mesh_threshold", "mesh_threshold_source",
    "mesh_resolution", "mesh_faces", ...})."""
    if num_seed_axes(params, cfg.field) != 0:
        raise ValueError("object_mesh: pass one seed's params (index the seed axis first)")
    res = resolution or cfg.mesh_resolution
    if threshold is None:
        threshold, info = object_mesh_level(params, cfg, resolution=res)
    else:
        info = {"mesh_threshold": float(threshold), "mesh_threshold_source": "argument"}
    while True:
        try:
            verts, faces, colors = extract_mesh(params, cfg.field, resolution=res, threshold=threshold)
        except ValueError as e:
            if cfg.mesh_threshold == "auto" or "does not cross" not in str(e):
                raise
            raise ValueError(f"{e} (object.mesh_threshold=auto picks the level from the field's densities)") from None
        if cfg.keep_largest and len(faces):
            verts, faces, colors = _largest_component(verts, faces, colors)
        cap = cfg.mesh_max_faces
        if cap is None or len(faces) <= cap or res <= 8:
            break
        # Faces grow like res² on a smooth surface (faster on a noisy one): aim a little below the cap.
        res = max(8, min(res - 1, int(res * math.sqrt(cap / len(faces)) * 0.95)))
    if cfg.mesh_max_faces is not None and len(faces) > cfg.mesh_max_faces:
        raise ValueError(f"object_mesh: {len(faces)} faces at the coarsest grid (8^3), above "
                         f"object.mesh_max_faces={cfg.mesh_max_faces}")
    return (verts, faces, colors), {**info, "mesh_resolution": res, "mesh_faces": int(len(faces))}


def _largest_component(verts, faces, colors):
    """Keep the face-connected component with the most faces (union-find over shared vertices)."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    n = verts.shape[0]
    rows = onp.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    cols = onp.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    g = sp.coo_matrix((onp.ones(rows.shape[0], onp.int8), (rows, cols)), shape=(n, n))
    _, label = connected_components(g, directed=False)
    face_label = label[faces[:, 0]]
    best = onp.bincount(face_label).argmax()
    keep_f = faces[face_label == best]
    used = onp.unique(keep_f)
    remap = -onp.ones(n, onp.int64)
    remap[used] = onp.arange(used.shape[0])
    return verts[used], remap[keep_f].astype(onp.int32), colors[used]
