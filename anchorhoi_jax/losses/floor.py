"""Floor non-penetration: no human vertex and no object point below the ground plane.

Physical reason (not a paper term; it belongs with L_pen of Eq. 4, which keeps the human out of the
object, here the scene's ground): bodies and objects stand on the floor, they cannot sink into it.
World frame y up (CONVENTIONS.md), floor = the horizontal plane y = `floor_height`. The term is
one-sided (a hinge at the plane): a point at depth δ = floor_height − y > 0 costs δ², a point on or
above the floor costs nothing, so it never pulls anything down and is zero for any physically valid
motion. Why it helps the monocular fit: the keypoint terms (Eq. 5) fix a point's direction from the
camera but observe its depth along that ray only weakly (through the body's on-screen size). For a
camera above the floor looking down, moving a point farther along its ray also lowers it, so a foot
or a chair leg that rests on the floor cannot slide away from the camera without entering the floor:
a one-sided depth cue exactly where the scene is supported.

Measured (benchmarks/results/motion.md, session 6): on the benchmark's cameras (near hip height) 46 mm along the
root's ray moves the body only ~4 mm vertically, so neither term changed the depth error there (weights 0 by
default); they matter for cameras that look down steeply.

Units: metres², a sum over the points (as L_pen's object-SDF part, losses/penetration.py), so a few
penetrating vertices are not averaged away by the many above the floor.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def floor_penetration(
    points: Float[Array, "N 3"], floor_height: Float[Array, ""], *, margin: float = 0.0
) -> tuple[Float[Array, ""], dict]:
    """Σ relu(floor_height − margin − y)² over world-frame points (y up). Aux: per-point depth below the plane (m).

    `margin` (m, ≥ 0): depth tolerated below the plane (e.g. soft ground or a body model whose soles
    are not exactly flat); 0 = the plane itself."""
    with jax.named_scope("loss.floor"):
        depth = jax.nn.relu(floor_height - margin - points[:, 1])
        return jnp.sum(depth**2), {"depth": depth}


def floor_support(lowest: Float[Array, "L"], floor_height: Float[Array, ""]) -> tuple[Float[Array, ""], dict]:
    """(mean_i lowest_i − floor_height)²: the scene rests on the floor, on average over the clip (metres²).

    `lowest`: per frame, the height of the scene's lowest point (human or object). Gravity: a static scene
    stands on the floor (`static_floor_height`), and a person who walks, pushes, carries or sits keeps a
    support on it. One number per sequence is constrained, not each frame: a gait's stance foot, or a
    short hop, moves the per-frame lowest point by centimetres, the clip's mean much less, while the fit's
    weakest direction, the global depth along a downward-looking camera ray, moves the whole clip up or
    down (nearer the camera = higher). Two-sided, unlike `floor_penetration`: a clip that floats is
    pulled down as much as one that sinks is pushed up. Aux: the signed gap (m)."""
    with jax.named_scope("loss.floor_support"):
        gap = jnp.mean(lowest) - floor_height
        return gap**2, {"gap": gap}


def static_floor_height(
    human_vertices: Float[Array, "V 3"], object_points_world: Float[Array, "M 3"]
) -> Float[Array, ""]:
    """The floor of a static instance: the height of its lowest point (human or object).

    Under gravity a static scene rests on the ground at its lowest point (a standing person's soles, a
    chair's legs, a box on the floor); nothing in a static HOI floats below its support. Used when the
    caller gives no floor height (stages/motion.prepare_motion_data)."""
    return jnp.minimum(jnp.min(human_vertices[:, 1]), jnp.min(object_points_world[:, 1]))
