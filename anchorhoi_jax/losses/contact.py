"""L_C of Eq. 6: squared distance of each contact pair (human point skinned, object point moved rigidly).

    L_C = 1/|C| Σ_{i∈C} ‖p_h^i − p_o^i‖²                                                     (Eq. 6)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def contact_loss(
    human_points: Float[Array, "C 3"], object_points: Float[Array, "C 3"], mask: Float[Array, "C"]
) -> tuple[Float[Array, ""], dict]:
    """Eq. 6 for one frame over the valid pairs (mask = 1); metres². Aux: per-pair distance (m)."""
    with jax.named_scope("loss.contact"):
        d2 = jnp.sum((human_points - object_points) ** 2, -1)
        value = jnp.sum(mask * d2) / jnp.maximum(jnp.sum(mask), 1.0)
        return value, {"distance": jnp.sqrt(d2 + 1e-12)}
