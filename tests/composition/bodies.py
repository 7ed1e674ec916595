"""A small SMPL-X-layout body for composition tests: the 22 SMPL-X body joints (plus the two middle
finger bases the pose prior reads wrist directions from) with their names, parents and roughly
SMPL-X neutral rest positions (T-pose, metres, y up, facing +z), two random shape
directions, and five head vertices (nose, eyes, ears) rigidly skinned to the head as extra points.

Stands in for the full body models in CPU tests, where a 10k-vertex mesh would only cost time.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as onp

from anchorhoi_jax.body.model import BodyModel, identity_orient

NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_middle1", "right_middle1",
)  # fmt: skip
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
_LEFT = {
    "pelvis": (0.0, 0.93, 0.0), "left_hip": (0.06, 0.85, 0.0), "spine1": (0.0, 1.03, -0.01),
    "left_knee": (0.10, 0.48, 0.0), "spine2": (0.0, 1.16, 0.0), "left_ankle": (0.09, 0.08, -0.03),
    "spine3": (0.0, 1.22, 0.02), "left_foot": (0.11, 0.02, 0.10), "neck": (0.0, 1.45, -0.01),
    "left_collar": (0.07, 1.38, 0.0), "head": (0.0, 1.55, 0.01), "left_shoulder": (0.17, 1.40, -0.01),
    "left_elbow": (0.43, 1.38, -0.03), "left_wrist": (0.69, 1.39, -0.02), "left_middle1": (0.78, 1.39, -0.02),
}  # fmt: skip
EXTRA = ("nose", "right_eye", "left_eye", "right_ear", "left_ear")
_EXTRA_POS = ((0.0, 1.62, 0.11), (-0.03, 1.66, 0.08), (0.03, 1.66, 0.08), (-0.075, 1.62, 0.0), (0.075, 1.62, 0.0))


def rest_positions() -> onp.ndarray:
    out = []
    for n in NAMES:
        if n in _LEFT:
            out.append(_LEFT[n])
        else:
            x, y, z = _LEFT[n.replace("right_", "left_")]
            out.append((-x, y, z))
    return onp.asarray(out, onp.float32)


def stick_body(num_shape: int = 2, seed: int = 0) -> BodyModel:
    """SMPL-X-named 24-joint body; vertices = joints ++ 5 head points; extra points = the head points."""
    rng = onp.random.default_rng(seed)
    J = len(NAMES)
    j_rest = rest_positions()
    verts = onp.concatenate([j_rest, onp.asarray(_EXTRA_POS, onp.float32)], 0)
    V = verts.shape[0]
    weights = onp.zeros((V, J), onp.float32)
    # Joint vertices follow their parent bone (a joint's own rotation does not move it); head points
    # follow the head.
    for j, p in enumerate(PARENTS):
        weights[j, max(p, 0)] = 1.0
    weights[J:, NAMES.index("head")] = 1.0
    shapedirs = (0.01 * rng.standard_normal((V, 3, num_shape))).astype(onp.float32)
    j_shapedirs = shapedirs[:J].copy()
    R0, Rd = identity_orient(J, num_shape)
    E = len(EXTRA)
    ids = onp.repeat(onp.arange(J, J + E, dtype=onp.int32)[:, None], 3, 1)
    bary = onp.tile(onp.asarray([[1.0, 0.0, 0.0]], onp.float32), (E, 1))
    return BodyModel(
        v_template=jnp.asarray(verts),
        shapedirs=jnp.asarray(shapedirs),
        j_template=jnp.asarray(j_rest),
        j_shapedirs=jnp.asarray(j_shapedirs),
        posedirs=jnp.zeros((0, V * 3), jnp.float32),
        lbs_weights=jnp.asarray(weights),
        faces=jnp.zeros((0, 3), jnp.int32),
        extra_vertex_ids=jnp.asarray(ids),
        extra_bary=jnp.asarray(bary),
        rest_orient_template=jnp.asarray(R0),
        rest_orient_dirs=jnp.asarray(Rd),
        parents=PARENTS,
        joint_names=NAMES,
        extra_names=EXTRA,
        kind="smplx",
    )
