"""Photometric NeRF fitting to posed images (reconstruction), K optimisation steps per jitted call.

The state is `params, opt_state, step, key` (STYLE.md). Each step draws `n_rays` pixels uniformly
from all training views, renders them, and minimises the mean squared error against the target
composited over a random per-ray background colour, so the field must reproduce the target's alpha
(transparent where the target is background) rather than paint the background into the volume.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jaxtyping import Array, Float

from anchorhoi_jax.geometry.cameras import Camera, generate_rays
from anchorhoi_jax.nerf import field as nerf_field
from anchorhoi_jax.render.volume import RenderConfig, render_rays


@struct.dataclass
class FitState:
    params: object
    opt_state: object
    step: Array
    key: Array


@struct.dataclass
class RayBatch:
    """All training pixels flattened: origins, directions (P, 3), premultiplied rgb (P, 3), alpha (P,).

    du, dv (P, 3): change of the unnormalised world direction per pixel step in u and v, so a ray can
    be jittered inside its pixel (directions are then unit(d_raw + a·du + b·dv), a, b ∈ [−½, ½]).
    """

    origins: Float[Array, "P 3"]
    directions: Float[Array, "P 3"]
    rgb: Float[Array, "P 3"]
    alpha: Float[Array, "P"]
    d_raw: Float[Array, "P 3"]
    du: Float[Array, "P 3"]
    dv: Float[Array, "P 3"]


def rays_from_views(cameras: Camera, rgb: Float[Array, "n H W 3"], alpha: Float[Array, "n H W"]) -> RayBatch:
    """Flatten posed views (premultiplied rgb, alpha) into a RayBatch."""
    o, d = jax.vmap(generate_rays)(cameras)
    n, H, W = alpha.shape
    K, R = cameras.K, cameras.R_cam_world  # (n, 3, 3)
    # Unnormalised direction through the pixel centre: Rᵀ K⁻¹ (u, v, 1); steps Rᵀ (1/fx, 0, 0), Rᵀ (0, 1/fy, 0).
    dcam_u = jnp.stack([1.0 / K[:, 0, 0], jnp.zeros(n), jnp.zeros(n)], -1)
    dcam_v = jnp.stack([jnp.zeros(n), 1.0 / K[:, 1, 1], jnp.zeros(n)], -1)
    du = jnp.einsum("nba,nb->na", R, dcam_u)
    dv = jnp.einsum("nba,nb->na", R, dcam_v)
    z_axis = R[:, 2]  # the raw direction has unit camera-z component: d_raw = d / (d · z_cam)
    d_raw = d / jnp.sum(d * z_axis[:, None, None, :], -1, keepdims=True)
    rep = lambda a: jnp.broadcast_to(a[:, None, None, :], (n, H, W, 3)).reshape(-1, 3)  # noqa: E731
    return RayBatch(origins=o.reshape(-1, 3), directions=d.reshape(-1, 3), rgb=rgb.reshape(-1, 3),
                    alpha=alpha.reshape(-1), d_raw=d_raw.reshape(-1, 3), du=rep(du), dv=rep(dv))


def default_optimizer(lr: float = 1e-2, steps: int = 2000) -> optax.GradientTransformation:
    """Adam (β2 = 0.99, ε = 1e−15 as in Instant-NGP) with a cosine decay to lr/30."""
    return optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=1.0 / 30.0), b1=0.9, b2=0.99, eps=1e-15)


def init_fit(key, cfg: nerf_field.FieldConfig, optimizer: optax.GradientTransformation) -> FitState:
    k_init, k_run = jax.random.split(key)
    params = nerf_field.init(k_init, cfg)
    return FitState(params=params, opt_state=optimizer.init(params), step=jnp.zeros((), jnp.int32), key=k_run)


def photometric_loss(params, cfg, render_cfg, batch: RayBatch, key) -> tuple[Array, dict]:
    """MSE of rendered vs target colour over a random background (value, aux)."""
    k_bg, k_r = jax.random.split(key)
    bg = jax.random.uniform(k_bg, batch.rgb.shape, batch.rgb.dtype)
    target = batch.rgb + (1.0 - batch.alpha)[:, None] * bg
    out = render_rays(params, cfg, batch.origins, batch.directions, k_r, render_cfg=render_cfg, background=bg)
    mse = jnp.mean((out["rgb"] - target) ** 2)
    return mse, dict(mse=mse, alpha_err=jnp.mean(jnp.abs(out["alpha"] - batch.alpha)))


def make_fit_step(cfg: nerf_field.FieldConfig, render_cfg: RenderConfig, optimizer, *, n_rays: int,
                  steps_per_call: int = 50, jitter_pixels: bool = False):
    """Returns `run(state, rays) -> (state, metrics)` doing `steps_per_call` steps in a lax.scan (jit it).

    jitter_pixels: draw each training ray uniformly inside its pixel instead of through its centre, so
    the field is fitted to the pixel's area average (use with anti-aliased, box-filtered targets).
    """

    def one(state: FitState, rays: RayBatch):
        key, k_idx, k_loss, k_jit = jax.random.split(state.key, 4)
        idx = jax.random.randint(k_idx, (n_rays,), 0, rays.rgb.shape[0])
        batch = jax.tree.map(lambda a: a[idx], rays)
        if jitter_pixels:
            ab = jax.random.uniform(k_jit, (n_rays, 2), minval=-0.5, maxval=0.5)
            d = batch.d_raw + ab[:, :1] * batch.du + ab[:, 1:] * batch.dv
            batch = batch.replace(directions=d / jnp.linalg.norm(d, axis=-1, keepdims=True))
        (loss, aux), grads = jax.value_and_grad(photometric_loss, has_aux=True)(
            state.params, cfg, render_cfg, batch, k_loss
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return FitState(params=params, opt_state=opt_state, step=state.step + 1, key=key), aux

    def run(state: FitState, rays: RayBatch):
        state, aux = jax.lax.scan(lambda s, _: one(s, rays), state, None, length=steps_per_call)
        return state, jax.tree.map(lambda a: a[-1], aux)

    return run


def psnr(a, b) -> Array:
    """Peak signal-to-noise ratio (dB) of images in [0, 1]."""
    return -10.0 * jnp.log10(jnp.mean((a - b) ** 2))


__all__ = ["FitState", "RayBatch", "rays_from_views", "default_optimizer", "init_fit", "photometric_loss",
           "make_fit_step", "psnr"]
