"""Compositional per-part human occupancy: one capsule per skinned bone, a weight-free stand-in for COAP.

The paper's L_pen follows COAP (Mihajlovic et al. 2022), whose learned part occupancy networks are
not available here. COAP's structure is kept: the body is a union of per-bone volumes that move
rigidly with their bone, so occupancy at a query point is the max over parts. Each part is a capsule
fitted at load time to the rest-pose vertices that the bone dominates (argmax skinning weight):
principal axis by PCA, radius a robust percentile of the radial distances, length from the axial
extent. Capsules give a closed-form inside depth  d(x) = s·r − dist(x, segment)  (metres, > 0
inside), smooth almost everywhere, which L_pen (Eq. 4) pushes to ≤ 0 at object points and the
self-penetration part of L_reg evaluates between non-adjacent parts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
from flax import struct
from jaxtyping import Array, Float, Int

HIGHEST = jax.lax.Precision.HIGHEST


@struct.dataclass
class PartVolumes:
    """Capsules in their bones' rest-local frames: posed endpoint = t_joint + s·R_joint · q."""

    q0: Float[Array, "P 3"]  # segment start, joint-local (rest frame of `joint`), metres
    q1: Float[Array, "P 3"]  # segment end
    radius: Float[Array, "P"]  # metres, before the human scale s
    joint: Int[Array, "P"]  # bone (kinematic joint) each capsule rides on
    pair_a: Int[Array, "Q"]  # non-adjacent part pairs checked for self-penetration
    pair_b: Int[Array, "Q"]


def fit_part_volumes(
    rest_vertices,
    rest_joints,
    rest_orientations,
    lbs_weights,
    faces,
    parents: tuple[int, ...],
    *,
    min_vertices: int = 12,
    radius_percentile: float = 60.0,
    min_tree_distance: int = 3,
) -> PartVolumes:
    """Fit one capsule per bone to the shaped rest mesh (host-side NumPy, run once at load).

    Args:
      rest_vertices: (V,3) shaped rest vertices v(β) (metres, model frame).
      rest_joints: (J,3) rest joint positions j(β).
      rest_orientations: (J,3,3) rest joint frames (identity for SMPL-X).
      lbs_weights: (V,J); faces (F,3): only vertices used by a face are fitted.
      parents: kinematic tree.
      radius_percentile: percentile of radial distances taken as radius; below the max so the
        capsule stays mostly inside non-cylindrical parts (contact must not read as penetration).
      min_tree_distance: parts closer than this in the tree, or already overlapping at rest, are
        "adjacent" and excluded from self-penetration.
    """
    v = onp.asarray(rest_vertices, onp.float64)
    jr = onp.asarray(rest_joints, onp.float64)
    Rr = onp.asarray(rest_orientations, onp.float64)
    w = onp.asarray(lbs_weights)
    used = onp.zeros(len(v), bool)
    used[onp.asarray(faces).reshape(-1)] = True
    owner = onp.argmax(w, axis=1)
    q0, q1, rad, joint, world = [], [], [], [], []
    for j in range(len(parents)):
        pts = v[(owner == j) & used]
        if len(pts) < min_vertices:
            continue
        c = pts.mean(0)
        _, _, vt = onp.linalg.svd(pts - c, full_matrices=False)
        d = vt[0]
        s = (pts - c) @ d
        radial = onp.linalg.norm((pts - c) - s[:, None] * d, axis=1)
        lo, hi = onp.percentile(s, 2), onp.percentile(s, 98)
        core = (s > lo + 0.25 * (hi - lo)) & (s < hi - 0.25 * (hi - lo))
        r = float(onp.percentile(radial[core] if core.sum() >= 4 else radial, radius_percentile))
        a, b = lo + r, hi - r
        if a > b:
            a = b = 0.5 * (lo + hi)
        pa, pb = c + a * d, c + b * d
        q0.append(Rr[j].T @ (pa - jr[j]))
        q1.append(Rr[j].T @ (pb - jr[j]))
        rad.append(r)
        joint.append(j)
        world.append((pa, pb, r))
    P = len(joint)
    # Tree distance between the bones of every part pair.
    depth = [0] * len(parents)
    for j, p in enumerate(parents):
        depth[j] = depth[p] + 1 if p >= 0 else 0

    def tree_dist(a, b):
        n = 0
        while a != b:
            if depth[a] >= depth[b]:
                a = parents[a]
            else:
                b = parents[b]
            n += 1
        return n

    pa_list, pb_list = [], []
    for i in range(P):
        for k in range(i + 1, P):
            if tree_dist(joint[i], joint[k]) < min_tree_distance:
                continue
            (a0, a1, ra), (b0, b1, rb) = world[i], world[k]
            ts = onp.linspace(0.0, 1.0, 9)
            pts = a0[None] + ts[:, None] * (a1 - a0)[None]
            if onp.min(_np_point_segment(pts, b0, b1)) < ra + rb:  # touching at rest: adjacent
                continue
            pa_list.append(i)
            pb_list.append(k)
    return PartVolumes(
        q0=jnp.asarray(onp.asarray(q0), jnp.float32).reshape(P, 3),
        q1=jnp.asarray(onp.asarray(q1), jnp.float32).reshape(P, 3),
        radius=jnp.asarray(rad, jnp.float32),
        joint=jnp.asarray(joint, jnp.int32),
        pair_a=jnp.asarray(pa_list, jnp.int32),
        pair_b=jnp.asarray(pb_list, jnp.int32),
    )


