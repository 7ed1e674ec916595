"""Contact keypoints from the static interaction (paper Eq. 3).

For each of N_o object surface points (farthest point sampling of an area-weighted dense sample,
with outward face normals n_o) take the nearest contact-candidate human vertex C(V_h) (outward
vertex normal n_h) and keep the pair when

    (1 + n_o · n_h) < τ_n        and        ρ(‖v_o − v_h‖) < τ_d                        (Eq. 3)

Sign convention. The paper prints (1 − n_o·n_h) < τ_n but states that the normals must be
anti-parallel, "consistent with the physical fact that … opposing forces are exerted". With both
normals pointing outward of their own surfaces (our meshes and SMPL-X's are CCW-outward), two
touching surfaces have n_o ≈ −n_h, i.e. n_o·n_h ≈ −1, so the printed term would be ≈ 2 exactly at
real contacts and ≈ 0 for parallel (same-side) normals. We implement the stated physics,
(1 + n_o·n_h) < τ_n, which is 0 for perfectly opposed normals; tests/motion/test_contacts.py shows
the printed form selecting nothing on a body sitting on a box.

ρ is Geman-McClure with scale σ_d; ρ is monotone in the distance, so τ_d is equivalent to a
distance cut d < σ_d·sqrt(τ_d / (σ_d² − τ_d)). Defaults: σ_d = 5 cm, τ_d = ρ(2 cm).

Two refinements make the test measure the *surface* rather than the mesh sampling (both reduce to
the printed vertex form as the mesh gets finer):
  * Distance to a surfel, not to a vertex. Eq. 3 measures ‖v_o − v_h‖ to the nearest candidate
    vertex, so on a coarse mesh (body vertices 2-4 cm apart on the buttocks) an object point 1.5 cm
    from the skin can be 2.5 cm from every vertex and fail τ_d. Each candidate vertex is taken as a
    surfel (Pfister et al. 2000): a disk with its normal n_h and radius r_h = mean distance to its 3
    nearest candidate neighbours / √3 (the circumradius of its Voronoi cell on a regular
    triangulation); the distance is the point-to-disk distance sqrt((n_h·Δ)² + relu(‖Δ_t‖ − r_h)²).
  * Normal-compatible nearest neighbour. The pairs (i, j) of Eq. 3 are those passing both tests;
    the nearest vertex alone can be the side of a finger or a fold whose normal is perpendicular
    to the object surface even though the hand as a whole faces it. As in compatible-point ICP
    (Godin et al. 1994), j is the nearest (surfel distance) candidate among those passing the
    normal test, then τ_d is applied to that pair.

Pairs are returned with a fixed length N_o and a validity mask, so objects with different numbers
of contacts share one compiled motion program.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from jaxtyping import Array, Float, Int

from anchorhoi_jax.geometry.mesh import farthest_point_sampling, sample_surface
from anchorhoi_jax.losses.robust import geman_mcclure

HIGHEST = jax.lax.Precision.HIGHEST


@struct.dataclass
class ContactPairs:
    """Eq. 3 pairs, fixed length N_o: human vertex id, object point (object frame), validity."""

    human_vertex: Int[Array, "C"]
    object_point: Float[Array, "C 3"]
    mask: Float[Array, "C"]

    @property
    def num_valid(self):
        return jnp.sum(self.mask)


def gm_distance_threshold(distance: float, sigma: float) -> float:
    """τ_d for a cut at a metric distance: ρ(distance) with Geman-McClure scale σ."""
    return float(geman_mcclure(jnp.asarray(distance) ** 2, sigma))


def match_contacts(
    object_points: Float[Array, "N 3"],
    object_normals: Float[Array, "N 3"],
    human_points: Float[Array, "H 3"],
    human_normals: Float[Array, "H 3"],
    *,
    tau_n: float = 0.5,
    tau_d: float | None = None,
    sigma_d: float = 0.05,
) -> tuple[Int[Array, "N"], Float[Array, "N"], dict]:
    """Nearest candidate for each object point and the Eq. 3 tests (all inputs in one frame).

    Returns (nearest normal-compatible candidate index (N,), validity (N,) in {0,1}, aux with the
    point-to-surfel distances and the normal term 1 + n_o·n_h of the chosen pairs).
    """
    if tau_d is None:
        tau_d = gm_distance_threshold(0.02, sigma_d)
    with jax.named_scope("contacts.match"):
        d2 = _pairwise_sq(object_points, human_points)  # (N, H)
        r_h = surfel_radii(human_points)
        # Point-to-surfel distance: normal offset and the tangential overshoot past the disk.
        dn = jnp.matmul(object_points, human_normals.T, precision=HIGHEST) - jnp.sum(human_points * human_normals, -1)[None]
        dt = jnp.sqrt(jnp.maximum(d2 - dn**2, 0.0))
        s2 = dn**2 + jax.nn.relu(dt - r_h[None]) ** 2
        normal_term = 1.0 + jnp.matmul(object_normals, human_normals.T, precision=HIGHEST)  # 0 when anti-parallel
        compatible = normal_term < tau_n
        # Nearest compatible candidate; points with none fall back to the plain nearest (then invalid).
        j = jnp.where(jnp.any(compatible, 1), jnp.argmin(jnp.where(compatible, s2, jnp.inf), 1), jnp.argmin(s2, 1))
        dist2 = jnp.take_along_axis(s2, j[:, None], 1)[:, 0]
        nt = jnp.take_along_axis(normal_term, j[:, None], 1)[:, 0]
        valid = (nt < tau_n) & (geman_mcclure(dist2, sigma_d) < tau_d)
        return j, valid.astype(object_points.dtype), {"distance": jnp.sqrt(dist2), "normal_term": nt}


def _pairwise_sq(a, b):
    return jnp.maximum(
        jnp.sum(a**2, -1)[:, None] - 2.0 * jnp.matmul(a, b.T, precision=HIGHEST) + jnp.sum(b**2, -1)[None, :], 0.0
    )


def surfel_radii(points: Float[Array, "H 3"], *, neighbours: int = 3) -> Float[Array, "H"]:
    """Disk radius of each surface sample: mean distance to its `neighbours` nearest others / √3.

    On a regular triangulation with edge e this is e/√3, the circumradius of the vertex's Voronoi
    cell, so the disks tile the surface without reaching past the cell. One sample: radius 0."""
    h = points.shape[0]
    if h < 2:
        return jnp.zeros((h,), points.dtype)
    k = min(neighbours, h - 1)
    d2 = _pairwise_sq(points, points) + jnp.diag(jnp.full((h,), jnp.inf, points.dtype))
    nearest = -jax.lax.top_k(-d2, k)[0]
    return jnp.mean(jnp.sqrt(nearest), -1) / jnp.sqrt(3.0)


def object_surface_points(
    vertices: Float[Array, "V 3"], faces: Int[Array, "F 3"], num_points: int, *, key: jax.Array, dense: int = 20000
) -> tuple[Float[Array, "N 3"], Float[Array, "N 3"]]:
    """V_o of Eq. 3: FPS of `num_points` from `dense` area-weighted samples; returns points and normals."""
    pts, nrm, _ = sample_surface(vertices, faces, max(dense, num_points), key=key)
    idx = farthest_point_sampling(pts, num_points)
    return pts[idx], nrm[idx]


def extract_contacts(
    object_points: Float[Array, "N 3"],
    object_normals: Float[Array, "N 3"],
    R_world_obj: Float[Array, "3 3"],
    t_world_obj: Float[Array, "3"],
    human_vertices: Float[Array, "V 3"],
    human_normals: Float[Array, "V 3"],
    candidates: Int[Array, "H"],
    **thresholds,
) -> ContactPairs:
    """Eq. 3 on the static instance: object points/normals in the object frame, human in world.

    The returned object points stay in the object frame (Eq. 6 moves them rigidly per frame);
    human vertex ids index the full body mesh (Eq. 6 skins them per frame).
    """
    p_w = jnp.einsum("ab,nb->na", R_world_obj, object_points, precision=HIGHEST) + t_world_obj[None]
    n_w = jnp.einsum("ab,nb->na", R_world_obj, object_normals, precision=HIGHEST)
    j, valid, _ = match_contacts(p_w, n_w, human_vertices[candidates], human_normals[candidates], **thresholds)
    return ContactPairs(human_vertex=candidates[j], object_point=object_points, mask=valid)
