"""Fast paths of the motion objective (custom VJPs, structure-of-arrays forms) against plain autodiff
of the direct formulas: capsule inside depth, self-penetration depths, object SDF sampling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.body.part_volumes import PartVolumes, inside_depth, self_penetration_depths
from anchorhoi_jax.geometry.sdf import SDFGrid, sample_sdf


def _seg_dist(x, a, b):
    ab = b - a
    t = jnp.clip(jnp.sum((x - a) * ab, -1) / jnp.maximum(jnp.sum(ab * ab, -1), 1e-12), 0.0, 1.0)
    d = x - (a + t[..., None] * ab)
    return jnp.sqrt(jnp.sum(d * d, -1) + 1e-12)


def _ref_inside_depth(x, p0, p1, r):
    return jnp.max(r[None] - _seg_dist(x[:, None], p0[None], p1[None]), -1)


def _ref_self_pen(pair_a, pair_b, p0, p1, r, samples=5):
    ts = jnp.linspace(0.0, 1.0, samples)
    a0, a1 = p0[pair_a], p1[pair_a]
    pts = a0[:, None] + ts[None, :, None] * (a1 - a0)[:, None]
    d = _seg_dist(pts, p0[pair_b][:, None], p1[pair_b][:, None])
    return jax.nn.relu((r[pair_a] + r[pair_b])[:, None] - d)


def _capsules(key, P=9):
    k0, k1, k2 = jax.random.split(key, 3)
    p0 = jax.random.uniform(k0, (P, 3), minval=-0.3, maxval=0.3)
    p1 = p0 + 0.2 * jax.random.normal(k1, (P, 3))
    r = jax.random.uniform(k2, (P,), minval=0.03, maxval=0.12)
    return p0, p1, r


@pytest.mark.parametrize("seed", [0, 1])
def test_inside_depth_value_and_grad_match_autodiff(seed):
    p0, p1, r = _capsules(jax.random.key(seed))
    x = jax.random.uniform(jax.random.key(seed + 10), (300, 3), minval=-0.4, maxval=0.4)
    w = jax.random.normal(jax.random.key(seed + 20), (300,))
    f = lambda fn: lambda *a: jnp.sum(w * jax.nn.relu(fn(*a)) ** 2)  # noqa: E731  (as L_pen uses it)
    onp.testing.assert_allclose(inside_depth(x, p0, p1, r), _ref_inside_depth(x, p0, p1, r), atol=1e-6)
    got = jax.grad(f(inside_depth), argnums=(0, 1, 2, 3))(x, p0, p1, r)
    want = jax.grad(f(_ref_inside_depth), argnums=(0, 1, 2, 3))(x, p0, p1, r)
    assert float(jnp.abs(want[1]).max()) > 1e-3  # the points do reach inside some capsules
    for a, b in zip(got, want):
        onp.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)
    # vmapped over frames (as the motion stage calls it) equals the per-frame result
    xs = jnp.stack([x, x + 0.01])
    v = jax.vmap(lambda q: inside_depth(q, p0, p1, r))(xs)
    onp.testing.assert_allclose(v[1], inside_depth(x + 0.01, p0, p1, r), atol=1e-7)


@pytest.mark.parametrize("seed", [0, 3])
def test_self_penetration_value_and_grad_match_autodiff(seed):
    P = 9
    p0, p1, r = _capsules(jax.random.key(seed), P)
    ia, ib = onp.triu_indices(P, 1)
    parts = PartVolumes(q0=p0, q1=p1, radius=r, joint=jnp.arange(P), pair_a=jnp.asarray(ia, jnp.int32),
                        pair_b=jnp.asarray(ib, jnp.int32))
    wq = jax.random.normal(jax.random.key(seed + 5), (len(ia), 5))
    got_d = self_penetration_depths(parts, p0, p1, r)
    want_d = _ref_self_pen(parts.pair_a, parts.pair_b, p0, p1, r)
    assert float(want_d.max()) > 0.01
    onp.testing.assert_allclose(got_d, want_d, atol=1e-6)
    f_got = lambda a, b, c: jnp.sum(wq * self_penetration_depths(parts, a, b, c) ** 2)  # noqa: E731
    f_want = lambda a, b, c: jnp.sum(wq * _ref_self_pen(parts.pair_a, parts.pair_b, a, b, c) ** 2)  # noqa: E731
    for a, b in zip(jax.grad(f_got, (0, 1, 2))(p0, p1, r), jax.grad(f_want, (0, 1, 2))(p0, p1, r)):
        onp.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)
    # frames batched by vmap (the motion stage's layout)
    g = jax.vmap(jax.grad(f_got, (0, 1, 2)))(jnp.stack([p0, p0 * 1.1]), jnp.stack([p1, p1]), jnp.stack([r, r]))
    onp.testing.assert_allclose(g[0][1], jax.grad(f_got, 0)(p0 * 1.1, p1, r), rtol=1e-5, atol=1e-7)
