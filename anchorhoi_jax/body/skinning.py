"""Pure forward kinematics and linear blend skinning: `pose(model, params) -> PosedBody`.

Written for one sample; batch with `jax.vmap` (the matrix products become GEMMs over the batch).
Every product that touches geometry runs at `Precision.HIGHEST` unless the caller asks otherwise
(benchmarks measure TF32 separately).

Speed (why the code looks the way it does; see benchmarks/results/body_forward.md):
* One GEMM makes the posed rest mesh: [1, β, vec(R[1:] − I)] · [v_template; shapedirs; posedirs]
  (`BodyModel.blend_dirs`, precomputed at load by `with_fused_blend`): the template and the shape
  blend ride along as extra rows of the pose-corrective product, so a batch never materialises a
  separate shaped mesh.
* 3×3 products in Rodrigues and FK are written out elementwise, so XLA fuses them into a few loop
  kernels instead of launching many tiny batched GEMMs; FK runs by pointer jumping (4 steps for
  SMPL-X instead of 11 depth levels).
* Skinning uses each vertex's K non-zero weights (`BodyModel.skin_joint_ids/weights`, exact: K is
  the largest number of non-zeros any vertex has) and is written as explicit sums, so gather,
  blend, transform, scale and translation fuse into one pass over the vertices.
* Measured at batch 2048 on an H100 (fp32 HIGHEST): the GEMM kernel is 1.30 ms of 1.68 ms of GPU
  kernels (cuBLAS FFMA, 75 % of fp32 peak), the LBS pass 0.32 ms. `precision="fp32_3xtf32"` (with
  `with_tf32x3_blend`) runs the GEMM on TF32 tensor cores at float32-level error: 0.92 ms of kernels,
  1.32 ms per synchronised call vs 2.21 ms (benchmarks/results/body_forward.md, session 4).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as onp
from jaxtyping import Array, Float, Int

from anchorhoi_jax.body.model import BodyModel, BodyParams, PosedBody

HIGHEST = jax.lax.Precision.HIGHEST


def special_procrustes(M: Float[Array, "*b 3 3"]) -> Float[Array, "*b 3 3"]:
    """Rotation closest (Frobenius) to M: U diag(1, 1, det(UVᵀ)) Vᵀ."""
    U, _, Vt = jnp.linalg.svd(M)
    d = jnp.sign(jnp.linalg.det(jnp.matmul(U, Vt, precision=HIGHEST)))
    U = U.at[..., :, 2].multiply(d[..., None])
    return jnp.matmul(U, Vt, precision=HIGHEST)


def sparse_skinning(weights, tol: float = 0.0) -> tuple[onp.ndarray, onp.ndarray]:
    """Host-side: the K largest skinning weights per vertex, K = max non-zeros of any vertex.

    Exact for tol=0 (every dropped weight is zero). Returns (ids (V,K) int32, weights (V,K) f32);
    padding slots point at joint 0 with weight 0.
    """
    w = onp.asarray(weights, onp.float32)
    nz = onp.abs(w) > tol
    k = max(1, int(nz.sum(1).max()))
    ids = onp.argsort(-onp.abs(w), axis=1, kind="stable")[:, :k]
    vals = onp.take_along_axis(w, ids, 1) * onp.take_along_axis(nz, ids, 1)
    return ids.astype(onp.int32), vals.astype(onp.float32)


def with_sparse_skinning(model: BodyModel, tol: float = 0.0) -> BodyModel:
    """`model` with `skin_joint_ids/weights` filled from its dense weights (host-side)."""
    ids, w = sparse_skinning(onp.asarray(model.lbs_weights), tol)
    return model.replace(skin_joint_ids=jnp.asarray(ids), skin_joint_weights=jnp.asarray(w, model.lbs_weights.dtype))


def rest_vertices(model: BodyModel, betas: Float[Array, "S"], precision=HIGHEST) -> Float[Array, "V 3"]:
    """Shaped rest vertices v(β) = v_template + shapedirs · β."""
    return model.v_template + jnp.einsum("vcs,s->vc", model.shapedirs, betas, precision=precision)


def rest_joints(model: BodyModel, betas: Float[Array, "S"], precision=HIGHEST) -> Float[Array, "J 3"]:
    """Shaped rest joints j(β) (SMPL-X: J_regressor · v(β), folded into linear dirs at load)."""
    return model.j_template + jnp.einsum("jcs,s->jc", model.j_shapedirs, betas, precision=precision)


def rest_orientations(model: BodyModel, betas: Float[Array, "S"], precision=HIGHEST) -> Float[Array, "J 3 3"]:
    """World orientation of each joint frame in the rest pose."""
    if model.rest_orient == "identity":
        return model.rest_orient_template
    M = model.rest_orient_template + jnp.einsum(
        "jabs,s->jab", model.rest_orient_dirs, betas, precision=precision
    )
    return special_procrustes(M)


def _mm(a, b):
    """Batched 3×3 (or 3×k) product as an elementwise sum: exact f32, fuses into loop kernels."""
    return a[..., :, 0:1] * b[..., 0:1, :] + a[..., :, 1:2] * b[..., 1:2, :] + a[..., :, 2:3] * b[..., 2:3, :]


def _mv(a, v):
    """Batched 3×3 matrix times 3-vector, elementwise."""
    return a[..., :, 0] * v[..., 0:1] + a[..., :, 1] * v[..., 1:2] + a[..., :, 2] * v[..., 2:3]


def _mtv(a, v):
    """Batched aᵀ v for 3×3 a, elementwise."""
    return a[..., 0, :] * v[..., 0:1] + a[..., 1, :] * v[..., 1:2] + a[..., 2, :] * v[..., 2:3]


def rodrigues(aa: Float[Array, "*b 3"]) -> Float[Array, "*b 3 3"]:
    """Axis-angle -> matrix, R = I + (sin θ/θ) K + ((1 − cos θ)/θ²)(a aᵀ − θ² I), K = [a]ₓ.

    Same values as geometry.rotations.axis_angle_to_matrix (Taylor branch and double-`where` at
    θ = 0 for exact gradients there), written elementwise so it fuses on the GPU.
    """
    theta2 = jnp.sum(aa * aa, axis=-1)
    small = theta2 < 1e-8
    safe_t2 = jnp.where(small, 1.0, theta2)
    theta = jnp.sqrt(safe_t2)
    a = jnp.where(small, 1.0 - theta2 / 6.0, jnp.sin(theta) / theta)[..., None, None]
    b = jnp.where(small, 0.5 - theta2 / 24.0, (1.0 - jnp.cos(theta)) / safe_t2)[..., None, None]
    x, y, z = aa[..., 0], aa[..., 1], aa[..., 2]
    o = jnp.zeros_like(x)
    K = jnp.stack([jnp.stack([o, -z, y], -1), jnp.stack([z, o, -x], -1), jnp.stack([-y, x, o], -1)], -2)
    outer = aa[..., :, None] * aa[..., None, :]
    eye = jnp.broadcast_to(jnp.eye(3, dtype=aa.dtype), K.shape)
    return eye + a * K + b * (outer - theta2[..., None, None] * eye)


def _jump_schedule(parents: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Pointer-jumping schedule of the kinematic tree (static, host-side).

    Step s composes every joint with its 2^s-th ancestor (index J = the identity, for joints whose
    chain already reaches the root), so ⌈log2(depth + 1)⌉ steps give every world transform: 4 for
    SMPL-X (11 levels), 5 for Anny. Each step is one gather + 3×4 compose over all joints, which XLA
    fuses into one kernel, instead of ~11 dependent per-level kernels.
    """
    J = len(parents)
    anc = [p if p >= 0 else J for p in parents]
    steps = []
    while any(a != J for a in anc):
        steps.append(tuple(anc))
        anc = [anc[a] if a != J else J for a in anc]
    return tuple(steps)


