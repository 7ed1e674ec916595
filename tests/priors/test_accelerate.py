"""Accelerated guidance (priors/accelerate.py): option validation, static-buffer replay, oracle vs eager.

On CPU the graph capture is emulated (the same `capture` contract: record once, replay reads the static
buffers), which exercises everything but the CUDA graph itself; the @gpu tests compare real CUDA-graph
replay with eager mode on tiny priors.
"""

from __future__ import annotations

import numpy as onp
import pytest
import torch

from anchorhoi_jax.priors.accelerate import (
    ACCELERATE_MODES,
    GraphedVJP,
    StaticShapeGraphs,
    VJPGraphs,
    check_accelerate,
)
from anchorhoi_jax.priors.bridge import ViewInfo
from anchorhoi_jax.priors.guidance import GuidanceConfig, build_guidance
from anchorhoi_jax.priors.image import make_tiny_if

PROMPT = "a person sitting on a chair"


class _EmulatedGraph:
    """Stands in for torch.cuda.CUDAGraph: replay recomputes the recorded function into the static output."""

    def __init__(self, run, out):
        self.run, self.out, self.replays = run, out, 0

    def replay(self):
        self.replays += 1
        with torch.no_grad():
            self.out.copy_(self.run())


def emulated_capture(run, device, warmup):
    with torch.no_grad():
        for _ in range(warmup):
            run()
        out = run()
    return _EmulatedGraph(run, out), out


class _EmulatedVJPReplay:
    def __init__(self, fn):
        self.fn, self.replays = fn, 0

    def replay(self):
        self.replays += 1
        self.fn()


def emulated_vjp_capture(module, sample, warmup):
    """VJPGraphs whose 'graphs' recompute the forward (keeping its autograd graph) and pull back through it."""
    x = sample.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        y = module(x)
    g = VJPGraphs(x=x.detach(), y=y.detach().clone(), y_bar=torch.zeros_like(y), x_bar=torch.zeros_like(sample),
                  forward=None, backward=None)
    live = {}

    def fwd():
        with torch.enable_grad():
            live["y"] = module(x)
        g.y.copy_(live["y"].detach())

    def bwd():
        with torch.enable_grad():
            (gx,) = torch.autograd.grad(live["y"], x, g.y_bar)
        g.x_bar.copy_(gx)

    g.forward, g.backward = _EmulatedVJPReplay(fwd), _EmulatedVJPReplay(bwd)
    return g


def _views(n, k=4):
    az = onp.arange(n) * 90.0 % 360.0
    el = onp.full(n, 10.0)
    c2w = onp.tile(onp.eye(4), (n, 1, 1))
    c2w[:, 0, 3] = 3.0 * onp.sin(onp.deg2rad(az))
    c2w[:, 2, 3] = 3.0 * onp.cos(onp.deg2rad(az))
    return ViewInfo(az, el, c2w, views_per_sample=k)


# ------------------------------------------------------------------------------------------------
# Option validation
# ------------------------------------------------------------------------------------------------


def test_modes_and_bad_values_one_line_errors():
    assert ACCELERATE_MODES == ("none", "cuda_graphs", "compile")
    assert GuidanceConfig().accelerate == "cuda_graphs" and GuidanceConfig().channels_last is True
    for m in ACCELERATE_MODES:
        assert check_accelerate(m) == m and GuidanceConfig(kind="tiny", accelerate=m).accelerate == m
    msg = "GuidanceConfig.accelerate must be one of 'none', 'cuda_graphs', 'compile', got 'fast'"
    with pytest.raises(ValueError, match=msg):
        GuidanceConfig(kind="tiny", accelerate="fast")
    msg = "accelerate mode must be one of 'none', 'cuda_graphs', 'compile', got 'graphs'"
    with pytest.raises(ValueError, match=msg):
        make_tiny_if(0).accelerate("graphs")
    with pytest.raises(ValueError, match="StaticShapeGraphs: warmup must be >= 1, got 0"):
        StaticShapeGraphs(lambda x: x, warmup=0)
    with pytest.raises(ValueError, match="GuidanceConfig.channels_last must be true or false, got 'yes'"):
        GuidanceConfig(kind="tiny", channels_last="yes")
    with pytest.raises(ValueError, match="accelerate: channels_last must be a bool, got 1"):
        make_tiny_if(0).accelerate("none", channels_last=1)
    with pytest.raises(ValueError, match="GraphedVJP: warmup must be >= 1, got 0"):
        GraphedVJP(lambda: torch.nn.Identity(), warmup=0)


