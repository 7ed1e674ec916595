"""Coarse HOI NeRF Φ̂ (paper Sec. 4 "Anchor NeRF generation"): SDS (Eq. 1) with the whole prompt T_inter.

Each iteration renders `views` random cameras forming one MVDream group (same elevation, distance and
field of view, azimuths 360/views apart from a random start; Sec. 5: IF + MVDream guidance), shaded
with a random light near the camera (lambertian) or by albedo alone (DreamFusion Sec. 3.1; albedo only
during the first `albedo_steps`), over a random background colour. The images of all seeds and views go
to the guidance as one torch batch (bridge.make_sds_step: jitted render + vjp → torch SDS gradient →
jitted pullback + Adam), and the text-to-3D regularisers ride on the same pullback:

* opacity sparsity  L_sparse = Σ_views mean_pixels α                      (threestudio lambda_sparsity)
* opacity entropy   L_opaque = Σ_views mean_pixels H(α), H the binary entropy (lambda_opaque)
* orientation       L_orient = Σ_views mean_rays Σ_i w_i max(0, n_i·d)²    (DreamFusion, when normals exist)

Their gradient is injected into the vjp through an identity with a custom backward rule
(`_inject_loss`): the pullback of the image cotangent g returns Jᵀg + ∇(Σ w_k L_k), so no second render.

Multi-seed: the state of S seeds is the single-seed state with a leading axis S (`init_seeds`, i.e.
jax.vmap of `init`); the render and the optimiser are vmapped over that axis, the images of all seeds
share the torch batch. Keys: the state's key never changes; step i of seed s draws from
fold_in(key_s, i), so a run interrupted at any step resumes bit-identically (`fit(..., until=n)`).
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
from jaxtyping import Array, Float

from anchorhoi_jax.geometry.cameras import (
    Camera,
    generate_rays,
    orbit_cameras,
    ray_z_scale,
    sample_views,
)
from anchorhoi_jax.nerf import field as nerf_field
from anchorhoi_jax.nerf.shading import sample_light
from anchorhoi_jax.priors.bridge import SDSState, ViewInfo, make_sds_step
from anchorhoi_jax.render.volume import RenderConfig, render_nerf, render_rays

__all__ = [
    "CameraSampling",
    "ShadingConfig",
    "CoarseConfig",
    "CoarseWeights",
    "init",
    "init_seeds",
    "fit",
    "render_canonical",
    "sparsity_loss",
    "opacity_entropy_loss",
    "orientation_loss",
    "num_seed_axes",
]


# ----------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------


def _check_range(owner: str, name: str, r, lo=None, hi=None):
    if len(r) != 2 or not r[0] <= r[1]:
        raise ValueError(f"{owner}.{name} must be (low, high) with low <= high, got {tuple(r)}")
    if (lo is not None and r[0] < lo) or (hi is not None and r[1] > hi):
        raise ValueError(f"{owner}.{name} must lie in [{lo}, {hi}], got {tuple(r)}")


@dataclasses.dataclass(frozen=True)
class CameraSampling:
    """Random SDS views (geometry.cameras.sample_views ranges; degrees, metres).

    mvdream_group: the views of one step share elevation, distance and fov, with azimuths evenly
      spaced from a random start (the 4-view layout MVDream was trained on); otherwise independent.
    target: the look-at point (world); stages that frame something else (the object) override it.
    """

    elevation_range: tuple[float, float] = (-10.0, 45.0)
    azimuth_range: tuple[float, float] = (-180.0, 180.0)
    distance_range: tuple[float, float] = (2.5, 3.5)
    fov_range: tuple[float, float] = (35.0, 45.0)
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)
    jitter_target: float = 0.0
    mvdream_group: bool = True

    def __post_init__(self):
        _check_range("CameraSampling", "elevation_range", self.elevation_range, -90.0, 90.0)
        _check_range("CameraSampling", "azimuth_range", self.azimuth_range)
        _check_range("CameraSampling", "distance_range", self.distance_range, 1e-3, None)
        _check_range("CameraSampling", "fov_range", self.fov_range, 1.0, 179.0)
        if self.jitter_target < 0:
            raise ValueError(f"CameraSampling.jitter_target must be >= 0, got {self.jitter_target}")


@dataclasses.dataclass(frozen=True)
class ShadingConfig:
    """Light / albedo / background sampling (DreamFusion Sec. 3.1); used when render.shading is lambertian.

    albedo_steps: iterations rendered with albedo only (no light) at the start.
    albedo_prob: afterwards, the probability that a view is rendered by albedo alone.
    ambient: ambient light fraction of the lambertian views.
    light_spread: the light is at camera + spread·|camera − target|·N(0, I).
    background: "random" (uniform colour per view), "white" or "black".
    """

    albedo_steps: int = 500
    albedo_prob: float = 0.2
    ambient: float = 0.1
    light_spread: float = 0.5
    background: Literal["random", "white", "black"] = "random"

    def __post_init__(self):
        if self.albedo_steps < 0:
            raise ValueError(f"ShadingConfig.albedo_steps must be >= 0, got {self.albedo_steps}")
        if not 0.0 <= self.albedo_prob <= 1.0:
            raise ValueError(f"ShadingConfig.albedo_prob must be in [0, 1], got {self.albedo_prob}")
        if not 0.0 <= self.ambient <= 1.0:
            raise ValueError(f"ShadingConfig.ambient must be in [0, 1], got {self.ambient}")
        if self.light_spread < 0:
            raise ValueError(f"ShadingConfig.light_spread must be >= 0, got {self.light_spread}")
        if self.background not in ("random", "white", "black"):
            raise ValueError(f"ShadingConfig.background must be 'random', 'white' or 'black', got {self.background!r}")


@dataclasses.dataclass(frozen=True)
class CoarseConfig:
    """Static settings of the coarse stage (paper Sec. 5 defaults: 3000 iterations, Adam lr 0.01).

    field: the HOI NeRF (a 2 m box around the origin holds a standing human and the object).
    resolution: render size in pixels (IF stage I works at 64; MVDream's encoder upsamples to 256).
    lr_schedule: "constant" (paper) or "cosine" (to lr·lr_final_ratio at `steps`).
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
    camera: CameraSampling = CameraSampling()
    shading: ShadingConfig = ShadingConfig()
    lr_schedule: Literal["constant", "cosine"] = "constant"
    lr_final_ratio: float = 0.1

    def __post_init__(self):
        if self.resolution < 4:
            raise ValueError(f"CoarseConfig.resolution must be >= 4, got {self.resolution}")
        if self.steps < 1:
            raise ValueError(f"CoarseConfig.steps must be >= 1, got {self.steps}")
        if self.views < 1:
            raise ValueError(f"CoarseConfig.views must be >= 1, got {self.views}")
        if self.log_every < 1:
            raise ValueError(f"CoarseConfig.log_every must be >= 1, got {self.log_every}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"CoarseConfig.lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if not 0.0 < self.lr_final_ratio <= 1.0:
            raise ValueError(f"CoarseConfig.lr_final_ratio must be in (0, 1], got {self.lr_final_ratio}")


@struct.dataclass
class CoarseWeights:
    """Traced loss weights and step size (a sweep never recompiles).

    Regulariser magnitudes follow threestudio's (sum over views of per-pixel means, next to an SDS
    gradient that is not divided by the batch).
    """

    lr: Float[Array, ""] = 1e-2
    sparsity: Float[Array, ""] = 1.0
    opaque: Float[Array, ""] = 0.0
    orient: Float[Array, ""] = 100.0

    @classmethod
    def default(cls, **kw) -> "CoarseWeights":
        return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), cls(**kw))


