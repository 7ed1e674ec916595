"""GuidanceConfig.if_views_per_group: IF scores k of each group of views per SDS step (IndependentViews).

Oracles: the drawn rows (k distinct per group, every view equally often), the gradient (k/group of the
rows get group/k x the inner guidance's gradient on exactly those images, the rest 0: unbiased for the
all-view sum), determinism in the step's generator, the built guidances, and the bad inputs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as onp
import pytest
import torch

from anchorhoi_jax.priors.bridge import ViewInfo
from anchorhoi_jax.priors.guidance import (
    CombinedGuidance,
    GuidanceConfig,
    IndependentViews,
    build_guidance,
    group_subset,
)

REPO = Path(__file__).resolve().parents[2]


class _Affine:
    """dL/dx = a x + b per image (records each call's images and views)."""

    value_range = (-1.0, 1.0)
    dtype = torch.float32

    def __init__(self, a=2.0, b=0.5):
        self.a, self.b, self.calls = a, b, []

    def __call__(self, x_model, *, views, step, generator):
        self.calls.append((x_model.clone(), views))
        return self.a * x_model + self.b, {"n": float(x_model.shape[0])}


def _views(n, group=4):
    c2w = onp.tile(onp.eye(4), (n, 1, 1))
    c2w[:, 0, 3] = onp.arange(n)
    return ViewInfo(onp.arange(n) * 90.0 % 360.0, onp.arange(n) * 1.0, c2w, views_per_sample=group)


def test_group_subset_draws_k_distinct_views_per_group_uniformly():
    counts = onp.zeros(12)
    for seed in range(400):
        rows = group_subset(12, 4, 2, torch.Generator().manual_seed(seed))
        assert rows.shape == (6,) and (onp.diff(rows.reshape(3, 2), axis=1) > 0).all()  # sorted, distinct
        assert (rows.reshape(3, 2) // 4 == onp.arange(3)[:, None]).all()  # 2 rows inside each group
        counts[rows] += 1
    # every view is chosen with probability 2/4: 200 of 400 draws, binomial sd 10
    assert onp.abs(counts - 200).max() < 50, counts
    a = group_subset(8, 4, 1, torch.Generator().manual_seed(3))
    b = group_subset(8, 4, 1, torch.Generator().manual_seed(3))
    onp.testing.assert_array_equal(a, b)  # same stream, same views
    assert len({tuple(group_subset(8, 4, 1, torch.Generator().manual_seed(s))) for s in range(20)}) > 4
    with pytest.raises(ValueError, match="batch of 6 images does not split into groups of 4 views"):
        group_subset(6, 4, 1, torch.Generator())


def test_one_view_per_group_scores_those_images_with_the_unbiased_scale():
    x = torch.rand(8, 3, 5, 5, generator=torch.Generator().manual_seed(0)) * 2 - 1
    v = _views(8)
    inner = _Affine()
    g, info = IndependentViews(inner, per_group=1)(x, views=v, step=7, generator=torch.Generator().manual_seed(4))
    rows = group_subset(8, 4, 1, torch.Generator().manual_seed(4))  # what the step's generator draws first
    (xs, vs), = inner.calls
    assert xs.shape[0] == 2 and torch.equal(xs, x[rows])
    assert vs.views_per_sample == 1
    onp.testing.assert_array_equal(vs.azimuth_deg, v.azimuth_deg[rows])
    onp.testing.assert_array_equal(vs.camera_to_world, v.camera_to_world[rows])
    full = 2.0 * x.double() + 0.5
    expect = torch.zeros_like(full)
    expect[rows] = 4.0 * full[rows]
    torch.testing.assert_close(g.double(), expect, rtol=1e-6, atol=1e-6)
    assert g.dtype == torch.float32 and info == {"n": 2.0}
    # Unbiased: averaged over the 4 equally likely choices per group, the all-view gradient.
    mean = torch.zeros_like(full)
    for seed in range(600):
        mean += IndependentViews(_Affine(), per_group=1)(x, views=v, step=7,
                                                          generator=torch.Generator().manual_seed(seed))[0].double()
    assert float((mean / 600 - full).abs().max() / full.abs().max()) < 0.35  # 600 draws: sd ~ 0.07 of 4|full|
    # k >= group (or None): every view, exactly the inner guidance, no draw
    for k in (None, 4, 9):
        inner = _Affine()
        gk, _ = IndependentViews(inner, per_group=k)(x, views=v, step=0, generator=torch.Generator().manual_seed(4))
        torch.testing.assert_close(gk, 2.0 * x + 0.5)
        assert inner.calls[0][0].shape[0] == 8 and inner.calls[0][1].views_per_sample == 1


def test_built_guidance_scores_one_if_view_per_group_deterministically():
    """build_guidance with tiny priors: IF's UNet sees 1 image per group (x2 for CFG); MVDream still all views;
    the same generator gives the same gradient; the IF part equals IndependentViews(per_group=1) by hand."""
    cfg = GuidanceConfig(kind="tiny", tiny_mvdream_resolution=16, if_views_per_group=1)
    comb = build_guidance("a person sitting on a chair", cfg)
    (g_if, _), (g_mv, _) = comb.parts
    assert g_if.per_group == 1 and g_if.name == "if"
    seen = []
    eps = g_if.inner.prior.predict_eps
    g_if.inner.prior.predict_eps = lambda z, *a, **k: (seen.append(z.shape[0]), eps(z, *a, **k))[1]
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1  # 2 seeds x 4 views
    v = _views(8)
    ga, ia = comb(x, views=v, step=5, generator=torch.Generator().manual_seed(11))
    gb, ib = comb(x, views=v, step=5, generator=torch.Generator().manual_seed(11))
    assert seen == [4, 4] and torch.equal(ga, gb) and ia == ib  # 2 groups x 1 view x (cond, uncond)
    gen = torch.Generator().manual_seed(11)
    subs = [torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen).item())) for _ in range(2)]
    ref_if, _ = g_if(x, views=v, step=5, generator=subs[0])
    ref_mv, _ = g_mv(x, views=v, step=5, generator=subs[1])
    torch.testing.assert_close(ga, ref_if + ref_mv, rtol=1e-5, atol=1e-6)
    zero_rows = (ref_if.flatten(1).abs().sum(1) == 0).numpy()
    assert zero_rows.sum() == 6  # 3 of each group's 4 views unscored by IF
    assert build_guidance("a chair", GuidanceConfig(kind="tiny", mvdream_weight=0.0)).parts[0][0].per_group is None


def test_paper_and_smoke_presets_score_one_if_view():
    from anchorhoi_jax.io.config import load_config
    from anchorhoi_jax.pipeline.generate_config import GenerateConfig

    for name in ("anchorhoi.yaml", "smoke.yaml", "bench_pipeline.yaml"):
        assert load_config(GenerateConfig, REPO / "configs" / name).compose.guidance.if_views_per_group == 1, name
    assert GenerateConfig().compose.guidance.if_views_per_group is None  # the dataclass default: every view


def test_bad_if_views_inputs():
    for bad in (0, -1, True, 1.5, "1"):
        with pytest.raises(ValueError, match=re.escape(
                f"GuidanceConfig.if_views_per_group must be null or an integer >= 1, got {bad!r}")):
            GuidanceConfig(if_views_per_group=bad)
    with pytest.raises(ValueError, match="IndependentViews: per_group must be None or an integer >= 1, got 0"):
        IndependentViews(_Affine(), per_group=0)
    with pytest.raises(ValueError, match="batch of 6 images does not split into groups of 4 views"):
        CombinedGuidance([(IndependentViews(_Affine(), per_group=1), 1.0)])(
            torch.zeros(6, 3, 2, 2), views=_views(6), step=0, generator=torch.Generator())
