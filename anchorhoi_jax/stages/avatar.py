"""Canonical avatar (paper Sec. 4, "Interaction generation with anchor NeRF", first step).

The human H_s is generated in two steps; this is the first: a canonical avatar in the standing pose
θ_stand whose shape and appearance Θ = (β, D, C) are optimised by SDS (Eq. 1) with the human part of
the prompt, T_human:

    ∇_Θ L_SDS(x),   x = g(M(θ_stand, β, D), C)   rendered by the soft mesh rasterizer (render/raster.py)

M is the body model (Anny by default, or SMPL-X), D per-vertex displacements added to the shaped rest
mesh before skinning (so they are carried along when the body is posed, as in TADA-style avatar
methods), and C per-vertex colours (stored as logits, C = sigmoid(logits), so they stay in [0, 1]).
For Anny the shape is optimised in its phenotype space (6 controls, each sigmoid(logit) in [0, 1],
mapped to blend coefficients by `body.anny.phenotype_to_coeffs`) so every shape is a valid Anny body;
for SMPL-X the betas themselves (with an L2 prior).

The regularisers avatar methods use keep the sculpted surface a body (each its own (value, aux)
function, weights traced in `AvatarWeights`):
* Laplacian smoothness of D: ‖D_i − mean_{j∈N(i)} D_j‖² (uniform Laplacian over mesh edges);
* displacement magnitude ‖D_i‖²;
* normal consistency 1 − n_a·n_b over pairs of faces sharing an edge (of the displaced mesh);
* a shape prior ‖shape‖².

Views are drawn at random per step and seed (`geometry.cameras.sample_views`) around the standing
body; each view is Lambert-shaded with a light near its camera (per-vertex, Gouraud) and composited
over a random solid background, the usual SDS-avatar recipe that keeps the geometry from hiding in the
background colour.

State is `bridge.SDSState` (params, opt_state, step, key). MULTI-SEED (INTERFACES.md): the state of S
seeds is the single-seed state with a leading axis S (`init_seeds` = vmap of `init`); `fit` renders all
seeds and views into one torch batch per step. RESUME: `fit` runs from `state.step` to `cfg.steps`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Literal

import jax
import jax.numpy as jnp
import numpy as onp
import optax
from flax import struct
from jaxtyping import Array, Float, Int

from anchorhoi_jax.body.anny import PHENOTYPE_LABELS, AnnyBody, Phenotype, phenotype_to_coeffs
from anchorhoi_jax.body.model import BodyModel, BodyParams
from anchorhoi_jax.body.skinning import pose as pose_body
from anchorhoi_jax.geometry.cameras import Camera, sample_views
from anchorhoi_jax.priors.bridge import Guidance, SDSState, ViewInfo, make_sds_step
from anchorhoi_jax.render.raster import rasterize, vertex_normals

__all__ = [
    "AvatarConfig",
    "AvatarWeights",
    "AvatarParams",
    "MeshTopology",
    "AvatarBatch",
    "mesh_topology",
    "init",
    "init_seeds",
    "fit",
    "avatar_vertices",
    "avatar_mesh",
    "avatar_betas",
    "standing_target",
    "laplacian_term",
    "displacement_term",
    "normal_consistency_term",
    "shape_prior_term",
    "regularizer_loss",
    "render_avatar",
]


# ---------------------------------------------------------------------------------------------------
# Config, weights, params.
# ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AvatarConfig:
    """Static settings of the avatar stage (changing one recompiles).

    steps: SDS iterations (paper Sec. 5 runs 3000 iterations per composition stage, Adam lr 0.01).
    resolution: square render size in pixels (IF stage I works at 64 px).
    views: views per seed per step; views_per_sample: consecutive views that form one multi-view sample
      (MVDream: 4) and share one diffusion timestep; must divide `views`.
    raster_sigma: soft-silhouette width in pixels (render/raster.py), so the outline passes gradients
      to the vertices.
    shading: "lambertian" (light near the camera, `ambient` floor) or "albedo".
    distance_range, elevation_range, fov_range: random view sampling around the standing body (metres,
      degrees).
    """

    steps: int = 3000
    resolution: int = 64
    views: int = 4
    views_per_sample: int = 4
    log_every: int = 100
    raster_sigma: float = 1.0
    shading: Literal["lambertian", "albedo"] = "lambertian"
    ambient: float = 0.35
    distance_range: tuple[float, float] = (2.4, 3.2)
    elevation_range: tuple[float, float] = (-10.0, 30.0)
    fov_range: tuple[float, float] = (38.0, 45.0)

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError(f"AvatarConfig.steps must be >= 0, got {self.steps}")
        if not 8 <= self.resolution <= 1024:
            raise ValueError(f"AvatarConfig.resolution must be in [8, 1024], got {self.resolution}")
        if self.views < 1 or self.views_per_sample < 1 or self.views % self.views_per_sample:
            raise ValueError(f"AvatarConfig: views ({self.views}) must be a positive multiple of views_per_sample "
                             f"({self.views_per_sample})")
        if self.log_every < 1:
            raise ValueError(f"AvatarConfig.log_every must be >= 1, got {self.log_every}")
        if not self.raster_sigma > 0:
            raise ValueError(f"AvatarConfig.raster_sigma must be > 0, got {self.raster_sigma}")
        if self.shading not in ("lambertian", "albedo"):
            raise ValueError(f"AvatarConfig.shading must be 'lambertian' or 'albedo', got {self.shading!r}")
        for name in ("distance_range", "elevation_range", "fov_range"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"AvatarConfig.{name} must be (low, high) with low <= high, got {(lo, hi)}")


@struct.dataclass
class AvatarWeights:
    """Traced learning rates and regulariser weights (a sweep never recompiles)."""

    lr_shape: Float[Array, ""] = 1e-2  # paper Sec. 5: Adam, lr 0.01
    lr_displacement: Float[Array, ""] = 1e-3  # metres per step: displacements are small details
    lr_color: Float[Array, ""] = 1e-2
    laplacian: Float[Array, ""] = 1e4  # per m² of mean squared Laplacian (1 mm of roughness ≈ 0.01)
    displacement: Float[Array, ""] = 1e2  # per m² of mean squared displacement (1 cm ≈ 0.01)
    normal_consistency: Float[Array, ""] = 1.0
    shape_prior: Float[Array, ""] = 1e-3

    @classmethod
    def default(cls) -> "AvatarWeights":
        return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), cls())


@struct.dataclass
class AvatarParams:
    """Θ = (β, D, C) of one avatar: shape (Anny phenotype logits (6,) or SMPL-X betas (S,)),
    displacements D (V, 3) metres in the rest frame, colour logits (V, 3)."""

    shape: Float[Array, "P"]
    displacements: Float[Array, "V 3"]
    color_logits: Float[Array, "V 3"]


@struct.dataclass
class MeshTopology:
    """Host-derived adjacency of the body mesh for the regularisers.

    edges: (E, 2) unique undirected vertex pairs; face_pairs: (P, 2) faces sharing a manifold edge.
    """

    edges: Int[Array, "E 2"]
    face_pairs: Int[Array, "P 2"]


@struct.dataclass
class AvatarBatch:
    """Everything a step reads besides the parameters (traced; the body is passed, never closed over,
    so its ~20 MB of blend shapes are not baked into the compiled program)."""

    cameras: Camera  # (S, V) views
    background: Float[Array, "S V 3"]
    light: Float[Array, "S V 3"]  # unit direction toward the light, world frame
    body: Any  # AnnyBody or BodyModel
    topology: MeshTopology
    weights: AvatarWeights


def _model(body) -> BodyModel:
    return body.model if isinstance(body, AnnyBody) else body


def _check_body(body) -> BodyModel:
    if not isinstance(body, (AnnyBody, BodyModel)):
        raise TypeError(f"avatar: body must be an AnnyBody or a BodyModel, got {type(body).__name__}")
    m = _model(body)
    if m.faces.shape[0] == 0:
        raise ValueError("avatar: the body model has no faces; the avatar needs a triangle mesh")
    return m


def mesh_topology(faces) -> MeshTopology:
    """Unique edges and manifold face pairs of a triangle mesh (host-side NumPy, once per body)."""
    f = onp.asarray(faces, onp.int64)
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0:
        raise ValueError(f"mesh_topology: faces must be (F, 3) with F >= 1, got {f.shape}")
    e = onp.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], 0)
    face_of = onp.tile(onp.arange(f.shape[0]), 3)
    e_sorted = onp.sort(e, 1)
    key = e_sorted[:, 0] * (int(f.max()) + 1) + e_sorted[:, 1]
    order = onp.argsort(key, kind="stable")
    key_s, faces_s = key[order], face_of[order]
    uniq, start, counts = onp.unique(key_s, return_index=True, return_counts=True)
    edges = e_sorted[order][start]
    two = counts == 2  # manifold edges: exactly two incident faces
    pairs = onp.stack([faces_s[start[two]], faces_s[start[two] + 1]], 1)
    return MeshTopology(edges=jnp.asarray(edges, jnp.int32), face_pairs=jnp.asarray(pairs, jnp.int32))


# ---------------------------------------------------------------------------------------------------
# Geometry of the avatar.
# ---------------------------------------------------------------------------------------------------
def avatar_betas(params: AvatarParams, body) -> Float[Array, "S"]:
    """The body model's shape coefficients β of the avatar (Anny: from its phenotype logits)."""
    if isinstance(body, AnnyBody):
        v = jax.nn.sigmoid(params.shape)
        return phenotype_to_coeffs(body.extras, Phenotype(**{k: v[i] for i, k in enumerate(PHENOTYPE_LABELS)}))
    return params.shape


