"""A procedural, human-proportioned body in the SMPL-X joint layout, for tests and the motion benchmark.

Why it exists: SMPL-X weights are licensed and cannot be shipped, and the motion stage needs a body
whose parts have human sizes (contacts, penetration and reprojection errors are in mm). The mesh is
a union of closed capsules, one per bone, rigidly skinned with a blend into the child joint near
the bone's end; joints are one-hot regressed from a marker vertex at each joint, so the same arrays
drive both our `BodyModel` and `smplx.lbs` (the torch baseline). 55 joints in SMPL-X order
(pelvis … right hand), the first 22 carrying the body; facing +z, y up, left toward +x.
"""

from __future__ import annotations

import numpy as onp

from anchorhoi_jax.body.model import BodyModel

SMPLX_JOINTS = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw",
    "left_eye_smplhf", "right_eye_smplhf",
) + tuple(f"left_{f}{k}" for f in ("index", "middle", "pinky", "ring", "thumb") for k in (1, 2, 3)) + tuple(
    f"right_{f}{k}" for f in ("index", "middle", "pinky", "ring", "thumb") for k in (1, 2, 3)
)

_BODY_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15)


def _hand_parents(wrist: int, first: int) -> tuple[int, ...]:
    out = []
    for f in range(5):
        base = first + 3 * f
        out += [wrist, base, base + 1]
    return tuple(out)


SMPLX_PARENTS = _BODY_PARENTS + _hand_parents(20, 25) + _hand_parents(21, 40)

# Rest joint positions (metres, T-pose, feet on y = 0), roughly adult proportions.
_J = {
    0: (0.0, 0.95, 0.0), 1: (0.085, 0.87, 0.0), 2: (-0.085, 0.87, 0.0), 3: (0.0, 1.06, -0.01),
    4: (0.1, 0.5, 0.01), 5: (-0.1, 0.5, 0.01), 6: (0.0, 1.18, 0.0), 7: (0.1, 0.08, -0.02),
    8: (-0.1, 0.08, -0.02), 9: (0.0, 1.25, 0.01), 10: (0.11, 0.02, 0.11), 11: (-0.11, 0.02, 0.11),
    12: (0.0, 1.46, -0.01), 13: (0.07, 1.38, 0.0), 14: (-0.07, 1.38, 0.0), 15: (0.0, 1.55, 0.02),
    16: (0.18, 1.40, -0.01), 17: (-0.18, 1.40, -0.01), 18: (0.44, 1.40, -0.02), 19: (-0.44, 1.40, -0.02),
    20: (0.69, 1.40, -0.01), 21: (-0.69, 1.40, -0.01), 22: (0.0, 1.52, 0.06), 23: (0.035, 1.63, 0.08),
    24: (-0.035, 1.63, 0.08),
}
for _side, _w, _first, _sx in (("l", 20, 25, 1.0), ("r", 21, 40, -1.0)):
    for _f in range(5):
        for _k in range(3):
            _J[_first + 3 * _f + _k] = (_sx * (0.77 + 0.03 * _k), 1.40, -0.04 + 0.02 * _f)

# (skinning joint, start, end, radius, child joint to blend into near the end or -1)
def _bones():
    J = {k: onp.asarray(v) for k, v in _J.items()}
    up = onp.array([0.0, 1.0, 0.0])
    b = [
        (0, J[1] + 0.01 * up, J[2] + 0.01 * up, 0.11, -1),
        (3, J[3], J[6], 0.12, 6),
        (6, J[6], J[9], 0.13, 9),
        (9, J[9], J[12] - 0.06 * up, 0.14, -1),
        (12, J[12], J[15], 0.05, 15),
        (15, J[15] + 0.03 * up, J[15] + 0.14 * up, 0.095, -1),
    ]
    for s, (hip, knee, ank, foot, col, sh, el, wr) in enumerate(((1, 4, 7, 10, 13, 16, 18, 20), (2, 5, 8, 11, 14, 17, 19, 21))):
        sx = 1.0 if s == 0 else -1.0
        b += [
            (hip, J[hip], J[knee], 0.075, knee),
            (knee, J[knee], J[ank], 0.052, ank),
            (ank, onp.array([J[ank][0], 0.04, -0.06]), onp.array([J[ank][0], 0.04, 0.16]), 0.042, foot),
            (col, J[col], J[sh], 0.06, sh),
            (sh, J[sh], J[el], 0.048, el),
            (el, J[el], J[wr], 0.038, wr),
            (wr, J[wr], J[wr] + onp.array([sx * 0.15, 0.0, 0.0]), 0.035, -1),
        ]
    return b


