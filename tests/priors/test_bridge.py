"""DLPack hand-over (zero copy, no races) and the split SDS step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import optax
import pytest
import torch

from anchorhoi_jax.priors.bridge import (
    ViewInfo,
    images_to_model,
    jax_to_torch,
    make_sds_step,
    model_grad_to_images,
    torch_to_jax,
)
from anchorhoi_jax.priors.sds import GaussianPrior, SDSConfig, SDSGuidance


def test_cpu_round_trip_is_zero_copy():
    x = jax.random.normal(jax.random.key(0), (4, 5, 6))
    t = jax_to_torch(x)
    assert t.data_ptr() == x.unsafe_buffer_pointer()
    onp.testing.assert_array_equal(t.numpy(), onp.asarray(x))
    u = torch.randn(3, 7)
    y = torch_to_jax(u)
    assert y.unsafe_buffer_pointer() == u.data_ptr()
    onp.testing.assert_array_equal(onp.asarray(y), u.numpy())


def test_images_to_model_layout_range_and_grad_chain_rule():
    imgs = jax.random.uniform(jax.random.key(1), (2, 3, 5, 6, 3))  # seeds, views, H, W, C
    t = images_to_model(imgs, value_range=(-1.0, 1.0))
    assert t.shape == (6, 3, 5, 6)
    ref = onp.asarray(imgs).reshape(6, 5, 6, 3).transpose(0, 3, 1, 2) * 2 - 1
    onp.testing.assert_allclose(t.numpy(), ref, atol=1e-6)
    t16 = images_to_model(imgs, dtype="float16")
    assert t16.dtype == torch.float16
    g = torch.randn(6, 3, 5, 6)
    gj = model_grad_to_images(g, (2, 3), value_range=(-1.0, 1.0))
    assert gj.shape == (2, 3, 5, 6, 3)
    onp.testing.assert_allclose(onp.asarray(gj), 2 * g.numpy().transpose(0, 2, 3, 1).reshape(2, 3, 5, 6, 3), atol=1e-6)


def test_bridge_bad_inputs():
    with pytest.raises(TypeError, match="expects a jax.Array"):
        jax_to_torch(onp.zeros(3))
    with pytest.raises(TypeError, match="expects a torch.Tensor"):
        torch_to_jax(onp.zeros(3))
    with pytest.raises(ValueError, match="needs a contiguous tensor"):
        torch_to_jax(torch.zeros(4, 5).T)
    with pytest.raises(ValueError, match=r"must be \(..., H, W, C\)"):
        images_to_model(jnp.zeros((4, 4)))
    with pytest.raises(ValueError, match="grad must be NCHW"):
        model_grad_to_images(torch.zeros(2, 3, 4), (2,))


class _FixedGuidance:
    """Returns a fixed dL/dx_model so the parameter update can be checked exactly."""

    value_range = (-1.0, 1.0)
    dtype = torch.float32

    def __init__(self, g):
        self.g = g

    def __call__(self, x_model, *, views, step, generator):
        assert x_model.shape == self.g.shape
        return self.g.clone(), {"called": 1.0}


def test_split_step_equals_direct_jax_gradient():
    """forward/vjp -> torch grad -> pullback + optax equals SGD on sum(g * x_model(params))."""
    H = W = 4
    key = jax.random.key(2)
    params = {"a": jax.random.normal(key, (3, H, W, 3)), "b": jnp.ones(())}  # 3 views

    def render(p, batch):
        return jax.nn.sigmoid(p["a"] * p["b"] + batch)

    g = torch.randn(3, 3, H, W)
    init, step = make_sds_step(render, optax.sgd(0.1), _FixedGuidance(g))
    state = init(params, jax.random.key(0))
    views = ViewInfo(onp.zeros(3), onp.zeros(3))
    new_state, info = step(state, jnp.float32(0.2), views)
    g_nhwc = jnp.asarray(g.numpy().transpose(0, 2, 3, 1))

    def direct(p):
        return jnp.sum(g_nhwc * (2.0 * render(p, 0.2) - 1.0))

    ref = jax.tree.map(lambda p, d: p - 0.1 * d, params, jax.grad(direct)(params))
    for a, b in zip(jax.tree.leaves(new_state.params), jax.tree.leaves(ref)):
        onp.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(new_state.step) == 1 and info["called"] == 1.0


def test_split_step_with_extra_loss_and_aux():
    def render(p, batch):
        return jnp.broadcast_to(p, (2, 2, 2, 3)), {"mean": p.mean()}

    def extra(p, batch):
        return jnp.sum(p**2), None

    g = torch.zeros(2, 3, 2, 2)
    init, step = make_sds_step(render, optax.sgd(0.5), _FixedGuidance(g), has_aux=True, extra_loss_fn=extra)
    state = init(jnp.ones((2, 2, 3)), jax.random.key(0))
    state, info = step(state, None, ViewInfo(onp.zeros(2), onp.zeros(2)))
    onp.testing.assert_allclose(onp.asarray(state.params), 0.0, atol=1e-7)  # 1 - 0.5 * 2 * 1
    assert float(info["extra_loss"]) == pytest.approx(12.0)
    assert float(info["aux"]["mean"]) == pytest.approx(1.0)


def test_sds_through_bridge_converges_on_analytic_prior():
    """The whole path (JAX render -> DLPack -> torch SDS -> JAX pullback + Adam) reaches mu."""
    torch.manual_seed(0)
    mu = torch.rand(3, 8, 8) * 1.2 - 0.6  # model range [-1, 1]
    guidance = SDSGuidance(GaussianPrior(mu, 0.1), "p", SDSConfig(guidance_scale=1.0))

    def render(logits, batch):  # 2 seeds x 2 views of one image parameterised by logits
        return jnp.broadcast_to(jax.nn.sigmoid(logits), (2, 2, 8, 8, 3))

    init, step = make_sds_step(render, optax.adam(optax.cosine_decay_schedule(0.1, 300)), guidance)
    state = init(jnp.zeros((8, 8, 3)), jax.random.key(3))
    views = ViewInfo(onp.tile([0.0, 180.0], 2), onp.zeros(4), views_per_sample=2)
    for _ in range(300):
        state, info = step(state, None, views)
    x_model = 2 * jax.nn.sigmoid(state.params) - 1
    err = float(jnp.mean(jnp.abs(x_model - jnp.asarray(mu.numpy().transpose(1, 2, 0)))))
    print(f"bridge SDS mean |x - mu| = {err:.4f}")
    assert err < 0.03


@pytest.mark.gpu
def test_gpu_round_trip_zero_copy_and_race_free():
    """Fresh random data each iteration, outputs poisoned first: any missing sync shows as a mismatch."""
    dev = jax.devices("gpu")[0]
    f = jax.jit(lambda k: jax.random.normal(k, (64, 256, 256)) * 3.0 + 1.0)
    for i in range(50):
        x = f(jax.random.key(i))
        t = jax_to_torch(x)
        assert t.is_cuda and t.data_ptr() == x.unsafe_buffer_pointer()
        out = torch.full_like(t, float("nan"))  # poisoned
        out.copy_(t * 2.0)
        y = torch_to_jax(out)
        assert y.unsafe_buffer_pointer() == out.data_ptr() and y.devices() == {dev}
        ok = jnp.array_equal(y, x * 2.0)
        assert bool(ok), f"race at iteration {i}"
