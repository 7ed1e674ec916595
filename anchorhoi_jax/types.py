"""Shared jaxtyping aliases. Shapes use the names of CONVENTIONS.md (seeds, frames/views, data axes)."""

from __future__ import annotations

from typing import TypeAlias

import jax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

PRNGKey: TypeAlias = PRNGKeyArray
Vec3: TypeAlias = Float[Array, "*batch 3"]
RotMat: TypeAlias = Float[Array, "*batch 3 3"]
Transform: TypeAlias = Float[Array, "*batch 4 4"]
Image: TypeAlias = Float[Array, "*batch H W C"]

__all__ = ["Array", "Bool", "Float", "Int", "PRNGKey", "Vec3", "RotMat", "Transform", "Image", "jax"]