def test_cpu_is_a_noop_and_build_guidance_applies_the_mode():
    prior = make_tiny_if(0)
    conv = next(m for m in prior.unet.modules() if isinstance(m, torch.nn.Conv2d))
    for m in ACCELERATE_MODES:
        assert prior.accelerate(m, channels_last=True) == "none" and prior._unet_runner is None
        assert prior.accelerated == "none" and prior.memory_format == torch.contiguous_format
        assert conv.weight.is_contiguous()  # CPU: not even the memory order changes
    comb = build_guidance(PROMPT, GuidanceConfig(kind="tiny", tiny_mvdream_resolution=16))  # default cuda_graphs
    priors = [g.inner.prior if hasattr(g, "inner") else g.prior for g, _ in comb.parts]
    assert [p.accelerated for p in priors] == ["none", "none"]  # CPU: eager, nothing captured


# ------------------------------------------------------------------------------------------------
# Static-buffer replay (emulated capture)
# ------------------------------------------------------------------------------------------------


def test_static_buffers_copy_in_clone_out_and_one_graph_per_signature():
    calls = []

    def fn(x, y, *, k):
        calls.append(k)
        return x * 2.0 + y.sum() + k

    r = StaticShapeGraphs(fn, warmup=2, max_graphs=2, capture=emulated_capture)
    a, b = torch.arange(6.0).view(2, 3), torch.ones(4)
    out1 = r(a, b, k=1)
    assert len(calls) == 3 + 1  # 2 warm-up + capture + first replay
    torch.testing.assert_close(out1, a * 2 + 4 + 1, rtol=0, atol=0)
    graph, bufs, static_out = r.graphs[next(iter(r.graphs))]
    assert bufs[0].data_ptr() != a.data_ptr() and out1.data_ptr() != static_out.data_ptr()
    a2, b2 = -a, 3 * b
    out2 = r(a2, b2, k=1)  # same signature: replayed with the new inputs copied into the static buffers
    assert len(r.graphs) == 1 and graph.replays == 2
    torch.testing.assert_close(out2, a2 * 2 + 12 + 1, rtol=0, atol=0)
    torch.testing.assert_close(out1, a * 2 + 4 + 1, rtol=0, atol=0)  # the first result was a clone
    r(a2, b2, k=2)  # a static argument is part of the signature
    assert len(r.graphs) == 2
    with pytest.raises(RuntimeError, match="StaticShapeGraphs: more than 2 input signatures"):
        r(torch.zeros(3, 3), b, k=1)


def test_graphed_vjp_buffers_gradients_and_stale_backward_guard():
    torch.manual_seed(0)
    lin = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh()).requires_grad_(False)
    enc = GraphedVJP(lambda: lin, capture=emulated_vjp_capture, max_graphs=1)
    xs = [torch.randn(3, 5, requires_grad=True) for _ in range(3)]
    v = torch.randn(3, 7)
    grads = []
    for x in xs[:2]:
        y = enc(x)
        (gx,) = torch.autograd.grad(y, x, v)
        (ge,) = torch.autograd.grad(lin(x), x, v)
        torch.testing.assert_close(y, lin(x), rtol=0, atol=0)
        torch.testing.assert_close(gx, ge, rtol=0, atol=0)
        grads.append(gx)
    g = next(iter(enc.graphs.values()))
    assert len(enc.graphs) == 1 and g.forward.replays == 2 and g.backward.replays == 2
    assert grads[0].data_ptr() != g.x_bar.data_ptr() and not torch.equal(grads[0], grads[1])  # clones
    with torch.no_grad():
        torch.testing.assert_close(enc(xs[2]), lin(xs[2]))  # no grad: eager, nothing replayed
    assert g.forward.replays == 2
    y1 = enc(xs[0])
    enc(xs[1])  # a second forward of the same shape overwrites the saved activations
    with pytest.raises(RuntimeError, match="GraphedVJP: backward after a later forward of the same shape"):
        torch.autograd.grad(y1, xs[0], v)
    with pytest.raises(RuntimeError, match="GraphedVJP: more than 1 input signatures"):
        enc(torch.randn(2, 5, requires_grad=True))


