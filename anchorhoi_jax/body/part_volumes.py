"""Compositional per-part human occupancy: one capsule per skinned bone, a weight-free stand-in for COAP.

The paper's L_pen follows COAP (Mihajlovic et al. 2022), whose learned part occupancy networks are
not available here. COAP's structure is kept: the body is a union of per-bone volumes that move
rigidly with their bone, so occupancy at a query point is the max over parts. Each part is a capsule
fitted at load time to the rest-pose vertices that the bone dominates (argmax skinning weight):
principal axis by PCA, length from the axial extent, and radius the *inscribed* radius: the distance
from the segment to the nearest point of the whole skin (vertices, edge midpoints and face centroids
of every part, not only the bone's own) minus a margin. Capsules give a closed-form inside depth
d(x) = s·r − dist(x, segment)  (metres, > 0 inside), smooth almost everywhere, which L_pen (Eq. 4)
pushes to ≤ 0 at object points and the self-penetration part of L_reg evaluates between
non-adjacent parts.

Why inscribed. L_pen must be zero at a physically valid interaction, otherwise Eq. 4's minimum is
not the true motion: a capsule that protrudes past the skin reads a real contact (object resting on
the skin, what L_C of Eq. 6 asks for) as penetration, and λ_pen L_pen and λ_C L_C then pull the
object and the limb in opposite directions. The earlier robust-percentile radius (60th percentile
of the radial distances) protruded up to 12 mm out of the flat palm; at the ground-truth motions of
benchmarks/motion.py the part term was 30× the keypoint term (tests/motion/test_part_volumes.py
checks the fitted capsules stay inside the skin). The occupancy is therefore a conservative inner
bound of the body (COAP's occupancy is learned to match the skin; the object SDF at the human
vertices, the other half of L_pen, sees the skin itself).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as onp
from flax import struct
from jaxtyping import Array, Float, Int

from anchorhoi_jax.kernels.capsules import (
    capsule_depth_max_bwd_pallas,
    capsule_depth_max_pallas,
    capsule_table,
    resolve_impl,
    self_pen_depths_bwd_pallas,
    self_pen_depths_pallas,
)

HIGHEST = jax.lax.Precision.HIGHEST

# Implementation of the capsule (max, argmax) depth and of the self-penetration depths when the caller
# passes impl=None (the loss terms do): "xla" (plain JAX), "pallas" (kernels/capsules.py, CUDA only),
# "interpret" (the Pallas kernel interpreted, any backend) or "auto" (pallas on a GPU, xla elsewhere).
# Read at trace time; benchmarks/motion_profile.py --ab sets them to compare the paths in one process.
# H100, 8 seeds, same process: 2.12 s per 1000 Adam steps with both kernels vs 2.82 s with the XLA paths;
# loss terms equal, gradients within 5e-13 abs (benchmarks/results/motion_speed_s6.md, call 2).
CAPSULE_IMPL = "auto"
SELF_PEN_IMPL = "auto"


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
    inscribed: bool = True,
    skin_margin: float = 0.002,
) -> PartVolumes:
    """Fit one capsule per bone to the shaped rest mesh (host-side NumPy, run once at load).

    Args:
      rest_vertices: (V,3) shaped rest vertices v(β) (metres, model frame).
      rest_joints: (J,3) rest joint positions j(β).
      rest_orientations: (J,3,3) rest joint frames (identity for SMPL-X).
      lbs_weights: (V,J); faces (F,3): only vertices used by a face are fitted.
      parents: kinematic tree.
      radius_percentile: percentile of radial distances taken as the fitted radius (also places the
        segment ends: the axial extent minus this radius).
      inscribed: cap the radius at the distance from the segment to the nearest skin sample (any
        part) minus `skin_margin`, so the capsule lies inside the skin (contact must not read as
        penetration, see the module docstring). False = the percentile radius alone (protrudes at
        flat parts such as the palm).
      skin_margin: metres kept between capsule and skin samples: covers the sagitta of faces
        between samples (SMPL-X edges ~1 cm, curvature radius ≥ 1 cm: ≈ 1 mm) and LBS skin
        deformation near joints.
      min_tree_distance: parts closer than this in the tree, or already overlapping at rest, are
        "adjacent" and excluded from self-penetration.
    """
    v = onp.asarray(rest_vertices, onp.float64)
    jr = onp.asarray(rest_joints, onp.float64)
    Rr = onp.asarray(rest_orientations, onp.float64)
    w = onp.asarray(lbs_weights)
    used = onp.zeros(len(v), bool)
    f = onp.asarray(faces)
    used[f.reshape(-1)] = True
    owner = onp.argmax(w, axis=1)
    skin = _SkinSamples(v, f, used) if inscribed else None
    q0, q1, rad, joint, world = [], [], [], [], []
    for j in range(len(parents)):
        pts = v[(owner == j) & used]
        if len(pts) < min_vertices:
            continue
        c = pts.mean(0)
        _, _, vt = onp.linalg.svd(pts - c, full_matrices=False)
        d = vt[0]
        s = (pts - c) @ d
        lo, hi = onp.percentile(s, 2), onp.percentile(s, 98)
        if inscribed:
            seg = _inscribed_segment(skin, c, d, lo, hi, skin_margin)
            # An axis that never lies inside the skin (e.g. eyeballs): an inert zero-radius part, so
            # the part count depends on the mesh topology only (seeds with other β stack).
            pa, pb, r = seg if seg is not None else (c, c, 0.0)
        else:
            radial = onp.linalg.norm((pts - c) - s[:, None] * d, axis=1)
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


class _SkinSamples:
    """Skin points (vertices, edge midpoints, face centroids) with outward normals and a k-d tree."""

    def __init__(self, v, f, used):
        from scipy.spatial import cKDTree

        tri = v[f]
        fn = onp.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # |fn| = 2 area, outward (CCW)
        vn = onp.zeros_like(v)
        for k in range(3):
            onp.add.at(vn, f[:, k], fn)
        unit = lambda x: x / onp.maximum(onp.linalg.norm(x, axis=-1, keepdims=True), 1e-30)  # noqa: E731
        mids = [0.5 * (tri[:, a] + tri[:, b]) for a, b in ((0, 1), (1, 2), (2, 0))]
        self.points = onp.concatenate([v[used], tri.mean(1), *mids])
        self.normals = unit(onp.concatenate([vn[used], fn, fn, fn, fn]))
        self.tree = cKDTree(self.points)

    def clearance(self, x):
        """Distance to the nearest skin sample, negative where x lies outside (on its normal's side)."""
        dist, i = self.tree.query(x)
        outside = onp.sum((x - self.points[i]) * self.normals[i], -1) > 0
        return onp.where(outside, -dist, dist)


def _inscribed_segment(skin, c, d, lo, hi, margin, step=0.002):
    """The capsule on the bone's axis c + s·d, s ∈ [lo, hi], that stays inside the skin.

    A capsule is the union of balls of radius r centred on its segment, so it lies inside the skin
    iff every segment point has clearance ρ(s) ≥ r. ρ is sampled every `step` metres (ρ is
    1-Lipschitz, so between samples it drops by at most step/2 = 1 mm, inside `margin`). Among the
    radii r = ρ(s_k) the one maximising r·(length + 2r) (radius × axial extent: a long limb is not
    traded for a fat ball at one end) is kept, with the longest run of samples whose ρ ≥ r.
    Returns (pa, pb, r) or None when no axis point is inside the skin.
    """
    n = int(min(max(onp.ceil((hi - lo) / step), 2), 512)) + 1
    ts = onp.linspace(lo, hi, n)
    rho = skin.clearance(c[None] + ts[:, None] * d[None]) - margin
    best = None
    for r in onp.unique(rho[rho > 0]):
        ok = onp.concatenate([[False], rho >= r, [False]])
        edges = onp.flatnonzero(ok[1:] != ok[:-1])  # run starts and (exclusive) ends
        runs = edges.reshape(-1, 2)
        k = int(onp.argmax(runs[:, 1] - runs[:, 0]))
        a, b = ts[runs[k, 0]], ts[runs[k, 1] - 1]
        score = r * (b - a + 2 * r)
        if best is None or score > best[0]:
            best = (score, a, b, float(r))
    if best is None:
        return None
    _, a, b, r = best
    return c + a * d, c + b * d, r


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


def _capsule_constants(p0, p1):
    """Per part: the axis ab = p1 − p0 and 1/|ab|² (one reciprocal per part instead of a division per
    (point, part) pair: the clipped parameter t differs from the division by ≤ 1 ulp)."""
    ab = p1 - p0
    return ab, 1.0 / jnp.maximum(jnp.sum(ab * ab, -1), 1e-12)


def _depth_max(x, p0, p1, radius):
    """max_p (r_p − dist(x_n, segment p)) and its argmax p*(n), for all points (N,) at once.

    Structure of arrays: each coordinate is its own (P, N) plane (parts × points, points minor), so
    the pairwise terms fuse into one elementwise pass and (max, argmax) is ONE variadic reduction over
    the parts. With (N, P, 3) arrays and separate max/argmax reductions XLA materialised the clipped
    segment parameter t (N, P) per frame and seed and read it twice (H100, 8 seeds × 120 frames ×
    2048 points × 55 parts: 0.7 of 5.9 ms per Adam step, benchmarks/results/motion_speed_s4.md).
    Measured against the parts unrolled into elementwise max and argmax chains (session 5, H100,
    8 seeds, same process): 2.09 vs 2.64 s per 1000 steps, XLA split the chains into ~15 kernels
    (benchmarks/results/motion_speed_s5.md)."""
    ab, inv = _capsule_constants(p0, p1)
    xa = [x[None, :, k] - p0[:, k, None] for k in range(3)]  # 3 × (P, N)
    t = jnp.clip((xa[0] * ab[:, 0, None] + xa[1] * ab[:, 1, None] + xa[2] * ab[:, 2, None]) * inv[:, None], 0.0, 1.0)
    d2 = sum((xa[k] - t * ab[:, k, None]) ** 2 for k in range(3))
    depth = radius[:, None] - jnp.sqrt(d2 + 1e-12)
    iota = jax.lax.broadcasted_iota(jnp.int32, depth.shape, 0)

    def pick(a, b):  # (value, index) of the larger value; the lower index on ties (as jnp.argmax)
        va, ia = a
        vb, ib = b
        take_a = (va > vb) | ((va == vb) & (ia < ib)) | jnp.isnan(va)
        return jnp.where(take_a, va, vb), jnp.where(take_a, ia, ib)

    return jax.lax.reduce((depth, iota), (jnp.asarray(-jnp.inf, depth.dtype), jnp.asarray(0, jnp.int32)), pick, (0,))


def _depth_max_impl(impl, x, p0, p1, radius):
    """`_depth_max` by the resolved implementation (the Pallas kernel computes the same arithmetic)."""
    if impl == "xla":
        return _depth_max(x, p0, p1, radius)
    _, inv = _capsule_constants(p0, p1)
    return capsule_depth_max_pallas(x, capsule_table(p0, p1, inv, radius), interpret=impl == "interpret")


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _inside_depth(impl, points, p0, p1, radius):
    return _depth_max_impl(impl, points, p0, p1, radius)[0]


def _inside_depth_fwd(impl, points, p0, p1, radius):
    depth, idx = _depth_max_impl(impl, points, p0, p1, radius)
    return depth, (points, p0, p1, radius, idx)


def _inside_depth_bwd(impl, res, g):
    # The max routes the cotangent to one part per point, p*(n) = argmax. With e the unit vector
    # from the closest segment point to x: d(r − dist)/dx = −e, d/dp0 = e(1 − t), d/dp1 = e·t,
    # d/dr = 1 (at the closest point ∂dist/∂t = 0, so t's own dependence drops out). So the
    # backward is O(N): gather each point's deepest capsule, then segment sums of N rows into the
    # P capsules. Autodiff of the dense max instead stores and re-reads ~8 (N, P)
    # arrays per frame and seed (an H100 step with 8 seeds spent 6 of its 10 ms in this term,
    # benchmarks/results/motion.md). The radius cotangent is its own column, so callers whose
    # radii are constants (the motion stage) drop it from the compiled program.
    points, p0, p1, radius, idx = res
    ab_all, inv_all = _capsule_constants(p0, p1)
    if impl != "xla":  # the same arithmetic as below, one kernel with atomics (kernels/capsules.py)
        dx, caps = capsule_depth_max_bwd_pallas(points, capsule_table(p0, p1, inv_all, radius), idx, g,
                                                interpret=impl == "interpret")
        return dx, caps[:, 0:3], caps[:, 3:6], caps[:, 6]
    a, ab, inv = p0[idx], ab_all[idx], inv_all[idx]
    xa = points - a
    t = jnp.clip(jnp.sum(xa * ab, -1) * inv, 0.0, 1.0)
    d = xa - t[:, None] * ab
    ge = g[:, None] * d / jnp.sqrt(jnp.sum(d * d, -1) + 1e-12)[:, None]
    # Per-capsule sums as segment sums (a scatter-add of N rows into P per frame and seed; measured
    # against masked row sums over a (P, N) plane on the H100, 8 seeds: 2.20 vs 2.40 s per 1000
    # steps, benchmarks/results/motion_speed_s4.md). Rows with a zero cotangent (points outside every
    # capsule: relu'd away by L_pen, almost all of them) get the out-of-range id P and are dropped
    # by the scatter (mode fill-or-drop), so only penetrating points issue atomic adds. Exact: a
    # dropped row adds zeros. The rows stay fused into the scatter, which skips the row's
    # computation for dropped ids (H100, 8 seeds: materialising the rows behind a barrier first, in
    # a separate call, ran 2.41 s per 1000 steps against 2.09 s fused; benchmarks/results/motion_speed_s5.md).
    seg = jnp.where(g != 0, idx, p0.shape[0])
    rows = jnp.concatenate([ge * (1.0 - t)[:, None], ge * t[:, None], g[:, None]], -1)
    caps = jax.ops.segment_sum(rows, seg, num_segments=p0.shape[0], mode=jax.lax.GatherScatterMode.FILL_OR_DROP)
    return -ge, caps[:, 0:3], caps[:, 3:6], caps[:, 6]


_inside_depth.defvjp(_inside_depth_fwd, _inside_depth_bwd)


def inside_depth(
    points: Float[Array, "N 3"], p0: Float[Array, "P 3"], p1: Float[Array, "P 3"], radius: Float[Array, "P"],
    *, impl: str | None = None,
) -> Float[Array, "N"]:
    """Depth (metres) of each point inside the union of capsules: max_p (r_p − dist); < 0 outside.

    Differentiable in every argument (custom VJP: the max's cotangent goes to the deepest part).
    impl: "xla" | "pallas" | "interpret" | "auto" (see CAPSULE_IMPL, the default when None)."""
    with jax.named_scope("body.part_inside_depth"):
        return _inside_depth(resolve_impl(CAPSULE_IMPL if impl is None else impl), points, p0, p1, radius)


def occupancy(points, p0, p1, radius, *, sharpness: float = 200.0) -> Float[Array, "N"]:
    """Soft occupancy in (0, 1) (COAP's output type): sigmoid(sharpness · inside depth)."""
    return jax.nn.sigmoid(sharpness * inside_depth(points, p0, p1, radius))


def self_penetration_depths(
    parts: PartVolumes, p0: Float[Array, "P 3"], p1: Float[Array, "P 3"], radius: Float[Array, "P"], *, samples: int = 5,
    impl: str | None = None,
) -> Float[Array, "Q samples"]:
    """Overlap depth (metres, ≥ 0) of non-adjacent part pairs: spheres along part a's axis vs capsule b.

    impl: "xla" | "pallas" | "interpret" | "auto" (see SELF_PEN_IMPL, the default when None)."""
    if parts.pair_a.shape[0] == 0:
        return jnp.zeros((0, samples), p0.dtype)
    return _self_pen(samples, resolve_impl(SELF_PEN_IMPL if impl is None else impl), parts.pair_a, parts.pair_b,
                     p0, p1, radius)


def _self_pen_planes(samples, pair_a, pair_b, p0, p1, radius):
    """Per sample k (a Python list over the samples, each entry a (Q,) plane over the pairs): depth,
    the unit vector e from capsule b's closest point to the sample, b's closest-point parameter u,
    and the sample's position τ_k on a's axis. Pair endpoints are gathered per coordinate and the
    samples are unrolled (structure of arrays: no (Q, samples) or (Q, samples, 3) arrays), so under
    the frame/seed vmaps forward and backward are elementwise kernels over (frames, Q) in which each
    thread handles the samples of its own pair: the backward's per-pair sums over the samples are
    then plain additions, not reductions over a 5-long minor axis (which XLA emitted as a loop
    reduction recomputing the planes for each of its ten outputs: H100, 8 seeds, 231 µs per Adam
    step, benchmarks/results/motion_speed_s4.md)."""
    a0 = [p0[pair_a, k] for k in range(3)]
    da = [p1[pair_a, k] - a0[k] for k in range(3)]
    b0 = [p0[pair_b, k] for k in range(3)]
    bb = [p1[pair_b, k] - b0[k] for k in range(3)]
    inv = 1.0 / jnp.maximum(bb[0] ** 2 + bb[1] ** 2 + bb[2] ** 2, 1e-12)
    rsum = radius[pair_a] + radius[pair_b]
    ts = [k / (samples - 1) if samples > 1 else 0.0 for k in range(samples)]
    out = []
    for tau in ts:
        xb = [a0[k] + tau * da[k] - b0[k] for k in range(3)]  # sample point relative to b0
        u = jnp.clip((xb[0] * bb[0] + xb[1] * bb[1] + xb[2] * bb[2]) * inv, 0.0, 1.0)
        d = [xb[k] - u * bb[k] for k in range(3)]
        dist = jnp.sqrt(d[0] ** 2 + d[1] ** 2 + d[2] ** 2 + 1e-12)
        out.append((jax.nn.relu(rsum - dist), [d[k] / dist for k in range(3)], u, tau))
    return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _self_pen(samples, impl, pair_a, pair_b, p0, p1, radius):
    if impl != "xla":  # the same arithmetic as _self_pen_planes, one kernel (kernels/capsules.py)
        table = capsule_table(p0, p1, jnp.zeros_like(radius), radius)  # 1/|ab|² row unused by this kernel
        return self_pen_depths_pallas(table, pair_a, pair_b, samples, interpret=impl == "interpret")
    return jnp.stack([o[0] for o in _self_pen_planes(samples, pair_a, pair_b, p0, p1, radius)], -1)


def _self_pen_fwd(samples, impl, pair_a, pair_b, p0, p1, radius):
    return _self_pen(samples, impl, pair_a, pair_b, p0, p1, radius), (pair_a, pair_b, p0, p1, radius)


def _self_pen_bwd(samples, impl, res, g):
    # Analytic backward (like `_inside_depth_bwd`): where the overlap is positive, ∂depth/∂x = −e at
    # each sample x = a0 + τ(a1 − a0), ∂/∂b0 = e(1 − u), ∂/∂b1 = e·u, ∂/∂r_a = ∂/∂r_b = 1 (u's own
    # dependence drops out at the closest point). Per pair the samples reduce to ten numbers, summed
    # sample by sample (elementwise, see `_self_pen_planes`): Σ G(1−τ)e, Σ Gτe, Σ G u e and Σ G.
    # Autodiff of the forward stored and re-read ~10 (Q, samples, 3) arrays per frame and seed (H100,
    # 8 seeds: ~0.9 of 5.9 ms per step).
    pair_a, pair_b, p0, p1, radius = res
    if impl != "xla":  # the same arithmetic as below, one kernel with atomics (kernels/capsules.py)
        table = capsule_table(p0, p1, jnp.zeros_like(radius), radius)
        caps = self_pen_depths_bwd_pallas(table, pair_a, pair_b, g, interpret=impl == "interpret")
        return None, None, caps[:, 0:3], caps[:, 3:6], caps[:, 6]
    t0 = [0.0] * 3
    t1 = [0.0] * 3
    gu = [0.0] * 3
    gr = 0.0
    live = False
    for k, (depth, e, u, tau) in enumerate(_self_pen_planes(samples, pair_a, pair_b, p0, p1, radius)):
        G = jnp.where(depth > 0, g[..., k], 0.0)
        for c in range(3):
            Ge = G * e[c]
            t0[c] = t0[c] + Ge * (1.0 - tau)
            t1[c] = t1[c] + Ge * tau
            gu[c] = gu[c] + Ge * u
        gr = gr + G
        live = live | (G != 0)
    # To the parts: segment sums over the pairs (a scatter-add of Q rows into P per frame and seed).
    # Pairs whose samples all have a zero cotangent (no overlap: almost all of them) get the
    # out-of-range id P and are dropped by the scatter, so only overlapping pairs issue atomic adds;
    # exact, a dropped row adds zeros. (Session 4 used a one-hot GEMM, (7, 2Q)·(2Q, P) per frame:
    # ~2 GFLOP per step for 8 seeds plus a padded copy of the operand, whatever the overlap.)
    P = p0.shape[0]
    rows_a = jnp.stack([-x for x in t0] + [-x for x in t1] + [gr], -1)  # part a: x = a0 + τ(a1 − a0), ∂/∂x = −e
    rows_b = jnp.stack([t0[c] + t1[c] - gu[c] for c in range(3)] + gu + [gr], -1)  # part b: e(1 − u), e·u
    drop = jax.lax.GatherScatterMode.FILL_OR_DROP
    caps = (jax.ops.segment_sum(rows_a, jnp.where(live, pair_a, P), num_segments=P, mode=drop)
            + jax.ops.segment_sum(rows_b, jnp.where(live, pair_b, P), num_segments=P, mode=drop))  # (P, 7)
    return None, None, caps[:, 0:3], caps[:, 3:6], caps[:, 6]


_self_pen.defvjp(_self_pen_fwd, _self_pen_bwd)
