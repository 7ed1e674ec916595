"""The static HOI as the pipeline passes it between stages: per seed a dict of arrays in the
STATIC.npz layout (io/formats.py) plus colours (and the avatar's vertex displacements when the
composition made them). Stage outputs key seeds as 'seed_000', 'seed_001', ... because object
meshes differ in size between seeds."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp

from anchorhoi_jax.body.model import BodyParams
from anchorhoi_jax.body.skinning import pose
from anchorhoi_jax.pipeline.bodies import MotionBody, static_body_params

__all__ = ["seed_name", "seed_items", "static_from_file", "posed_human", "object_world", "human_colors",
           "object_colors", "posed_sequence", "OBJECT_COLOR", "HUMAN_COLOR", "motion_model"]

HUMAN_COLOR = (0.80, 0.62, 0.50)
OBJECT_COLOR = (0.55, 0.60, 0.70)
STATIC_KEYS = ("betas", "scale", "global_orient", "body_pose", "transl", "object_vertices", "object_faces",
               "object_rotation", "object_translation")


def seed_name(i: int) -> str:
    return f"seed_{i:03d}"


def seed_items(tree: dict) -> list[tuple[int, dict]]:
    """[(index, per-seed dict)] of an output keyed by seed_name, in seed order."""
    return [(int(k.split("_")[1]), tree[k]) for k in sorted(tree) if k.startswith("seed_")]


def static_from_file(path) -> tuple[str, dict]:
    """(body_model, per-seed static dict) from a STATIC.npz (validated by io.formats.read_static)."""
    from anchorhoi_jax.io.formats import read_static

    d = read_static(path)
    out = {k: onp.asarray(d[k]) for k in STATIC_KEYS}
    for k in ("expression", "jaw_pose", "leye_pose", "reye_pose", "left_hand_pose", "right_hand_pose",
              "phenotype_values"):
        if d.get(k) is not None:
            out[k] = onp.asarray(d[k], onp.float32)
    with onp.load(path, allow_pickle=False) as z:  # optional extras the pipeline itself writes
        for k in ("human_colors", "object_colors", "displacements"):
            if k in z.files:
                out[k] = onp.asarray(z[k], onp.float32)
    return d["body_model"], out


def motion_model(body: MotionBody, st: dict):
    """The body model of one seed: the avatar's displacements D added to the template (paper Sec. 4)."""
    if "displacements" not in st:
        return body.model
    D = jnp.asarray(st["displacements"], body.model.v_template.dtype)
    return body.model.replace(v_template=body.model.v_template.at[: D.shape[0]].add(D))


def posed_human(body: MotionBody, st: dict) -> onp.ndarray:
    """(V, 3) posed vertices of the static human (virtual keypoint vertices dropped)."""
    p = static_body_params(body, st)
    v = jax.jit(pose)(motion_model(body, st), p).vertices
    return onp.asarray(v)[: body.num_vertices]


def posed_sequence(body: MotionBody, st: dict, global_orient, body_pose, transl, pose_joints) -> tuple:
    """Posed bodies of a motion: (vertices (L, V, 3), joints (L, J, 3), T_world_joint (L, J, 4, 4))."""
    p0 = static_body_params(body, st)
    P = jnp.broadcast_to(p0.pose, (global_orient.shape[0],) + p0.pose.shape)
    P = P.at[:, 0].set(jnp.asarray(global_orient)).at[:, jnp.asarray(pose_joints)].set(jnp.asarray(body_pose))
    model = motion_model(body, st)

    @jax.jit
    def run(P, T):
        return jax.vmap(lambda q, t: pose(model, BodyParams(betas=p0.betas, pose=q, transl=t, scale=p0.scale)))(P, T)

    posed = run(P, jnp.asarray(transl))
    return (onp.asarray(posed.vertices)[:, : body.num_vertices], onp.asarray(posed.joints),
            onp.asarray(posed.T_world_joint), P)


def object_world(st: dict) -> onp.ndarray:
    """(N, 3) object vertices placed in the world by the static rotation and translation."""
    return onp.asarray(st["object_vertices"]) @ onp.asarray(st["object_rotation"]).T + onp.asarray(st["object_translation"])


def human_colors(st: dict, n: int) -> onp.ndarray:
    if "human_colors" in st:
        return onp.asarray(st["human_colors"], onp.float32)[:n]
    return onp.tile(onp.asarray(HUMAN_COLOR, onp.float32), (n, 1))


def object_colors(st: dict) -> onp.ndarray:
    if "object_colors" in st:
        return onp.asarray(st["object_colors"], onp.float32)
    return onp.tile(onp.asarray(OBJECT_COLOR, onp.float32), (onp.asarray(st["object_vertices"]).shape[0], 1))