def avatar_vertices(params: AvatarParams, body, pose: BodyParams | None = None) -> Float[Array, "V 3"]:
    """Posed vertices of the avatar: rest mesh v(β) + D, skinned by `pose` (None: standing rest pose).

    `pose.betas` is ignored: the avatar's own shape is used (the pose fit of Eq. 2 uses the avatar's β).
    """
    m = _model(body)
    betas = avatar_betas(params, body)
    # D enters the template, before skinning; the fused blend matrix (if any) holds the old template,
    # so it is dropped and the plain blend path is taken.
    m_d = m.replace(v_template=m.v_template + params.displacements, blend_dirs=None, extra_blend_dirs=None)
    if pose is None:
        bp = BodyParams(betas=betas, pose=jnp.zeros((m.num_joints, 3), betas.dtype),
                        transl=jnp.zeros((3,), betas.dtype), scale=jnp.ones((), betas.dtype))
    else:
        bp = pose.replace(betas=betas)
    return pose_body(m_d, bp).vertices


def avatar_mesh(params: AvatarParams, body, pose: BodyParams | None = None):
    """(vertices (V, 3), faces (F, 3), colours (V, 3) in [0, 1]) of one avatar (see `avatar_vertices`)."""
    return avatar_vertices(params, body, pose), _model(body).faces, jax.nn.sigmoid(params.color_logits)


