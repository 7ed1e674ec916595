"""The guidance queues its GPU work without reading device values mid-step (session 6 speed work).

What is checked on CPU: the pieces that make that possible compute exactly what they replaced
(host_to_device == torch.as_tensor(device=...), LazyScalar reads the same number, CombinedGuidance /
StackedGuidance draw their sub-generators before any part runs and so keep the old seeds), and the
encoder layout option's bad inputs. The CUDA behaviour (no stream synchronisation) is measured on the
device machine (benchmarks/pipeline.py --layout-ab: profiler counts of cudaStreamSynchronize per call).
"""

from __future__ import annotations

import numpy as onp
import pytest
import torch

from anchorhoi_jax.priors import guidance as G
from anchorhoi_jax.priors.bridge import LazyScalar, ViewInfo, host_to_device
from anchorhoi_jax.priors.mvdream import make_tiny_mvdream


def test_host_to_device_equals_as_tensor():
    for a, dt in ((onp.array([3, 0, 2]), torch.int64), ([1, 2, 3], torch.int64), (onp.eye(4, dtype=onp.float32), None)):
        ref = torch.as_tensor(a, dtype=dt, device="cpu")
        got = host_to_device(a, "cpu", dt)
        assert got.dtype == ref.dtype and torch.equal(got, ref)


def test_lazy_scalar_reads_like_a_float():
    v = LazyScalar(torch.tensor(2.5, requires_grad=True) * 2)
    assert float(v) == 5.0 and v == 5.0 and v > 4 and v >= 5 and v < 6 and v <= 5 and not v == 4
    assert onp.isfinite(v) and float(onp.asarray(v)) == 5.0 and repr(v) == "5.0"
    assert v == pytest.approx(5.0) and LazyScalar(torch.tensor(1.0)) == LazyScalar(torch.tensor(1.0))
    assert v.__eq__("x") is NotImplemented
    with pytest.raises(TypeError):
        hash(v)


class _Recorder:
    """A guidance part that records the parent generator's state when it is called."""

    value_range = (-1.0, 1.0)
    dtype = torch.float32

    def __init__(self, parent_log: list, parent: list):
        self.log, self.parent = parent_log, parent

    def __call__(self, x, *, views, step, generator):
        self.log.append(self.parent[0].get_state().clone())
        return torch.zeros_like(x), {"seed": float(generator.initial_seed())}


def _views(n):
    return ViewInfo(azimuth_deg=onp.zeros(n), elevation_deg=onp.zeros(n), camera_to_world=onp.tile(onp.eye(4), (n, 1, 1)),
                    views_per_sample=4)


def test_combined_draws_all_generators_before_any_part():
    log, parent = [], [None]
    comb = G.CombinedGuidance([(_Recorder(log, parent), 1.0), (_Recorder(log, parent), 0.0), (_Recorder(log, parent), 2.0)])
    parent[0] = torch.Generator().manual_seed(11)
    _, info = comb(torch.zeros(4, 3, 8, 8), views=_views(4), step=0, generator=parent[0])
    ref = torch.Generator().manual_seed(11)
    seeds = [G._sub_generator(ref).initial_seed() for _ in range(3)]  # the seeds drawing part by part gave
    assert len(log) == 2 and all(torch.equal(s, ref.get_state()) for s in log)  # all three drawn before part 0 ran
    assert [info["part0/seed"], info["part2/seed"]] == [float(seeds[0]), float(seeds[2])]


def test_stacked_draws_chunk_generators_before_any_chunk():
    log, parent = [], [None]
    st = G.StackedGuidance([(_Recorder(log, parent), 1.0), (_Recorder(log, parent), 1.0)])
    parent[0] = torch.Generator().manual_seed(5)
    st(torch.zeros(8, 3, 8, 8), views=_views(8), step=0, generator=parent[0])
    ref = torch.Generator().manual_seed(5)
    [G._sub_generator(ref) for _ in range(2)]
    assert len(log) == 2 and all(torch.equal(s, ref.get_state()) for s in log)


def test_sds_diagnostics_are_lazy_and_read_back_equal():
    cfg = G.GuidanceConfig(kind="tiny", if_views_per_group=1)
    comb = G.build_guidance("a chair", cfg)
    n = 4
    views = ViewInfo(azimuth_deg=onp.array([0.0, 90.0, 180.0, 270.0]), elevation_deg=onp.zeros(n),
                     camera_to_world=onp.tile(onp.eye(4), (n, 1, 1)), views_per_sample=4)
    x = torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    g1, i1 = comb(x, views=views, step=3, generator=torch.Generator().manual_seed(1))
    g2, i2 = comb(x, views=views, step=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(g1, g2) and sorted(i1) == sorted(i2)
    assert all(isinstance(v, LazyScalar) for v in i1.values())
    assert all(float(i1[k]) == float(i2[k]) and onp.isfinite(float(i1[k])) for k in i1)


def test_encoder_layout_option_and_errors():
    assert G.GuidanceConfig().encoder_channels_last is False
    with pytest.raises(ValueError, match="GuidanceConfig.encoder_channels_last must be true or false, got 'no'"):
        G.GuidanceConfig(kind="tiny", encoder_channels_last="no")
    prior = make_tiny_mvdream(0)
    with pytest.raises(ValueError, match="accelerate: encoder_channels_last must be a bool or None, got 1"):
        prior.accelerate("none", encoder_channels_last=1)

    def capture(run, device, warmup):  # CPU stand-in for the CUDA recorder (layouts are what is checked)
        class _G:
            def replay(self):
                pass
        return _G(), run()

    def vae_conv():
        return next(m for m in prior.vae.encoder.modules() if isinstance(m, torch.nn.Conv2d))

    def unet_conv():
        return next(m for m in prior.unet.modules() if isinstance(m, torch.nn.Conv2d))

    prior.accelerate("cuda_graphs", channels_last=True, capture=capture)
    assert prior.encoder_memory_format == torch.channels_last  # None follows channels_last (as before)
    assert vae_conv().weight.is_contiguous(memory_format=torch.channels_last)
    prior.accelerate("cuda_graphs", channels_last=True, encoder_channels_last=False, capture=capture)
    assert prior.memory_format == torch.channels_last and prior.encoder_memory_format == torch.contiguous_format
    assert unet_conv().weight.is_contiguous(memory_format=torch.channels_last) and vae_conv().weight.is_contiguous()
    prior.accelerate("none")
    assert unet_conv().weight.is_contiguous() and vae_conv().weight.is_contiguous()


@pytest.mark.gpu
def test_gpu_host_to_device_is_equal():
    a = onp.arange(37, dtype=onp.int64)[::-1].copy()
    got = host_to_device(a, "cuda", torch.int64)
    assert torch.equal(got.cpu(), torch.as_tensor(a))
