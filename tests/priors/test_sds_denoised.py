"""The denoised-target estimator of priors.sds (SDSConfig.estimator = "denoised") against closed forms."""

import numpy as onp
import pytest
import torch

from anchorhoi_jax.priors.bridge import ViewInfo
from anchorhoi_jax.priors.sds import GaussianPrior, SDSConfig, SDSGuidance, denoised_target, sds_gradient


def _prior(sigma):
    g = torch.Generator().manual_seed(0)
    mu = 0.5 * torch.rand((3, 8, 8), generator=g) - 0.25
    return GaussianPrior(mu, sigma, mu_uncond=torch.zeros_like(mu), sigma_uncond=1.0)


@pytest.mark.parametrize("k", [1, 3, 8])
def test_point_mass_prior_denoises_to_its_mean(k):
    # data = mu exactly (sigma -> 0): the optimal eps recovers mu from any x_t, at every DDIM step
    prior = _prior(1e-4)
    g = torch.Generator().manual_seed(1)
    z = torch.rand((4, 3, 8, 8), generator=g) * 2 - 1
    t = torch.tensor([100, 400, 700, 950])
    noise = torch.randn(z.shape, generator=g)
    cfg = SDSConfig(guidance_scale=1.0, estimator="denoised", denoise_steps=k)
    emb = prior.embed(["a"] * 4)
    x0 = denoised_target(prior, z, t, noise, emb, None, cfg)
    onp.testing.assert_allclose(x0.numpy(), prior.mu.expand(4, -1, -1, -1).numpy(), atol=2e-3)


def test_one_step_is_eq1_direction_reweighted():
    # K = 1, no clipping: z - x0_hat = sqrt((1 - abar) / abar) (eps_hat - eps), CFG included
    prior = _prior(0.3)
    g = torch.Generator().manual_seed(2)
    z = 0.2 * torch.randn((3, 3, 8, 8), generator=g)
    t = torch.tensor([50, 300, 600])
    noise = 0.3 * torch.randn(z.shape, generator=g)
    emb_c, emb_u = prior.embed(["a"] * 3), prior.embed([""] * 3)
    cfg = SDSConfig(guidance_scale=3.0, estimator="denoised", denoise_steps=1, weighting="uniform")
    x0 = denoised_target(prior, z, t, noise, emb_c, emb_u, cfg)
    ref = sds_gradient(prior, z, t, noise, emb_c, emb_u, cfg)
    a = prior.alphas_cumprod[t].view(-1, 1, 1, 1)
    free = x0.abs() < 0.999  # entries the x0 clip (to the model range) left alone
    assert free.float().mean() > 0.9
    onp.testing.assert_allclose((z - x0)[free].numpy(), (((1 - a) / a).sqrt() * ref)[free].numpy(), rtol=1e-4, atol=1e-5)
    assert torch.all(x0.abs() <= 1.0)


def test_guidance_gradient_points_from_target_to_render():
    prior = _prior(1e-4)
    cfg = SDSConfig(guidance_scale=1.0, estimator="denoised", denoise_steps=2, weighting="uniform",
                    view_dependent_prompts=False)
    guide = SDSGuidance(prior, "a", cfg)
    x = torch.zeros((2, 3, 8, 8))
    views = ViewInfo(azimuth_deg=onp.zeros(2), elevation_deg=onp.zeros(2))
    grad, info = guide(x, views=views, step=0, generator=torch.Generator().manual_seed(0))
    onp.testing.assert_allclose(grad.numpy(), (x - prior.mu).numpy(), atol=2e-3)
    assert info["grad_norm"] > 0


def test_default_estimator_is_eq1():
    assert SDSConfig().estimator == "sds"


def test_bad_estimator_settings():
    with pytest.raises(ValueError, match="SDSConfig.estimator must be 'sds' or 'denoised', got 'ddim'"):
        SDSConfig(estimator="ddim")
    with pytest.raises(ValueError, match="SDSConfig.denoise_steps must be an integer >= 1, got 0"):
        SDSConfig(denoise_steps=0)
