"""Fast-path pieces of body/skinning.py against float64 NumPy oracles.

* pointer-jumping forward kinematics vs the sequential per-joint product (both rest-frame modes);
* the error-compensated TF32 GEMM mode (`with_tf32x3_blend`, `pose(..., precision="fp32_3xtf32")`):
  the hi/lo split is exact in TF32 and reconstructs its operand, the stacked product (and the
  three-product backward) equal f·M (ct·Mᵀ) to float32 accuracy, on CPU the mode is plain float32
  (bit-identical to "highest", values and gradients), and on the GPU it meets issue 2's parity
  bounds against smplx (batch 64: 1e-5 m vertices and 127 joints; gradients w.r.t. pose and betas
  within 1e-4 relative of torch autograd).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from anchorhoi_jax.body import skinning as sk
from anchorhoi_jax.body.model import BodyParams, depth_levels
from anchorhoi_jax.body.smplx import make_params
from anchorhoi_jax.body.smplx_synthetic import SMPLX_PARENTS


class _Tree(NamedTuple):  # what forward_kinematics reads (stages/motion.py passes the same)
    parents: tuple[int, ...]
    rest_orient: str

    @property
    def levels(self):
        return depth_levels(self.parents)


def _rot64(aa):
    """Rodrigues in float64 NumPy (oracle)."""
    t = onp.linalg.norm(aa)
    if t < 1e-12:
        return onp.eye(3)
    k = aa / t
    K = onp.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return onp.eye(3) + onp.sin(t) * K + (1 - onp.cos(t)) * K @ K


def _fk64(parents, R_local, j_rest, R_rest):
    """T_world_joint = T_world_parent · (T_rest_parent⁻¹ T_rest_joint) · R_local, joint by joint."""
    Rw, tw = [None] * len(parents), [None] * len(parents)
    for j, p in enumerate(parents):
        if p < 0:
            Rw[j], tw[j] = R_rest[j] @ R_local[j], j_rest[j]
        else:
            R_pr = R_rest[p].T @ R_rest[j]
            t_pr = R_rest[p].T @ (j_rest[j] - j_rest[p])
            Rw[j], tw[j] = Rw[p] @ R_pr @ R_local[j], tw[p] + Rw[p] @ t_pr
    return onp.stack(Rw), onp.stack(tw)


def _random_tree(rng, n=40):
    parents = [-1] + [int(rng.integers(max(0, j - 3), j)) for j in range(1, n)]  # deep chains
    return tuple(parents)


@pytest.mark.parametrize("rest_orient", ["identity", "procrustes"])
@pytest.mark.parametrize("which", ["smplx", "random"])
def test_pointer_jumping_fk_matches_sequential_float64(rest_orient, which):
    rng = onp.random.default_rng(0 if which == "smplx" else 1)
    parents = SMPLX_PARENTS if which == "smplx" else _random_tree(rng)
    J = len(parents)
    aa = rng.normal(size=(J, 3)) * 0.7
    R_local = onp.stack([_rot64(a) for a in aa])
    j_rest = rng.normal(size=(J, 3)) * 0.3
    R_rest = (
        onp.broadcast_to(onp.eye(3), (J, 3, 3))
        if rest_orient == "identity"
        else onp.stack([_rot64(a) for a in rng.normal(size=(J, 3))])
    )
    Rw_ref, tw_ref = _fk64(parents, R_local, j_rest, R_rest)
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    Rw, tw = jax.jit(sk.forward_kinematics, static_argnums=0)(
        _Tree(parents, rest_orient), f32(R_local), f32(j_rest), f32(R_rest)
    )
    onp.testing.assert_allclose(onp.asarray(Rw), Rw_ref, atol=2e-5)
    onp.testing.assert_allclose(onp.asarray(tw), tw_ref, atol=2e-5)


def test_jump_schedule_is_logarithmic_in_depth():
    for parents in (SMPLX_PARENTS, _random_tree(onp.random.default_rng(2), 60), (-1,), (-1, 0, 1, 2)):
        depth = len(depth_levels(parents)) - 1
        steps = sk._jump_schedule(parents)
        assert len(steps) == (math.ceil(math.log2(depth + 1)) if depth else 0), parents
        assert all(len(s) == len(parents) for s in steps)


def test_tf32_split_is_exact_and_compensated(smplx_default_model):
    m3 = sk.with_tf32x3_blend(smplx_default_model)
    M = onp.asarray(smplx_default_model.blend_dirs)
    Q = M.shape[0]
    M3 = onp.asarray(m3.blend_dirs_tf32x3)
    assert M3.shape == (3 * Q, M.shape[1])
    hi, lo = M3[:Q], M3[Q : 2 * Q]
    # Both parts are TF32 values (the low 13 mantissa bits are zero), so tensor cores multiply them exactly.
    assert not onp.any(hi.view(onp.uint32) & 0x1FFF) and not onp.any(lo.view(onp.uint32) & 0x1FFF)
    onp.testing.assert_array_equal(M3[2 * Q :], hi)
    assert onp.abs((hi.astype(onp.float64) + lo) - M).max() <= 2.0**-21 * onp.abs(M).max()

    rng = onp.random.default_rng(3)
    f = jnp.asarray(rng.normal(size=(4, Q)), jnp.float32)
    ref = onp.asarray(f, onp.float64) @ M.astype(onp.float64)
    # Every operand is TF32-exact, so HIGHEST computes the same products the TF32 GEMM does.
    got = onp.asarray(sk._tf32x3_product(f, m3.blend_dirs_tf32x3, jax.lax.Precision.HIGHEST))
    assert onp.abs(got - ref).max() <= 1e-5 * onp.abs(ref).max()
    ct = jnp.asarray(rng.normal(size=ref.shape), jnp.float32)
    g = jax.grad(lambda x: jnp.sum(sk._tf32x3_product(x, m3.blend_dirs_tf32x3, jax.lax.Precision.HIGHEST) * ct))(f)
    g_ref = onp.asarray(ct, onp.float64) @ M.T.astype(onp.float64)
    assert onp.abs(onp.asarray(g) - g_ref).max() <= 1e-5 * onp.abs(g_ref).max()


def test_tf32x3_without_split_or_blend_is_highest(smplx_default_model):
    """TF32X3 only switches the posing GEMM when the split is present *and* current (blend_dirs set)."""
    m = smplx_default_model
    p = BodyParams.zeros(m).replace(pose=jnp.full((m.num_joints, 3), 0.1), betas=jnp.linspace(-1, 1, m.num_shape))
    ref = sk.pose(m, p)
    out = sk.pose(m, p, precision=sk.TF32X3)
    onp.testing.assert_array_equal(onp.asarray(out.vertices), onp.asarray(ref.vertices))
    onp.testing.assert_array_equal(onp.asarray(sk.pose_joints(m, p, precision=sk.TF32X3)), onp.asarray(sk.pose_joints(m, p)))
    # avatar.py drops blend_dirs when it edits v_template: a stale split must not be used.
    stale = sk.with_tf32x3_blend(m).replace(blend_dirs=None, extra_blend_dirs=None)
    out2 = sk.pose(stale, p, precision=sk.TF32X3)
    onp.testing.assert_allclose(onp.asarray(out2.vertices), onp.asarray(ref.vertices), atol=2e-6)
    # Models without pose correctives (Anny) are returned unchanged.
    no_pc = m.replace(posedirs=jnp.zeros((0, 3 * m.num_vertices)))
    assert sk.with_tf32x3_blend(no_pc).blend_dirs_tf32x3 is None


def test_tf32_split_reconstructs_operand_and_backward_is_fp32_accurate():
    """The run-time split of features/cotangents, and the three backward products, on random data."""
    rng = onp.random.default_rng(5)
    Q, N = 96, 200
    M = (rng.normal(size=(Q, N)) * onp.exp(rng.normal(size=(Q, 1)))).astype(onp.float32)
    hi_m = sk._round_tf32_host(M)
    M3 = jnp.asarray(onp.concatenate([hi_m, sk._round_tf32_host(M - hi_m), hi_m], 0))
    f = jnp.asarray(rng.normal(size=(3, Q)) * 10.0 ** rng.uniform(-3, 2, size=(3, Q)), jnp.float32)
    hi, lo = sk._split_tf32(f)
    for part in (hi, lo):
        assert not onp.any(onp.asarray(part).view(onp.uint32) & 0x1FFF)  # TF32-exact
    f64 = onp.asarray(f, onp.float64)
    assert onp.all(onp.abs(onp.asarray(hi, onp.float64) + onp.asarray(lo) - f64) <= 2.0**-21 * onp.abs(f64))
    # Three products summed (one stacked GEMM) vs the float64 product.
    ref = f64 @ M.astype(onp.float64)
    scale = onp.abs(f64) @ onp.abs(M.astype(onp.float64))  # error bound scale per output
    got = onp.asarray(sk._tf32x3_product(f, M3, jax.lax.Precision.HIGHEST))
    plain = onp.asarray(jnp.matmul(f, jnp.asarray(M), precision="highest"))  # the float32 product
    # Within the float32 dot-product bound γ_Q = Q·2⁻²⁴ (relative to |f|·|M|), and as close as float32 itself.
    assert onp.all(onp.abs(got - ref) <= Q * 2.0**-24 * scale)
    assert onp.abs(got - ref).max() <= 3 * onp.abs(plain - ref).max()
    # Backward: ct_hi·M_hiᵀ + ct_hi·M_loᵀ + ct_lo·M_hiᵀ vs float64 ct·Mᵀ.
    ct = rng.normal(size=ref.shape).astype(onp.float32)
    _, vjp = jax.vjp(lambda x: sk._tf32x3_product(x, M3, jax.lax.Precision.HIGHEST), f)
    g = onp.asarray(vjp(jnp.asarray(ct))[0])
    g_ref = ct.astype(onp.float64) @ M.T.astype(onp.float64)
    assert onp.all(onp.abs(g - g_ref) <= N * 2.0**-24 * (onp.abs(ct) @ onp.abs(M.T.astype(onp.float64))))
    g_plain = onp.asarray(jnp.matmul(jnp.asarray(ct), jnp.asarray(M.T), precision="highest"))
    assert onp.abs(g - g_ref).max() <= 3 * onp.abs(g_plain - g_ref).max()
    # A cotangent rounded to TF32 only (what plain autodiff of the stacked GEMM does) is far worse:
    naive = sk._round_tf32_host(ct).astype(onp.float64) @ M.T.astype(onp.float64)
    assert onp.abs(naive - g_ref).max() > 30 * onp.abs(g - g_ref).max()


def _random_params(m, seed=6):
    rng = onp.random.default_rng(seed)
    return BodyParams.zeros(m).replace(
        pose=jnp.asarray(rng.normal(size=(m.num_joints, 3)) * 0.4, jnp.float32),
        betas=jnp.asarray(rng.normal(size=(m.num_shape,)), jnp.float32),
        transl=jnp.asarray(rng.normal(size=(3,)), jnp.float32),
    )


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="the CPU branch of fp32_3xtf32")
def test_fp32_3xtf32_on_cpu_is_plain_highest(smplx_default_model):
    """On CPU the mode computes plain float32: bit-identical to "highest", values and gradients."""
    m = smplx_default_model
    m3 = sk.with_tf32x3_blend(m)
    p = _random_params(m)

    def loss(q, model, prec):
        return jnp.sum(sk.pose(model, q, precision=prec).vertices ** 2)

    ref = sk.pose(m, p, precision="highest")
    out = sk.pose(m3, p, precision=sk.FP32_3XTF32)
    onp.testing.assert_array_equal(onp.asarray(out.vertices), onp.asarray(ref.vertices))
    onp.testing.assert_array_equal(onp.asarray(out.all_joints), onp.asarray(ref.all_joints))
    g_ref = jax.grad(loss)(p, m, "highest")
    g = jax.grad(loss)(p, m3, "fp32_3xtf32")
    for a, b in ((g.pose, g_ref.pose), (g.betas, g_ref.betas)):
        onp.testing.assert_array_equal(onp.asarray(a), onp.asarray(b))
    assert "tf32" not in jax.jit(lambda q: sk.pose(m3, q, precision="fp32_3xtf32").vertices).lower(p).as_text()


def test_named_modes_and_unknown_precision(smplx_default_model):
    m = smplx_default_model
    p = _random_params(m, 7)
    onp.testing.assert_array_equal(
        onp.asarray(sk.pose(m, p, precision="highest").vertices), onp.asarray(sk.pose(m, p).vertices)
    )
    onp.testing.assert_array_equal(
        onp.asarray(sk.pose(m, p, precision="tf32").vertices),
        onp.asarray(sk.pose(m, p, precision=jax.lax.Precision.DEFAULT).vertices),
    )
    assert sk.TF32X3 == sk.FP32_3XTF32 and sk._gemm_precision("tf32x3") == sk.FP32_3XTF32
    with pytest.raises(ValueError, match=r"^unknown precision 'fp64': use \['fp32_3xtf32', 'highest', 'tf32'\]"):
        sk.pose(m, p, precision="fp64")


@pytest.mark.gpu
def test_fp32_3xtf32_parity_with_smplx_on_gpu(smplx_synthetic_file):
    """Issue 2's parity bounds for the 3xTF32 mode, measured like the fp32 path (test_smplx.py)."""
    torch = pytest.importorskip("torch")
    smplx = pytest.importorskip("smplx")
    from anchorhoi_jax.body.smplx import load_smplx

    model, extras = load_smplx(smplx_synthetic_file, use_pca=False)
    m3 = sk.with_tf32x3_blend(model)
    rng = onp.random.default_rng(4)
    B = 64
    x = dict(
        betas=rng.normal(size=(B, 10)) * 1.5, expression=rng.normal(size=(B, 10)),
        global_orient=rng.normal(size=(B, 3)) * 0.8, body_pose=rng.normal(size=(B, 63)) * 0.4,
        jaw_pose=rng.normal(size=(B, 3)) * 0.2, leye_pose=rng.normal(size=(B, 3)) * 0.2,
        reye_pose=rng.normal(size=(B, 3)) * 0.2,
        left_hand_pose=rng.normal(size=(B, 45)) * 0.6, right_hand_pose=rng.normal(size=(B, 45)) * 0.6,
        transl=rng.normal(size=(B, 3)),
    )  # fmt: skip
    x = {k: v.astype(onp.float32) for k, v in x.items()}
    tm = smplx.SMPLX(model_path=str(smplx_synthetic_file.parent), gender="neutral", ext="npz", batch_size=B,
                     use_pca=False)  # fmt: skip
    tx = {k: torch.from_numpy(v).requires_grad_(True) for k, v in x.items()}
    out = tm(**tx)
    cv = rng.normal(size=(B, 10475, 3)).astype(onp.float32)
    cj = rng.normal(size=(B, 127, 3)).astype(onp.float32)
    ((out.vertices * torch.from_numpy(cv)).sum() + (out.joints * torch.from_numpy(cj)).sum()).backward()
    v_ref, j_ref = out.vertices.detach().numpy(), out.joints.detach().numpy()

    def posed(inp):
        p = jax.vmap(lambda a: make_params(model, extras, **a))(inp)
        o = jax.vmap(lambda q: sk.pose(m3, q, precision="fp32_3xtf32"))(p)
        return o.vertices, o.all_joints

    xj = {k: jnp.asarray(v) for k, v in x.items()}
    assert "tf32" in jax.jit(posed).lower(xj).as_text()  # the GPU branch (TF32 algorithm) is what runs
    v, j = jax.jit(posed)(xj)
    assert onp.abs(onp.asarray(v) - v_ref).max() <= 1e-5
    assert onp.abs(onp.asarray(j) - j_ref).max() <= 1e-5

    def loss(inp):
        v, j = posed(inp)
        return jnp.sum(v * cv) + jnp.sum(j * cj)

    g = jax.jit(jax.grad(loss))(xj)
    for k in ("betas", "expression", "global_orient", "body_pose", "jaw_pose", "left_hand_pose", "right_hand_pose"):
        gt = tx[k].grad.numpy()
        err = onp.abs(onp.asarray(g[k]) - gt).max() / onp.abs(gt).max()
        assert err <= 1e-4, (k, err)
