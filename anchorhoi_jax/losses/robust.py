"""Robust penalties used by Eq. 2, 3 and 5."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float


def geman_mcclure(sq_residual: Float[Array, "*n"], sigma: float | Float[Array, ""] = 1.0) -> Float[Array, "*n"]:
    """Geman-McClure ρ(r) = σ² r² / (σ² + r²), taking the squared residual r² (Geman & McClure 1987).

    Bounded by σ², so gross outliers (e.g. a mis-detected joint) contribute at most σ²
    instead of growing quadratically. `sigma` is in the residual's units (pixels for Eq. 2/5).
    """
    s2 = jnp.asarray(sigma) ** 2
    return s2 * sq_residual / (s2 + sq_residual)