def forward_kinematics(
    model: BodyModel,
    R_local: Float[Array, "J 3 3"],
    j_rest: Float[Array, "J 3"],
    R_rest: Float[Array, "J 3 3"],
    precision=HIGHEST,
) -> tuple[Float[Array, "J 3 3"], Float[Array, "J 3"]]:
    """World rotation and position of every joint.

    T_world_joint = T_world_parent · (T_world_rest_parent⁻¹ T_world_rest_joint) · R_local, evaluated
    by pointer jumping over the tree (`_jump_schedule`): the local transforms are composed in pairs,
    fours, eights… (the same product, associated differently; f32 rounding only). Returns
    (R_world (J,3,3), t_world (J,3)). Products are exact f32 elementwise sums (`precision` is
    accepted for API compatibility). Reads only `model.parents` and `model.rest_orient`.
    """
    del precision
    parents = model.parents
    J = len(parents)
    par = onp.asarray([max(p, 0) for p in parents])
    root = onp.asarray([p < 0 for p in parents])
    if model.rest_orient == "identity":
        R = R_local
        t = jnp.where(root[:, None], j_rest, j_rest - j_rest[par])
    else:
        # Local rest transform in the parent's rest frame; a root's rest frame hangs off the world.
        Rrp = R_rest[par]
        R_pr = jnp.where(root[:, None, None], R_rest, _mm(jnp.swapaxes(Rrp, -1, -2), R_rest))
        R = _mm(R_pr, R_local)
        t = jnp.where(root[:, None], j_rest, _mtv(Rrp, j_rest - j_rest[par]))
    eye = jnp.eye(3, dtype=R.dtype)[None]
    zero = jnp.zeros((1, 3), t.dtype)
    for anc in _jump_schedule(parents):
        idx = onp.asarray(anc)
        Ra = jnp.concatenate([R, eye], 0)[idx]
        ta = jnp.concatenate([t, zero], 0)[idx]
        # Composing with the identity slot is exact (x·1 + y·0 + z·0 = x), so finished chains keep their bits.
        R, t = _mm(Ra, R), ta + _mv(Ra, t)
    return R, t