# ----------------------------------------------------------------------------------------------
# Regularisers (each its own function returning (value, aux))
# ----------------------------------------------------------------------------------------------


def sparsity_loss(alpha: Float[Array, "*v H W"]) -> tuple[Float[Array, ""], dict]:
    """Σ over views of the mean opacity (pushes empty space to be empty)."""
    with jax.named_scope("loss.sparsity"):
        v = jnp.sum(jnp.mean(alpha, axis=(-2, -1)))
        return v, {"sparsity": v}


def opacity_entropy_loss(alpha: Float[Array, "*v H W"], eps: float = 1e-5) -> tuple[Float[Array, ""], dict]:
    """Σ over views of the mean binary entropy −a log a − (1−a) log(1−a) (pushes opacity to 0 or 1)."""
    with jax.named_scope("loss.opacity_entropy"):
        a = jnp.clip(alpha, eps, 1.0 - eps)
        h = -(a * jnp.log(a) + (1.0 - a) * jnp.log(1.0 - a))
        v = jnp.sum(jnp.mean(h, axis=(-2, -1)))
        return v, {"opaque": v}


def orientation_loss(
    weights: Float[Array, "*v R N"], normals: Float[Array, "*v R N 3"], directions: Float[Array, "*v R 3"]
) -> tuple[Float[Array, ""], dict]:
    """DreamFusion's orientation loss: Σ over views of mean_rays Σ_i w_i max(0, n_i·d)² (normals facing away)."""
    with jax.named_scope("loss.orientation"):
        nd = jnp.sum(normals * directions[..., None, :], -1)
        per_ray = jnp.sum(jax.lax.stop_gradient(weights) * jnp.maximum(nd, 0.0) ** 2, -1)
        v = jnp.sum(jnp.mean(per_ray, axis=-1))
        return v, {"orient": v}


