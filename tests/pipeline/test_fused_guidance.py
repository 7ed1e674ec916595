"""StackedGuidance(fuse=True) (the object stage's one-UNet-call-per-prior option) against the chunk-by-chunk
path on tiny IF + MVDream priors: same gradients (same timesteps and noise), same diagnostics."""

from __future__ import annotations

import numpy as onp
import pytest
import torch

from anchorhoi_jax.priors.bridge import ViewInfo
from anchorhoi_jax.priors import guidance as G
from anchorhoi_jax.priors.guidance import GuidanceConfig, StackedGuidance
from anchorhoi_jax.stages.composition import _guidances
from anchorhoi_jax.stages.object_stage import ObjectConfig, _Named


def _views(n):
    rng = onp.random.default_rng(0)
    az = rng.uniform(-180, 180, n)
    el = rng.uniform(-10, 40, n)
    c2w = onp.tile(onp.eye(4), (n, 1, 1))
    c2w[:, :3, 3] = rng.normal(size=(n, 3)) * 2.0
    return ViewInfo(azimuth_deg=az, elevation_deg=el, camera_to_world=c2w, views_per_sample=4)


@pytest.fixture(scope="module")
def guidances():
    # one tiny IF + one tiny MVDream shared by both prompts, as composition.build_priors builds them
    return _guidances(["a sofa", "a man sitting on a sofa"], GuidanceConfig(kind="tiny"), device="cpu",
                      dtype=torch.float32)


@pytest.fixture(scope="module")
def guidances_one_if_view():
    # the paper preset's IF: one of each group's 4 views per step (GuidanceConfig.if_views_per_group = 1)
    return _guidances(["a sofa", "a man sitting on a sofa"], GuidanceConfig(kind="tiny", if_views_per_group=1),
                      device="cpu", dtype=torch.float32)


@pytest.mark.parametrize("weights,if_views", [((1.0, 1.0), None), ((0.7, 0.0), None), ((0.8, 0.6), 1)])
def test_fused_equals_chunked(guidances, guidances_one_if_view, weights, if_views):
    g_obj, g_lay = guidances if if_views is None else guidances_one_if_view
    parts = [(_Named(g_obj, "object"), weights[0]), (_Named(g_lay, "layout"), weights[1])]
    chunked, fused = StackedGuidance(parts), StackedGuidance(parts, fuse=True, fuse_max_images=16)
    assert chunked._fused is None and fused._fused is not None
    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1  # 2 seeds x 4 views x 2 chunks
    v = _views(16)
    for step in ((0, 2500) if if_views is None else (2500,)):
        a, ia = chunked(x, views=v, step=step, generator=torch.Generator().manual_seed(7))
        b, ib = fused(x, views=v, step=step, generator=torch.Generator().manual_seed(7))
        assert a.dtype == b.dtype == torch.float32 and a.shape == b.shape
        # float32 kernels round differently at another batch size (IF sees 4 fused images vs 2 per chunk when
        # it scores one view per group): absolute tolerance relative to the gradient's scale
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6 * max(1.0, 10 * float(a.abs().max())))
        assert float(a.abs().sum()) > 0
        assert sorted(ia) == sorted(ib)
        for k in ia:
            assert ib[k] == pytest.approx(ia[k], rel=1e-4, abs=1e-6), k
    # above fuse_max_images the fused guidance runs chunk by chunk: bitwise the chunked result
    c, _ = StackedGuidance(parts, fuse=True, fuse_max_images=8)(x, views=v, step=0,
                                                                generator=torch.Generator().manual_seed(7))
    r, _ = chunked(x, views=v, step=0, generator=torch.Generator().manual_seed(7))
    assert torch.equal(c, r)
    if weights[1] == 0.0:
        assert not any(k.startswith("layout/") for k in ia) and float(a[8:].abs().sum()) == 0.0
    if if_views == 1:
        # IF scored 1 of 4 views per group: run IF alone (MVDream weight 0) and count the unscored images
        only_if = [(_Named(G.CombinedGuidance([g.parts[0]]), name), w) for (g, w), name in
                   zip([(g_obj, weights[0]), (g_lay, weights[1])], ("object", "layout"))]
        f, _ = StackedGuidance(only_if, fuse=True)(x, views=v, step=0, generator=torch.Generator().manual_seed(7))
        c, _ = StackedGuidance(only_if)(x, views=v, step=0, generator=torch.Generator().manual_seed(7))
        torch.testing.assert_close(f, c, rtol=1e-4, atol=1e-6 * max(1.0, 10 * float(c.abs().max())))
        scored = (c.flatten(1).abs().sum(1) > 0).numpy().reshape(4, 4)  # (chunk x seed) groups of 4 views
        live = onp.repeat([weights[0] > 0, weights[1] > 0], 2)
        assert (scored.sum(1) == onp.where(live, 1, 0)).all(), scored


def test_fuse_falls_back_when_parts_differ(guidances):
    g_obj = guidances[0]
    (g_other,) = _guidances(["a man"], GuidanceConfig(kind="tiny", tiny_seed=3), device="cpu", dtype=torch.float32)
    # other prior instances: not fusable, runs chunk by chunk
    assert StackedGuidance([(g_obj, 1.0), (g_other, 1.0)], fuse=True)._fused is None
    with pytest.raises(ValueError, match="StackedGuidance: fuse must be a bool, got 'yes'"):
        StackedGuidance([(g_obj, 1.0)], fuse="yes")
    with pytest.raises(ValueError, match="StackedGuidance: fuse_max_images must be an integer >= 1, got 0"):
        StackedGuidance([(g_obj, 1.0)], fuse=True, fuse_max_images=0)
    with pytest.raises(ValueError, match="ObjectConfig.fuse_guidance must be true or false, got 1"):
        ObjectConfig(fuse_guidance=1)
