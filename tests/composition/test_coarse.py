"""Coarse HOI NeRF by SDS (paper Eq. 1): analytic-prior convergence, resume, seeds, regularisers, traced weights."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as onp
import pytest
import torch

from anchorhoi_jax.geometry.cameras import orbit_cameras
from anchorhoi_jax.nerf.field import FieldConfig
from anchorhoi_jax.priors.sds import GaussianPrior, SDSConfig, SDSGuidance
from anchorhoi_jax.render.volume import RenderConfig
from anchorhoi_jax.stages import coarse as co

S = 16
FIELD = FieldConfig(n_levels=4, log2_table_size=10, max_resolution=64, hidden=16)
CFG = co.CoarseConfig(
    field=FIELD,
    render=RenderConfig(n_coarse=16, n_fine=8, shading="albedo"),
    resolution=S,
    steps=80,
    log_every=20,
    camera=co.CameraSampling(elevation_range=(0.0, 20.0), distance_range=(3.0, 3.0), fov_range=(40.0, 40.0)),
    shading=co.ShadingConfig(background="white"),
)
EVAL = orbit_cameras(4, height=S, width=S, distance=3.0, elevation_deg=10.0, fov_deg=40.0, azimuth_start_deg=30.0)


def _target() -> onp.ndarray:
    """An orange disc on white (H, W, 3) in [0, 1]: what a sphere looks like from every view."""
    v, u = onp.mgrid[0:S, 0:S] + 0.5
    disc = ((u - S / 2) ** 2 + (v - S / 2) ** 2) < (0.3 * S) ** 2
    img = onp.ones((S, S, 3), onp.float32)
    img[disc] = (0.9, 0.45, 0.1)
    return img


@pytest.fixture(scope="module")
def guidance():
    mu = torch.from_numpy(_target().transpose(2, 0, 1) * 2.0 - 1.0)  # model range [-1, 1]
    return SDSGuidance(GaussianPrior(mu, 0.1), "p", SDSConfig(guidance_scale=1.0, view_dependent_prompts=False))


def _eval_mse(params) -> float:
    rgb, alpha = co.render_canonical(params, CFG, EVAL)
    over_white = rgb + (1.0 - alpha)[..., None]
    return float(jnp.mean((over_white - jnp.asarray(_target())[None]) ** 2))


def test_sds_moves_the_render_to_the_analytic_target(guidance):
    """With the analytic Gaussian denoiser SDS drives every view to mu; the NeRF must become the disc-sphere."""
    state = co.init(jax.random.key(0), CFG)
    before = _eval_mse(state.params)
    w = co.CoarseWeights.default(lr=0.05, sparsity=0.0, orient=0.0)
    seen = []
    state, hist = co.fit(state, CFG, w, guidance, callback=lambda i, s, info: seen.append((i, int(s.step))))
    after = _eval_mse(state.params)
    print(f"eval MSE to target: {before:.4f} -> {after:.4f}")
    assert after < 0.35 * before, (before, after)
    assert seen == [(20, 20), (40, 40), (60, 60), (80, 80)] and [h["step"] for h in hist] == [20, 40, 60, 80]
    assert int(state.step) == 80 and all(onp.isfinite(h["sds_loss"]) for h in hist)
    # fit on a finished state is a no-op
    again, h2 = co.fit(state, CFG, w, guidance)
    assert h2 == [] and int(again.step) == 80
    for a, b in zip(jax.tree.leaves(again.params), jax.tree.leaves(state.params)):
        onp.testing.assert_array_equal(onp.asarray(a), onp.asarray(b))


def test_resume_is_bitwise_identical(guidance):
    w = co.CoarseWeights.default()
    s0 = co.init(jax.random.key(1), CFG)
    straight, _ = co.fit(s0, CFG, w, guidance, until=6)
    half, _ = co.fit(s0, CFG, w, guidance, until=3)
    assert int(half.step) == 3
    resumed, _ = co.fit(half, CFG, w, guidance, until=6)
    leaves = lambda s: jax.tree.leaves((s.params, s.opt_state))  # noqa: E731
    for a, b in zip(leaves(straight), leaves(resumed)):
        onp.testing.assert_array_equal(onp.asarray(a), onp.asarray(b))
    # A weight sweep does not recompile the step (weights and lr are traced leaves).
    prog = co._coarse_program(CFG, False)
    n_fwd, n_upd = prog.step.forward._cache_size(), prog.step.update._cache_size()
    co.fit(half, CFG, co.CoarseWeights.default(lr=3e-3, sparsity=5.0, opaque=1.0), guidance, until=4)
    assert (prog.step.forward._cache_size(), prog.step.update._cache_size()) == (n_fwd, n_upd) == (1, 1)


def test_seed_axis_lambertian_views_and_regularisers(guidance):
    """Two seeds in one program with lit (lambertian) views: seeds differ, regularisers logged, render vmap == loop."""
    cfg = dataclasses.replace(CFG, render=RenderConfig(n_coarse=16, n_fine=8, shading="lambertian"), steps=3,
                              log_every=1, shading=co.ShadingConfig(albedo_steps=1, albedo_prob=0.0))
    keys = jax.random.split(jax.random.key(2), 2)
    state = co.init_seeds(keys, cfg)
    assert state.step.shape == (2,) and jax.tree.leaves(state.params)[0].shape[0] == 2
    state, hist = co.fit(state, cfg, co.CoarseWeights.default(lr=0.05, opaque=1.0), guidance)
    onp.testing.assert_array_equal(onp.asarray(state.step), [3, 3])
    assert [h["step"] for h in hist] == [1, 2, 3]
    for h in hist:
        assert all(onp.isfinite(v) for v in h.values())
        assert h["reg_total"] == pytest.approx(h["sparsity"] + h["opaque"] + 100.0 * h["orient"], rel=1e-4)
    assert hist[-1]["orient"] > 0.0  # normals exist; some face away from the camera
    table = onp.asarray(jax.tree.leaves(state.params)[0])
    assert not onp.allclose(table[0], table[1])
    rgb, alpha = co.render_canonical(state.params, CFG, EVAL)
    assert rgb.shape == (2, 4, S, S, 3) and alpha.shape == (2, 4, S, S)
    assert float(jnp.max(rgb - alpha[..., None])) <= 1e-5  # premultiplied: colour <= opacity
    for s in range(2):  # vmapped over seeds == one seed at a time
        r1, a1 = co.render_canonical(jax.tree.map(lambda x: x[s], state.params), CFG, EVAL)
        onp.testing.assert_allclose(rgb[s], r1, atol=1e-5)
        onp.testing.assert_allclose(alpha[s], a1, atol=1e-5)
    assert not onp.allclose(alpha[0], alpha[1], atol=1e-4)
    with pytest.raises(ValueError, match="all seeds must be at the same step"):
        co.fit(state.replace(step=jnp.array([2, 3], jnp.int32)), cfg, co.CoarseWeights.default(), guidance)


def test_step_batch_is_one_mvdream_group_with_albedo_warmup():
    """One MVDream group (common elevation/distance, azimuths 90 degrees apart); albedo in the warm-up, lit after."""
    cam, shading = CFG.camera, co.ShadingConfig(albedo_steps=1, albedo_prob=0.0)
    sample = jax.jit(co.sample_step_batch, static_argnames=("n_views", "resolution", "camera", "shading"))
    b0 = sample(jax.random.key(0), 0, n_views=4, resolution=S, camera=cam, shading=shading)
    b1 = sample(jax.random.key(0), 1, n_views=4, resolution=S, camera=cam, shading=shading)
    onp.testing.assert_allclose(onp.diff(onp.unwrap(onp.deg2rad(onp.asarray(b0.azimuth_deg)))), onp.pi / 2, atol=1e-5)
    assert onp.ptp(onp.asarray(b0.elevation_deg)) == 0.0
    onp.testing.assert_allclose(onp.asarray(b0.ambient), 1.0)
    onp.testing.assert_allclose(onp.asarray(b1.ambient), shading.ambient)
    eye = onp.asarray(b0.camera_to_world) @ onp.asarray(b0.camera.T_cam_world)
    onp.testing.assert_allclose(eye, onp.eye(4)[None].repeat(4, 0), atol=1e-5)
    # The ViewInfo the guidance sees matches the cameras (azimuth 0 = in front, on +z).
    c = onp.asarray(b0.camera.center_world)
    az = onp.rad2deg(onp.arctan2(c[:, 0], c[:, 2]))
    onp.testing.assert_allclose(onp.mod(az - onp.asarray(b0.azimuth_deg) + 180, 360) - 180, 0.0, atol=1e-3)


def test_regularisers_against_numpy():
    rng = onp.random.default_rng(0)
    alpha = rng.uniform(0.0, 1.0, (3, 5, 4))
    v, _ = co.sparsity_loss(jnp.asarray(alpha, jnp.float32))
    assert float(v) == pytest.approx(alpha.mean(axis=(1, 2)).sum(), rel=1e-5)
    a = onp.clip(alpha, 1e-5, 1 - 1e-5)
    h = -(a * onp.log(a) + (1 - a) * onp.log(1 - a))
    v, _ = co.opacity_entropy_loss(jnp.asarray(alpha, jnp.float32))
    assert float(v) == pytest.approx(h.mean(axis=(1, 2)).sum(), rel=1e-5)
    w = rng.uniform(0, 1, (2, 6, 7))
    n = rng.normal(size=(2, 6, 7, 3))
    n /= onp.linalg.norm(n, axis=-1, keepdims=True)
    d = rng.normal(size=(2, 6, 3))
    d /= onp.linalg.norm(d, axis=-1, keepdims=True)
    ref = (w * onp.maximum(onp.einsum("vrnc,vrc->vrn", n, d), 0.0) ** 2).sum(-1).mean(-1).sum()
    v, _ = co.orientation_loss(*(jnp.asarray(x, jnp.float32) for x in (w, n, d)))
    assert float(v) == pytest.approx(ref, rel=1e-5)


def test_injected_regulariser_gradient_rides_on_the_pullback():
    """pullback(g) of _inject_loss(img(p), reg(p)) == ∇_p(<g, img(p)> + reg(p))."""
    p = jnp.array([0.3, -1.2, 2.0])
    img = lambda q: jnp.outer(jnp.tanh(q), q)  # noqa: E731
    reg = lambda q: jnp.sum(q**4)  # noqa: E731
    g = jnp.arange(9.0).reshape(3, 3) / 10.0
    out, pull = jax.vjp(lambda q: co._inject_loss(img(q), reg(q)), p)
    onp.testing.assert_allclose(out, img(p), atol=0)
    (got,) = pull(g)
    ref = jax.grad(lambda q: jnp.sum(g * img(q)) + reg(q))(p)
    onp.testing.assert_allclose(got, ref, rtol=1e-6)


def test_bad_configs_one_line_errors(guidance):
    cases = [
        (lambda: co.CoarseConfig(resolution=2), "CoarseConfig.resolution must be >= 4, got 2"),
        (lambda: co.CoarseConfig(steps=0), "CoarseConfig.steps must be >= 1"),
        (lambda: co.CoarseConfig(views=0), "CoarseConfig.views must be >= 1"),
        (lambda: co.CoarseConfig(log_every=0), "CoarseConfig.log_every must be >= 1"),
        (lambda: co.CoarseConfig(lr_schedule="step"), "lr_schedule must be 'constant' or 'cosine'"),
        (lambda: co.CoarseConfig(lr_final_ratio=0.0), r"lr_final_ratio must be in \(0, 1\]"),
        (lambda: co.CameraSampling(elevation_range=(30.0, 10.0)), "elevation_range must be \\(low, high\\)"),
        (lambda: co.CameraSampling(fov_range=(0.0, 40.0)), r"fov_range must lie in \[1.0, 179.0\]"),
        (lambda: co.CameraSampling(jitter_target=-1.0), "jitter_target must be >= 0"),
        (lambda: co.ShadingConfig(background="grey"), "background must be 'random', 'white' or 'black'"),
        (lambda: co.ShadingConfig(albedo_prob=1.5), r"albedo_prob must be in \[0, 1\]"),
        (lambda: co.ShadingConfig(albedo_steps=-1), "albedo_steps must be >= 0"),
    ]
    for make, msg in cases:
        with pytest.raises(ValueError, match=msg) as e:
            make()
        assert "\n" not in str(e.value)
    other = dataclasses.replace(CFG, field=dataclasses.replace(FIELD, hidden=8))
    with pytest.raises(ValueError, match="params do not match the field config"):
        co.fit(co.init(jax.random.key(0), CFG), other, co.CoarseWeights.default(), guidance)