@jax.custom_vjp
def _inject_loss(images, loss):
    """Identity on `images`; its backward rule adds ∂loss/∂(inputs of loss) with cotangent 1.

    Lets the regularisers' gradient ride on the SDS pullback: pullback(g) = Jᵀg + ∇loss.
    """
    return images


def _inject_fwd(images, loss):
    return images, jnp.zeros_like(loss)


def _inject_bwd(res, g):
    return g, jnp.ones_like(res)


_inject_loss.defvjp(_inject_fwd, _inject_bwd)


# ----------------------------------------------------------------------------------------------
# Random views, shading and background for one seed and one step
# ----------------------------------------------------------------------------------------------


@struct.dataclass
class StepBatch:
    """Per-seed inputs of one SDS iteration (leading view axis V)."""

    camera: Camera
    light_dir: Float[Array, "V 3"]
    ambient: Float[Array, "V"]
    background: Float[Array, "V 3"]
    azimuth_deg: Float[Array, "V"]
    elevation_deg: Float[Array, "V"]
    camera_to_world: Float[Array, "V 4 4"]
    key: Array


def sample_step_batch(key, step, *, n_views: int, resolution: int, camera: CameraSampling, shading: ShadingConfig,
                      target: Float[Array, "3"] | None = None) -> StepBatch:
    """Views, lights, ambient (1 = albedo only) and backgrounds for one seed at one step (pure)."""
    k_view, k_light, k_alb, k_bg, k_render = jax.random.split(key, 5)
    tgt = jnp.asarray(camera.target, jnp.float32) if target is None else target
    rng = dict(elevation_range=camera.elevation_range, azimuth_range=camera.azimuth_range,
               distance_range=camera.distance_range, fov_range=camera.fov_range)
    if camera.mvdream_group:
        base = sample_views(k_view, 1, height=resolution, width=resolution, target=tgt, **rng)
        cams = orbit_cameras(n_views, height=resolution, width=resolution, target=tgt, distance=base.distance[0],
                             elevation_deg=base.elevation_deg[0], fov_deg=base.fov_deg[0],
                             azimuth_start_deg=base.azimuth_deg[0])
        az = base.azimuth_deg[0] + 360.0 * jnp.arange(n_views, dtype=jnp.float32) / n_views
        az = jnp.mod(az + 180.0, 360.0) - 180.0
        el = jnp.broadcast_to(base.elevation_deg[0], (n_views,))
    else:
        vs = sample_views(k_view, n_views, height=resolution, width=resolution, target=tgt,
                          jitter_target=camera.jitter_target, **rng)
        cams, az, el = vs.camera, vs.azimuth_deg, vs.elevation_deg
    centers = cams.center_world
    lights = jax.vmap(lambda k, c: sample_light(k, c, tgt, spread=shading.light_spread))(
        jax.random.split(k_light, n_views), centers)
    albedo_only = (step < shading.albedo_steps) | (jax.random.uniform(k_alb, (n_views,)) < shading.albedo_prob)
    ambient = jnp.where(albedo_only, 1.0, shading.ambient).astype(jnp.float32)
    if shading.background == "random":
        bg = jax.random.uniform(k_bg, (n_views, 3))
    else:
        bg = jnp.full((n_views, 3), 1.0 if shading.background == "white" else 0.0, jnp.float32)
    c2w = jnp.linalg.inv(cams.T_cam_world)
    return StepBatch(camera=cams, light_dir=lights, ambient=ambient, background=bg, azimuth_deg=az,
                     elevation_deg=el, camera_to_world=c2w, key=k_render)


