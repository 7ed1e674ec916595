"""Session-5 fast paths of the motion objective: the capsule (max, argmax) (values, indices, ties, NaN), the dropped zero-cotangent rows change no gradient, the
self-penetration backward at other sample counts, and the 3xTF32 pose-corrective GEMM (exact split,
CPU path bit-identical to "highest", bad mode -> one-line error)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.body import part_volumes as pv
from anchorhoi_jax.body.part_volumes import PartVolumes, inside_depth, self_penetration_depths
from anchorhoi_jax.body.skinning import _tf32x3_product


def _capsules(key, P):
    k0, k1, k2 = jax.random.split(key, 3)
    p0 = jax.random.uniform(k0, (P, 3), minval=-0.3, maxval=0.3)
    p1 = p0 + 0.2 * jax.random.normal(k1, (P, 3))
    r = jax.random.uniform(k2, (P,), minval=0.03, maxval=0.12)
    return p0, p1, r


@pytest.mark.parametrize("P", [9, 40])
def test_depth_max_values_ties_and_nan(P):
    """(max, argmax) of the capsule depth: equals the direct (N, P) formula; ties keep the lower index
    and a NaN part wins (jnp.argmax's rules)."""
    p0, p1, r = _capsules(jax.random.key(P), P)
    # duplicate capsule 3 at index 5: equal depths, the lower index must win
    p0, p1, r = p0.at[5].set(p0[3]), p1.at[5].set(p1[3]), r.at[5].set(r[3])
    x = jax.random.uniform(jax.random.key(P + 1), (500, 3), minval=-0.4, maxval=0.4)
    x = x.at[0].set(0.5 * (p0[3] + p1[3]))  # on the duplicated axis
    v, i = jax.jit(pv._depth_max)(x, p0, p1, r)
    ab = p1 - p0
    t = jnp.clip(jnp.sum((x[:, None] - p0[None]) * ab[None], -1) / jnp.sum(ab * ab, -1)[None], 0, 1)
    dep = r[None] - jnp.linalg.norm(x[:, None] - (p0[None] + t[..., None] * ab[None]), axis=-1)
    onp.testing.assert_allclose(v, jnp.max(dep, -1), atol=1e-6)
    onp.testing.assert_array_equal(i, jnp.argmax(dep, -1))
    assert int(i[0]) == 3
    v_n, i_n = pv._depth_max(x[:4], p0, p1, r.at[7].set(jnp.nan))
    assert bool(jnp.all(jnp.isnan(v_n))) and onp.all(onp.asarray(i_n) == 7)


def test_capsule_backward_drops_only_zero_rows():
    """Points outside every capsule get a zero cotangent and are dropped from the part sums: the
    capsule gradients equal the dense one-hot sums over the penetrating points, and are exactly
    zero when nothing penetrates."""
    p0, p1, r = _capsules(jax.random.key(3), 12)
    x = jax.random.uniform(jax.random.key(4), (400, 3), minval=-0.4, maxval=0.4)
    loss = lambda a, b, c, d: jnp.sum(jax.nn.relu(inside_depth(a, b, c, d)) ** 2)  # noqa: E731  (L_pen's form)
    g = jax.grad(loss, (1, 2, 3))(x, p0, p1, r)
    depth, idx = pv._depth_max(x, p0, p1, r)
    assert 0 < int(jnp.sum(depth > 0)) < 400
    ab = (p1 - p0)[idx]
    t = jnp.clip(jnp.sum((x - p0[idx]) * ab, -1) / jnp.sum(ab * ab, -1), 0, 1)
    d = x - p0[idx] - t[:, None] * ab
    e = d / jnp.linalg.norm(d, axis=-1, keepdims=True)
    gd = 2 * jax.nn.relu(depth)
    onehot = jax.nn.one_hot(idx, 12) * (depth > 0)[:, None]
    onp.testing.assert_allclose(g[0], onehot.T @ (gd[:, None] * e * (1 - t)[:, None]), rtol=1e-4, atol=1e-7)
    onp.testing.assert_allclose(g[1], onehot.T @ (gd[:, None] * e * t[:, None]), rtol=1e-4, atol=1e-7)
    onp.testing.assert_allclose(g[2], onehot.T @ gd, rtol=1e-4, atol=1e-7)
    far = x + 5.0  # nothing inside: every row dropped
    for a in jax.grad(loss, (1, 2, 3))(far, p0, p1, r):
        assert float(jnp.max(jnp.abs(a))) == 0.0


@pytest.mark.parametrize("samples", [1, 3])
def test_self_penetration_other_sample_counts(samples):
    P = 8
    p0, p1, r = _capsules(jax.random.key(11), P)
    r = r * 2.0
    ia, ib = onp.triu_indices(P, 1)
    parts = PartVolumes(q0=p0, q1=p1, radius=r, joint=jnp.arange(P), pair_a=jnp.asarray(ia, jnp.int32),
                        pair_b=jnp.asarray(ib, jnp.int32))
    ts = jnp.linspace(0.0, 1.0, samples) if samples > 1 else jnp.zeros(1)

    def ref(a0, a1, rr):
        pts = a0[ia][:, None] + ts[None, :, None] * (a1[ia] - a0[ia])[:, None]
        b0, bb = a0[ib][:, None], (a1[ib] - a0[ib])[:, None]
        u = jnp.clip(jnp.sum((pts - b0) * bb, -1) / jnp.sum(bb * bb, -1), 0, 1)
        dist = jnp.linalg.norm(pts - b0 - u[..., None] * bb, axis=-1)
        return jax.nn.relu((rr[ia] + rr[ib])[:, None] - dist)

    got = self_penetration_depths(parts, p0, p1, r, samples=samples)
    assert got.shape == (len(ia), samples) and float(got.max()) > 0.01
    onp.testing.assert_allclose(got, ref(p0, p1, r), atol=1e-6)
    wq = jax.random.normal(jax.random.key(12), got.shape)
    f = lambda fn: lambda *a: jnp.sum(wq * fn(*a) ** 2)  # noqa: E731
    for a, b in zip(jax.grad(f(lambda *a: self_penetration_depths(parts, *a, samples=samples)), (0, 1, 2))(p0, p1, r),
                    jax.grad(f(ref), (0, 1, 2))(p0, p1, r)):
        onp.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)


