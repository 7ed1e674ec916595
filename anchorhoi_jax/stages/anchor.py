"""Anchor NeRF extraction (paper Sec. 4, "Anchor NeRF generation"): the human-only NeRF Φ_A.

Given the coarse, entangled human-object NeRF Φ̂ (stages/coarse.py, SDS with T_inter), Φ_A is fitted
by the multi-view feature alignment loss ∇_{Φ_A} L_align(F(x), F(x̂)) (losses/align.py): x̂ are renders
of Φ̂ from V views, F masks them with the human segmentation (the segmentation prior on those renders),
and x are renders of Φ_A from the same views. Φ_A starts as a copy of Φ̂ (the human is already there;
the alignment removes everything the masks call non-human), which needs far fewer steps than
fitting from an empty field.

Occluders (optional, `alignment_rays(..., depth=, occluder_margin=)`): with 2D masks alone, every ray
through a pixel the segmentation calls non-human is made transparent over its whole length, which also
erases the human behind the occluder on that ray -- hands and forearms inside or behind a held box, legs
behind a pushed crate -- although other views see them. Given the coarse render's depth, such a ray is
made transparent only up to the occluder's surface plus a margin (the anchor render is truncated there,
`render_rays(depth_limit=...)`), so what lies behind it is left to the views that see it. Without depth
the rays are the paper's 2D-masked ones (depth limit +inf everywhere).

Pure functions over pytrees; state is `params, opt_state, step, key`; `update` runs K steps in one
`lax.scan`; vmap over seeds by mapping `init`/`update` over stacked coarse fields.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jaxtyping import Array, Bool, Float

from anchorhoi_jax.geometry.cameras import Camera, generate_rays, ray_z_scale
from anchorhoi_jax.losses.align import feature_alignment_loss, masked_rgb_features
from anchorhoi_jax.nerf import field as nerf_field
from anchorhoi_jax.render.volume import RenderConfig, render_nerf_views, render_rays


@dataclasses.dataclass(frozen=True)
class AnchorConfig:
    """Static settings of the anchor extraction (changing one recompiles)."""

    steps_per_call: int = 100
    n_rays: int = 4096
    render: RenderConfig = RenderConfig(n_coarse=64, n_fine=64)

    def __post_init__(self):
        if self.steps_per_call < 1 or self.n_rays < 1:
            raise ValueError(f"AnchorConfig: need steps_per_call >= 1 and n_rays >= 1, got {self.steps_per_call}, {self.n_rays}")


@struct.dataclass
class AnchorWeights:
    """Traced weights (a sweep never recompiles). L_align is the only term, and Adam is invariant to a
    loss scale, so the step size is the only weight."""

    lr: Float[Array, ""] = 1e-2

    @classmethod
    def default(cls) -> "AnchorWeights":
        return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), cls())


@struct.dataclass
class AlignmentRays:
    """All pixels of the V alignment views, flattened: rays and the coarse render with its human mask."""

    origins: Float[Array, "P 3"]
    directions: Float[Array, "P 3"]
    rgb_premult: Float[Array, "P 3"]  # coarse render Ĉ (premultiplied, i.e. over black)
    alpha: Float[Array, "P"]  # coarse opacity α̂
    mask: Float[Array, "P"]  # human mask M in [0, 1]
    z_scale: Float[Array, "P"]  # camera depth per unit ray distance (geometry.cameras.ray_z_scale)
    depth_limit: Float[Array, "P"]  # camera depth where the anchor render of the ray stops (+inf: whole ray)


@struct.dataclass
class AnchorState:
    params: object
    opt_state: optax.OptState
    step: Array
    key: Array


_optimizer = optax.scale_by_adam(b1=0.9, b2=0.99, eps=1e-15)  # Instant-NGP's Adam settings


def render_views(params, cfg: nerf_field.FieldConfig, cameras: Camera, key, render_cfg: RenderConfig,
                 chunk: int | None = None):
    """Premultiplied colour (V,H,W,3) and opacity (V,H,W) of a field over a black background.

    `chunk` (static) renders each view's rays in sequential chunks to bound memory (full-resolution
    views evaluate the field at V·H·W·samples points)."""
    out = render_nerf_views(params, cfg, cameras, key, render_cfg=render_cfg, background=0.0, chunk=chunk)
    return out["rgb"], out["alpha"]


def alignment_rays(
    cameras: Camera,
    rgb_premult: Float[Array, "V H W 3"],
    alpha: Float[Array, "V H W"],
    human_mask: Float[Array, "V H W"] | Bool[Array, "V H W"],
    *,
    depth: Float[Array, "V H W"] | None = None,
    occluder_margin: float | Float[Array, ""] | None = None,
) -> AlignmentRays:
    """Flatten the coarse renders x̂ and their human masks into per-pixel alignment targets.

    depth: the coarse render's expected camera depth Σ w·z over black (render_nerf's `depth`, ≈ α̂ times the
      surface depth). With `occluder_margin` (metres), an occluder ray -- human mask < 0.5 and α̂ >= 0.5,
      i.e. something opaque that is not human -- is made transparent only up to its surface depth
      depth/α̂ plus the margin: the human behind it (hands in a held box) survives when another view sees
      it. Without them, every ray is whole (the paper's 2D-masked alignment).
    """
    V, H, W = alpha.shape
    if rgb_premult.shape != (V, H, W, 3) or human_mask.shape != (V, H, W):
        raise ValueError(
            f"alignment_rays: expected rgb (V,H,W,3) and mask (V,H,W) matching alpha {tuple(alpha.shape)}, "
            f"got {tuple(rgb_premult.shape)} and {tuple(human_mask.shape)}"
        )
    if (cameras.height, cameras.width) != (H, W) or cameras.K.shape[0] != V:
        raise ValueError(f"alignment_rays: cameras ({cameras.K.shape[0]} of {cameras.height}x{cameras.width}) "
                         f"do not match the renders ({V} of {H}x{W})")
    if (depth is None) != (occluder_margin is None):
        raise ValueError("alignment_rays: depth and occluder_margin go together (both or neither)")
    if depth is not None and depth.shape != (V, H, W):
        raise ValueError(f"alignment_rays: depth {tuple(depth.shape)} must match alpha {tuple(alpha.shape)}")
    o, d = jax.vmap(generate_rays)(cameras)
    zs = jax.vmap(ray_z_scale)(cameras, d)
    mask = jnp.asarray(human_mask, jnp.float32)
    if depth is None:
        limit = jnp.full((V, H, W), jnp.inf, alpha.dtype)
    else:
        occluder = (mask < 0.5) & (alpha >= 0.5)
        surface = depth / jnp.maximum(alpha, 0.5)  # expected termination depth of the (opaque) ray
        limit = jnp.where(occluder, surface + jnp.asarray(occluder_margin, alpha.dtype), jnp.inf)
    return AlignmentRays(
        origins=o.reshape(-1, 3),
        directions=d.reshape(-1, 3),
        rgb_premult=rgb_premult.reshape(-1, 3),
        alpha=alpha.reshape(-1),
        mask=mask.reshape(-1),
        z_scale=zs.reshape(-1),
        depth_limit=limit.reshape(-1),
    )


def init(key, coarse_params) -> AnchorState:
    """Φ_A ← Φ̂ (a copy of the coarse field), fresh Adam moments."""
    params = jax.tree.map(jnp.array, coarse_params)
    return AnchorState(params=params, opt_state=_optimizer.init(params), step=jnp.zeros((), jnp.int32), key=key)


def align_loss(params, field_cfg, render_cfg, batch: AlignmentRays, key) -> tuple[Float[Array, ""], dict]:
    """L_align on a ray batch: anchor render over a random background vs F(coarse render) over the same."""
    k_bg, k_r = jax.random.split(key)
    bg = jax.random.uniform(k_bg, batch.rgb_premult.shape, batch.rgb_premult.dtype)
    # occluder rays render only up to the occluder (+ margin): behind it this view says nothing
    out = render_rays(params, field_cfg, batch.origins, batch.directions, k_r, render_cfg=render_cfg, background=bg,
                      z_scale=batch.z_scale, depth_limit=batch.depth_limit)
    target = masked_rgb_features(batch.rgb_premult, batch.alpha, batch.mask, bg)
    value, aux = feature_alignment_loss(out["rgb"], target)
    aux["alpha_err"] = jnp.mean(jnp.abs(out["alpha"] - batch.mask * batch.alpha))
    return value, aux


def make_update(field_cfg: nerf_field.FieldConfig, cfg: AnchorConfig):
    """`update(state, rays, weights) -> (state, aux)`: `cfg.steps_per_call` Adam steps in one lax.scan."""

    def one(state: AnchorState, rays: AlignmentRays, weights: AnchorWeights):
        key, k_idx, k_loss = jax.random.split(state.key, 3)
        idx = jax.random.randint(k_idx, (cfg.n_rays,), 0, rays.alpha.shape[0])
        batch = jax.tree.map(lambda a: a[idx], rays)
        (loss, aux), g = jax.value_and_grad(align_loss, has_aux=True)(state.params, field_cfg, cfg.render, batch, k_loss)
        upd, opt_state = _optimizer.update(g, state.opt_state, state.params)
        params = jax.tree.map(lambda p, u: p - weights.lr * u, state.params, upd)
        return AnchorState(params=params, opt_state=opt_state, step=state.step + 1, key=key), aux

    def update(state: AnchorState, rays: AlignmentRays, weights: AnchorWeights):
        with jax.named_scope("stage.anchor"):
            state, aux = jax.lax.scan(lambda s, _: one(s, rays, weights), state, None, length=cfg.steps_per_call)
            return state, jax.tree.map(lambda a: a[-1], aux)

    return update


def mask_iou(pred: Float[Array, "*n H W"], ref: Float[Array, "*n H W"], threshold: float = 0.5) -> Float[Array, ""]:
    """Intersection over union of two opacity maps thresholded at `threshold` (all views pooled)."""
    a, b = pred > threshold, ref > threshold
    return jnp.sum(a & b) / jnp.maximum(jnp.sum(a | b), 1)