def views_info(batch: StepBatch, views_per_sample: int) -> ViewInfo:
    """Host-side ViewInfo of a (possibly seed-stacked) batch, flattened like the torch batch."""
    az, el, c2w = jax.device_get((batch.azimuth_deg, batch.elevation_deg, batch.camera_to_world))
    return ViewInfo(azimuth_deg=onp.asarray(az, onp.float64).reshape(-1),
                    elevation_deg=onp.asarray(el, onp.float64).reshape(-1),
                    camera_to_world=onp.asarray(c2w, onp.float64).reshape(-1, 4, 4),
                    views_per_sample=views_per_sample)


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------


def render_view(params, field_cfg: nerf_field.FieldConfig, render_cfg: RenderConfig, camera: Camera, light_dir,
                ambient, background, key):
    """One training view: rgb over `background` (H, W, 3), alpha (H, W), and the orientation term (scalar)."""
    H, W = camera.height, camera.width
    o, d = generate_rays(camera)
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    lit = render_cfg.shading != "albedo"
    out = render_rays(params, field_cfg, o, d, key, render_cfg=render_cfg, background=background,
                      light_dir=light_dir if lit else None, ambient=ambient, z_scale=ray_z_scale(camera, d))
    if out["sample_normals"] is None:
        orient = jnp.zeros((), jnp.float32)
    else:
        orient, _ = orientation_loss(out["weights"], out["sample_normals"], d)
    return out["rgb"].reshape(H, W, 3), out["alpha"].reshape(H, W), orient


def render_batch(params, field_cfg, render_cfg, batch: StepBatch):
    """All views of one seed: images (V, H, W, 3), alpha (V, H, W), orientation term (V,)."""
    keys = jax.random.split(batch.key, batch.ambient.shape[0])
    return jax.vmap(lambda c, l, a, b, k: render_view(params, field_cfg, render_cfg, c, l, a, b, k))(
        batch.camera, batch.light_dir, batch.ambient, batch.background, keys)


def regularizers(alpha, orient_per_view, weights: CoarseWeights):
    """Weighted sum of the regularisers of one seed (value, aux)."""
    sp, a1 = sparsity_loss(alpha)
    op, a2 = opacity_entropy_loss(alpha)
    ori = jnp.sum(orient_per_view)
    total = weights.sparsity * sp + weights.opaque * op + weights.orient * ori
    return total, {**a1, **a2, "orient": ori, "reg_total": total}


