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

    Returns (nearest candidate index (N,), validity (N,) in {0,1}, aux with distances and the
    normal term 1 + n_o·n_h).
    """
    if tau_d is None:
        tau_d = gm_distance_threshold(0.02, sigma_d)
    with jax.named_scope("contacts.match"):
        d2 = (
            jnp.sum(object_points**2, -1)[:, None]
            - 2.0 * jnp.matmul(object_points, human_points.T, precision=HIGHEST)
            + jnp.sum(human_points**2, -1)[None, :]
        )
        j = jnp.argmin(d2, axis=1)
        dist2 = jnp.sum((object_points - human_points[j]) ** 2, -1)
        normal_term = 1.0 + jnp.sum(object_normals * human_normals[j], -1)  # 0 when anti-parallel
        valid = (normal_term < tau_n) & (geman_mcclure(dist2, sigma_d) < tau_d)
        return j, valid.astype(object_points.dtype), {"distance": jnp.sqrt(dist2), "normal_term": normal_term}


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
