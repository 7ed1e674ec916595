"""Combined IF + MVDream guidance: weighted sum of parts (oracles), chunked batches, building, weights errors."""

from __future__ import annotations

import numpy as onp
import pytest
import torch

from anchorhoi_jax.priors import manifest
from anchorhoi_jax.priors.bridge import ViewInfo
from anchorhoi_jax.priors.guidance import (
    CombinedGuidance,
    GuidanceConfig,
    IndependentViews,
    StackedGuidance,
    build_guidance,
)
from anchorhoi_jax.priors.image import make_tiny_if


class _Affine:
    """Deterministic guidance dL/dx_part = a·x_part + b (records what it was called with)."""

    def __init__(self, a, b, value_range=(-1.0, 1.0)):
        self.a, self.b = a, b
        self.value_range = value_range
        self.dtype = torch.float32
        self.calls = []

    def __call__(self, x_model, *, views, step, generator):
        self.calls.append((x_model.clone(), views))
        return self.a * x_model + self.b, {"n": float(x_model.shape[0])}


def _views(n, k=4):
    c2w = onp.tile(onp.eye(4), (n, 1, 1))
    c2w[:, 2, 3] = 3.0
    return ViewInfo(onp.arange(n) * 90.0 % 360.0, onp.full(n, 10.0), c2w, views_per_sample=k)


def test_combined_is_weighted_sum_with_range_chain_rule():
    x = torch.rand(8, 3, 6, 6, generator=torch.Generator().manual_seed(0)) * 2 - 1
    p1 = _Affine(1.0, -0.3)
    p2 = _Affine(2.0, 0.0, value_range=(0.0, 1.0))  # sees x01 = (x + 1)/2, so d/dx = ½ d/dx01
    p3 = _Affine(5.0, 5.0)
    g, info = CombinedGuidance([(IndependentViews(p1), 0.5), (p2, 2.0), (p3, 0.0)])(
        x, views=_views(8), step=3, generator=torch.Generator().manual_seed(1))
    xd = x.double().numpy()
    expect = 0.5 * (xd - 0.3) + 2.0 * 0.5 * (2.0 * (xd + 1.0) / 2.0)
    onp.testing.assert_allclose(g.double().numpy(), expect, rtol=1e-6, atol=1e-6)
    assert p3.calls == []  # weight 0: never evaluated
    assert p1.calls[0][1].views_per_sample == 1 and p2.calls[0][1].views_per_sample == 4
    onp.testing.assert_allclose(p2.calls[0][0].numpy(), (x.numpy() + 1) / 2, atol=1e-6)
    assert info == {"part0/n": 8.0, "part1/n": 8.0}


def test_stacked_guidance_scores_each_chunk_with_its_own_part():
    x = torch.rand(8, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    p1, p2 = _Affine(1.0, 0.0), _Affine(0.0, 1.0)
    v = _views(8)
    g, _ = StackedGuidance([(p1, 2.0), (p2, 3.0)])(x, views=v, step=0, generator=torch.Generator().manual_seed(0))
    onp.testing.assert_allclose(g[:4].numpy(), 2.0 * x[:4].numpy(), atol=1e-7)
    onp.testing.assert_allclose(g[4:].numpy(), 3.0, atol=1e-7)
    onp.testing.assert_array_equal(p2.calls[0][1].azimuth_deg, v.azimuth_deg[4:])
    onp.testing.assert_array_equal(p2.calls[0][1].camera_to_world, v.camera_to_world[4:])
    with pytest.raises(ValueError, match="batch of 7 images does not split into 2 equal chunks"):
        StackedGuidance([(p1, 1.0), (p2, 1.0)])(x[:7], views=_views(7), step=0, generator=torch.Generator())


def test_tiny_if_plus_mvdream_equals_weighted_parts():
    """The built guidance = w_IF·IF(every view) + w_MV·MVDream(groups of 4), each with its own noise stream."""
    cfg = GuidanceConfig(kind="tiny", if_weight=0.7, mvdream_weight=1.3, tiny_mvdream_resolution=16)
    comb = build_guidance("a person sitting on a chair", cfg)
    assert [getattr(g, "name") for g, _ in comb.parts] == ["if", "mvdream"]
    assert all(g.inner.prior.text_encoder is None if hasattr(g, "inner") else g.prior.text_encoder is None
               for g, _ in comb.parts)  # text encoders freed after embedding
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    v = _views(4)
    g, info = comb(x, views=v, step=5, generator=torch.Generator().manual_seed(11))
    assert g.shape == x.shape and torch.isfinite(g).all() and g.abs().sum() > 0
    # Oracle: replay the parts with the sub-generators CombinedGuidance draws from the step's generator.
    gen = torch.Generator().manual_seed(11)
    ref = torch.zeros_like(x)
    for part, w in comb.parts:
        sub = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen).item()))
        gk, _ = part(x, views=v, step=5, generator=sub)
        ref += w * gk
    torch.testing.assert_close(g, ref, rtol=1e-5, atol=1e-6)
    assert {"if/sds_loss", "mvdream/sds_loss", "if/t_mean"} <= set(info)
    one = build_guidance("a chair", GuidanceConfig(kind="tiny", mvdream_weight=0.0))
    assert len(one.parts) == 1 and one.parts[0][0].name == "if"