def _skin_transforms(R_world, t_world, R_rest, j_rest, identity_rest=False):
    """Per-joint skinning transform T_world_joint · T_world_rest⁻¹ as (J, 3, 4)."""
    A_R = R_world if identity_rest else _mm(R_world, jnp.swapaxes(R_rest, -1, -2))
    A_t = t_world - _mv(A_R, j_rest)
    return jnp.concatenate([A_R, A_t[..., None]], axis=-1)


def _pose_feature(R_local: Float[Array, "J 3 3"]) -> Float[Array, "P"]:
    return (R_local[1:] - jnp.eye(3, dtype=R_local.dtype)[None]).reshape(-1)


def _apply_lbs(weights, A, points, precision):
    """Dense LBS: v' = Σ_j w_j (A_j [v;1]) for each point (weights (N,J), A (J,3,4))."""
    T = jnp.einsum("nj,jk->nk", weights, A.reshape(A.shape[0], 12), precision=precision).reshape(-1, 3, 4)
    return _mv(T[..., :3], points) + T[..., 3]


def _apply_sparse_lbs(ids, w, A, points):
    """Sparse LBS with K weights per point, unrolled over K so it fuses into one vertex pass."""
    A12 = A.reshape(A.shape[0], 12)
    T = w[:, 0:1] * A12[ids[:, 0]]
    for k in range(1, ids.shape[1]):
        T = T + w[:, k : k + 1] * A12[ids[:, k]]
    return (
        T[:, 0:9:4] * points[:, 0:1] + T[:, 1:10:4] * points[:, 1:2] + T[:, 2:11:4] * points[:, 2:3] + T[:, 3:12:4]
    )


def _lbs(model, A, points, precision, rows=None):
    if model.skin_joint_ids is not None:
        ids, w = model.skin_joint_ids, model.skin_joint_weights
        if rows is not None:
            ids, w = ids[rows], w[rows]
        return _apply_sparse_lbs(ids, w.astype(points.dtype), A, points)
    weights = model.lbs_weights if rows is None else model.lbs_weights[rows]
    return _apply_lbs(weights, A, points, precision)


