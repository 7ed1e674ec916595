"""Session-7 sparse LBS gradient kernel (anchorhoi_jax/kernels/lbs.py): the per-joint entry lists, the kernel
(Pallas interpreter on the CPU) against a float64 dense reference under vmap, the motion stage's `_skin_sparse`
VJP with the kernel equal to its dense-product path, Triton lowering for CUDA, and the bad chunk size error."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.kernels.lbs import joint_entries, lbs_transform_grad_pallas


def _weights(S=300, K=3, J=23, seed=0):
    """Sparse skinning weights with zero slots (as prepare_motion_data pads vertices with fewer than K joints),
    one joint with no vertex and one joint with more entries than 2 chunks of 32."""
    rng = onp.random.default_rng(seed)
    ids = rng.integers(0, J - 1, (S, K)).astype(onp.int32)  # joint J-1: no entry
    ids[:80, 0] = 3  # joint 3: > 64 entries
    w = rng.random((S, K)).astype(onp.float32)
    w[rng.random((S, K)) < 0.4] = 0.0
    W = onp.zeros((S, J))
    for k in range(K):
        onp.add.at(W, (onp.arange(S), ids[:, k]), w[:, k])
    return jnp.asarray(ids), jnp.asarray(w), W


def test_joint_entries_and_kernel_match_dense_product():
    S, J = 300, 23
    ids, w, W = _weights(S=S, J=J)
    seg, vert, wt = joint_entries(ids, w, J)
    seg_n, vert_n, wt_n = joint_entries(onp.asarray(ids), onp.asarray(w), J)  # the host build: the same lists
    assert isinstance(seg_n, onp.ndarray)
    for a, b in ((seg, seg_n), (vert, vert_n), (wt, wt_n)):
        onp.testing.assert_array_equal(a, b)
    assert seg_n.shape == (33,) and seg_n[J - 1] == seg_n[J] and seg_n[-1] == int((onp.asarray(w) != 0).sum())
    for j in (0, 3, J - 2):  # each joint's range lists exactly its non-zero weights, by vertex
        rows = vert_n[seg_n[j]:seg_n[j + 1]]
        assert onp.all(onp.diff(rows) >= 0)
        onp.testing.assert_array_equal(onp.bincount(rows, weights=wt_n[seg_n[j]:seg_n[j + 1]], minlength=S), W[:, j])
    assert onp.diff(seg_n).max() > 64  # the kernel's loop runs > 2 chunks of 32 for joint 3
    rng = onp.random.default_rng(1)
    g = jnp.asarray(rng.normal(size=(2, 3, S)), jnp.float32)
    v = jnp.asarray(rng.normal(size=(2, 3, S)), jnp.float32)
    got = jax.vmap(lambda a, b: lbs_transform_grad_pallas(a, b, (seg, vert, wt), interpret=True))(g, v)
    vh = onp.concatenate([onp.asarray(v, onp.float64), onp.ones((2, 1, S))], 1)
    want = onp.einsum("fas,fbs,sj->fabj", onp.asarray(g, onp.float64), vh, W).reshape(2, 12, J)
    assert got.shape == (2, 12, 32)
    onp.testing.assert_allclose(got[:, :, :J], want, rtol=0, atol=5e-6)
    onp.testing.assert_array_equal(got[:, :, J - 1], 0.0)


def test_skin_sparse_vjp_kernel_equals_dense_products():
    """The motion stage's subset LBS differentiated with the kernel (interpreted) equals its dense-product
    backward (∂/∂A and ∂/∂v), per frame under vmap."""
    from anchorhoi_jax.stages import motion as M

    S, J = 120, 23
    ids, w, W = _weights(S=S, J=J, seed=2)
    W = jnp.asarray(W, jnp.float32)
    A = jax.random.normal(jax.random.key(0), (2, J, 12))
    v = jax.random.normal(jax.random.key(1), (2, 3, S))
    ct = jax.random.normal(jax.random.key(2), (2, 3, S))
    ent = tuple(jnp.asarray(a) for a in joint_entries(onp.asarray(ids), onp.asarray(w), J))
    old = M.LBS_GRAD_IMPL
    try:
        M.LBS_GRAD_IMPL = "xla"
        f = lambda a, b, c: jnp.sum(c * M._skin_sparse(a, b, ids, w, W))  # noqa: E731
        want = jax.vmap(jax.grad(f, argnums=(0, 1)))(A, v, ct)
        M.LBS_GRAD_IMPL = "interpret"
        for e in (ent, None):  # the host-built lists (prepare_motion_data) or built in the backward
            f = lambda a, b, c: jnp.sum(c * M._skin_sparse(a, b, ids, w, W, e))  # noqa: E731
            got = jax.vmap(jax.grad(f, argnums=(0, 1)))(A, v, ct)
            for x, y in zip(got, want):
                assert float(jnp.max(jnp.abs(y))) > 1
                onp.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)  # float32 sums in another order
    finally:
        M.LBS_GRAD_IMPL = old


def test_lbs_kernel_lowers_to_triton_and_bad_chunk_raises():
    ids, w, _ = _weights(S=100, J=9)
    ent = joint_entries(ids, w, 9)
    g = jnp.zeros((2, 3, 100))
    f = jax.jit(jax.vmap(lambda a, b: lbs_transform_grad_pallas(a, b, ent, chunk=16)))
    assert f.trace(g, g).lower(lowering_platforms=("cuda",)).as_text().count("xla.gpu.triton") == 1
    # The multi-seed pipeline stacks MotionData, so the entry lists arrive batched over seeds too.
    ent2 = tuple(jnp.stack([a, a]) for a in ent)
    f2 = jax.jit(jax.vmap(lambda a, b, e: lbs_transform_grad_pallas(a, b, e, chunk=16)))
    assert f2.trace(g, g, ent2).lower(lowering_platforms=("cuda",)).as_text().count("xla.gpu.triton") == 1
    with pytest.raises(ValueError, match="chunk must be a power of two, got 24"):
        lbs_transform_grad_pallas(g[0], g[0], ent, interpret=True, chunk=24)
