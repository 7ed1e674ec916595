"""The body a pipeline run animates: model, static parameters, OpenPose-18 points, contact candidates.

The motion stage (stages/motion.py) reads OpenPose-18 as indices into joints ++ extra points, the
extra points being barycentric combinations of skinned vertices. SMPL-X has them (vertex joints,
track.smplx_openpose_and_contacts). Anny's keypoints come from a dense COCO vertex regressor
(body/keypoints.py), so `anny_motion_model` appends one *virtual vertex* per OpenPose-18 keypoint:
rest position W·v(β) (W = the regressor row; shape blend W·shapedirs, exact for every β) and
skinning weights W·lbs_weights (the regressor's vertices' weights averaged). At any β in the rest
pose it equals the regressor exactly; posed, it is the standard linear-blend approximation of a
vertex average. Virtual vertices belong to no face, so renders, penetration terms and exports
never see them (exports keep the first V vertices).
"""

from __future__ import annotations

import dataclasses
import functools
from types import SimpleNamespace

import jax.numpy as jnp
import numpy as onp

from anchorhoi_jax.body.model import BodyModel, BodyParams

__all__ = ["MotionBody", "anny_motion_model", "load_motion_body", "static_body_params"]


@dataclasses.dataclass(frozen=True)
class MotionBody:
    """model: BodyModel (Anny: with virtual keypoint vertices); num_vertices: real vertices (faces,
    exports); openpose: (18,) ids into joints ++ extras; candidates: C(V_h) of Eq. 3; kind."""

    model: BodyModel
    num_vertices: int
    openpose: onp.ndarray
    candidates: onp.ndarray
    kind: str
    smplx_model: str | None = None


def anny_motion_model(body) -> tuple[BodyModel, onp.ndarray]:
    """Anny's BodyModel with 18 virtual OpenPose-18 vertices as extra points; returns (model, ids)."""
    from anchorhoi_jax.body.keypoints import keypoint_regressor

    m = body.model
    reg = keypoint_regressor(body, "openpose18")
    W = onp.asarray(reg.vertex_weights, onp.float64)  # (18, V): each row sums to 1 (vertex averages)
    V, J = m.num_vertices, m.num_joints
    v_t = onp.asarray(m.v_template, onp.float64)
    sd = onp.asarray(m.shapedirs, onp.float64)
    lbs = onp.asarray(m.lbs_weights, onp.float64)
    k_v = W @ v_t
    k_sd = onp.einsum("kv,vcs->kcs", W, sd)
    # Keep each virtual vertex's 9 largest bone weights (Anny's own per-vertex maximum), renormalised:
    # the motion stage's sparse LBS unrolls over the widest row, and the tail weights are < 1 %.
    k_lbs = W @ lbs
    top = onp.argsort(-k_lbs, axis=1)[:, 9:]
    onp.put_along_axis(k_lbs, top, 0.0, axis=1)
    k_lbs = k_lbs / k_lbs.sum(1, keepdims=True)
    dt = m.v_template.dtype
    new = m.replace(
        v_template=jnp.asarray(onp.concatenate([v_t, k_v]), dt),
        shapedirs=jnp.asarray(onp.concatenate([sd, k_sd]), dt),
        lbs_weights=jnp.asarray(onp.concatenate([lbs, k_lbs]), dt),
        extra_vertex_ids=jnp.asarray(onp.repeat(onp.arange(V, V + 18)[:, None], 3, 1), jnp.int32),
        extra_bary=jnp.asarray(onp.tile([1.0, 0.0, 0.0], (18, 1)), dt),
        extra_names=tuple(f"openpose_{n}" for n in reg.names),
    )
    if m.skin_joint_ids is not None:  # full-mesh posing (exports) skins with the sparse table
        Kmax = m.skin_joint_ids.shape[1]
        ids = onp.argsort(-k_lbs, axis=1)[:, :Kmax]
        w = onp.take_along_axis(k_lbs, ids, 1)
        w = w / w.sum(1, keepdims=True)
        new = new.replace(skin_joint_ids=jnp.concatenate([m.skin_joint_ids, jnp.asarray(ids, m.skin_joint_ids.dtype)]),
                          skin_joint_weights=jnp.concatenate([m.skin_joint_weights, jnp.asarray(w, dt)]))
    return new, onp.arange(J, J + 18, dtype=onp.int32)


@functools.lru_cache(maxsize=2)
def _anny_motion_body() -> MotionBody:
    from anchorhoi_jax.body.anny import load_anny
    from anchorhoi_jax.body.contact_regions import contact_regions

    body = load_anny()
    model, op = anny_motion_model(body)
    cand = contact_regions(body)["union"].astype(onp.int32)
    return MotionBody(model, body.model.num_vertices, op, cand, "anny")


def load_motion_body(kind: str, smplx_model: str | None = None, static: dict | None = None) -> MotionBody:
    """The motion body for `kind` ('anny' or 'smplx'; SMPL-X sized for `static`'s betas/expression)."""
    if kind == "anny":
        return _anny_motion_body()
    from anchorhoi_jax.track import _body_and_maps, smplx_openpose_and_contacts

    if static is None:  # no instance yet (generate): the file's default sizes (10 betas, 10 expressions)
        from anchorhoi_jax.body.smplx import load_smplx

        model = load_smplx(smplx_model)[0]
        op, cand = smplx_openpose_and_contacts(model)
        return MotionBody(model, model.num_vertices, onp.asarray(op), onp.asarray(cand), "smplx", smplx_model)
    model, _, op, cand = _body_and_maps(SimpleNamespace(body=None, smplx_model=smplx_model), static)
    return MotionBody(model, model.num_vertices, onp.asarray(op), onp.asarray(cand), "smplx", smplx_model)


def static_body_params(body: MotionBody, static: dict) -> BodyParams:
    """BodyParams of a STATIC dict (io/formats.read_static layout) for `body`."""
    if body.kind == "smplx":
        from anchorhoi_jax.track import _body_and_maps

        # Per-seed dicts of the pipeline carry no body_model string (the run's body.model is the kind).
        return _body_and_maps(SimpleNamespace(body=None, smplx_model=body.smplx_model),
                              {**static, "body_model": "smplx"})[1]
    J = body.model.num_joints
    pose = onp.concatenate([onp.asarray(static["global_orient"]).reshape(1, 3),
                            onp.asarray(static["body_pose"]).reshape(-1, 3)])
    if pose.shape[0] != J:
        raise ValueError(f"static instance has {pose.shape[0]} joint rotations; the Anny body has {J}")
    return BodyParams(betas=jnp.asarray(static["betas"], jnp.float32), pose=jnp.asarray(pose, jnp.float32),
                      transl=jnp.asarray(static["transl"], jnp.float32),
                      scale=jnp.asarray(static["scale"], jnp.float32).reshape(()))