def test_tf32x3_split_is_exact_and_cpu_gemm_modes_agree(body):
    from anchorhoi_jax.stages.motion import MotionConfig, _pose_correctives, tf32x3_stack

    M = jax.random.normal(jax.random.key(0), (27, 50)) * 1e-3
    f = jax.random.normal(jax.random.key(1), (4, 27))
    M3 = tf32x3_stack(M)
    hi, lo = M3[:27], M3[27:54]
    # hi, lo exact in TF32 (low 13 mantissa bits zero) and hi + lo = M to 2^-22 relative
    for part in (hi, lo):
        assert int(jnp.max(jax.lax.bitcast_convert_type(part, jnp.uint32) & 0x1FFF)) == 0
    onp.testing.assert_allclose(hi + lo, M, rtol=2.5e-7, atol=0)
    # the split product (HIGHEST stands in for the TF32 tensor cores: every operand is TF32-exact)
    want = jnp.matmul(f, M, precision="highest")
    got = _tf32x3_product(f, M3, jax.lax.Precision.HIGHEST)
    onp.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)
    ct = jax.random.normal(jax.random.key(2), want.shape)
    g_got = jax.vjp(lambda q: _tf32x3_product(q, M3, jax.lax.Precision.HIGHEST), f)[1](ct)[0]
    onp.testing.assert_allclose(g_got, ct @ M.T, rtol=1e-5, atol=1e-9)
    # on CPU both modes are the same float32 product (platform_dependent's default branch)
    model, _ = body
    cfg = dataclasses.replace(MotionConfig.for_model(model), gemm="fp32_3xtf32")
    from anchorhoi_jax.stages.motion import MotionData  # noqa: F401  (layout documented there)

    P = model.posedirs.shape[0]
    data = type("D", (), {})()
    data.sub_posedirs = jnp.asarray(onp.asarray(model.posedirs)[:, :60])
    data.static = type("S", (), {"pose": jnp.zeros((P // 9 + 1, 3))})()
    R = jax.vmap(lambda a: jnp.eye(3) + jnp.cross(jnp.eye(3), a))(0.1 * jax.random.normal(jax.random.key(3), (P // 9 + 1, 3)))
    b = _pose_correctives(data, dataclasses.replace(cfg, gemm="highest"), R)
    for mode in ("fp32_3xtf32", "tf32x3", "bf16x6"):  # session 8: XLA's dot-algorithm presets, CUDA only too
        onp.testing.assert_array_equal(_pose_correctives(data, dataclasses.replace(cfg, gemm=mode), R), b)
    with pytest.raises(ValueError, match=r"MotionConfig.gemm must be one of \('highest', .*\), got 'fp16'"):
        dataclasses.replace(cfg, gemm="fp16")