def num_seed_axes(params, field_cfg: nerf_field.FieldConfig) -> int:
    """How many leading (seed) axes `params` carries beyond a single field's parameters."""
    ref = jax.tree.leaves(jax.eval_shape(lambda k: nerf_field.init(k, field_cfg), jax.random.key(0)))
    got = jax.tree.leaves(params)
    n = got[0].ndim - ref[0].ndim if got else -1

    def bad(a, b):
        return a.ndim - b.ndim != n or a.shape[n:] != b.shape or a.shape[:n] != got[0].shape[:n]

    if len(got) != len(ref) or n < 0 or any(bad(a, b) for a, b in zip(got, ref)):
        shapes, want = [tuple(a.shape) for a in got][:4], [tuple(b.shape) for b in ref][:4]
        raise ValueError(f"params do not match the field config: leaves {shapes}... vs {want}...")
    return n


@functools.lru_cache(maxsize=None)
def _canonical_fn(field_cfg, render_cfg, n_seed_axes: int, chunk):
    """Views and seeds are rendered one after another (lax.map), not vmapped: a vmap would batch every
    view's and seed's ray chunks into one program, so memory grew with seeds × views × chunk (4 seeds × 8
    views at 256 px needed 72 GB on the H100); sequentially it is bounded by one chunk."""

    def one_view(params, camera, key):
        out = render_nerf(params, field_cfg, camera, key, render_cfg=render_cfg, background=0.0, chunk=chunk)
        return out["rgb"], out["alpha"]

    def one(params, cameras, key):
        if key is None:
            return jax.lax.map(lambda c: one_view(params, c, None), cameras)
        keys = jax.random.split(key, cameras.K.shape[0])
        return jax.lax.map(lambda ck: one_view(params, *ck), (cameras, keys))

    f = one
    for _ in range(n_seed_axes):
        f = (lambda g: lambda params, cameras, key: jax.lax.map(lambda p: g(p, cameras, key), params))(f)
    return jax.jit(f)


def render_canonical(params, cfg, cameras: Camera, key=None, *, chunk: int | None = None):
    """Albedo renders of canonical views over black: rgb premultiplied (..., V, H, W, 3), alpha (..., V, H, W).

    `params` may carry leading seed axes (rendered with the same cameras and key); `cfg` is any config
    with `field` and `render` (Coarse / Object). key None: deterministic sample positions.
    """
    rcfg = dataclasses.replace(cfg.render, shading="albedo", normals=False)
    fn = _canonical_fn(cfg.field, rcfg, num_seed_axes(params, cfg.field), chunk)
    return fn(params, cameras, key)


# ----------------------------------------------------------------------------------------------
# Optimiser, state
# ----------------------------------------------------------------------------------------------


def _optimizer(steps: int, schedule: str, final_ratio: float) -> optax.GradientTransformation:
    """Adam (Instant-NGP β2/ε for hash grids) · lr schedule shape · (−lr), lr a traced hyper-parameter."""
    if schedule == "cosine":
        shape = optax.cosine_decay_schedule(1.0, steps, alpha=final_ratio)
    else:
        shape = optax.constant_schedule(1.0)

    def make(lr):
        return optax.chain(optax.scale_by_adam(b1=0.9, b2=0.99, eps=1e-15), optax.scale_by_schedule(shape),
                           optax.scale(-lr))

    return optax.inject_hyperparams(make)(lr=1e-2)


def _seeded(opt: optax.GradientTransformation) -> optax.GradientTransformation:
    """The same optimiser applied independently to every seed of stacked parameters."""
    return optax.GradientTransformation(jax.vmap(opt.init), jax.vmap(opt.update))


def _with_lr(opt_state, lr):
    hp = dict(opt_state.hyperparams)
    hp["lr"] = jnp.broadcast_to(jnp.asarray(lr, jnp.float32), jnp.shape(hp["lr"]))
    return opt_state._replace(hyperparams=hp)


@functools.lru_cache(maxsize=None)
def _init_fn(field_cfg, steps: int, schedule: str, final_ratio: float):
    def f(key):
        k_field, k_run = jax.random.split(key)
        params = nerf_field.init(k_field, field_cfg)
        opt = _optimizer(steps, schedule, final_ratio)
        return SDSState(params=params, opt_state=opt.init(params), step=jnp.zeros((), jnp.int32), key=k_run)

    return jax.jit(f)  # one compiled program instead of dozens of eager dispatches