def _place(points, root, scale, transl):
    """Scale about the root joint, then translate (CONVENTIONS.md: human placement)."""
    return root[None] + scale * (points - root[None]) + transl[None]


def blend_matrix(model: BodyModel) -> Float[Array, "Q V3"]:
    """Rows [v_template; shapedirs (S rows); posedirs (P rows)] of the one posing GEMM."""
    V = model.v_template.shape[0]
    S = model.shapedirs.shape[-1]
    rows = [model.v_template.reshape(1, 3 * V)]
    if S:
        rows.append(jnp.moveaxis(model.shapedirs, -1, 0).reshape(S, 3 * V))
    if model.posedirs.shape[0]:
        rows.append(model.posedirs)
    return jnp.concatenate(rows, 0)


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def with_fused_blend(model: BodyModel) -> BodyModel:
    """`model` with `blend_dirs` precomputed (done once at load; see `posed_rest_vertices`).

    The matrix is zero-padded to 32 rows / 128 columns multiples: with 1 + S + 486 = 507 rows and
    3·10475 = 31425 columns every row of both GEMM operands is misaligned for 16-byte vector loads,
    and cuBLAS/Triton then fall back to slow kernels (measured: 38 TFLOP/s fp32, 71 TFLOP/s TF32 on
    an H100). Zero rows/columns change no value.
    """
    M = blend_matrix(model)
    Q, N = M.shape
    cols = (3 * model.extra_vertex_ids.reshape(-1)[:, None] + jnp.arange(3)[None]).reshape(-1)
    extra = jnp.pad(M[:, cols], ((0, _round_up(Q, 32) - Q), (0, 0)))
    M = jnp.pad(M, ((0, _round_up(Q, 32) - Q), (0, _round_up(N, 128) - N)))
    return model.replace(blend_dirs=jax.device_put(M), extra_blend_dirs=jax.device_put(extra))


# Named modes of the posing GEMM (`pose(..., precision=...)`; any jax.lax.Precision or
# DotAlgorithmPreset is accepted too and passed through):
#   "highest"     = Precision.HIGHEST: cuBLAS FFMA float32 (the default; parity reference).
#   "tf32"        = Precision.DEFAULT: one TF32 tensor-core GEMM (on GPUs; ~5e-4 m error on SMPL-X).
#   "fp32_3xtf32" = float32-accurate GEMM on TF32 tensor cores (error-compensated, see
#                   `with_tf32x3_blend`); GPU-only effect: on CPU (and without the split) it is
#                   exactly the "highest" computation. Every other product stays at HIGHEST.
FP32_3XTF32 = "fp32_3xtf32"
TF32X3 = FP32_3XTF32  # session-3 name of the same mode (the string "tf32x3" is accepted too)
GEMM_MODES = {"highest": HIGHEST, "tf32": jax.lax.Precision.DEFAULT, FP32_3XTF32: FP32_3XTF32}
_3XTF32_NAMES = (FP32_3XTF32, "tf32x3")


def _is_3xtf32(precision) -> bool:
    return isinstance(precision, str) and precision in _3XTF32_NAMES


def _gemm_precision(precision):
    """The precision of the posing GEMM: a named mode resolved, anything else unchanged."""
    if not isinstance(precision, str):
        return precision
    if precision in GEMM_MODES or _is_3xtf32(precision):
        return GEMM_MODES.get(precision, FP32_3XTF32)
    try:
        return jax.lax.Precision(precision)  # jax's own names ("float32", "default", ...)
    except ValueError:
        raise ValueError(f"unknown precision {precision!r}: use {sorted(GEMM_MODES)} or a jax.lax.Precision") from None


def _exact(precision):
    """The precision for the small products (joints, rest frames, extra points) under `precision`."""
    precision = _gemm_precision(precision)
    return HIGHEST if _is_3xtf32(precision) else precision