def standing_target(body) -> Float[Array, "3"]:
    """Centre of the bounding box of the standing rest body at neutral shape (where views look)."""
    v = avatar_vertices(_zero_params(body), body)
    return 0.5 * (jnp.min(v, 0) + jnp.max(v, 0))


def _zero_params(body) -> AvatarParams:
    m = _model(body)
    P = len(PHENOTYPE_LABELS) if isinstance(body, AnnyBody) else m.num_shape
    V = m.num_vertices
    return AvatarParams(shape=jnp.zeros((P,), jnp.float32), displacements=jnp.zeros((V, 3), jnp.float32),
                        color_logits=jnp.zeros((V, 3), jnp.float32))


# ---------------------------------------------------------------------------------------------------
# Regularisers, each (value, aux).
# ---------------------------------------------------------------------------------------------------
def laplacian_term(D: Float[Array, "V 3"], edges: Int[Array, "E 2"]) -> tuple[Float[Array, ""], dict]:
    """Mean over vertices of ‖D_i − mean_{j∈N(i)} D_j‖² (uniform Laplacian; isolated vertices give 0)."""
    V = D.shape[0]
    a, b = edges[:, 0], edges[:, 1]
    nsum = jax.ops.segment_sum(D[b], a, V) + jax.ops.segment_sum(D[a], b, V)
    ones = jnp.ones(a.shape, D.dtype)
    deg = jax.ops.segment_sum(ones, a, V) + jax.ops.segment_sum(ones, b, V)
    lap = jnp.where(deg[:, None] > 0, D - nsum / jnp.maximum(deg, 1.0)[:, None], 0.0)
    value = jnp.mean(jnp.sum(lap * lap, -1))
    return value, {"laplacian": value}