def _np_point_segment(p, a, b):
    ab = b - a
    t = onp.clip(((p - a) @ ab) / max(ab @ ab, 1e-30), 0.0, 1.0)
    return onp.linalg.norm(p - (a + t[:, None] * ab), axis=1)


def pose_part_volumes(
    parts: PartVolumes, T_world_joint: Float[Array, "J 4 4"], scale: Float[Array, ""]
) -> tuple[Float[Array, "P 3"], Float[Array, "P 3"], Float[Array, "P"]]:
    """World segment endpoints and radii: p = t_joint + s·R_joint·q (PosedBody.T_world_joint already
    carries the placed translation; scale s about the root, CONVENTIONS.md)."""
    T = T_world_joint[parts.joint]
    R, t = T[:, :3, :3], T[:, :3, 3]
    p0 = t + scale * jnp.einsum("pab,pb->pa", R, parts.q0, precision=HIGHEST)
    p1 = t + scale * jnp.einsum("pab,pb->pa", R, parts.q1, precision=HIGHEST)
    return p0, p1, scale * parts.radius


def _point_segment_dist(x, a, b):
    """|x − closest point of segment ab|, broadcasting; gradient-safe at zero distance."""
    ab = b - a
    t = jnp.clip(jnp.sum((x - a) * ab, -1) / jnp.maximum(jnp.sum(ab * ab, -1), 1e-12), 0.0, 1.0)
    d = x - (a + t[..., None] * ab)
    return jnp.sqrt(jnp.sum(d * d, -1) + 1e-12)


def inside_depth(
    points: Float[Array, "N 3"], p0: Float[Array, "P 3"], p1: Float[Array, "P 3"], radius: Float[Array, "P"]
) -> Float[Array, "N"]:
    """Depth (metres) of each point inside the union of capsules: max_p (r_p − dist); < 0 outside."""
    with jax.named_scope("body.part_inside_depth"):
        d = radius[None, :] - _point_segment_dist(points[:, None, :], p0[None], p1[None])
        return jnp.max(d, axis=-1)


def occupancy(points, p0, p1, radius, *, sharpness: float = 200.0) -> Float[Array, "N"]:
    """Soft occupancy in (0, 1) (COAP's output type): sigmoid(sharpness · inside depth)."""
    return jax.nn.sigmoid(sharpness * inside_depth(points, p0, p1, radius))


def self_penetration_depths(
    parts: PartVolumes, p0: Float[Array, "P 3"], p1: Float[Array, "P 3"], radius: Float[Array, "P"], *, samples: int = 5
) -> Float[Array, "Q samples"]:
    """Overlap depth (metres, ≥ 0) of non-adjacent part pairs: spheres along part a's axis vs capsule b."""
    if parts.pair_a.shape[0] == 0:
        return jnp.zeros((0, samples), p0.dtype)
    ts = jnp.linspace(0.0, 1.0, samples, dtype=p0.dtype)
    a0, a1 = p0[parts.pair_a], p1[parts.pair_a]
    pts = a0[:, None] + ts[None, :, None] * (a1 - a0)[:, None]
    d = _point_segment_dist(pts, p0[parts.pair_b][:, None], p1[parts.pair_b][:, None])
    return jax.nn.relu(radius[parts.pair_a][:, None] + radius[parts.pair_b][:, None] - d)