def _round_tf32_host(x: onp.ndarray) -> onp.ndarray:
    """Round float32 to the nearest TF32 value (10 mantissa bits; ties away from zero), on the host."""
    b = onp.ascontiguousarray(x, onp.float32).view(onp.uint32)
    return ((b + onp.uint32(0x1000)) & onp.uint32(0xFFFFE000)).view(onp.float32)


def _round_tf32(x):
    """`_round_tf32_host` in JAX (bit arithmetic; no gradient flows through it)."""
    b = jax.lax.bitcast_convert_type(jax.lax.stop_gradient(x), jnp.uint32)
    b = (b + jnp.uint32(0x1000)) & jnp.uint32(0xFFFFE000)
    return jax.lax.bitcast_convert_type(b, jnp.float32)


def _split_tf32(x):
    """x = hi + lo + O(2⁻²²|x|) with hi, lo exactly representable in TF32 (hi's bits are x's; no gradient)."""
    hi = _round_tf32(x)
    return hi, _round_tf32(jax.lax.stop_gradient(x) - hi)


def with_tf32x3_blend(model: BodyModel) -> BodyModel:
    """`model` with `blend_dirs_tf32x3` = [M_hi; M_lo; M_hi] for `pose(..., precision="fp32_3xtf32")`.

    M = M_hi + M_lo + O(2⁻²²|M|) with both parts exactly representable in TF32, so with the features
    split the same way, f·M ≈ [f_hi, f_hi, f_lo] · [M_hi; M_lo; M_hi] is one TF32 tensor-core GEMM
    (K = 3·Qp, exact products, f32 accumulation) with float32-level error (the dropped f_lo·M_lo
    term is ~2⁻²² relative). Same idea as `DotAlgorithmPreset.TF32_TF32_F32_X3`, which XLA runs as
    three GEMMs with three output round trips. Costs 3× the blend matrix in memory (193 MB for
    SMPL-X); models without pose correctives (Anny) are returned unchanged.
    """
    if model.blend_dirs is None or model.posedirs.shape[0] == 0:
        return model
    M = onp.asarray(model.blend_dirs, onp.float32)
    hi = _round_tf32_host(M)
    lo = _round_tf32_host(M - hi)
    return model.replace(blend_dirs_tf32x3=jax.device_put(jnp.asarray(onp.concatenate([hi, lo, hi], 0))))


_TF32 = jax.lax.DotAlgorithmPreset.TF32_TF32_F32


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _tf32x3_matmul(f, M3, algorithm):
    hi, lo = _split_tf32(f)
    return jnp.matmul(jnp.concatenate([hi, hi, lo], -1), M3, precision=algorithm)


def _tf32x3_fwd(f, M3, algorithm):
    return _tf32x3_matmul(f, M3, algorithm), (None, M3)


def _tf32x3_bwd(algorithm, res, ct):
    """Cotangents at float32 accuracy too: ct·Mᵀ ≈ ct_hi·M_hiᵀ + ct_hi·M_loᵀ + ct_lo·M_hiᵀ.

    (Plain autodiff would run ct·M3ᵀ with ct rounded to TF32: ~2⁻¹² relative error in the
    gradient.) The three products have small (…, Q) outputs, so they are three GEMMs summed.
    """
    _, M3 = res
    q = M3.shape[0] // 3
    c_hi, c_lo = _split_tf32(ct)
    dims = (((ct.ndim - 1,), (1,)), ((), ()))

    def mm(a, b):
        return jax.lax.dot_general(a, b, dims, precision=algorithm)

    df = mm(c_hi, M3[:q]) + mm(c_hi, M3[q : 2 * q]) + mm(c_lo, M3[:q])
    # The split matrix is a derived constant (rounding has no derivative): no cotangent flows into it.
    # Differentiate the model itself through the plain path (avatar.py drops blend_dirs when it edits them).
    return df, None


_tf32x3_matmul.defvjp(_tf32x3_fwd, _tf32x3_bwd)


