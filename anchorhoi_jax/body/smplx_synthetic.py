"""A synthetic, human-like body in the exact SMPL-X file layout (tests and benchmarks).

The real SMPL-X files are licence-restricted, so tests and benchmarks run on this stand-in: the same
array names, dtypes and shapes as `SMPLX_{GENDER}.npz` (10,475 vertices, 20,908 faces, 55 joints with
the SMPL-X kinematic tree, 300 shape + 100 expression directions, 486 pose-corrective features, MANO
hand PCA, 51 face landmarks, the dynamic contour table), loadable by the `smplx` package itself.

Construction (all in NumPy float64, deterministic given `seed`):

* A standing T-pose body about 1.75 m tall, feet on y = 0, facing +z, its left side toward +x, with a
  joint for each of the 55 SMPL-X joints at an anatomically plausible place (fingers, eyes, jaw).
* The surface is 18 closed tubes around bone chains (torso+head, legs, arms+palms, fingers, jaw,
  eyeballs): elliptical rings swept along the chain with rounded end caps. Ring counts are chosen so
  the vertex count is exactly 10,475; each child chain's base pole is welded to the nearest vertex of
  its parent chain (15 welds), which makes the face count exactly 20,908 while every edge stays shared
  by exactly two faces (Euler: F = 2V - 4·components + 2·welds).
* A ring is placed exactly at every joint, and the J_regressor row of that joint is the uniform
  average of the ring (a convex combination of nearby vertices whose centroid is the joint).
* Skinning weights blend smoothly between adjacent bones along each chain (smoothstep over a window
  at each joint), with lateral blends into the hips and collars on the torso.
* Shape directions: ten interpretable ones (height, girth, leg/arm length, shoulder/hip width, torso
  length, head size, belly, chest) followed by smooth random radial-basis fields of decaying
  amplitude; expression directions are small smooth fields on the face.
* Pose correctives: small smooth fields localised around each joint.
* The 21 vertices the `smplx` package reads as extra joints (nose, eyes, ears, toes, heels,
  fingertips) are permuted into exactly its vertex ids, at the matching places on this body.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as onp

NUM_VERTS = 10475
NUM_FACES = 20908
NUM_JOINTS = 55

# The SMPL-X kinematic tree (parent of each joint; -1 for the pelvis).
SMPLX_PARENTS = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)  # fmt: skip

# Vertex ids the `smplx` package reads as extra joints for SMPL-X (its vertex_ids['smplx']);
# this file puts the matching surface point of the synthetic body at each of these indices.
SMPLX_VERTEX_IDS = {
    "nose": 9120, "reye": 9929, "leye": 9448, "rear": 616, "lear": 6,
    "rthumb": 8079, "rindex": 7669, "rmiddle": 7794, "rring": 7905, "rpinky": 8022,
    "lthumb": 5361, "lindex": 4933, "lmiddle": 5058, "lring": 5169, "lpinky": 5286,
    "LBigToe": 5770, "LSmallToe": 5780, "LHeel": 8846, "RBigToe": 8463, "RSmallToe": 8474, "RHeel": 8635,
}  # fmt: skip

_FINGERS = ("index", "middle", "pinky", "ring", "thumb")  # SMPL-X joint order within a hand


@dataclass
class _Tube:
    """One closed tube: rings of `around` vertices swept along a polyline, poles at both ends."""

    name: str
    knots: onp.ndarray  # (K, 3) polyline; knots[0], knots[-1] are the poles
    radii: onp.ndarray  # (K, 2) cross-section semi-axes at each knot (along u, along w)
    ref: onp.ndarray  # (3,) reference direction that fixes u (projected orthogonal to the tangent)
    around: int
    rings: int
    knot_joints: tuple  # joint index (or -1) per knot; interior knots with a joint get a ring
    cap: float  # length over which the ends are rounded


def _smoothstep(x):
    x = onp.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _unit(v):
    return v / onp.linalg.norm(v, axis=-1, keepdims=True)


def _joint_positions(gender: str) -> onp.ndarray:
    """Rest joints (metres, y up, facing +z, left = +x) of a ~1.75 m T-posed adult."""
    s = {"neutral": 1.0, "male": 1.03, "female": 0.96}[gender]
    hip_w = {"neutral": 0.088, "male": 0.085, "female": 0.095}[gender]
    sh_w = {"neutral": 0.18, "male": 0.195, "female": 0.165}[gender]
    J = onp.zeros((NUM_JOINTS, 3))
    J[0] = (0.0, 0.93, 0.0)
    J[3] = (0.0, 1.04, -0.012)
    J[6] = (0.0, 1.16, -0.005)
    J[9] = (0.0, 1.23, 0.01)
    J[12] = (0.0, 1.46, -0.015)
    J[15] = (0.0, 1.54, 0.005)
    J[22] = (0.0, 1.53, 0.03)  # jaw hinge, below the ears
    for side, sign in ((0, 1.0), (1, -1.0)):  # 0 = left (+x), 1 = right (-x)
        J[1 + side] = (sign * hip_w, 0.85, -0.005)
        J[4 + side] = (sign * (hip_w + 0.012), 0.49, 0.01)
        J[7 + side] = (sign * (hip_w + 0.02), 0.085, -0.025)
        J[10 + side] = (sign * (hip_w + 0.03), 0.025, 0.095)
        J[13 + side] = (sign * 0.075, 1.375, -0.005)
        J[16 + side] = (sign * sh_w, 1.405, -0.012)
        J[18 + side] = (sign * (sh_w + 0.26), 1.385, -0.025)
        J[20 + side] = (sign * (sh_w + 0.505), 1.37, -0.02)
        J[23 + side] = (sign * 0.032, 1.635, 0.09)
        wrist = J[20 + side]
        d = _unit(wrist - J[18 + side])
        base = 25 + 15 * side
        # Index, middle, pinky, ring: (knuckle offset along the hand, across the palm (z), lengths).
        spec = {
            "index": (0.088, 0.024, (0.037, 0.023)),
            "middle": (0.092, 0.006, (0.041, 0.026)),
            "pinky": (0.080, -0.028, (0.029, 0.019)),
            "ring": (0.089, -0.012, (0.038, 0.024)),
        }
        for f_i, name in enumerate(_FINGERS[:4]):
            along, across, (l1, l2) = spec[name]
            j1 = wrist + along * d + onp.array([0.0, -0.004, across])
            J[base + 3 * f_i] = j1
            J[base + 3 * f_i + 1] = j1 + l1 * d
            J[base + 3 * f_i + 2] = j1 + (l1 + l2) * d
        t1 = wrist + 0.022 * d + onp.array([0.0, -0.012, 0.024])
        t_dir = _unit(0.75 * d + onp.array([0.0, -0.05, 0.6]))
        J[base + 12] = t1
        J[base + 13] = t1 + 0.034 * t_dir
        J[base + 14] = t1 + 0.066 * t_dir
    # Scale about the floor point under the pelvis so the feet stay on y = 0.
    return J * s


def _tubes(J: onp.ndarray, gender: str) -> list[_Tube]:
    """Bone-chain tubes. Ring counts make sum(rings * around) = 10,454 (see module docstring)."""
    s = {"neutral": 1.0, "male": 1.03, "female": 0.96}[gender]
    girth = {"neutral": 1.0, "male": 1.06, "female": 0.95}[gender]
    hipg = {"neutral": 1.0, "male": 0.96, "female": 1.08}[gender]
    X, Y, Z = onp.eye(3)
    tubes = []
    # Torso, neck and head: crotch pole -> pelvis -> spine -> neck -> head -> crown pole.
    knots = onp.array(
        [
            (0.0, 0.775, 0.0), J[0] / s, (0.0, 0.98, -0.005), J[3] / s, J[6] / s, J[9] / s,
            (0.0, 1.33, 0.0), (0.0, 1.42, -0.015), J[12] / s, J[15] / s, (0.0, 1.58, 0.02),
            (0.0, 1.64, 0.02), (0.0, 1.755, 0.005),
        ]
    ) * s  # fmt: skip
    radii = onp.array(
        [
            (0.13 * hipg, 0.09), (0.165 * hipg, 0.11), (0.16 * hipg, 0.105), (0.15, 0.10), (0.142, 0.098),
            (0.155, 0.105), (0.165, 0.11), (0.11, 0.075), (0.055, 0.055), (0.062, 0.07), (0.072, 0.092),
            (0.078, 0.10), (0.07, 0.09),
        ]
    ) * girth * s  # fmt: skip
    tubes.append(_Tube("torso", knots, radii, X, 48, 66, (-1, 0, -1, 3, 6, 9, -1, -1, 12, 15, -1, -1, -1), 0.11 * s))
    for side, sign in ((0, 1.0), (1, -1.0)):
        hip, knee, ankle, foot = J[1 + side], J[4 + side], J[7 + side], J[10 + side]
        knots = onp.array(
            [
                hip + (0.0, 0.08, 0.0), hip, knee, ankle, ankle + (sign * 0.003, -0.05, -0.005), foot,
                foot + (sign * 0.005, 0.003, 0.09),
            ]
        )
        radii = onp.array(
            [(0.07, 0.07), (0.085, 0.085), (0.05, 0.052), (0.035, 0.037), (0.036, 0.038), (0.046, 0.026), (0.036, 0.02)]
        ) * girth * s
        jts = (-1, 1 + side, 4 + side, 7 + side, -1, 10 + side, -1)
        tubes.append(_Tube(f"leg{side}", knots, radii, X, 32, 48, jts, 0.05 * s))
    for side, sign in ((0, 1.0), (1, -1.0)):
        collar, shoulder, elbow, wrist = J[13 + side], J[16 + side], J[18 + side], J[20 + side]
        d = _unit(wrist - elbow)
        knots = onp.array([(sign * 0.035 * s, collar[1], collar[2]), collar, shoulder, elbow, wrist, wrist + 0.05 * d, wrist + 0.095 * d])
        radii = onp.array([(0.05, 0.05), (0.055, 0.055), (0.055, 0.06), (0.04, 0.038), (0.03, 0.022), (0.047, 0.017), (0.043, 0.014)])
        radii = radii * girth * s
        jts = (-1, 13 + side, 16 + side, 18 + side, 20 + side, -1, -1)
        tubes.append(_Tube(f"arm{side}", knots, radii, Z, 24, 50, jts, 0.03 * s))
    for side in (0, 1):
        base = 25 + 15 * side
        wrist = J[20 + side]
        for f_i, name in enumerate(_FINGERS):
            j1, j2, j3 = J[base + 3 * f_i], J[base + 3 * f_i + 1], J[base + 3 * f_i + 2]
            d = _unit(j3 - j2)
            tip = j3 + (0.024 if name != "pinky" else 0.019) * (1.0 if name != "thumb" else 1.1) * d * s
            start = j1 - 0.012 * _unit(j1 - wrist) * s
            r0 = 0.0105 if name == "thumb" else (0.0085 if name == "pinky" else 0.0095)
            knots = onp.array([start, j1, j2, j3, tip])
            radii = onp.array([(r0, r0 * 0.85), (r0, r0 * 0.85), (r0 * 0.92, r0 * 0.8), (r0 * 0.85, r0 * 0.75), (r0 * 0.8, r0 * 0.7)]) * s
            ref = Y if name == "thumb" else Z
            jts = (-1, base + 3 * f_i, base + 3 * f_i + 1, base + 3 * f_i + 2, -1)
            tubes.append(_Tube(f"{'lr'[side]}{name}", knots, radii, ref, 10, 14, jts, 0.006 * s))
    for side in (0, 1):
        c = J[23 + side]
        r = 0.0125 * s
        knots = onp.array([c - (0.0, 0.0, r), c, c + (0.0, 0.0, r)])
        tubes.append(_Tube(f"eye{side}", knots, onp.full((3, 2), r), X, 12, 9, (-1, -1, -1), r))
    jaw = J[22]
    knots = onp.array([jaw + onp.array((0.0, 0.01, -0.03)) * s, jaw, jaw + onp.array((0.0, -0.015, 0.05)) * s, jaw + onp.array((0.0, -0.02, 0.095)) * s])
    radii = onp.array([(0.045, 0.02), (0.058, 0.025), (0.045, 0.022), (0.025, 0.016)]) * girth * s
    tubes.append(_Tube("jaw", knots, radii, X, 18, 11, (-1, 22, -1, -1), 0.025 * s))
    return tubes


def _ring_arcs(arc: onp.ndarray, ring_knots: list[int], rings: int) -> onp.ndarray:
    """Arc positions of `rings` rings strictly between the poles, with one at each forced knot.

    The forced knots split the arc into spans; the R+1 intervals are shared among spans in
    proportion to their length (largest remainder), each span getting at least one interval.
    """
    bounds = [0.0] + [arc[k] for k in ring_knots] + [arc[-1]]
    lengths = onp.diff(bounds)
    n_int = rings + 1
    share = lengths / lengths.sum() * n_int
    counts = onp.maximum(1, onp.floor(share).astype(int))
    while counts.sum() < n_int:
        counts[onp.argmax(share - counts)] += 1
    while counts.sum() > n_int:
        counts[onp.argmax(counts - share)] -= 1
    s = [onp.linspace(bounds[i], bounds[i + 1], counts[i] + 1)[1:] for i in range(len(lengths))]
    return onp.concatenate(s)[:-1]  # drop the end pole


def _build_tube(t: _Tube):
    """Vertices, faces (local indices), per-vertex centre and arc position, and joint rings."""
    seg = onp.diff(t.knots, axis=0)
    seg_len = onp.linalg.norm(seg, axis=1)
    arc = onp.concatenate([[0.0], onp.cumsum(seg_len)])
    ring_knots = [k for k, j in enumerate(t.knot_joints) if j >= 0 and 0 < k < len(t.knots) - 1]
    s_r = _ring_arcs(arc, ring_knots, t.rings)
    assert len(s_r) == t.rings, (t.name, len(s_r))
    # Centre, tangent and radii at each ring; at a knot the tangent bisects the two spans.
    seg_dir = seg / seg_len[:, None]
    k_idx = onp.clip(onp.searchsorted(arc, s_r, side="right") - 1, 0, len(seg) - 1)
    frac = (s_r - arc[k_idx]) / seg_len[k_idx]
    centres = t.knots[k_idx] + frac[:, None] * seg[k_idx]
    tangents = seg_dir[k_idx].copy()
    for k in range(1, len(t.knots) - 1):
        at = onp.isclose(s_r, arc[k], atol=1e-12)
        tangents[at] = _unit(seg_dir[k - 1] + seg_dir[k])
    radii = t.radii[k_idx] + frac[:, None] * (t.radii[k_idx + 1] - t.radii[k_idx])
    # Round the ends: a quarter-ellipse over `cap` at each pole.
    d_end = onp.minimum(s_r, arc[-1] - s_r)
    radii = radii * onp.sqrt(onp.clip(1.0 - (1.0 - onp.minimum(d_end / t.cap, 1.0)) ** 2, 0.0, 1.0))[:, None]
    u = _unit(t.ref[None] - (tangents @ t.ref)[:, None] * tangents)
    w = onp.cross(tangents, u)
    theta = 2.0 * onp.pi * onp.arange(t.around) / t.around
    cos, sin = onp.cos(theta), onp.sin(theta)
    ring_pts = (
        centres[:, None]
        + radii[:, None, 0:1] * cos[None, :, None] * u[:, None]
        + radii[:, None, 1:2] * sin[None, :, None] * w[:, None]
    )
    R, A = t.rings, t.around
    verts = onp.concatenate([t.knots[:1], ring_pts.reshape(-1, 3), t.knots[-1:]])
    centre = onp.concatenate([t.knots[:1], onp.repeat(centres, A, 0), t.knots[-1:]])
    s_v = onp.concatenate([[0.0], onp.repeat(s_r, A), [arc[-1]]])
    ring = lambda i, k: 1 + i * A + (k % A)  # noqa: E731
    faces = []
    for k in range(A):
        faces.append((0, ring(0, k + 1), ring(0, k)))
        faces.append((R * A + 1, ring(R - 1, k), ring(R - 1, k + 1)))
    i = onp.arange(R - 1)[:, None]
    k = onp.arange(A)[None, :]
    a0, a1, b0, b1 = ring(i, k), ring(i, k + 1), ring(i + 1, k), ring(i + 1, k + 1)
    quads = onp.stack([onp.stack([a0, a1, b1], -1), onp.stack([a0, b1, b0], -1)], -2).reshape(-1, 3)
    faces = onp.concatenate([onp.array(faces), quads])
    # Orient outward (positive signed volume).
    vol = onp.einsum("fi,fi->", verts[faces[:, 0]], onp.cross(verts[faces[:, 1]], verts[faces[:, 2]]))
    if vol < 0:
        faces = faces[:, ::-1]
    joint_rings = {}
    for kk in ring_knots:
        r_i = int(onp.argmin(onp.abs(s_r - arc[kk])))
        joint_rings[t.knot_joints[kk]] = 1 + r_i * A + onp.arange(A)
    knot_arc = {t.knot_joints[kk]: arc[kk] for kk in range(len(t.knots)) if t.knot_joints[kk] >= 0}
    return verts, faces, centre, s_v, joint_rings, knot_arc, arc[-1]


def _chain_weights(s_v, knot_arc, parent_of_first, L, width):
    """Skinning weights along a chain: each span belongs to the joint at its start, smoothstep
    blends of half-width `width` (clipped to a third of the shorter neighbour) at every joint."""
    joints = sorted(knot_arc.items(), key=lambda kv: kv[1])
    W = {}
    owners = [parent_of_first] + [j for j, _ in joints]
    cuts = [a for _, a in joints]
    bounds = [0.0] + cuts + [L]
    prev = onp.ones_like(s_v)
    for i, c in enumerate(cuts):
        h = min(width, (bounds[i + 1] - bounds[i]) / 3.0, (bounds[i + 2] - bounds[i + 1]) / 3.0)
        up = _smoothstep((s_v - c + h) / (2.0 * h))
        W[owners[i]] = W.get(owners[i], 0.0) + prev * (1.0 - up)
        prev = prev * up
    W[owners[-1]] = W.get(owners[-1], 0.0) + prev
    return W


def _bary_on_faces(points, verts, faces, cand):
    """Nearest candidate face (by centroid) to each point, with clipped barycentric coordinates."""
    cent = verts[faces[cand]].mean(1)
    d2 = ((points[:, None] - cent[None]) ** 2).sum(-1)
    f_idx = cand[onp.argmin(d2, axis=1)]
    tri = verts[faces[f_idx]]
    e0, e1 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    p = points - tri[:, 0]
    d00, d01, d11 = (e0 * e0).sum(-1), (e0 * e1).sum(-1), (e1 * e1).sum(-1)
    d20, d21 = (p * e0).sum(-1), (p * e1).sum(-1)
    den = d00 * d11 - d01 * d01
    v = (d11 * d20 - d01 * d21) / den
    w = (d00 * d21 - d01 * d20) / den
    b = onp.clip(onp.stack([1.0 - v - w, v, w], -1), 0.02, None)
    return f_idx, b / b.sum(-1, keepdims=True)


def _landmark_targets(J):
    """51 face landmarks (SMPL-X order: brows, nose, eyes, outer mouth, inner lips) on the face."""
    head_y = J[23, 1]
    pts = []
    for x in (-0.055, -0.045, -0.035, -0.025, -0.013, 0.013, 0.025, 0.035, 0.045, 0.055):
        pts.append((x, head_y + 0.022 + 0.004 * (1 - abs(abs(x) - 0.034) / 0.03), 0.0))
    for i in range(4):
        pts.append((0.0, head_y - 0.005 - 0.011 * i, 0.0))
    for x in (-0.016, -0.008, 0.0, 0.008, 0.016):
        pts.append((x, head_y - 0.045 + 0.002 * abs(x) / 0.016, 0.0))
    for cx in (-0.032, 0.032):
        ring = [(-0.012, 0.0), (-0.005, 0.004), (0.005, 0.004), (0.012, 0.0), (0.005, -0.003), (-0.005, -0.003)]
        if cx > 0:  # left eye in SMPL-X order: 4, 3, 2, 1, 6, 5 of the mirrored ring
            ring = [(-x, y) for x, y in ring]
            ring = [ring[3], ring[2], ring[1], ring[0], ring[5], ring[4]]
        pts += [(cx + x, head_y + y, 0.0) for x, y in ring]
    my = head_y - 0.075
    outer = [(-0.025, 0.0), (-0.016, 0.007), (-0.006, 0.01), (0.0, 0.009), (0.006, 0.01), (0.016, 0.007), (0.025, 0.0),
             (0.016, -0.009), (0.006, -0.013), (0.0, -0.014), (-0.006, -0.013), (-0.016, -0.009)]  # fmt: skip
    inner = [(-0.02, 0.0), (-0.008, 0.003), (0.0, 0.003), (0.008, 0.003), (0.02, 0.0), (0.008, -0.004), (0.0, -0.004), (-0.008, -0.004)]
    pts += [(x, my + y, 0.0) for x, y in outer + inner]
    return onp.array(pts)


def _build(seed: int, gender: str) -> dict[str, onp.ndarray]:
    rng = onp.random.default_rng(onp.random.SeedSequence([seed, {"neutral": 0, "male": 1, "female": 2}[gender]]))
    J_target = _joint_positions(gender)
    tubes = _tubes(J_target, gender)
    parts = [_build_tube(t) for t in tubes]
    names = [t.name for t in tubes]
    offsets = onp.cumsum([0] + [len(p[0]) for p in parts])
    verts = onp.concatenate([p[0] for p in parts])
    centre = onp.concatenate([p[2] for p in parts])
    comp = onp.concatenate([onp.full(len(p[0]), i) for i, p in enumerate(parts)])
    faces = onp.concatenate([p[1] + o for p, o in zip(parts, offsets[:-1])])
    V0 = len(verts)
    # Skinning weights.
    W = onp.zeros((V0, NUM_JOINTS))
    reg_rows = {}
    for i, (t, p) in enumerate(zip(tubes, parts)):
        sl = slice(offsets[i], offsets[i + 1])
        _, _, _, s_v, joint_rings, knot_arc, L = p
        for j, r in joint_rings.items():
            reg_rows[j] = r + offsets[i]
        if t.name.startswith("eye"):
            j = 23 + int(t.name[-1])
            W[sl, j] = 1.0
            reg_rows[j] = onp.arange(offsets[i], offsets[i + 1])
            continue
        first = min(knot_arc, key=knot_arc.get)
        parent = {"torso": 0}.get(t.name, SMPLX_PARENTS[first])
        width = 0.02 if len(t.name) > 4 and t.name[0] in "lr" else 0.045
        for j, w in _chain_weights(s_v, knot_arc, parent, L, width).items():
            W[sl, j] += w
    # Torso: blend laterally into the hips (below the pelvis) and the collars (at the shoulders).
    tor = comp == 0
    x, y = verts[:, 0], verts[:, 1]
    for side, sign in ((0, 1.0), (1, -1.0)):
        hip = _smoothstep((sign * x - 0.03) / 0.09) * _smoothstep((J_target[0, 1] - y) / 0.12) * tor
        col = _smoothstep((sign * x - 0.05) / 0.07) * _smoothstep((y - 1.28) / 0.08) * tor
        for j, m in ((1 + side, hip), (13 + side, col)):
            W *= (1.0 - m)[:, None]
            W[:, j] += m
    W /= W.sum(1, keepdims=True)
    # Weld each child chain's base pole to the nearest vertex of its parent chain.
    parent_comp = {"leg0": "torso", "leg1": "torso", "arm0": "torso", "arm1": "torso", "jaw": "torso"}
    for side in (0, 1):
        for f in _FINGERS:
            parent_comp[f"{'lr'[side]}{f}"] = f"arm{side}"
    remap = onp.arange(V0)
    drop = []
    for name, pname in parent_comp.items():
        ci, pi = names.index(name), names.index(pname)
        pole = offsets[ci]
        cand = onp.arange(offsets[pi], offsets[pi + 1])
        target = cand[onp.argmin(((verts[cand] - verts[pole]) ** 2).sum(1))]
        remap[pole] = target
        drop.append(pole)
    keep = onp.setdiff1d(onp.arange(V0), drop)
    new_index = onp.full(V0, -1)
    new_index[keep] = onp.arange(len(keep))
    faces = new_index[remap[faces]]
    verts, centre, comp, W = verts[keep], centre[keep], comp[keep], W[keep]
    reg_rows = {j: new_index[r] for j, r in reg_rows.items()}
    assert len(verts) == NUM_VERTS and len(faces) == NUM_FACES, (len(verts), len(faces))
    assert sorted(reg_rows) == list(range(NUM_JOINTS))
    # Face details: a nose and two ears on the head (they do not touch the joint rings).
    head = (comp == 0) & (verts[:, 1] > 1.56 * J_target[15, 1] / 1.54)
    hc = onp.array([0.0, J_target[23, 1], 0.02])
    nose_c = hc + (0.0, -0.03, 0.1)
    g = onp.exp(-(((verts - nose_c) / (0.014, 0.022, 0.04)) ** 2).sum(1) / 2.0) * head
    verts = verts + 0.022 * g[:, None] * onp.array([0.0, -0.2, 1.0])
    for sign in (1.0, -1.0):
        ear_c = hc + (sign * 0.075, -0.015, -0.02)
        g = onp.exp(-(((verts - ear_c) / (0.02, 0.02, 0.015)) ** 2).sum(1) / 2.0) * head
        verts = verts + 0.014 * g[:, None] * onp.array([sign, 0.0, 0.0])
    # Vertices at the smplx extra-joint ids.
    picks = {}
    for side, (sign, key) in enumerate(((1.0, "l"), (-1.0, "r"))):
        for f_i, name in enumerate(_FINGERS):
            c = names.index(f"{key}{name}")
            idx = onp.nonzero(comp == c)[0]
            tip = tubes[c].knots[-1]
            picks[f"{key}{name}"] = idx[onp.argmin(((verts[idx] - tip) ** 2).sum(1))]
        leg = onp.nonzero(comp == names.index(f"leg{side}"))[0]
        vl = verts[leg]
        low = leg[vl[:, 1] < 0.06]
        vlow = verts[low]
        big = key.upper() + "BigToe"
        lateral = sign * (vlow[:, 0] - J_target[10 + side, 0])
        picks[big] = low[onp.argmax(vlow[:, 2] - lateral)]  # front, medial
        picks[key.upper() + "SmallToe"] = low[onp.argmax(vlow[:, 2] + lateral)]  # front, lateral
        picks[key.upper() + "Heel"] = low[onp.argmin(vlow[:, 2] + 2.0 * vlow[:, 1])]
        eye = onp.nonzero(comp == names.index(f"eye{side}"))[0]
        picks[f"{key}eye"] = eye[onp.argmax(verts[eye, 2])]
        hv = onp.nonzero(head)[0]
        picks[f"{key}ear"] = hv[onp.argmax(sign * verts[hv, 0] - 2.0 * onp.abs(verts[hv, 1] - (hc[1] - 0.015)))]
    hv = onp.nonzero(head)[0]
    picks["nose"] = hv[onp.argmax(verts[hv, 2])]
    assert len(set(int(v) for v in picks.values())) == len(picks)
    new_to_old = onp.full(NUM_VERTS, -1)
    chosen = onp.array([picks[k] for k in SMPLX_VERTEX_IDS])
    new_to_old[list(SMPLX_VERTEX_IDS.values())] = chosen
    rest = onp.setdiff1d(onp.arange(NUM_VERTS), chosen)
    new_to_old[new_to_old < 0] = rest
    old_to_new = onp.empty_like(new_to_old)
    old_to_new[new_to_old] = onp.arange(NUM_VERTS)
    verts, centre, comp, W = verts[new_to_old], centre[new_to_old], comp[new_to_old], W[new_to_old]
    faces = old_to_new[faces]
    reg_rows = {j: old_to_new[r] for j, r in reg_rows.items()}
    J_reg = onp.zeros((NUM_JOINTS, NUM_VERTS))
    for j, r in reg_rows.items():
        J_reg[j, r] = 1.0 / len(r)
    J = J_reg @ verts
    head = (comp == 0) & (verts[:, 1] > J[15, 1] + 0.02)
    offset = verts - centre  # radial offset from each ring centre (girth directions)

    # ---- shape directions (V, 3, 400): 300 body shape, then 100 expression ----
    V = NUM_VERTS
    sd = onp.zeros((V, 3, 400))
    x, y, z = verts[:, 0], verts[:, 1], verts[:, 2]
    limb_names = ["arm0", "arm1"] + [f"{k}{f}" for k in "lr" for f in _FINGERS]
    limb = onp.isin(comp, [names.index(n) for n in limb_names])
    sx = onp.sign(x)
    sd[:, 1, 0] = 0.045 * y / 1.75  # height
    sd[:, 0, 0] = 0.012 * x / 0.2
    sd[:, 2, 0] = 0.006 * z / 0.1
    sd[:, :, 1] = 0.14 * offset * onp.where(comp == 0, 1.3, 1.0)[:, None]  # girth / weight
    sd[:, 1, 2] = -0.035 * onp.clip((J[1, 1] - y) / J[1, 1], 0.0, 1.0)  # leg length
    sd[:, 0, 3] = 0.035 * sx * onp.clip((onp.abs(x) - J[16, 0]) / 0.55, 0.0, 1.0) * limb  # arm length
    sd[:, 0, 4] = 0.016 * sx * _smoothstep((onp.abs(x) - 0.04) / 0.14) * _smoothstep((y - 1.22) / 0.1)  # shoulders
    sd[:, 0, 5] = 0.014 * sx * _smoothstep((onp.abs(x) - 0.02) / 0.1) * _smoothstep((1.02 - y) / 0.1)  # hips
    sd[:, 1, 6] = 0.03 * onp.clip((y - J[0, 1]) / 0.5, 0.0, 1.0)  # torso length
    hm = onp.exp(-(((verts - hc) / 0.13) ** 2).sum(1) / 2.0) * (y > J[12, 1])
    sd[:, :, 7] = 0.08 * (verts - hc) * hm[:, None]  # head size
    fz = onp.clip(offset[:, 2] / 0.1, 0.0, None) * (comp == 0)
    sd[:, 2, 8] = 0.035 * onp.exp(-(((y - 1.06) / 0.08) ** 2)) * fz  # belly
    sd[:, 2, 9] = 0.02 * onp.exp(-(((y - 1.3) / 0.06) ** 2)) * fz * _smoothstep(onp.abs(x) / 0.06)  # chest
    n_rand, K = 290, 4
    cidx = rng.integers(0, V, size=(n_rand, K))
    sig = rng.uniform(0.06, 0.25, size=(n_rand, K))
    amp = rng.normal(size=(n_rand, K, 3)) * (0.008 / (1.0 + onp.arange(n_rand) / 30.0))[:, None, None]
    for i in range(n_rand):
        d2 = ((verts[:, None] - verts[cidx[i]][None]) ** 2).sum(-1)
        sd[:, :, 10 + i] = onp.exp(-d2 / (2 * sig[i] ** 2)) @ amp[i]
    face_mask = head & (z > hc[2] + 0.03)
    face = onp.nonzero(face_mask)[0]
    ecent = face[rng.integers(0, len(face), size=(100, 3))]
    esig = rng.uniform(0.01, 0.03, size=(100, 3))
    eamp = rng.normal(size=(100, 3, 3)) * (0.004 / (1.0 + onp.arange(100) / 20.0))[:, None, None]
    for i in range(100):
        d2 = ((verts[:, None] - verts[ecent[i]][None]) ** 2).sum(-1)
        sd[:, :, 300 + i] = (onp.exp(-d2 / (2 * esig[i] ** 2)) * face_mask[:, None]) @ eamp[i]

    # ---- pose correctives (V, 3, 486): smooth, localised around each joint ----
    pd = onp.zeros((V, 3, 9 * (NUM_JOINTS - 1)))
    for j in range(1, NUM_JOINTS):
        p = SMPLX_PARENTS[j]
        sigma = 0.03 if j >= 25 else 0.08
        m = (W[:, j] + W[:, p]) * onp.exp(-((verts - J[j]) ** 2).sum(1) / (2 * sigma**2))
        c = rng.normal(size=9) * 0.15
        b = rng.normal(size=(9, 3)) * (0.002 if j >= 25 else 0.006)
        pd[:, :, 9 * (j - 1) : 9 * j] = m[:, None, None] * (offset[:, :, None] * c[None, None] + b.T[None])

    # ---- hand PCA: first components curl and spread the fingers, the rest orthogonal ----
    flex = onp.zeros((15, 3))
    flex[:12] = (0.0, 0.0, -1.0)  # left fingers point +x, palm down: curling is about -z
    flex[12:] = _unit(onp.array([0.0, 1.0, -0.6]))
    spread = onp.zeros((15, 3))
    spread[[0, 3, 6, 9], :] = onp.array([[0.0, 1.0, 0.0]]) * onp.array([[-1.0], [-0.3], [1.0], [0.5]])
    M = onp.concatenate([flex.reshape(1, -1), spread.reshape(1, -1), rng.normal(size=(43, 45)) * 0.3])
    Q, _ = onp.linalg.qr(M.T)
    comps_l = (Q.T * onp.sign(onp.diag(Q.T @ M.T))[:, None])
    mirror = onp.tile(onp.array([1.0, -1.0, -1.0]), 15)  # reflection x -> -x acts on axis-angle
    comps_r = comps_l * mirror[None]
    per_joint = onp.array([0.18, 0.25, 0.2] * 4 + [0.1, 0.15, 0.1])
    mean_l = (flex * per_joint[:, None]).reshape(-1) + rng.normal(size=45) * 0.02
    mean_r = mean_l * mirror

    # ---- face landmarks and the dynamic contour table ----
    fnorm = onp.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    fnorm = _unit(fnorm + 1e-30)
    head_faces = onp.nonzero(head[faces].all(1))[0]
    front = head_faces[fnorm[head_faces, 2] > 0.5]
    tg = _landmark_targets(J)
    tg[:, 2] = hc[2] + 0.1
    lmk_faces_idx, lmk_bary = _bary_on_faces(tg, verts, faces, front)
    side_faces = head_faces[(fnorm[head_faces, 1] < 0.3)]
    dyn_idx = onp.zeros((79, 17), onp.int64)
    dyn_bary = onp.zeros((79, 17, 3))
    t = onp.linspace(-1.0, 1.0, 17)
    for r in range(79):
        yaw = onp.deg2rad(r if r <= 39 else 39 - r)
        ang = t * 1.2 + 0.3 * yaw
        pts = onp.stack([0.085 * onp.sin(ang), hc[1] - 0.045 - 0.035 * onp.cos(ang * 1.3), hc[2] + 0.09 * onp.cos(ang)], -1)
        dyn_idx[r], dyn_bary[r] = _bary_on_faces(pts, verts, faces, side_faces)

    kintree = onp.stack([onp.array(SMPLX_PARENTS, onp.int64), onp.arange(NUM_JOINTS, dtype=onp.int64)])
    kintree[0, 0] = 4294967295  # the root's parent as the original files store it (uint32 -1)
    from anchorhoi_jax.body.smplx import SMPLX_JOINT_NAMES

    joint2num = {n: i for i, n in enumerate(SMPLX_JOINT_NAMES)}
    uv = onp.stack([(onp.arctan2(x, z) / (2 * onp.pi)) % 1.0, y / 1.8], -1)
    vt = onp.concatenate([uv, uv[: 11313 - NUM_VERTS]])
    return {
        "v_template": verts.astype(onp.float64),
        "f": faces.astype(onp.uint32),
        "J_regressor": J_reg,
        "weights": W,
        "kintree_table": kintree,
        "shapedirs": sd,
        "posedirs": pd,
        "hands_componentsl": comps_l,
        "hands_componentsr": comps_r,
        "hands_meanl": mean_l,
        "hands_meanr": mean_r,
        "hands_coeffsl": rng.normal(size=(1554, 45)) * 0.5,
        "hands_coeffsr": rng.normal(size=(1554, 45)) * 0.5,
        "lmk_faces_idx": lmk_faces_idx.astype(onp.int64),
        "lmk_bary_coords": lmk_bary,
        "dynamic_lmk_faces_idx": dyn_idx,
        "dynamic_lmk_bary_coords": dyn_bary,
        "vt": vt,
        "ft": faces.astype(onp.uint32),
        "joint2num": onp.array(joint2num, dtype=object),
        "part2num": onp.array(dict(joint2num), dtype=object),
        "allow_pickle": onp.array(True),
    }


def synthetic_smplx_arrays(*, seed: int = 0, gender: str = "neutral") -> dict[str, onp.ndarray]:
    """The arrays of a synthetic SMPL-X file, keyed exactly as in `SMPLX_{GENDER}.npz`."""
    if gender not in ("neutral", "male", "female"):
        raise ValueError(f"unknown gender {gender!r}; expected 'neutral', 'male' or 'female'")
    return _build(int(seed), gender)


def write_synthetic_smplx(path: str | os.PathLike, *, seed: int = 0, gender: str = "neutral") -> str:
    """Write a synthetic SMPL-X model file (.npz, SMPL-X layout) and return its path.

    Args:
      path: a file path ending in .npz, or a directory (then `SMPLX_{GENDER}.npz` is written in it,
        the name `smplx.SMPLX(model_path=dir, gender=...)` and `load_smplx(dir, gender=...)` look for).
      seed: seeds the random shape/expression/pose-corrective fields and hand PCA (deterministic).
      gender: 'neutral', 'male' or 'female' (changes proportions slightly).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, f"SMPLX_{gender.upper()}.npz")
    elif not path.endswith(".npz"):
        raise ValueError(f"synthetic SMPL-X path must end in .npz or be a directory: {path}")
    arrays = synthetic_smplx_arrays(seed=seed, gender=gender)
    with open(path, "wb") as fh:
        onp.savez(fh, **arrays)
    return path
