"""Pure forward kinematics and linear blend skinning: `pose(model, params) -> PosedBody`.

Written for one sample; batch with `jax.vmap` (the matrix products become GEMMs over the batch).
Every product that touches geometry runs at `Precision.HIGHEST` unless the caller asks otherwise
(benchmarks measure TF32 separately).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from anchorhoi_jax.body.model import BodyModel, BodyParams, PosedBody
from anchorhoi_jax.geometry.rotations import axis_angle_to_matrix

HIGHEST = jax.lax.Precision.HIGHEST


def special_procrustes(M: Float[Array, "*b 3 3"]) -> Float[Array, "*b 3 3"]:
    """Rotation closest (Frobenius) to M: U diag(1, 1, det(UVᵀ)) Vᵀ."""
    U, _, Vt = jnp.linalg.svd(M)
    d = jnp.sign(jnp.linalg.det(jnp.matmul(U, Vt, precision=HIGHEST)))
    U = U.at[..., :, 2].multiply(d[..., None])
    return jnp.matmul(U, Vt, precision=HIGHEST)


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


def forward_kinematics(
    model: BodyModel,
    R_local: Float[Array, "J 3 3"],
    j_rest: Float[Array, "J 3"],
    R_rest: Float[Array, "J 3 3"],
    precision=HIGHEST,
) -> tuple[Float[Array, "J 3 3"], Float[Array, "J 3"]]:
    """World rotation and position of every joint, unrolled over depth levels of the tree.

    T_world_joint = T_world_parent · (T_world_rest_parent⁻¹ T_world_rest_joint) · R_local.
    Returns (R_world (J,3,3), t_world (J,3)).
    """
    parents = model.parents
    R_world = [None] * len(parents)
    t_world = [None] * len(parents)
    for level in model.levels:
        idx = jnp.asarray(level)
        if parents[level[0]] < 0:  # root level: the rest frame is the world frame's child directly
            for j in level:
                R_world[j] = jnp.matmul(R_rest[j], R_local[j], precision=precision)
                t_world[j] = j_rest[j]
            continue
        par = [parents[j] for j in level]
        pidx = jnp.asarray(par)
        Rp = jnp.stack([R_world[p] for p in par])
        tp = jnp.stack([t_world[p] for p in par])
        Rrp = R_rest[pidx]
        # Local rest transform expressed in the parent's rest frame.
        R_pr = jnp.matmul(jnp.swapaxes(Rrp, -1, -2), R_rest[idx], precision=precision)
        t_pr = jnp.einsum("kba,kb->ka", Rrp, j_rest[idx] - j_rest[pidx], precision=precision)
        Rw = jnp.matmul(Rp, jnp.matmul(R_pr, R_local[idx], precision=precision), precision=precision)
        tw = tp + jnp.einsum("kab,kb->ka", Rp, t_pr, precision=precision)
        for k, j in enumerate(level):
            R_world[j] = Rw[k]
            t_world[j] = tw[k]
    return jnp.stack(R_world), jnp.stack(t_world)


def _skin_transforms(R_world, t_world, R_rest, j_rest, precision):
    """Per-joint skinning transform T_world_joint · T_world_rest⁻¹ as (J, 3, 4)."""
    A_R = jnp.matmul(R_world, jnp.swapaxes(R_rest, -1, -2), precision=precision)
    A_t = t_world - jnp.einsum("jab,jb->ja", A_R, j_rest, precision=precision)
    return jnp.concatenate([A_R, A_t[..., None]], axis=-1)


def _pose_feature(R_local: Float[Array, "J 3 3"]) -> Float[Array, "P"]:
    return (R_local[1:] - jnp.eye(3, dtype=R_local.dtype)).reshape(-1)


def _apply_lbs(weights, A, points, precision):
    """v' = Σ_j w_j (A_j [v;1]) for each point (weights (N,J), A (J,3,4))."""
    T = jnp.einsum("nj,jk->nk", weights, A.reshape(A.shape[0], 12), precision=precision).reshape(-1, 3, 4)
    return jnp.einsum("nab,nb->na", T[..., :3], points, precision=precision) + T[..., 3]


def _place(points, root, scale, transl):
    """Scale about the root joint, then translate (CONVENTIONS.md: human placement)."""
    return root + scale * (points - root) + transl


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
    """
    with jax.named_scope("body.pose"):
        R_local = axis_angle_to_matrix(params.pose) if rotations is None else rotations
        v_rest = rest_vertices(model, params.betas, precision)
        j_rest = rest_joints(model, params.betas, precision)
        R_rest = rest_orientations(model, params.betas, precision)
        if model.posedirs.shape[0]:
            v_rest = v_rest + jnp.matmul(_pose_feature(R_local), model.posedirs, precision=precision).reshape(-1, 3)
        R_world, t_world = forward_kinematics(model, R_local, j_rest, R_rest, precision)
        A = _skin_transforms(R_world, t_world, R_rest, j_rest, precision)
        verts = _apply_lbs(model.lbs_weights, A, v_rest, precision)
        extra = _barycentric(verts, model.extra_vertex_ids, model.extra_bary)
        root = j_rest[0]
        T = jnp.concatenate([R_world, _place(t_world, root, params.scale, params.transl)[..., None]], -1)
        T = jnp.concatenate([T, jnp.broadcast_to(jnp.array([0, 0, 0, 1], T.dtype), T.shape[:-2] + (1, 4))], -2)
        return PosedBody(
            vertices=_place(verts, root, params.scale, params.transl),
            joints=_place(t_world, root, params.scale, params.transl),
            extra=_place(extra, root, params.scale, params.transl),
            T_world_joint=T,
        )


def _barycentric(verts, ids: Int[Array, "E 3"], bary: Float[Array, "E 3"]):
    return jnp.einsum("eka,ek->ea", verts[ids], bary)


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
    with jax.named_scope("body.pose_joints"):
        R_local = axis_angle_to_matrix(params.pose) if rotations is None else rotations
        j_rest = rest_joints(model, params.betas, precision)
        R_rest = rest_orientations(model, params.betas, precision)
        R_world, t_world = forward_kinematics(model, R_local, j_rest, R_rest, precision)
        root = j_rest[0]
        joints = _place(t_world, root, params.scale, params.transl)
        if not with_extra or model.extra_vertex_ids.shape[0] == 0:
            return joints
        ids = model.extra_vertex_ids.reshape(-1)
        v = model.v_template[ids] + jnp.einsum("ncs,s->nc", model.shapedirs[ids], params.betas, precision=precision)
        if model.posedirs.shape[0]:
            pd = model.posedirs.reshape(model.posedirs.shape[0], -1, 3)[:, ids]
            v = v + jnp.einsum("p,pnc->nc", _pose_feature(R_local), pd, precision=precision)
        A = _skin_transforms(R_world, t_world, R_rest, j_rest, precision)
        v = _apply_lbs(model.lbs_weights[ids], A, v, precision).reshape(-1, 3, 3)
        extra = jnp.einsum("eka,ek->ea", v, model.extra_bary)
        return jnp.concatenate([joints, _place(extra, root, params.scale, params.transl)], 0)