def _tf32x3_product(f, M3, algorithm=_TF32):
    """f · M through the stacked TF32 GEMM of `with_tf32x3_blend` (leading axes of f: batch).

    Forward: [f_hi, f_hi, f_lo]·[M_hi; M_lo; M_hi] in one GEMM; backward: the same split for the
    cotangent (`_tf32x3_bwd`), so the gradient w.r.t. f is ct·Mᵀ to float32 accuracy. Every operand
    is TF32-exact, so `algorithm` HIGHEST gives the same products (CPU has no TF32 GEMM; tests use that).
    """
    return _tf32x3_matmul(f, M3, algorithm)


def _blend_features(model: BodyModel, betas, R_local):
    """[1, β, vec(R[1:] − I), 0…] matching the (padded) rows of `blend_dirs`."""
    f = jnp.concatenate([jnp.ones((1,), betas.dtype), betas, _pose_feature(R_local).astype(betas.dtype)])
    return jnp.pad(f, (0, model.blend_dirs.shape[0] - f.shape[0]))


def posed_rest_vertices(
    model: BodyModel, betas: Float[Array, "S"], R_local: Float[Array, "J 3 3"], precision=HIGHEST
) -> Float[Array, "V 3"]:
    """v_template + shapedirs·β + posedirs·vec(R[1:] − I).

    With `model.blend_dirs` this is a single product [1, β, vec(R[1:] − I)] · blend_dirs (the
    template and shape blend ride along as extra rows of the pose-corrective GEMM, so a batch
    never materialises a separate shaped mesh); otherwise shape blend plus corrective product.
    Models without pose correctives (Anny) take the plain blend-shape path. `precision`: see
    `GEMM_MODES`; "fp32_3xtf32" uses the split only on CUDA (`platform_dependent`: the CPU branch
    is the plain HIGHEST product, bit-identical to precision="highest").
    """
    n = 3 * model.v_template.shape[0]
    precision = _gemm_precision(precision)
    if model.posedirs.shape[0] and model.blend_dirs is not None and model.blend_dirs_tf32x3 is not None:
        if _is_3xtf32(precision):
            out = jax.lax.platform_dependent(
                _blend_features(model, betas, R_local), model.blend_dirs_tf32x3, model.blend_dirs,
                cuda=lambda f, M3, M: _tf32x3_product(f, M3),
                default=lambda f, M3, M: jnp.matmul(f, M, precision=HIGHEST),
            )  # fmt: skip
            return out[:n].reshape(-1, 3)
    precision = _exact(precision)
    if model.posedirs.shape[0] == 0:
        return rest_vertices(model, betas, precision)
    pf = _pose_feature(R_local).astype(betas.dtype)
    if model.blend_dirs is not None:
        out = jnp.matmul(_blend_features(model, betas, R_local), model.blend_dirs, precision=precision)
        return out[:n].reshape(-1, 3)
    v = rest_vertices(model, betas, precision)
    return v + jnp.matmul(pf, model.posedirs, precision=precision).reshape(-1, 3)


def pose(
    model: BodyModel,
    params: BodyParams,
    *,
    rotations: Float[Array, "J 3 3"] | None = None,
    precision=HIGHEST,
) -> PosedBody:
    """Posed, scaled and translated body (vertices, joints, extra points, joint frames).

    Args:
      model: constants.
      params: betas (S,), pose (J,3) axis-angle, transl (3,), scale ().
      rotations: optional (J,3,3) local rotations that replace `params.pose` (6D/matrix
        parameterisations convert to matrices and pass them here).
      precision: of the blend-shape/pose-corrective GEMM (FK and skinning are exact f32): a
        jax precision, or a named mode (`GEMM_MODES`): "highest" (default), "tf32", or
        "fp32_3xtf32" = that GEMM as one error-compensated TF32 tensor-core product at float32-level
        error (forward and gradient) when the model carries `blend_dirs_tf32x3`
        (`with_tf32x3_blend`). GPU-only effect: on CPU, or without the split, "fp32_3xtf32" computes
        plain float32 (`Precision.HIGHEST`), bit-identical to "highest".
    """
    with jax.named_scope("body.pose"):
        R_local = rodrigues(params.pose) if rotations is None else rotations
        identity_rest = model.rest_orient == "identity"
        v_rest = posed_rest_vertices(model, params.betas, R_local, precision)
        precision = _exact(precision)
        j_rest = rest_joints(model, params.betas, precision)
        R_rest = rest_orientations(model, params.betas, precision)
        R_world, t_world = forward_kinematics(model, R_local, j_rest, R_rest, precision)
        A = _skin_transforms(R_world, t_world, R_rest, j_rest, identity_rest)
        root = j_rest[0]
        verts = _place(_lbs(model, A, v_rest, precision), root, params.scale, params.transl)
        extra = _barycentric(verts, model.extra_vertex_ids, model.extra_bary)
        t_placed = _place(t_world, root, params.scale, params.transl)
        T = jnp.concatenate([R_world, t_placed[..., None]], -1)
        T = jnp.concatenate([T, jnp.broadcast_to(jnp.array([0, 0, 0, 1], T.dtype), T.shape[:-2] + (1, 4))], -2)
        return PosedBody(vertices=verts, joints=t_placed, extra=extra, T_world_joint=T)