def capsule_mesh(a, b, r, n_around: int, n_along: int, n_cap: int):
    """Closed, outward-oriented capsule around segment a→b; returns (verts, faces, axial t in [0,1])."""
    a, b = onp.asarray(a, float), onp.asarray(b, float)
    axis = b - a
    length = onp.linalg.norm(axis)
    z = axis / length
    x = onp.cross(z, [0.0, 0.0, 1.0]) if abs(z[2]) < 0.9 else onp.cross(z, [1.0, 0.0, 0.0])
    x /= onp.linalg.norm(x)
    y = onp.cross(z, x)
    rings = []  # (height along axis, ring radius)
    for k in range(1, n_cap + 1):  # bottom hemisphere, from the pole up
        th = -0.5 * onp.pi + 0.5 * onp.pi * k / (n_cap + 1)
        rings.append((r * onp.sin(th), r * onp.cos(th)))
    for k in range(n_along + 1):
        rings.append((length * k / n_along, r))
    for k in range(n_cap, 0, -1):
        th = 0.5 * onp.pi - 0.5 * onp.pi * k / (n_cap + 1)
        rings.append((length + r * onp.sin(th), r * onp.cos(th)))
    ang = 2 * onp.pi * onp.arange(n_around) / n_around
    verts = [a - r * z]
    for h, rr in rings:
        verts += list(a + h * z + rr * (onp.cos(ang)[:, None] * x + onp.sin(ang)[:, None] * y))
    verts.append(b + r * z)
    verts = onp.asarray(verts)
    nr = len(rings)
    faces = []
    ring = lambda i, j: 1 + i * n_around + (j % n_around)
    for j in range(n_around):
        faces.append((0, ring(0, j + 1), ring(0, j)))
        for i in range(nr - 1):
            faces.append((ring(i, j), ring(i, j + 1), ring(i + 1, j + 1)))
            faces.append((ring(i, j), ring(i + 1, j + 1), ring(i + 1, j)))
        faces.append((len(verts) - 1, ring(nr - 1, j), ring(nr - 1, j + 1)))
    faces = onp.asarray(faces)
    tri = verts[faces]
    if onp.einsum("fi,fi->", tri[:, 0], onp.cross(tri[:, 1], tri[:, 2])) < 0:
        faces = faces[:, ::-1]
    t = onp.clip((verts - a) @ z / length, 0.0, 1.0)
    return verts, faces, t