def init(key, cfg: CoarseConfig) -> SDSState:
    """Fresh coarse NeRF (density blob at the field centre) and Adam state for one seed."""
    return _init_fn(cfg.field, cfg.steps, cfg.lr_schedule, cfg.lr_final_ratio)(key)


def init_seeds(keys, cfg: CoarseConfig) -> SDSState:
    """`init` vmapped over a batch of keys: the S-seed state (leading axis S on every leaf)."""
    return jax.vmap(lambda k: init(k, cfg))(keys)


# ----------------------------------------------------------------------------------------------
# The SDS loop shared by the coarse and object stages
# ----------------------------------------------------------------------------------------------


class _GuidanceProxy:
    """Stable guidance object for a cached compiled step; the real guidance is bound per fit call."""

    value_range = (-1.0, 1.0)
    dtype = None
    target = None

    def bind(self, guidance):
        self.target = guidance
        self.value_range = tuple(guidance.value_range)
        self.dtype = guidance.dtype

    def __call__(self, x_model, *, views, step, generator):
        return self.target(x_model, views=views, step=step, generator=generator)


@dataclasses.dataclass
class SDSProgram:
    """Compiled pieces of one stage's SDS loop (cached per static config and seed layout)."""

    proxy: _GuidanceProxy
    step: Callable  # bridge step(state, batch, views)
    sample: Callable  # jitted (key(s), step, extra) -> (batch pytree, inner key, ViewInfo arrays)
    views_per_sample: int
    seeded: bool


def run_sds_loop(program: SDSProgram, state: SDSState, weights, guidance, *, total_steps: int, log_every: int,
                 sample_extra=None, callback=None, until: int | None = None, lr=None):
    """Drive `program` from state.step to min(until, total_steps); shared by the coarse and object stages.

    Returns (state, history): one dict per log step with the guidance's host floats and the mean over
    seeds of the render aux (regulariser values).
    """
    seeded = program.seeded
    step_arr = onp.asarray(jax.device_get(state.step))
    if seeded and step_arr.ndim != 1:
        raise ValueError(f"seeded state expected (step of shape (S,)), got step shape {step_arr.shape}")
    if seeded and not (step_arr == step_arr[0]).all():
        raise ValueError(f"all seeds must be at the same step to fit together, got {step_arr.tolist()}")
    start = int(step_arr.reshape(-1)[0])
    stop = total_steps if until is None else min(int(until), total_steps)
    opt_state = state.opt_state if lr is None else _with_lr(state.opt_state, lr)
    inner = SDSState(params=state.params, opt_state=opt_state, step=jnp.zeros((), jnp.int32),
                     key=state.key[0] if seeded else state.key)
    # Commit the state to its device: uncommitted inputs (fresh from eager code) and the committed
    # outputs of `update` would otherwise compile the step twice.
    device = next(iter(jax.tree.leaves(state.params)[0].devices()))
    inner = jax.device_put(inner, device)
    program.proxy.bind(guidance)
    history: list[dict[str, Any]] = []
    pending = program.sample(state.key, jnp.int32(start), sample_extra) if start < stop else None
    try:
        for i in range(start, stop):
            batch, inner_key, view_arrays = pending
            views = ViewInfo(*(onp.asarray(a, onp.float64).reshape(s) for a, s in
                               zip(jax.device_get(view_arrays), ((-1,), (-1,), (-1, 4, 4)))),
                             views_per_sample=program.views_per_sample)
            if i + 1 < stop:
                # The next step's views depend only on the key: dispatched now, they run on the GPU
                # before this step's render, so reading them back next iteration never waits for
                # this step's update (the host sync per step is otherwise a full pipeline drain).
                pending = program.sample(state.key, jnp.int32(i + 1), sample_extra)
            inner = inner.replace(step=jnp.int32(i), key=inner_key)
            inner, info = program.step(inner, (batch, weights), views)
            done = i + 1
            if done % log_every == 0 or done == stop:
                aux = jax.device_get(info.pop("aux", {}))
                entry = {"step": done, **{k: float(v) for k, v in info.items()},
                         **{k: float(onp.mean(v)) for k, v in aux.items()}}
                history.append(entry)
                if callback is not None:
                    callback(done, _outer(state, inner, done, seeded), entry)
    finally:
        program.proxy.target = None
    return _outer(state, inner, max(stop, start), seeded), history