def _barycentric(verts, ids: Int[Array, "E 3"], bary: Float[Array, "E 3"]):
    """Barycentric points (barycentric combination commutes with scale and translation)."""
    v = verts[ids]
    return v[:, 0] * bary[:, 0:1] + v[:, 1] * bary[:, 1:2] + v[:, 2] * bary[:, 2:3]


def pose_joints(
    model: BodyModel,
    params: BodyParams,
    *,
    rotations: Float[Array, "J 3 3"] | None = None,
    with_extra: bool = True,
    precision=HIGHEST,
) -> Float[Array, "JE 3"]:
    """Joints-only fast path: FK, plus the extra points skinned from their 3E source vertices only.

    Equal to `pose(...).all_joints` (or `.joints` when with_extra=False) at a fraction of the cost:
    no full-mesh blend shapes, pose correctives or skinning.
    """
    precision = _exact(precision)  # the extra points' few columns gain nothing from the TF32 split
    with jax.named_scope("body.pose_joints"):
        R_local = rodrigues(params.pose) if rotations is None else rotations
        identity_rest = model.rest_orient == "identity"
        j_rest = rest_joints(model, params.betas, precision)
        R_rest = rest_orientations(model, params.betas, precision)
        R_world, t_world = forward_kinematics(model, R_local, j_rest, R_rest, precision)
        root = j_rest[0]
        joints = _place(t_world, root, params.scale, params.transl)
        if not with_extra or model.extra_vertex_ids.shape[0] == 0:
            return joints
        ids = model.extra_vertex_ids.reshape(-1)
        if model.extra_blend_dirs is not None and model.blend_dirs is not None and model.posedirs.shape[0]:
            f = _blend_features(model, params.betas, R_local)
            v = jnp.matmul(f, model.extra_blend_dirs, precision=precision).reshape(-1, 3)
        else:
            v = model.v_template[ids] + jnp.einsum("ncs,s->nc", model.shapedirs[ids], params.betas, precision=precision)
            if model.posedirs.shape[0]:
                pd = model.posedirs.reshape(model.posedirs.shape[0], -1, 3)[:, ids]
                v = v + jnp.einsum("p,pnc->nc", _pose_feature(R_local), pd, precision=precision)
        A = _skin_transforms(R_world, t_world, R_rest, j_rest, identity_rest)
        v = _place(_lbs(model, A, v, precision, rows=ids), root, params.scale, params.transl)
        extra = _bary_rows(v.reshape(-1, 3, 3), model.extra_bary)  # as in `pose`: placed, then blended
        return jnp.concatenate([joints, extra], 0)


def _bary_rows(v3: Float[Array, "E 3 3"], bary: Float[Array, "E 3"]) -> Float[Array, "E 3"]:
    return v3[:, 0] * bary[:, 0:1] + v3[:, 1] * bary[:, 1:2] + v3[:, 2] * bary[:, 2:3]