@pytest.fixture
def empty_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("ANCHORHOI_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path


def test_real_guidance_without_weights_is_one_line_naming_every_download(empty_weights):
    with pytest.raises(manifest.MissingWeightsError) as e:
        build_guidance("a chair", GuidanceConfig(kind="real"))
    msg = str(e.value)
    assert "\n" not in msg
    for name, repo in (("if-i-xl", "DeepFloyd/IF-I-XL-v1.0"), ("mvdream-sd21", "MVDream/MVDream"),
                       ("sd-2.1-base", "stabilityai/stable-diffusion-2-1-base")):
        assert f"missing weights for '{name}'" in msg and repo in msg
    with pytest.raises(manifest.MissingWeightsError,
                       match="is not an IF stage-I layout directory: missing unet/config.json"):
        build_guidance("a chair", GuidanceConfig(kind="real", if_dir=str(empty_weights), mvdream_weight=0.0))


def test_if_dir_in_save_pretrained_layout_loads(empty_weights):
    """Any IF stage-I directory written by save_pretrained (the learned prior of issue 7) loads through if_dir."""
    tiny = make_tiny_if(5, resolution=16)
    d = empty_weights / "learned_if"
    tiny.unet.save_pretrained(d / "unet")
    tiny.text_encoder.save_pretrained(d / "text_encoder")
    tiny.tokenizer.save_pretrained(d / "tokenizer")
    from diffusers import DDPMScheduler

    DDPMScheduler(beta_schedule="squaredcos_cap_v2", variance_type="learned_range").save_pretrained(d / "scheduler")
    cfg = GuidanceConfig(kind="real", if_dir=str(d), mvdream_weight=0.0, if_scale=7.5)
    loaded = build_guidance("a chair", cfg)
    ref = build_guidance("a chair", GuidanceConfig(kind="tiny", mvdream_weight=0.0, tiny_seed=5, if_scale=7.5))
    prior = loaded.parts[0][0].inner.prior
    for (n, a), (_, b) in zip(prior.unet.state_dict().items(), ref.parts[0][0].inner.prior.unet.state_dict().items()):
        assert torch.equal(a, b), n
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ga, _ = loaded(x, views=_views(4), step=0, generator=torch.Generator().manual_seed(1))
    gb, _ = ref(x, views=_views(4), step=0, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-6)


def test_bad_guidance_configs():
    with pytest.raises(ValueError, match="kind must be 'tiny' or 'real'"):
        GuidanceConfig(kind="big")
    with pytest.raises(ValueError, match=r"if_weight must be >= 0, got -1.0"):
        GuidanceConfig(if_weight=-1.0)
    with pytest.raises(ValueError, match="both 0"):
        GuidanceConfig(if_weight=0.0, mvdream_weight=0.0)
    with pytest.raises(ValueError, match="tiny_if_resolution must be >= 8"):
        GuidanceConfig(tiny_if_resolution=4)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        CombinedGuidance([(_Affine(1.0, 0.0), -1.0)])
    with pytest.raises(ValueError, match="at least one"):
        CombinedGuidance([])