@pytest.mark.parametrize("which", ["if", "mvdream"])
def test_emulated_graphs_equal_eager_guidance(which):
    """Whole SDS guidance (encode, CFG UNet batch, pullback) through the replay path == eager, bit for bit."""
    cfg = GuidanceConfig(kind="tiny", if_weight=float(which == "if"), mvdream_weight=float(which == "mvdream"),
                         tiny_mvdream_resolution=16, accelerate="none")
    comb = build_guidance(PROMPT, cfg)
    (g, _), = comb.parts
    prior = g.inner.prior if hasattr(g, "inner") else g.prior
    xs = [torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(s)) * 2 - 1 for s in (0, 1)]

    def run():
        return [comb(x, views=_views(4), step=10 + i, generator=torch.Generator().manual_seed(7 + i))
                for i, x in enumerate(xs)]

    eager = run()
    assert prior.accelerate("cuda_graphs", capture=emulated_capture, capture_vjp=emulated_vjp_capture) == "cuda_graphs"
    fast = run()
    assert len(prior._unet_runner.graphs) == 1  # both steps replayed the one captured signature
    graph = next(iter(prior._unet_runner.graphs.values()))[0]
    assert graph.replays == 2
    if which == "mvdream":  # the VAE encoder's forward and VJP were replayed too
        (vjp,) = prior._encoder.graphs.values()
        assert vjp.forward.replays == 2 and vjp.backward.replays == 2
    for (ge, ie), (gf, if_) in zip(eager, fast):
        assert torch.equal(ge, gf) and ie == if_ and ge.abs().sum() > 0
    assert prior.accelerate("none") == "none" and prior._unet_runner is None
    # NHWC convolutions (other kernels, same arithmetic), replayed: equal to float32 rounding
    prior.accelerate("cuda_graphs", channels_last=True, capture=emulated_capture, capture_vjp=emulated_vjp_capture)
    conv = next(m for m in prior.unet.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    for (ge, _), (gc, _) in zip(eager, run()):
        torch.testing.assert_close(gc, ge, rtol=1e-4, atol=1e-4 * float(ge.abs().max()))
    prior.accelerate("none")
    assert conv.weight.is_contiguous()


# ------------------------------------------------------------------------------------------------
# Real CUDA graphs (device machine)
# ------------------------------------------------------------------------------------------------


def _rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,tol,channels_last", [(torch.float32, 5e-3, False), (torch.float16, 2e-2, False),
                                                     (torch.float16, 2e-2, True)])
def test_gpu_cuda_graphs_equal_eager(dtype, tol, channels_last):
    """IF + MVDream tiny priors on CUDA: captured-graph guidance == eager guidance (3 steps, fresh inputs)."""
    cfg = GuidanceConfig(kind="tiny", tiny_mvdream_resolution=32, accelerate="none")
    comb = build_guidance(PROMPT, cfg, device="cuda", dtype=dtype)
    priors = [g.inner.prior if hasattr(g, "inner") else g.prior for g, _ in comb.parts]
    xs = [(torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(s)) * 2 - 1).to("cuda", dtype)
          for s in range(3)]
    views = _views(8)

    def run():
        out = []
        for i, x in enumerate(xs):
            g, info = comb(x, views=views, step=100 + i, generator=torch.Generator(device="cuda").manual_seed(3 + i))
            out.append((g.clone(), info))
        return out

    eager = run()
    assert [p.accelerate("cuda_graphs", channels_last=channels_last) for p in priors] == ["cuda_graphs"] * 2
    fast = run()
    for (ge, ie), (gf, if_) in zip(eager, fast):
        assert torch.isfinite(gf).all() and _rel(gf, ge) < tol, _rel(gf, ge)
        assert abs(if_["if/t_mean"] - ie["if/t_mean"]) == 0 and abs(if_["mvdream/t_mean"] - ie["mvdream/t_mean"]) == 0
    assert all(len(p._unet_runner.graphs) == 1 for p in priors)
    assert len(priors[1]._encoder.graphs) == 1


@pytest.mark.gpu
def test_gpu_graphed_encoder_vjp_equals_autograd():
    """The graphed VAE encoder returns the eager latent and the eager input gradient (fresh inputs each call)."""
    cfg = GuidanceConfig(kind="tiny", if_weight=0.0, tiny_mvdream_resolution=32, accelerate="none")
    (g, _), = build_guidance(PROMPT, cfg, device="cuda", dtype=torch.float32).parts
    prior = g.prior
    eager_enc = prior._encoder
    prior.accelerate("cuda_graphs")
    grads = []
    for s in range(3):
        gen = torch.Generator(device="cuda").manual_seed(s)
        x = (torch.rand(4, 3, 16, 16, device="cuda", generator=gen) * 2 - 1).requires_grad_(True)
        ze = eager_enc(x)
        v = torch.randn(ze.shape, device="cuda", generator=gen)
        (gxe,) = torch.autograd.grad(ze, x, v)
        zf = prior.encode(x)
        (gxf,) = torch.autograd.grad(zf, x, v)
        assert _rel(zf, ze) < 5e-3 and _rel(gxf, gxe) < 5e-3
        grads.append(gxf)
    assert not torch.equal(grads[0], grads[1])  # returned gradients are not one aliased buffer
