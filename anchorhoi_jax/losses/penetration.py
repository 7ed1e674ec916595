"""L_pen of Eq. 4: human-object interpenetration, a weight-free equivalent of COAP (Mihajlovic et al. 2022).

Two one-sided terms, each in metres² summed over the penetrating points:
  * object → human: the object's signed distance (precomputed grid, geometry/sdf.py) at human
    vertices moved into the object frame; a vertex at depth δ inside costs δ²;
  * human → object: the compositional part occupancy (body/part_volumes.py, one capsule per bone,
    COAP's per-part structure) at object surface points; a point at depth δ inside a part costs δ².
Both are needed: thin object parts can pass between vertices, and vertices cannot see the inside
of a limb that swallows an object edge.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from anchorhoi_jax.body.part_volumes import inside_depth
from anchorhoi_jax.geometry.sdf import SDFGrid, sample_sdf, sample_sdf_xyz
from anchorhoi_jax.kernels import sdf as sdf_kernel
from anchorhoi_jax.kernels.capsules import resolve_impl


def object_sdf_penetration(
    human_points_obj: Float[Array, "N 3"], grid: SDFGrid, *, margin: float = 0.0
) -> tuple[Float[Array, ""], dict]:
    """Σ relu(margin − sdf)² over human points given in the object frame. Aux: per-point depth (m)."""
    with jax.named_scope("loss.pen_object_sdf"):
        depth = jax.nn.relu(margin - sample_sdf(grid, human_points_obj))
        return jnp.sum(depth**2), {"depth": depth}


def object_sdf_penetration_world(
    human_points: Float[Array, "N 3"], R_obj: Float[Array, "3 3"], t_obj: Float[Array, "3"], grid: SDFGrid, *,
    margin: float = 0.0,
) -> tuple[Float[Array, ""], dict]:
    """`object_sdf_penetration` of world-frame human points, the object placed at x = R p + t.

    The points are moved into the object frame (p = Rᵀ(x − t)) one coordinate at a time, so the
    whole term, and its backward into R and t (sums over the N points), stays in (N,) arrays
    (geometry/sdf.sample_sdf_xyz says why)."""
    with jax.named_scope("loss.pen_object_sdf"):
        d = [human_points[:, k] - t_obj[k] for k in range(3)]
        q = [R_obj[0, i] * d[0] + R_obj[1, i] * d[1] + R_obj[2, i] * d[2] for i in range(3)]
        depth = jax.nn.relu(margin - sample_sdf_xyz(grid, *q))
        impl = resolve_impl(sdf_kernel.PEN_IMPL)
        if impl == "xla" or not isinstance(margin, (int, float)):
            return jnp.sum(depth**2), {"depth": depth}
        # On CUDA the value and its gradient come from one kernel (kernels/sdf.py; same values to float32
        # rounding); `depth` above is then only computed if a caller reads it (XLA drops it otherwise).
        value = sdf_kernel.sdf_penetration(*(human_points[:, k] for k in range(3)), R_obj, t_obj, grid.values,
                                           grid.origin, grid.spacing, float(margin), impl == "interpret", grid.corners)
        return value, {"depth": depth}


def part_occupancy_penetration(
    object_points_world: Float[Array, "N 3"],
    p0: Float[Array, "P 3"],
    p1: Float[Array, "P 3"],
    radius: Float[Array, "P"],
    allowance: Float[Array, "N"] | None = None,
) -> tuple[Float[Array, ""], dict]:
    """Σ relu(inside depth − allowance)² of object points in the posed part capsules. Aux: per-point depth (m).

    `allowance` (m, ≥ 0, per object point; default 0): depth tolerated, e.g. the depth each point
    already has in the static instance, where a capsule protrudes past the true skin at a contact.
    """
    with jax.named_scope("loss.pen_part_occupancy"):
        d = inside_depth(object_points_world, p0, p1, radius)
        depth = jax.nn.relu(d if allowance is None else d - allowance)
        return jnp.sum(depth**2), {"depth": depth}