def make_synthetic_body(*, n_around: int = 12, n_along: int = 6, n_cap: int = 3, num_shape: int = 10, seed: int = 0):
    """Build the procedural body. Returns (BodyModel, extras dict).

    extras: `J_regressor` (J,V) one-hot, `v_template`, `shapedirs`, `posedirs`, `weights`, `faces`,
    `parents` (NumPy, for `smplx.lbs`), `contact_candidates` (vertex ids: hands, forearms, pelvis,
    thighs, feet, lower back — the PROX-style regions of Hassan et al. 2019), `openpose18` (indices
    into `pose_joints(...)` output = 55 joints ++ extra points), `part_of_vertex`.
    """
    rng = onp.random.default_rng(seed)
    J = len(SMPLX_PARENTS)
    verts, faces, weights, part = [], [], [], []
    off = 0
    for pi, (j, s, e, r, child) in enumerate(_bones()):
        v, f, t = capsule_mesh(s, e, r, n_around, n_along, n_cap)
        w = onp.zeros((len(v), J))
        blend = onp.clip((t - 0.8) / 0.2, 0.0, 1.0) * 0.5 if child >= 0 else onp.zeros_like(t)
        w[:, j] = 1.0 - blend
        if child >= 0:
            w[:, child] = blend
        verts.append(v)
        faces.append(f + off)
        weights.append(w)
        part += [j] * len(v)
        off += len(v)
    # One marker vertex per joint (not in any face): the one-hot joint regressor reads them.
    jpos = onp.asarray([_J[k] for k in range(J)])
    marker0 = off
    verts.append(jpos)
    weights.append(onp.eye(J))
    part += list(range(J))
    v_template = onp.concatenate(verts).astype(onp.float32)
    faces = onp.concatenate(faces).astype(onp.int32)
    weights = onp.concatenate(weights).astype(onp.float32)
    part = onp.asarray(part)
    V = len(v_template)
    J_reg = onp.zeros((J, V), onp.float32)
    J_reg[onp.arange(J), marker0 + onp.arange(J)] = 1.0
    # Shape space: height, girth, then smooth per-part offsets.
    shapedirs = onp.zeros((V, 3, num_shape), onp.float32)
    shapedirs[:, 1, 0] = 0.04 * (v_template[:, 1] - 0.95)
    centre = jpos[part]
    radial = v_template - centre
    radial[:, 1] = 0.0
    shapedirs[:, :, 1] = 0.05 * radial
    for k in range(2, num_shape):
        shapedirs[:, :, k] = 0.004 * rng.standard_normal((J, 3))[part]
    posedirs = (0.0003 * rng.standard_normal((9 * (J - 1), V * 3))).astype(onp.float32)
    posedirs[:, (marker0 * 3):] = 0.0  # joints stay exactly where FK puts them
    j_template = J_reg @ v_template
    j_shapedirs = onp.einsum("jv,vcs->jcs", J_reg, shapedirs)
    # Extra points: nose, eyes, ears as head-surface vertices (barycentric (1,0,0)).
    head = onp.flatnonzero(part == 15)
    hc = onp.asarray(_J[15]) + onp.array([0.0, 0.085, 0.0])
    targets = [hc + d for d in ([0, -0.01, 0.1], [-0.035, 0.02, 0.09], [0.035, 0.02, 0.09], [-0.1, 0.0, 0.0], [0.1, 0.0, 0.0])]
    ids = [head[onp.argmin(onp.linalg.norm(v_template[head] - t, axis=1))] for t in targets]
    extra_ids = onp.asarray([[i, i, i] for i in ids], onp.int32)
    extra_bary = onp.tile(onp.array([[1.0, 0.0, 0.0]], onp.float32), (len(ids), 1))
    R0 = onp.broadcast_to(onp.eye(3, dtype=onp.float32), (J, 3, 3)).copy()
    model = BodyModel(
        v_template=v_template, shapedirs=shapedirs, j_template=j_template.astype(onp.float32),
        j_shapedirs=j_shapedirs.astype(onp.float32), posedirs=posedirs, lbs_weights=weights, faces=faces,
        extra_vertex_ids=extra_ids, extra_bary=extra_bary, rest_orient_template=R0,
        rest_orient_dirs=onp.zeros((J, 3, 3, num_shape), onp.float32), parents=SMPLX_PARENTS,
        joint_names=SMPLX_JOINTS, extra_names=("nose", "right_eye", "left_eye", "right_ear", "left_ear"), kind="smplx",
    )
    region = onp.isin(part, [0, 1, 2, 7, 8, 18, 19, 20, 21]) | ((part == 3) & (v_template[:, 2] < 0))
    region[marker0:] = False
    E0 = J
    openpose18 = onp.asarray([E0 + 0, 12, 17, 19, 21, 16, 18, 20, 2, 5, 8, 1, 4, 7, E0 + 1, E0 + 2, E0 + 3, E0 + 4], onp.int32)
    extras = dict(
        J_regressor=J_reg, v_template=v_template, shapedirs=shapedirs, posedirs=posedirs, weights=weights,
        faces=faces, parents=onp.asarray(SMPLX_PARENTS), contact_candidates=onp.flatnonzero(region).astype(onp.int32),
        openpose18=openpose18, part_of_vertex=part,
    )
    return model, extras