def displacement_term(D: Float[Array, "V 3"]) -> tuple[Float[Array, ""], dict]:
    """Mean squared displacement length (m²)."""
    value = jnp.mean(jnp.sum(D * D, -1))
    return value, {"displacement_rms_m": jnp.sqrt(value)}


def normal_consistency_term(
    vertices: Float[Array, "V 3"], faces: Int[Array, "F 3"], face_pairs: Int[Array, "P 2"]
) -> tuple[Float[Array, ""], dict]:
    """Mean of 1 − n_a·n_b over faces a, b sharing an edge (unit face normals)."""
    tri = vertices[faces]
    n = jnp.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    # rsqrt(|n|² + ε): finite gradient for (near-)degenerate faces.
    n = n * jax.lax.rsqrt(jnp.sum(n * n, -1, keepdims=True) + 1e-20)
    value = jnp.mean(1.0 - jnp.sum(n[face_pairs[:, 0]] * n[face_pairs[:, 1]], -1))
    return value, {"normal_consistency": value}


def shape_prior_term(shape: Float[Array, "P"]) -> tuple[Float[Array, ""], dict]:
    """‖shape‖² (betas, or phenotype logits: 0 is the neutral body)."""
    value = jnp.sum(shape * shape)
    return value, {"shape_prior": value}


def regularizer_loss(params: AvatarParams, body, topology: MeshTopology, w: AvatarWeights):
    """Weighted sum of the regularisers of ONE avatar (weights applied here, in one place)."""
    with jax.named_scope("loss.avatar_regularizers"):
        l_lap, a1 = laplacian_term(params.displacements, topology.edges)
        l_mag, a2 = displacement_term(params.displacements)
        verts = avatar_vertices(params, body)
        l_nc, a3 = normal_consistency_term(verts, _model(body).faces, topology.face_pairs)
        l_sh, a4 = shape_prior_term(params.shape)
        total = w.laplacian * l_lap + w.displacement * l_mag + w.normal_consistency * l_nc + w.shape_prior * l_sh
        return total, {**a1, **a2, **a3, **a4}


# ---------------------------------------------------------------------------------------------------
# Rendering.
# ---------------------------------------------------------------------------------------------------
def render_avatar(
    params: AvatarParams,
    body,
    cameras: Camera,
    background: Float[Array, "V 3"],
    light: Float[Array, "V 3"],
    *,
    sigma: float,
    shading: str,
    ambient: float,
) -> tuple[Float[Array, "V H W 3"], Float[Array, "V H W"]]:
    """Soft-rasterised views of one standing avatar over solid backgrounds: (rgb, alpha)."""
    with jax.named_scope("render.avatar"):
        verts, faces, albedo = avatar_mesh(params, body)
        vn = vertex_normals(verts, faces)

        def one(cam, bg, l):
            if shading == "lambertian":
                # Per-vertex Lambert (Gouraud): the soft fringe takes the same shading as the surface.
                lum = ambient + (1.0 - ambient) * jnp.maximum(jnp.sum(vn * l[None], -1, keepdims=True), 0.0)
                col = albedo * lum
            else:
                col = albedo
            out = rasterize(verts, faces, col, cam, mode="soft", sigma=sigma, background=bg)
            return out["rgb"], out["alpha"]

        return jax.vmap(one)(cameras, background, light)


# ---------------------------------------------------------------------------------------------------
# init / fit.
# ---------------------------------------------------------------------------------------------------
@optax.inject_hyperparams
def _optimizer(lr_shape, lr_displacement, lr_color):
    """Adam with one step size per parameter group; the step sizes live in the optimiser state
    (`inject_hyperparams`), so `fit` sets them from the traced `AvatarWeights` without recompiling."""

    def scale(updates, state, params=None):
        del params
        return AvatarParams(shape=-lr_shape * updates.shape, displacements=-lr_displacement * updates.displacements,
                            color_logits=-lr_color * updates.color_logits), state

    return optax.chain(optax.scale_by_adam(b1=0.9, b2=0.99, eps=1e-15),
                       optax.GradientTransformation(lambda p: optax.EmptyState(), scale))


def _tx(weights: AvatarWeights) -> optax.GradientTransformation:
    return _optimizer(lr_shape=weights.lr_shape, lr_displacement=weights.lr_displacement, lr_color=weights.lr_color)


