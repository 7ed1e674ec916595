"""Score Distillation Sampling (paper Eq. 1) on the torch side of the bridge.

    grad_Phi L_SDS = E_{t, eps}[ w(t) (eps_hat_phi(x_t; y, t) - eps) dx/dPhi ],
    x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps                                    (Eq. 1)

This module computes the bracket, dL/dx, for a batch of rendered views; `bridge.make_sds_step`
multiplies by dx/dPhi with the JAX pullback. Pieces:

* timestep sampling t ~ U[t_min, t_max] with range annealing (t_max shrinks with the step, so
  late iterations refine detail instead of re-deciding layout);
* the weight w(t) ("sds": 1 - abar_t as in DreamFusion, "uniform", "fantasia": sqrt(abar)(1-abar));
* classifier-free guidance eps_hat = eps_u + s (eps_c - eps_u);
* view-dependent prompts ("<prompt>, front/side/back/overhead view"), embedded once;
* gradient clipping (element value and per-sample norm) and NaN guarding;
* the loss written as 0.5 ||z - sg(z - grad)||^2, whose gradient w.r.t. z is exactly `grad` and
  whose value 0.5 ||grad||^2 is a meaningful number to log;
* an optional estimator (`SDSConfig.estimator = "denoised"`, default "sds" = Eq. 1): the noised render is
  denoised to a clean image by `denoise_steps` DDIM steps from t down to 0 (with CFG, x0 clipped to the
  model range, as SDEdit does), and the gradient is w(t) (z - sg(x0_hat)), the gradient of an image-space
  reconstruction loss 0.5 w(t) ||z - x0_hat||^2 (HiFA / ISM / SDEdit-style distillation). With one DDIM
  step x0_hat = (z_t - sqrt(1-abar) eps_hat)/sqrt(abar), so z - x0_hat = sqrt((1-abar)/abar) (eps_hat - eps):
  Eq. 1's direction with another weight. More steps give a sharper, self-consistent target that weak
  priors (the 9 M-parameter prior of issue 7) can distil, where the one-step eps residual is mostly noise.

`GaussianPrior` is an analytic denoiser (data ~ N(mu, s^2 I)) whose optimal eps_hat is closed
form; it is the oracle for the SDS tests.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal, Protocol, Sequence

import numpy as onp
import torch

from anchorhoi_jax.priors.bridge import LazyScalar, ViewInfo, host_to_device

__all__ = [
    "SDSConfig",
    "DiffusionPrior",
    "t_range",
    "sample_timesteps",
    "sds_weight",
    "view_tag",
    "view_prompt",
    "sds_gradient",
    "sds_loss",
    "denoised_target",
    "SDSGuidance",
    "GaussianPrior",
    "scaled_linear_alphas_cumprod",
    "VIEW_TAGS",
]

Weighting = Literal["sds", "uniform", "fantasia"]
VIEW_TAGS = ("front", "side", "back", "overhead")


@dataclasses.dataclass(frozen=True)
class SDSConfig:
    """SDS hyper-parameters (static; the prior's schedule comes from the prior).

    t_range_start / t_range_end: (t_min, t_max) as fractions of the training timesteps at step 0
      and after `anneal_steps`; `anneal` is "none", "linear" or "sqrt".
    guidance_scale: classifier-free guidance scale s (DreamFusion/IF ~20, SD ~100, MVDream ~50).
    grad_clip_value: clamp each gradient element to [-v, v] (None: off).
    grad_clip_norm: rescale each sample's gradient to at most this L2 norm (None: off).
    estimator: "sds" (Eq. 1, the paper's) or "denoised" (w(t) (z - x0_hat) with x0_hat from
      `denoise_steps` DDIM steps t -> 0; see the module docstring).
    """

    guidance_scale: float = 20.0
    t_range_start: tuple[float, float] = (0.02, 0.98)
    t_range_end: tuple[float, float] = (0.02, 0.50)
    anneal_steps: int = 0
    anneal: Literal["none", "linear", "sqrt"] = "none"
    weighting: Weighting = "sds"
    grad_clip_value: float | None = None
    grad_clip_norm: float | None = None
    view_dependent_prompts: bool = True
    estimator: Literal["sds", "denoised"] = "sds"
    denoise_steps: int = 4

    def __post_init__(self):
        if self.estimator not in ("sds", "denoised"):
            raise ValueError(f"SDSConfig.estimator must be 'sds' or 'denoised', got {self.estimator!r}")
        if not (isinstance(self.denoise_steps, int) and self.denoise_steps >= 1):
            raise ValueError(f"SDSConfig.denoise_steps must be an integer >= 1, got {self.denoise_steps!r}")
        for name in ("t_range_start", "t_range_end"):
            lo, hi = getattr(self, name)
            if not (0.0 <= lo <= hi <= 1.0):
                raise ValueError(f"SDSConfig.{name} must satisfy 0 <= t_min <= t_max <= 1, got {(lo, hi)}")
        if self.weighting not in ("sds", "uniform", "fantasia"):
            raise ValueError(f"SDSConfig.weighting must be 'sds', 'uniform' or 'fantasia', got {self.weighting!r}")
        if self.anneal not in ("none", "linear", "sqrt"):
            raise ValueError(f"SDSConfig.anneal must be 'none', 'linear' or 'sqrt', got {self.anneal!r}")


class DiffusionPrior(Protocol):
    """What SDS needs from a denoiser (IF, SD, MVDream, the analytic Gaussian)."""

    alphas_cumprod: torch.Tensor  # (T,) float32 on the model's device
    value_range: tuple[float, float]
    dtype: torch.dtype
    device: torch.device

    def encode(self, x_model: torch.Tensor) -> torch.Tensor:
        """Differentiable map from model-range images (N, 3, H, W) to the diffused variable z."""
        ...

    def embed(self, prompts: Sequence[str]) -> torch.Tensor:
        """Text embeddings (P, ...) for P prompts."""
        ...

    def predict_eps(self, z_t: torch.Tensor, t: torch.Tensor, emb: torch.Tensor, views: ViewInfo | None) -> torch.Tensor:
        """eps_hat(z_t; y, t) for a batch; `emb` has one row per batch entry."""
        ...


def scaled_linear_alphas_cumprod(
    num_train_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012
) -> torch.Tensor:
    """abar_t of the "scaled_linear" schedule used by SD 1.x/2.x and MVDream."""
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0).float()


def t_range(cfg: SDSConfig, step: int) -> tuple[float, float]:
    """(t_min, t_max) fractions at an optimisation step (range annealing)."""
    if cfg.anneal == "none" or cfg.anneal_steps <= 0:
        return cfg.t_range_start
    r = min(max(step / cfg.anneal_steps, 0.0), 1.0)
    if cfg.anneal == "sqrt":
        r = math.sqrt(r)
    (a0, b0), (a1, b1) = cfg.t_range_start, cfg.t_range_end
    return a0 + (a1 - a0) * r, b0 + (b1 - b0) * r


def sample_timesteps(
    cfg: SDSConfig, step: int, num_groups: int, num_train_timesteps: int, generator: torch.Generator, device
) -> torch.Tensor:
    """Integer t per group of views, uniform in the annealed range (inclusive ends)."""
    lo, hi = t_range(cfg, step)
    t_lo = int(round(lo * (num_train_timesteps - 1)))
    t_hi = max(int(round(hi * (num_train_timesteps - 1))), t_lo)
    t = torch.randint(t_lo, t_hi + 1, (num_groups,), generator=generator, device=generator.device)
    return t.to(device)


def sds_weight(alphas_cumprod: torch.Tensor, t: torch.Tensor, kind: Weighting) -> torch.Tensor:
    """w(t) of Eq. 1 for each entry of t."""
    a = alphas_cumprod[t]
    if kind == "sds":
        return 1.0 - a
    if kind == "uniform":
        return torch.ones_like(a)
    if kind == "fantasia":
        return a.sqrt() * (1.0 - a)
    raise ValueError(f"unknown SDS weighting {kind!r}")


def view_tag(azimuth_deg: float, elevation_deg: float = 0.0, *, front_deg: float = 60.0, overhead_deg: float = 60.0) -> str:
    """DreamFusion-style view tag; same rule as `geometry.cameras.view_tags` (azimuth 0 = in front, +z).

    front: |azimuth| < front_deg / 2; back: |azimuth| > 180 - front_deg / 2; side otherwise;
    overhead wins when elevation > overhead_deg.
    """
    if elevation_deg > overhead_deg:
        return "overhead"
    a = abs((float(azimuth_deg) + 180.0) % 360.0 - 180.0)  # wrap to [-180, 180)
    if a < 0.5 * front_deg:
        return "front"
    if a > 180.0 - 0.5 * front_deg:
        return "back"
    return "side"


def view_prompt(prompt: str, tag: str) -> str:
    return f"{prompt}, {tag} view"


def sds_loss(z: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """0.5 ||z - sg(z - grad)||^2: d/dz = grad exactly; the value is 0.5 ||grad||^2."""
    target = (z - grad).detach()
    return 0.5 * ((z.float() - target.float()) ** 2).sum()


def _clip(grad: torch.Tensor, cfg: SDSConfig) -> torch.Tensor:
    grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
    if cfg.grad_clip_value is not None:
        grad = grad.clamp(-cfg.grad_clip_value, cfg.grad_clip_value)
    if cfg.grad_clip_norm is not None:
        n = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
        scale = (cfg.grad_clip_norm / n).clamp(max=1.0)
        grad = grad * scale.view(-1, *([1] * (grad.ndim - 1)))
    return grad


@torch.no_grad()
def sds_gradient(
    prior: DiffusionPrior,
    z: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    emb_cond: torch.Tensor,
    emb_uncond: torch.Tensor | None,
    cfg: SDSConfig,
    views: ViewInfo | None = None,
) -> torch.Tensor:
    """w(t)(eps_hat - eps) for one batch (Eq. 1 bracket), with CFG and clipping.

    z: (N, ...) clean diffused variable, t: (N,) integer timesteps, noise: like z.
    """
    a = prior.alphas_cumprod[t].view(-1, *([1] * (z.ndim - 1))).to(z.dtype)
    z_t = a.sqrt() * z + (1.0 - a).sqrt() * noise
    eps_hat = _cfg_eps(prior, z_t, t, emb_cond, emb_uncond, cfg, views)
    w = sds_weight(prior.alphas_cumprod, t, cfg.weighting).view(-1, *([1] * (z.ndim - 1)))
    return _clip(w * (eps_hat - noise.float()), cfg)


def _cfg_eps(prior: DiffusionPrior, z_t, t, emb_cond, emb_uncond, cfg: SDSConfig, views) -> torch.Tensor:
    """Classifier-free-guided eps_hat; one UNet call on [uncond; cond] (twice the batch) rather than two calls."""
    if emb_uncond is None or cfg.guidance_scale == 1.0:
        return prior.predict_eps(z_t, t, emb_cond, views).float()
    views2 = None if views is None else _repeat_views(views, 2)
    eps = prior.predict_eps(torch.cat([z_t, z_t]), torch.cat([t, t]), torch.cat([emb_uncond, emb_cond]), views2)
    eps_u, eps_c = eps.float().chunk(2)
    return eps_u + cfg.guidance_scale * (eps_c - eps_u)


@torch.no_grad()
def denoised_target(
    prior: DiffusionPrior,
    z: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    emb_cond: torch.Tensor,
    emb_uncond: torch.Tensor | None,
    cfg: SDSConfig,
    views: ViewInfo | None = None,
) -> torch.Tensor:
    """x0_hat: z noised to t (as Eq. 1) then `cfg.denoise_steps` deterministic DDIM steps to 0 (per entry).

    Step k goes from tau_k = floor(t (K - k) / K) to tau_{k+1}; x0 predictions are clipped to the prior's
    value range (IF's schedule clips samples). Returns float32 like z.
    """
    lo, hi = prior.value_range
    ac = prior.alphas_cumprod
    shape = (-1,) + (1,) * (z.ndim - 1)
    x = ac[t].view(shape).sqrt() * z.float() + (1.0 - ac[t]).view(shape).sqrt() * noise.float()
    K = cfg.denoise_steps
    x0 = z.float()
    for k in range(K):
        tau = torch.div(t * (K - k), K, rounding_mode="floor")
        nxt = torch.div(t * (K - k - 1), K, rounding_mode="floor")
        a = ac[tau].view(shape)
        eps = _cfg_eps(prior, x.to(z.dtype), tau, emb_cond, emb_uncond, cfg, views)
        x0 = ((x - (1.0 - a).sqrt() * eps) / a.sqrt()).clamp(lo, hi)
        eps = (x - a.sqrt() * x0) / (1.0 - a).sqrt().clamp_min(1e-6)  # consistent with the clipped x0
        an = ac[nxt].view(shape)
        x = an.sqrt() * x0 + (1.0 - an).sqrt() * eps
    return x0


def _repeat_views(views: ViewInfo, n: int) -> ViewInfo:
    cam = None if views.camera_to_world is None else onp.concatenate([views.camera_to_world] * n)
    return dataclasses.replace(
        views,
        azimuth_deg=onp.concatenate([views.azimuth_deg] * n),
        elevation_deg=onp.concatenate([views.elevation_deg] * n),
        camera_to_world=cam,
    )


class SDSGuidance:
    """Torch callable for `bridge.make_sds_step`: model-range images -> dL_SDS/dx_model.

    Prompt embeddings (one per view tag, plus the negative prompt) are computed once at
    construction; call `prior.free_text_encoder()` afterwards (IF's T5 is ~9 GB).
    """

    def __init__(self, prior: DiffusionPrior, prompt: str, cfg: SDSConfig, negative_prompt: str = ""):
        self.prior = prior
        self.cfg = cfg
        self.value_range = prior.value_range
        self.dtype = prior.dtype
        tags = VIEW_TAGS if cfg.view_dependent_prompts else ("",)
        prompts = [view_prompt(prompt, g) if g else prompt for g in tags] + [negative_prompt]
        emb = prior.embed(prompts)
        self.tag_index = {g: i for i, g in enumerate(tags)}
        self.emb_tags = emb[: len(tags)]
        self.emb_uncond = emb[len(tags) :]

    def embeddings_for(self, views: ViewInfo, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cfg.view_dependent_prompts:
            idx = [self.tag_index[view_tag(a, e)] for a, e in zip(views.azimuth_deg, views.elevation_deg)]
            if len(idx) != n:
                raise ValueError(f"ViewInfo describes {len(idx)} views but the batch has {n} images")
        else:
            idx = [0] * n
        cond = self.emb_tags[host_to_device(idx, self.emb_tags.device, torch.int64)]
        return cond, self.emb_uncond.expand(n, *self.emb_uncond.shape[1:])

    def __call__(self, x_model: torch.Tensor, *, views: ViewInfo, step: int, generator: torch.Generator):
        n = x_model.shape[0]
        k = views.views_per_sample
        if n % k:
            raise ValueError(f"batch of {n} images is not a multiple of views_per_sample={k}")
        with torch.enable_grad():
            x = x_model.detach().requires_grad_(True)
            z = self.prior.encode(x)
            T = self.prior.alphas_cumprod.shape[0]
            t = sample_timesteps(self.cfg, step, n // k, T, generator, z.device).repeat_interleave(k)
            noise = torch.randn(z.shape, generator=generator, device=generator.device, dtype=z.dtype).to(z.device)
            cond, uncond = self.embeddings_for(views, n)
            if self.cfg.estimator == "denoised":
                x0 = denoised_target(self.prior, z.detach(), t, noise, cond, uncond, self.cfg, views)
                w = sds_weight(self.prior.alphas_cumprod, t, self.cfg.weighting).view(-1, *([1] * (z.ndim - 1)))
                grad_z = _clip(w * (z.detach().float() - x0), self.cfg)
            else:
                grad_z = sds_gradient(self.prior, z.detach(), t, noise, cond, uncond, self.cfg, views)
            loss = sds_loss(z, grad_z.to(z.dtype))
            (grad_x,) = torch.autograd.grad(loss, x)
            # fp16 encoders (SD's VAE) can overflow in the backward pass; never hand NaN/inf to the optimiser.
            grad_x = torch.nan_to_num(grad_x, nan=0.0, posinf=0.0, neginf=0.0)
        # Diagnostics stay on the device (LazyScalar): reading them here would stall the host on the GPU.
        info = {"sds_loss": LazyScalar(loss), "t_mean": LazyScalar(t.float().mean()),
                "grad_norm": LazyScalar(grad_z.norm())}
        return grad_x, info


class GaussianPrior:
    """Analytic denoiser for data x0 ~ N(mu, s^2 I) (conditional) and N(mu_u, s_u^2 I) (unconditional).

    With z_t = sqrt(a) x0 + sqrt(1-a) eps, z_t ~ N(sqrt(a) mu, (a s^2 + 1 - a) I), so the optimal
    (MMSE) noise prediction is E[eps | z_t] = sqrt(1-a) (z_t - sqrt(a) mu) / (a s^2 + 1 - a).
    The expected SDS gradient is then w(t) sqrt(a(1-a)) (x - mu) / (a s^2 + 1 - a): it points from
    mu to x, so SDS drives x to mu. Embeddings are 1-vectors: 1 = conditional, 0 = unconditional.
    """

    def __init__(self, mu: torch.Tensor, sigma: float, mu_uncond: torch.Tensor | None = None, sigma_uncond: float = 1.0,
                 alphas_cumprod: torch.Tensor | None = None, value_range=(-1.0, 1.0)):
        self.mu = mu
        self.sigma = float(sigma)
        self.mu_u = torch.zeros_like(mu) if mu_uncond is None else mu_uncond
        self.sigma_u = float(sigma_uncond)
        self.device = mu.device
        self.dtype = torch.float32
        self.value_range = tuple(value_range)
        self.alphas_cumprod = (scaled_linear_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod).to(mu.device)

    def encode(self, x_model: torch.Tensor) -> torch.Tensor:
        return x_model

    def embed(self, prompts: Sequence[str]) -> torch.Tensor:
        # Any non-empty prompt is "the" condition; the empty prompt is unconditional.
        return torch.tensor([[1.0 if p else 0.0] for p in prompts], device=self.device)

    def optimal_eps(self, z_t, t, mu, sigma):
        a = self.alphas_cumprod[t].view(-1, *([1] * (z_t.ndim - 1)))
        return (1.0 - a).sqrt() * (z_t - a.sqrt() * mu) / (a * sigma**2 + 1.0 - a)

    def predict_eps(self, z_t, t, emb, views=None):
        c = emb.view(-1, *([1] * (z_t.ndim - 1)))
        return c * self.optimal_eps(z_t, t, self.mu, self.sigma) + (1 - c) * self.optimal_eps(z_t, t, self.mu_u, self.sigma_u)
