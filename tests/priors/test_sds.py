"""SDS (Eq. 1) pieces and the analytic-denoiser convergence oracle."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as onp
import pytest
import torch

from anchorhoi_jax.geometry.cameras import view_tags
from anchorhoi_jax.priors.bridge import ViewInfo
from anchorhoi_jax.priors.sds import (
    GaussianPrior,
    SDSConfig,
    SDSGuidance,
    sample_timesteps,
    scaled_linear_alphas_cumprod,
    sds_gradient,
    sds_loss,
    sds_weight,
    t_range,
    view_prompt,
    view_tag,
)


def test_t_range_annealing_linear_and_sqrt():
    cfg = SDSConfig(t_range_start=(0.02, 0.98), t_range_end=(0.02, 0.5), anneal_steps=100, anneal="linear")
    assert t_range(cfg, 0) == pytest.approx((0.02, 0.98))
    assert t_range(cfg, 50) == pytest.approx((0.02, 0.74))
    assert t_range(cfg, 1000) == pytest.approx((0.02, 0.5))
    cfg_sqrt = SDSConfig(t_range_end=(0.02, 0.5), anneal_steps=100, anneal="sqrt")
    assert t_range(cfg_sqrt, 25) == pytest.approx((0.02, 0.98 - 0.48 * 0.5))
    assert t_range(SDSConfig(anneal_steps=100), 99) == pytest.approx((0.02, 0.98))


def test_sample_timesteps_within_annealed_range():
    cfg = SDSConfig(t_range_start=(0.1, 0.9), t_range_end=(0.2, 0.3), anneal_steps=10, anneal="linear")
    gen = torch.Generator().manual_seed(0)
    t0 = sample_timesteps(cfg, 0, 4000, 1000, gen, "cpu")
    t1 = sample_timesteps(cfg, 10, 4000, 1000, gen, "cpu")
    assert t0.min() >= 100 and t0.max() <= 899 and t0.max() > 850
    assert t1.min() >= 200 and t1.max() <= 300


def test_weights_and_view_tags():
    ac = scaled_linear_alphas_cumprod()
    t = torch.tensor([0, 500, 999])
    assert torch.allclose(sds_weight(ac, t, "sds"), 1 - ac[t])
    assert torch.allclose(sds_weight(ac, t, "uniform"), torch.ones(3))
    assert torch.allclose(sds_weight(ac, t, "fantasia"), ac[t].sqrt() * (1 - ac[t]))
    assert [view_tag(a) for a in (0, 20, 45, 90, -90, 180, -170, 300, 340)] == [
        "front", "front", "side", "side", "side", "back", "back", "side", "front"]
    assert view_tag(0, 80) == "overhead"
    # The same rule as the camera module's integer tags.
    az = onp.linspace(-400, 400, 161)
    el = onp.where(onp.arange(161) % 7 == 0, 70.0, 10.0)
    names = ("front", "side", "back", "overhead")
    ref = onp.asarray(view_tags(jnp.asarray(el), jnp.asarray(az)))
    assert [view_tag(a, e) for a, e in zip(az, el)] == [names[i] for i in ref]
    assert view_prompt("a man", "back") == "a man, back view"


def test_sds_loss_gradient_is_grad_and_value_is_half_norm():
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    g = torch.randn(2, 3, 4, 4)
    loss = sds_loss(z, g)
    (dz,) = torch.autograd.grad(loss, z)
    assert torch.allclose(dz, g, atol=1e-6)
    assert loss.item() == pytest.approx(0.5 * (g**2).sum().item(), rel=1e-5)


def test_gradient_clipping_value_and_norm():
    prior = GaussianPrior(torch.zeros(3, 4, 4), 0.1)
    z = torch.full((2, 3, 4, 4), 5.0)
    t = torch.tensor([900, 900])
    noise = torch.zeros_like(z)
    cond = prior.embed(["x", "x"])
    g_val = sds_gradient(prior, z, t, noise, cond, None, SDSConfig(grad_clip_value=0.01))
    assert g_val.abs().max() <= 0.01 + 1e-7
    g_norm = sds_gradient(prior, z, t, noise, cond, None, SDSConfig(grad_clip_norm=0.5))
    assert torch.allclose(g_norm.flatten(1).norm(dim=1), torch.full((2,), 0.5), atol=1e-5)


def test_sds_gradient_matches_closed_form_expectation():
    """Averaged over eps, w(t)(eps_hat - eps) = w sqrt(a(1-a)) (x - mu)/(a s^2 + 1 - a)."""
    mu = torch.tensor([0.3, -0.2, 0.5]).view(3, 1, 1)
    prior = GaussianPrior(mu.expand(3, 2, 2).clone(), 0.2)
    x = torch.zeros(20000, 3, 2, 2)
    t = torch.full((20000,), 400)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    g = sds_gradient(prior, x, t, noise, prior.embed(["y"] * 20000), None, SDSConfig(weighting="uniform"))
    a = prior.alphas_cumprod[400]
    expect = (a * (1 - a)).sqrt() * (x[0] - prior.mu) / (a * 0.04 + 1 - a)
    assert torch.allclose(g.mean(0), expect, atol=0.02)


def _run_sds(prior, cfg, steps=300, shape=(2, 3, 8, 8)):
    guidance = SDSGuidance(prior, "a prompt", cfg)
    x = torch.zeros(shape, requires_grad=True)
    opt = torch.optim.Adam([x], lr=0.03)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(0)
    n = shape[0]
    views = ViewInfo(azimuth_deg=onp.linspace(0, 270, n), elevation_deg=onp.zeros(n))
    for i in range(steps):
        grad, info = guidance(x.detach(), views=views, step=i, generator=gen)
        x.grad = grad
        opt.step()
        sched.step()
    return x.detach(), info


def test_analytic_denoiser_sds_drives_image_to_mean():
    torch.manual_seed(0)
    mu = torch.rand(3, 8, 8) * 1.6 - 0.8
    prior = GaussianPrior(mu, 0.1)
    x, info = _run_sds(prior, SDSConfig(guidance_scale=1.0, anneal_steps=300, anneal="linear"))
    err = (x - mu).abs().mean().item()
    print(f"analytic SDS mean |x - mu| = {err:.4f}")
    assert err < 0.02
    assert info["sds_loss"] >= 0.0


def test_classifier_free_guidance_fixed_point():
    """With equal variances the CFG fixed point is mu_u + s (mu_c - mu_u) for every t."""
    torch.manual_seed(1)
    mu_c = torch.rand(3, 8, 8) * 0.6 - 0.3
    mu_u = torch.rand(3, 8, 8) * 0.2 - 0.1
    prior = GaussianPrior(mu_c, 0.1, mu_uncond=mu_u, sigma_uncond=0.1)
    x, _ = _run_sds(prior, SDSConfig(guidance_scale=2.5, view_dependent_prompts=False))
    target = mu_u + 2.5 * (mu_c - mu_u)
    assert (x - target).abs().mean().item() < 0.03


def test_bad_config_and_batch_errors():
    with pytest.raises(ValueError, match="t_min <= t_max"):
        SDSConfig(t_range_start=(0.9, 0.1))
    with pytest.raises(ValueError, match="weighting must be"):
        SDSConfig(weighting="nope")
    with pytest.raises(ValueError, match="anneal must be"):
        SDSConfig(anneal="cubic")
    prior = GaussianPrior(torch.zeros(3, 4, 4), 0.1)
    g = SDSGuidance(prior, "p", SDSConfig())
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="not a multiple of views_per_sample=4"):
        g(torch.zeros(3, 3, 4, 4), views=ViewInfo(onp.zeros(3), onp.zeros(3), views_per_sample=4), step=0, generator=gen)
    with pytest.raises(ValueError, match="describes 2 views but the batch has 3"):
        g(torch.zeros(3, 3, 4, 4), views=ViewInfo(onp.zeros(2), onp.zeros(2)), step=0, generator=gen)
