"""Multi-view feature alignment L_align(F(x), F(x̂)) of the anchor NeRF (paper Sec. 4, "Anchor NeRF").

F is the *masked RGB feature extractor*: a render's premultiplied colour and opacity restricted to the
human mask and composited over a background colour,

    F(C, α; M, b) = M·C + (1 − M·α)·b ,

so that, for the coarse render x̂ = (Ĉ, α̂), F(x̂) is "the human alone, over b". The anchor render
x = (C_A, α_A) is compared with mask 1 (its own full image over the same b): wherever the coarse
NeRF shows something that is not human (the object), the anchor must be transparent, and where it
shows the human, the anchor must reproduce it. Drawing b at random per ray (as NeRF reconstruction
does) makes colour agreement imply opacity agreement, so no separate alpha term is needed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def masked_rgb_features(
    rgb_premult: Float[Array, "*n 3"],
    alpha: Float[Array, "*n"],
    mask: Float[Array, "*n"],
    background: Float[Array, "*n 3"],
) -> Float[Array, "*n 3"]:
    """F(C, α; M, b) = M·C + (1 − M·α)·b (premultiplied colour C, opacity α, soft mask M in [0, 1])."""
    m = mask[..., None]
    return m * rgb_premult + (1.0 - m * alpha[..., None]) * background


def feature_alignment_loss(
    features: Float[Array, "*n 3"], target: Float[Array, "*n 3"], weight: Float[Array, "*n"] | None = None
) -> tuple[Float[Array, ""], dict]:
    """L_align: (weighted) mean squared error between features of the anchor and the coarse render."""
    with jax.named_scope("loss.align"):
        sq = jnp.sum((features - target) ** 2, axis=-1)
        if weight is None:
            value = jnp.mean(sq)
        else:
            value = jnp.sum(weight * sq) / jnp.maximum(jnp.sum(weight), 1e-9)
        return value, {"align_mse": value}