def _outer(state: SDSState, inner: SDSState, step: int, seeded: bool) -> SDSState:
    s = jnp.full(state.step.shape, step, jnp.int32)
    return SDSState(params=inner.params, opt_state=inner.opt_state, step=s, key=state.key)


@functools.lru_cache(maxsize=None)
def _coarse_program(cfg: CoarseConfig, seeded: bool) -> SDSProgram:
    fcfg, rcfg = cfg.field, cfg.render

    def render_one(params, batch: StepBatch, weights: CoarseWeights):
        images, alpha, orient = render_batch(params, fcfg, rcfg, batch)
        reg, aux = regularizers(alpha, orient, weights)
        return images, reg, aux

    def render_fn(params, batch_and_weights):
        batch, weights = batch_and_weights
        f = jax.vmap(render_one, in_axes=(0, 0, None)) if seeded else render_one
        images, reg, aux = f(params, batch, weights)
        # Regulariser gradient enters the SDS pullback (one render, one vjp).
        return _inject_loss(images, jnp.sum(reg)), aux

    opt = _optimizer(cfg.steps, cfg.lr_schedule, cfg.lr_final_ratio)
    proxy = _GuidanceProxy()
    _, step = make_sds_step(render_fn, _seeded(opt) if seeded else opt, proxy, has_aux=True)

    def sample_one(key, i):
        return sample_step_batch(jax.random.fold_in(key, i), i, n_views=cfg.views, resolution=cfg.resolution,
                                 camera=cfg.camera, shading=cfg.shading)

    def sample(keys, i, _extra):
        batch = jax.vmap(sample_one, in_axes=(0, None))(keys, i) if seeded else sample_one(keys, i)
        inner_key = jax.random.fold_in(keys[0] if seeded else keys, i)
        inner_key = jax.random.fold_in(inner_key, 0x5D5)  # torch stream, distinct from the view streams
        return batch, inner_key, (batch.azimuth_deg, batch.elevation_deg, batch.camera_to_world)

    return SDSProgram(proxy=proxy, step=step, sample=jax.jit(sample), views_per_sample=cfg.views, seeded=seeded)


def fit(state: SDSState, cfg: CoarseConfig, weights: CoarseWeights, guidance, *, callback=None,
        until: int | None = None) -> tuple[SDSState, list[dict]]:
    """SDS with T_inter (Eq. 1) from state.step to cfg.steps (or `until`), any number of leading seeds.

    Args:
      state: from `init` (one seed) or `init_seeds` (leading axis S), possibly a checkpoint of either.
      guidance: a bridge.Guidance for T_inter (priors.guidance.build_guidance).
      callback: callback(step, state, info) every cfg.log_every steps and at the end.
      until: stop after this step (resume later with the returned state; the lr schedule and the random
        streams depend only on the step, so resuming is bit-identical to an uninterrupted run).
    Returns:
      (state, history): history has one dict per log step (guidance diagnostics, regulariser values).
    """
    seeded = num_seed_axes(state.params, cfg.field) == 1
    if num_seed_axes(state.params, cfg.field) > 1:
        raise ValueError("coarse.fit: at most one leading seed axis is supported")
    program = _coarse_program(cfg, seeded)
    return run_sds_loop(program, state, weights, guidance, total_steps=cfg.steps, log_every=cfg.log_every,
                        callback=callback, until=until, lr=weights.lr)
