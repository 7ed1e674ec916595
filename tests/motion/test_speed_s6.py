"""Session-6 Pallas (Triton) kernels of the capsule terms (anchorhoi_jax/kernels/capsules.py): forward and
backward, run by the Pallas interpreter on the CPU, against the XLA path of body/part_volumes (values,
argmax incl. ties, gradients, under vmap); the kernels lower to Triton for CUDA; bad settings raise
one-line errors; the motion objective with the interpreted kernels equals the XLA one."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.body import part_volumes as pv
from anchorhoi_jax.body.part_volumes import PartVolumes, inside_depth, self_penetration_depths
from anchorhoi_jax.kernels import capsules as K


def _capsules(key, P, spread=0.3):
    k0, k1, k2 = jax.random.split(key, 3)
    p0 = jax.random.uniform(k0, (P, 3), minval=-spread, maxval=spread)
    p1 = p0 + 0.2 * jax.random.normal(k1, (P, 3))
    r = jax.random.uniform(k2, (P,), minval=0.03, maxval=0.12)
    return p0, p1, r


def _table(p0, p1, r):
    _, inv = pv._capsule_constants(p0, p1)
    return K.capsule_table(p0, p1, inv, r)


@pytest.mark.parametrize("P,N", [(9, 300), (55, 1000)])
def test_capsule_kernel_forward_matches_xla(P, N):
    """Depth and argmax equal the XLA (P, N) reduction (N not a multiple of the block; a duplicated
    capsule: the tie goes to the lower index)."""
    p0, p1, r = _capsules(jax.random.key(P), P)
    p0, p1, r = p0.at[5].set(p0[3]), p1.at[5].set(p1[3]), r.at[5].set(r[3])
    x = jax.random.uniform(jax.random.key(P + 1), (N, 3), minval=-0.4, maxval=0.4)
    x = x.at[0].set(0.5 * (p0[3] + p1[3]))
    want_v, want_i = pv._depth_max(x, p0, p1, r)
    for unroll in (True, False):
        v, i = K.capsule_depth_max_pallas(x, _table(p0, p1, r), interpret=True, block=256, unroll=unroll)
        assert v.shape == (N,) and i.dtype == jnp.int32
        onp.testing.assert_allclose(v, want_v, rtol=0, atol=1e-6)
        onp.testing.assert_array_equal(i, want_i)
        assert int(i[0]) == 3


def test_self_pen_kernel_forward_matches_xla():
    P = 12
    p0, p1, r = _capsules(jax.random.key(21), P)
    r = 2.0 * r
    ia, ib = onp.triu_indices(P, 1)
    pa, pb = jnp.asarray(ia, jnp.int32), jnp.asarray(ib, jnp.int32)
    want = pv._self_pen(5, "xla", pa, pb, p0, p1, r)
    got = K.self_pen_depths_pallas(_table(p0, p1, r), pa, pb, 5, interpret=True, block=32)
    assert got.shape == (len(ia), 5) and float(jnp.max(want)) > 0
    onp.testing.assert_allclose(got, want, rtol=0, atol=1e-7)


def test_gradients_match_xla_under_vmap():
    """L_pen's part term and the self-penetration term (their loss forms) differentiated through the
    kernels (interpreted) equal the XLA custom VJPs, per frame under vmap, with
    penetrating points / overlapping pairs present (else the test would compare zeros). The part sums
    run in another order (atomics vs scatter), so the tolerance is 1e-6 absolute plus 1e-6 relative."""
    P, N = 20, 400
    frames = [_capsules(jax.random.key(30 + f), P, spread=0.15) for f in range(2)]
    p0, p1, r = (jnp.stack(z) for z in zip(*frames))
    r = r * 1.5
    x = jnp.stack([jax.random.uniform(jax.random.key(40 + f), (N, 3), minval=-0.3, maxval=0.3) for f in range(2)])
    w = jax.random.uniform(jax.random.key(5), (N,))
    ia, ib = onp.triu_indices(P, 1)
    parts = PartVolumes(q0=p0[0], q1=p1[0], radius=r[0], joint=jnp.arange(P), pair_a=jnp.asarray(ia, jnp.int32),
                        pair_b=jnp.asarray(ib, jnp.int32))
    wq = jax.random.uniform(jax.random.key(6), (len(ia), 5))

    def pen(impl):
        return lambda a, b, c, d: jnp.sum(w * jax.nn.relu(inside_depth(a, b, c, d, impl=impl)) ** 2)

    def selfpen(impl):
        return lambda b, c, d: jnp.sum(wq * self_penetration_depths(parts, b, c, d, impl=impl) ** 2)

    assert float(jnp.mean(jax.vmap(pv._depth_max)(x, p0, p1, r)[0] > 0)) > 0.05
    assert float(jnp.max(jax.vmap(lambda a, b, c: self_penetration_depths(parts, a, b, c))(p0, p1, r))) > 0
    for f, args in ((pen, (x, p0, p1, r)), (selfpen, (p0, p1, r))):
        want_v, want_g = jax.vmap(jax.value_and_grad(f("xla"), argnums=tuple(range(len(args)))))(*args)
        got_v, got_g = jax.vmap(jax.value_and_grad(f("interpret"), argnums=tuple(range(len(args)))))(*args)
        onp.testing.assert_allclose(got_v, want_v, rtol=1e-6)
        for a, b in zip(got_g, want_g):
            assert float(jnp.max(jnp.abs(b))) > 0
            onp.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)  # float32 sums in another order


def test_kernels_lower_to_triton():
    """Forward and backward of both terms lower to Triton kernels for CUDA (cross-platform lowering on
    the CPU: catches unsupported ops before a GPU run)."""
    P, N = 16, 256
    p0, p1, r = _capsules(jax.random.key(7), P)
    x = jax.random.uniform(jax.random.key(8), (N, 3))
    ia, ib = onp.triu_indices(P, 1)
    parts = PartVolumes(q0=p0, q1=p1, radius=r, joint=jnp.arange(P), pair_a=jnp.asarray(ia, jnp.int32),
                        pair_b=jnp.asarray(ib, jnp.int32))
    f = lambda a, b, c, d: (jnp.sum(inside_depth(a, b, c, d, impl="pallas") ** 2)  # noqa: E731
                            + jnp.sum(self_penetration_depths(parts, b, c, d, impl="pallas") ** 2))
    g = jax.jit(jax.vmap(jax.grad(f, argnums=(0, 1, 2, 3))))
    text = g.trace(*(jnp.stack([a, a]) for a in (x, p0, p1, r))).lower(lowering_platforms=("cuda",)).as_text()
    assert text.count("xla.gpu.triton") == 4


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="unknown kernel impl 'cuda'"):
        K.resolve_impl("cuda")
    assert K.resolve_impl("auto") == ("pallas" if jax.default_backend() == "gpu" else "xla")
    p0, p1, r = _capsules(jax.random.key(9), 4)
    with pytest.raises(ValueError, match="block must be a power of two, got 100"):
        K.capsule_depth_max_pallas(jnp.zeros((10, 3)), _table(p0, p1, r), interpret=True, block=100)
    with pytest.raises(ValueError, match="unknown kernel impl 'fast'"):
        inside_depth(jnp.zeros((10, 3)), p0, p1, r, impl="fast")


def test_plane_sums_kernel_and_placement_backward():
    """The plane row-sum kernel (interpreted) equals jnp.sum; the placement's custom VJP (translation and
    root gradients as plane sums) equals autodiff of root + s·(v − root) + transl, per frame under vmap."""
    from anchorhoi_jax.kernels.reductions import plane_sums_pallas
    from anchorhoi_jax.stages import motion as M

    x = jax.random.normal(jax.random.key(12), (2, 3, 700))
    onp.testing.assert_allclose(jax.vmap(lambda a: plane_sums_pallas(a, interpret=True, block=128))(x), x.sum(-1),
                                rtol=1e-6, atol=1e-5)
    with pytest.raises(ValueError, match="block must be a power of two, got 3"):
        plane_sums_pallas(x[0], interpret=True, block=3)
    v, g = x, jax.random.normal(jax.random.key(13), (2, 3, 700))
    root, s, transl = jnp.array([0.1, -0.2, 0.3]), jnp.float32(1.07), jnp.array([[0.5, 0.0, -1.0], [0.2, 0.1, 0.0]])
    direct = lambda v, r, s, t, g: jnp.sum(g * (r[:, None] + s * (v - r[:, None]) + t[:, None]))  # noqa: E731
    want = jax.vmap(jax.grad(direct, argnums=(0, 1, 2, 3)), in_axes=(0, None, None, 0, 0))(v, root, s, transl, g)
    old = M.PLANE_SUM_IMPL
    try:
        for impl in ("xla", "interpret"):
            M.PLANE_SUM_IMPL = impl
            fn = lambda v, r, s, t, g: jnp.sum(g * M._place_planes(v, r, s, t))  # noqa: E731
            got = jax.vmap(jax.grad(fn, argnums=(0, 1, 2, 3)), in_axes=(0, None, None, 0, 0))(v, root, s, transl, g)
            for a, b in zip(got, want):  # vmap over frames: root and s cotangents summed over them
                onp.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    finally:
        M.PLANE_SUM_IMPL = old
    text = jax.jit(jax.vmap(plane_sums_pallas)).trace(x).lower(lowering_platforms=("cuda",)).as_text()
    assert text.count("xla.gpu.triton") == 1