def _per_seed(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """The optimiser applied independently to each seed (leading axis) of stacked parameters."""
    return optax.GradientTransformation(jax.vmap(tx.init), jax.vmap(tx.update))


def init(key, body, cfg: AvatarConfig, weights: AvatarWeights | None = None) -> SDSState:
    """Single-seed avatar state: neutral shape, D = 0, grey colours (C = 0.5), fresh Adam moments."""
    _check_body(body)
    del cfg  # every size comes from the body; kept for the stage signature (INTERFACES.md)
    params = _zero_params(body)
    tx = _tx(AvatarWeights.default() if weights is None else weights)
    return SDSState(params=params, opt_state=tx.init(params), step=jnp.zeros((), jnp.int32), key=key)


def init_seeds(keys, body, cfg: AvatarConfig, weights: AvatarWeights | None = None) -> SDSState:
    """States of S seeds (leading axis S), keys (S,)."""
    return jax.vmap(lambda k: init(k, body, cfg, weights))(keys)


def _static_key(cfg: AvatarConfig) -> AvatarConfig:
    """The config with the fields that do not change the compiled step zeroed (cache key)."""
    return dataclasses.replace(cfg, steps=0, log_every=1)


@functools.lru_cache(maxsize=8)
def _sampler(cfg: AvatarConfig):
    """Jitted per-step draw for all seeds: views, backgrounds, lights; returns the next keys too."""

    def draw(keys, target):
        def one(key):
            key, k_v, k_bg, k_l = jax.random.split(key, 4)
            vs = sample_views(k_v, cfg.views, height=cfg.resolution, width=cfg.resolution, target=target,
                              elevation_range=cfg.elevation_range, distance_range=cfg.distance_range,
                              fov_range=cfg.fov_range)
            bg = jax.random.uniform(k_bg, (cfg.views, 3))
            # Light toward the camera, jittered so shading does not always hide the same side.
            to_cam = vs.camera.center_world - target[None]
            l = to_cam / jnp.linalg.norm(to_cam, axis=-1, keepdims=True) + 0.5 * jax.random.normal(k_l, (cfg.views, 3))
            l = l / jnp.linalg.norm(l, axis=-1, keepdims=True)
            c2w = jnp.linalg.inv(vs.camera.T_cam_world)
            return key, vs.camera, bg, l, vs.azimuth_deg, vs.elevation_deg, c2w

        return jax.vmap(one)(keys)

    return jax.jit(draw)


class _GuidanceSlot:
    """A `Guidance` that forwards to whichever guidance `fit` installs for its run.

    The compiled forward/update of the split step depend on the config and array shapes only, never on
    the torch guidance, so one step per config is built and reused across guidances (a new prompt or
    prior does not recompile). Host-side only: nothing here is traced.
    """

    def __init__(self):
        self.target: Guidance | None = None

    @property
    def value_range(self):
        return self.target.value_range

    @property
    def dtype(self):
        return self.target.dtype

    def __call__(self, x_model, *, views, step, generator):
        return self.target(x_model, views=views, step=step, generator=generator)


@functools.lru_cache(maxsize=8)
def _sds_step(cfg: AvatarConfig):
    """The split SDS step for this config (built once; jit caches per body pytree and seed count)."""

    def render_fn(params, batch: AvatarBatch):
        rgb, alpha = jax.vmap(
            lambda p, c, bg, l: render_avatar(p, batch.body, c, bg, l, sigma=cfg.raster_sigma, shading=cfg.shading,
                                              ambient=cfg.ambient)
        )(params, batch.cameras, batch.background, batch.light)
        return rgb, {"alpha_mean": jnp.mean(alpha)}

    def extra_loss_fn(params, batch: AvatarBatch):
        # Sum over seeds: each seed's gradient is its own term's gradient.
        vals, aux = jax.vmap(lambda p: regularizer_loss(p, batch.body, batch.topology, batch.weights))(params)
        return jnp.sum(vals), aux

    # The optimiser's step sizes are placeholders: `fit` writes the traced weights into its state.
    tx = _per_seed(_tx(AvatarWeights.default()))
    slot = _GuidanceSlot()
    step = make_sds_step(render_fn, tx, slot, has_aux=True, extra_loss_fn=extra_loss_fn)[1]
    return step, slot


@functools.partial(jax.jit, static_argnums=2)
def _with_lrs(opt_state, weights: AvatarWeights, S: int):
    # Jitted so the result is laid out like the update's own outputs (eager arrays would make the
    # first update compile a second variant).
    hp = dict(opt_state.hyperparams)
    for k in ("lr_shape", "lr_displacement", "lr_color"):
        hp[k] = jnp.broadcast_to(jnp.asarray(getattr(weights, k), jnp.float32), (S,))
    return opt_state._replace(hyperparams=hp)


def fit(
    state: SDSState,
    body,
    cfg: AvatarConfig,
    weights: AvatarWeights,
    guidance: Guidance,
    *,
    callback: Callable[[int, SDSState, dict], None] | None = None,
) -> tuple[SDSState, list[dict]]:
    """SDS on Θ from `state.step` to `cfg.steps` (all seeds of a stacked state in one torch batch).

    Args:
      state: single-seed state (`init`) or S seeds stacked (`init_seeds`); resumable.
      body: AnnyBody or BodyModel (the same the state was made for).
      guidance: torch-side SDS guidance with T_human (e.g. `priors.guidance.build_guidance`).
      callback: `callback(step, state, info)` every `cfg.log_every` steps and at the last step.
    Returns:
      (state, history): history holds host floats of the logged steps.
    """
    _check_body(body)
    single = state.step.ndim == 0
    st = jax.tree.map(lambda a: a[None], state) if single else state
    S = st.step.shape[0]
    if S == 0:
        raise ValueError("avatar.fit: the state has no seeds")
    steps = onp.asarray(st.step)
    if not (steps == steps[0]).all():
        raise ValueError(f"avatar.fit: all seeds must be at the same step, got {steps.tolist()}")
    if st.params.displacements.shape[1] != _model(body).num_vertices:
        raise ValueError(f"avatar.fit: the state has {st.params.displacements.shape[1]} vertices, the body "
                         f"{_model(body).num_vertices}")
    step_fn, slot = _sds_step(_static_key(cfg))
    slot.target = guidance
    draw = _sampler(_static_key(cfg))
    target = standing_target(body)
    topo = mesh_topology(onp.asarray(_model(body).faces))
    # Committed device arrays, like the jitted step's outputs: eager arrays from `init` would make the
    # first step compile a second variant of the forward and update.
    st = jax.device_put(st, jax.devices()[0])
    opt_state = _with_lrs(st.opt_state, weights, S)
    params, keys = st.params, st.key
    history: list[dict] = []
    start = int(steps[0])
    # Step i+1's draw is dispatched before step i runs (it depends on the keys only): reading its views back
    # then never waits for step i's update, so the GPU does not idle while the host prepares a step.
    pending = draw(keys, target) if start < cfg.steps else None
    for i in range(start, cfg.steps):
        keys, cams, bg, light, az, el, c2w = pending
        if i + 1 < cfg.steps:
            pending = draw(keys, target)
        batch = AvatarBatch(cameras=cams, background=bg, light=light, body=body, topology=topo, weights=weights)
        views = ViewInfo(azimuth_deg=onp.asarray(az).reshape(-1), elevation_deg=onp.asarray(el).reshape(-1),
                         camera_to_world=onp.asarray(c2w).reshape(-1, 4, 4), views_per_sample=cfg.views_per_sample)
        # The bridge's state: stacked params and per-seed optimiser state, one step counter, and a key
        # (the first seed's) that only seeds torch's noise for this step's whole batch.
        inner = SDSState(params=params, opt_state=opt_state, step=jnp.asarray(i, jnp.int32), key=keys[0])
        inner, info = step_fn(inner, batch, views)
        params, opt_state = inner.params, inner.opt_state
        done = i + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            rec = {"step": done, **{k: float(v) for k, v in info.items() if k not in ("aux", "extra_loss")},
                   "regularizers": float(info["extra_loss"]), "alpha_mean": float(info["aux"]["alpha_mean"])}
            history.append(rec)
            if callback is not None:
                cur = SDSState(params=params, opt_state=opt_state, step=jnp.full((S,), done, jnp.int32), key=keys)
                callback(done, jax.tree.map(lambda a: a[0], cur) if single else cur, rec)
    final_step = max(start, cfg.steps)
    out = SDSState(params=params, opt_state=opt_state, step=jnp.full((S,), final_step, jnp.int32), key=keys)
    return (jax.tree.map(lambda a: a[0], out) if single else out), history
