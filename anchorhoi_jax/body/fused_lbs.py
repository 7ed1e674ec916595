"""Pose-corrective GEMM and linear blend skinning as ONE GPU kernel (Pallas/Triton), float32 FFMA.

Why (benchmarks/results/body_forward.md): at batch 2048 the full SMPL-X forward is a cuBLAS FFMA GEMM
[1, β, vec(R − I)] · blend_dirs (1.30 ms) that writes the posed rest mesh (258 MB), and an XLA loop
fusion that reads it back, skins and places it (0.32 ms, 1.6 TB/s). Here each program computes a
(BM samples × BN vertices) tile of the posed rest mesh for x, y and z (three accumulators against a
coordinate-planar copy of the blend matrix, so the three coordinates of a vertex sit in the same
register position), then skins and places the tile in its epilogue and writes only the output
vertices: the 258 MB round trip and the separate LBS pass disappear.

Same mathematics as `skinning.pose` at `Precision.HIGHEST` (float32 products, float32 accumulation,
no tensor cores: Triton's "ieee" dot), the same skinning sum order; only the GEMM's summation order
differs from cuBLAS (float32 rounding). Forward only (no VJP): for fixed-shape evaluation through
`compiled.compile_pose`.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as onp
from flax import struct
from jaxtyping import Array, Float, Int

HIGHEST = jax.lax.Precision.HIGHEST
# Default tile of the LBS-only kernel (`lbs_vertices`, compiled.compile_pose(lbs="tiled")):
# (samples BM, vertices BN, warps, vertex tiles fastest).
LBS_TILE = (8, 128, 4, True)


@dataclasses.dataclass(frozen=True)
class FusedConfig:
    """Tile of one program: BM samples × BN vertices (× 3 coordinates), K-steps of BK features."""

    bm: int = 64
    bn: int = 64
    bk: int = 16
    num_warps: int = 4
    num_stages: int = 3

    def __post_init__(self):
        for name in ("bm", "bn", "bk"):
            v = getattr(self, name)
            if v < 16 or v & (v - 1):
                raise ValueError(f"FusedConfig.{name} must be a power of two >= 16, got {v}")


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def planar_blend(blend_dirs: Float[Array, "Qp N"], num_vertices: int, bn: int) -> Float[Array, "3 Qp Vp"]:
    """The fused blend matrix with its columns split by coordinate: (3, Qp, Vp), Vp a multiple of `bn`.

    Column 3v + c of `blend_dirs` becomes [c, :, v]; padding columns are zero (host-side, once).
    """
    M = onp.asarray(blend_dirs, onp.float32)
    V = num_vertices
    Vp = _round_up(V, bn)
    planes = M[:, : 3 * V].reshape(M.shape[0], V, 3).transpose(2, 0, 1)
    return jnp.asarray(onp.pad(planes, ((0, 0), (0, 0), (0, Vp - V))))


def planar_skinning(ids: Int[Array, "V K"], w: Float[Array, "V K"], Vp: int):
    """Sparse skinning ids/weights transposed to (K, Vp) and zero-padded (padding: joint 0, weight 0)."""
    ids = onp.asarray(ids, onp.int32).T
    w = onp.asarray(w, onp.float32).T
    pad = ((0, 0), (0, Vp - ids.shape[1]))
    return jnp.asarray(onp.pad(ids, pad)), jnp.asarray(onp.pad(w, pad))


def _kernel(f_ref, m_ref, a_ref, ids_ref, w_ref, p_ref, o_ref, *, cfg, Q, V, Vo, K, J12, nb):
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plt

    BM, BN, BK = cfg.bm, cfg.bn, cfg.bk
    pid = pl.program_id(0)
    # Batch tiles vary fastest: consecutive programs share one column block of the blend matrix
    # (3·Qp·BN floats), so it is read from HBM once and reused from L2 by every batch tile.
    i = pid % nb
    j = pid // nb
    b0 = pl.multiple_of(i * BM, BM)
    v0 = pl.multiple_of(j * BN, BN)

    def body(t, acc):
        k0 = pl.multiple_of(t * BK, BK)
        a = f_ref[pl.ds(b0, BM), pl.ds(k0, BK)]
        return tuple(
            acc[c] + jnp.dot(a, m_ref[c, pl.ds(k0, BK), pl.ds(v0, BN)], precision=HIGHEST,
                             preferred_element_type=jnp.float32)
            for c in range(3)
        )  # fmt: skip

    z = jnp.zeros((BM, BN), jnp.float32)
    p = jax.lax.fori_loop(0, Q // BK, body, (z, z, z))

    _skin_tile(p, a_ref, ids_ref, w_ref, p_ref, o_ref, b0=b0, v0=v0, BM=BM, BN=BN, V=V, Vo=Vo, K=K, J12=J12)


def _skin_tile(p, a_ref, ids_ref, w_ref, p_ref, o_ref, *, b0, v0, BM, BN, V, Vo, K, J12):
    """Skin and place a (BM samples × BN vertices) tile of rest coordinates p = (x, y, z) and store it."""
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plt

    rows = b0 + jnp.arange(BM, dtype=jnp.int32)
    cols = v0 + jnp.arange(BN, dtype=jnp.int32)
    mask = jnp.broadcast_to((cols < V)[None, :], (BM, BN))
    abase = rows[:, None] * J12
    ids = [ids_ref[k, pl.ds(v0, BN)] * 12 for k in range(K)]
    ws = [w_ref[k, pl.ds(v0, BN)][None, :] for k in range(K)]
    scale = p_ref[pl.ds(b0, BM), 3][:, None]
    for c in range(3):
        # Same products and sum order as skinning._apply_sparse_lbs and skinning._place.
        T = []
        for e in range(4):
            t = None
            for k in range(K):
                g = ws[k] * a_ref[abase + ids[k][None, :] + (4 * c + e)]
                t = g if t is None else t + g
            T.append(t)
        o = T[0] * p[0] + T[1] * p[1] + T[2] * p[2] + T[3]
        root = p_ref[pl.ds(b0, BM), c][:, None]
        o = root + scale * (o - root) + p_ref[pl.ds(b0, BM), 4 + c][:, None]
        plt.store(o_ref.at[rows[:, None] * (3 * Vo) + cols[None, :] * 3 + c], o, mask=mask)


def _lbs_kernel(r_ref, a_ref, ids_ref, w_ref, p_ref, o_ref, *, BM, BN, N, V, Vo, K, J12, nb, nv, vertex_fastest):
    """LBS + placement of a (BM × BN) tile of an already computed posed rest mesh (B, N ≥ 3V)."""
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plt

    pid = pl.program_id(0)
    if vertex_fastest:  # consecutive programs stream along the same rows
        i, j = pid // nv, pid % nv
    else:
        i, j = pid % nb, pid // nb
    b0 = pl.multiple_of(i * BM, BM)
    v0 = pl.multiple_of(j * BN, BN)
    rows = b0 + jnp.arange(BM, dtype=jnp.int32)
    cols = v0 + jnp.arange(BN, dtype=jnp.int32)
    mask = jnp.broadcast_to((cols < V)[None, :], (BM, BN))
    base = rows[:, None] * N + cols[None, :] * 3
    # Every load of the tile is issued before any use: BM·BN·3 independent loads per program keep
    # enough bytes in flight for HBM bandwidth (one output value per thread does not).
    p = tuple(plt.load(r_ref.at[base + c], mask=mask, other=0.0) for c in range(3))
    _skin_tile(p, a_ref, ids_ref, w_ref, p_ref, o_ref, b0=b0, v0=v0, BM=BM, BN=BN, V=V, Vo=Vo, K=K, J12=J12)


def lbs_vertices(
    rest: Float[Array, "B N"],
    A: Float[Array, "B J 3 4"],
    ids_t: Int[Array, "K Vp"],
    w_t: Float[Array, "K Vp"],
    root: Float[Array, "B 3"],
    scale: Float[Array, "B"],
    transl: Float[Array, "B 3"],
    *,
    num_vertices: int,
    bm: int = 8,
    bn: int = 128,
    num_warps: int = 4,
    vertex_fastest: bool = True,
    interpret: bool = False,
) -> Float[Array, "B V 3"]:
    """Skinned, scaled and translated vertices from the posed rest mesh rows `rest` (x, y, z interleaved).

    The LBS pass alone as a 2-D-tiled kernel (BM samples × BN vertices per program); `ids_t`/`w_t`
    from `planar_skinning` with Vp a multiple of `bn`.
    """
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plt

    B, N = rest.shape
    V = num_vertices
    Vp = ids_t.shape[1]
    if Vp % bn or N < 3 * V or B % bm:
        raise ValueError(f"lbs tile {bm}x{bn} does not fit rest {rest.shape} / skinning {ids_t.shape}")
    J = A.shape[-3]
    K = ids_t.shape[0]
    nb, nv = B // bm, Vp // bn
    place = jnp.concatenate([root, scale[:, None], transl, jnp.zeros((B, 1), root.dtype)], -1)
    Vo = Vp if interpret else V
    if interpret:  # masked loads read past the row end there too: pad the rows
        rest = jnp.pad(rest, ((0, 0), (0, max(0, 3 * Vp - N))))
    kern = functools.partial(_lbs_kernel, BM=bm, BN=bn, N=rest.shape[1], V=V, Vo=Vo, K=K, J12=J * 12, nb=nb, nv=nv,
                             vertex_fastest=vertex_fastest)
    out = pl.pallas_call(
        kern,
        out_shape=jax.ShapeDtypeStruct((B * 3 * Vo,), jnp.float32),
        grid=(nb * nv,),
        interpret=interpret,
        compiler_params=plt.CompilerParams(num_warps=num_warps),
    )(rest.reshape(-1), A.reshape(-1), ids_t, w_t, place)
    return out.reshape(B, Vo, 3)[:, :V]


def fused_vertices(
    feats: Float[Array, "B Qp"],
    planar: Float[Array, "3 Qp Vp"],
    A: Float[Array, "B J 3 4"],
    ids_t: Int[Array, "K Vp"],
    w_t: Float[Array, "K Vp"],
    root: Float[Array, "B 3"],
    scale: Float[Array, "B"],
    transl: Float[Array, "B 3"],
    *,
    num_vertices: int,
    cfg: FusedConfig = FusedConfig(),
    interpret: bool = False,
) -> Float[Array, "B V 3"]:
    """Skinned, scaled and translated vertices of a batch: place(LBS(A, feats · blend_dirs)).

    `planar` from `planar_blend` (its Vp a multiple of cfg.bn), `ids_t`/`w_t` from `planar_skinning`,
    A the per-sample skinning transforms (`skinning._skin_transforms`). The batch is padded to a
    multiple of cfg.bm internally. `interpret=True` runs the kernel body in JAX (CPU tests).
    """
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plt

    B, Q = feats.shape
    V = num_vertices
    Vp = planar.shape[-1]
    if planar.shape[:2] != (3, Q) or Vp % cfg.bn or Vp < V or Q % cfg.bk:
        raise ValueError(f"planar blend {planar.shape} does not fit features {feats.shape} and tile {cfg}")
    J = A.shape[-3]
    K = ids_t.shape[0]
    Bp = _round_up(B, cfg.bm)
    nb, nv = Bp // cfg.bm, Vp // cfg.bn
    pad = lambda x: jnp.pad(x, ((0, Bp - B),) + ((0, 0),) * (x.ndim - 1))  # noqa: E731
    place = jnp.concatenate([root, scale[:, None], transl, jnp.zeros((B, 1), root.dtype)], -1)
    # Interpret mode discharges masked stores as full scatters: give it a padded output instead.
    Vo = Vp if interpret else V
    kern = functools.partial(_kernel, cfg=cfg, Q=Q, V=V, Vo=Vo, K=K, J12=J * 12, nb=nb)
    out = pl.pallas_call(
        kern,
        out_shape=jax.ShapeDtypeStruct((Bp * 3 * Vo,), jnp.float32),
        grid=(nb * nv,),
        interpret=interpret,
        compiler_params=plt.CompilerParams(num_warps=cfg.num_warps, num_stages=cfg.num_stages),
    )(pad(feats), planar, pad(A.reshape(B, J * 12)).reshape(-1), ids_t, w_t, pad(place))
    return out.reshape(Bp, Vo, 3)[:B, :V]


@struct.dataclass
class FusedBlend:
    """Host-prepared constants of the fused kernel for one model and tile width (see `prepare`)."""

    planar: jax.Array
    ids_t: jax.Array
    w_t: jax.Array


def prepare(model, cfg: FusedConfig = FusedConfig()) -> FusedBlend:
    """Planar blend matrix and transposed sparse skinning of `model` (needs blend_dirs and skin ids)."""
    if model.blend_dirs is None or model.skin_joint_ids is None or model.posedirs.shape[0] == 0:
        raise ValueError("the fused kernel needs a model with pose correctives, blend_dirs and sparse skinning")
    planar = planar_blend(model.blend_dirs, model.num_vertices, cfg.bn)
    ids_t, w_t = planar_skinning(model.skin_joint_ids, model.skin_joint_weights, planar.shape[-1])
    return FusedBlend(planar=planar, ids_t=ids_t, w_t=w_t)


def pose_vertices_joints(model, fused: FusedBlend, params, *, cfg: FusedConfig = FusedConfig(), interpret=False):
    """Batched (vertices (B,V,3), all joints (B,J+E,3)) = `pose(model, p)` for each sample, fp32 HIGHEST.

    FK, features and transforms run as in `skinning.pose` (vmapped); the GEMM + LBS + placement is
    the fused kernel. `params` carries a leading batch axis.
    """
    from anchorhoi_jax.body import skinning as sk

    if model.rest_orient != "identity":
        raise ValueError("the fused kernel supports identity rest frames (SMPL-X) only")

    def per_sample(p):
        R = sk.rodrigues(p.pose)
        f = sk._blend_features(model, p.betas, R)
        j_rest = sk.rest_joints(model, p.betas)
        R_rest = sk.rest_orientations(model, p.betas)
        Rw, tw = sk.forward_kinematics(model, R, j_rest, R_rest)
        A = sk._skin_transforms(Rw, tw, R_rest, j_rest, True)
        root = j_rest[0]
        return f, A, root, sk._place(tw, root, p.scale, p.transl)

    f, A, root, joints = jax.vmap(per_sample)(params)
    verts = fused_vertices(
        f, fused.planar, A, fused.ids_t, fused.w_t, root, params.scale, params.transl,
        num_vertices=model.num_vertices, cfg=cfg, interpret=interpret,
    )  # fmt: skip
    extra = jax.vmap(sk._barycentric, in_axes=(0, None, None))(verts, model.extra_vertex_ids, model.extra_bary)
    return verts, jnp.concatenate([joints, extra], 1)


def pose_vertices_joints_lbs(model, fused: FusedBlend, params, *, bm=8, bn=128, num_warps=4, vertex_fastest=True,
                             interpret=False):
    """As `pose_vertices_joints`, but the GEMM is XLA's (cuBLAS FFMA) and only the LBS pass is the tiled kernel.

    `fused` from `prepare(model, FusedConfig(bn=bn))` (its planar matrix is not used here).
    """
    from anchorhoi_jax.body import skinning as sk

    def per_sample(p):
        R = sk.rodrigues(p.pose)
        f = sk._blend_features(model, p.betas, R)
        j_rest = sk.rest_joints(model, p.betas)
        R_rest = sk.rest_orientations(model, p.betas)
        Rw, tw = sk.forward_kinematics(model, R, j_rest, R_rest)
        A = sk._skin_transforms(Rw, tw, R_rest, j_rest, True)
        root = j_rest[0]
        return f, A, root, sk._place(tw, root, p.scale, p.transl)

    f, A, root, joints = jax.vmap(per_sample)(params)
    rest = jnp.matmul(f, model.blend_dirs, precision=HIGHEST)
    verts = lbs_vertices(
        rest, A, fused.ids_t, fused.w_t, root, params.scale, params.transl, num_vertices=model.num_vertices,
        bm=bm, bn=bn, num_warps=num_warps, vertex_fastest=vertex_fastest, interpret=interpret,
    )  # fmt: skip
    extra = jax.vmap(sk._barycentric, in_axes=(0, None, None))(verts, model.extra_vertex_ids, model.extra_bary)
    return verts, jnp.concatenate([joints, extra], 1)
