"""Rotation parameterisations: axis-angle, 6D (Zhou et al. 2019), matrices, with safe gradients.

All functions act on the trailing axes and broadcast over any leading batch axes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

_EPS = 1e-12


def skew(v: Float[Array, "*b 3"]) -> Float[Array, "*b 3 3"]:
    """Cross-product matrix [v]_x, so that skew(v) @ u == cross(v, u)."""
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    o = jnp.zeros_like(x)
    return jnp.stack(
        [jnp.stack([o, -z, y], -1), jnp.stack([z, o, -x], -1), jnp.stack([-y, x, o], -1)], -2
    )


def axis_angle_to_matrix(aa: Float[Array, "*b 3"]) -> Float[Array, "*b 3 3"]:
    """Rodrigues' formula with a Taylor branch at zero angle.

    The angle is sqrt(|aa|^2), whose gradient is undefined at 0; we evaluate sin(θ)/θ and
    (1-cos θ)/θ² from θ² through a double-`where` so both value and gradient are exact at aa == 0
    (the identity rotation is the most common initial value in every fit).
    """
    theta2 = jnp.sum(aa * aa, axis=-1)
    small = theta2 < 1e-8
    safe_t2 = jnp.where(small, 1.0, theta2)
    theta = jnp.sqrt(safe_t2)
    a = jnp.where(small, 1.0 - theta2 / 6.0, jnp.sin(theta) / theta)
    b = jnp.where(small, 0.5 - theta2 / 24.0, (1.0 - jnp.cos(theta)) / safe_t2)
    K = skew(aa)
    eye = jnp.broadcast_to(jnp.eye(3, dtype=aa.dtype), K.shape)
    KK = jnp.matmul(K, K, precision=jax.lax.Precision.HIGHEST)
    return eye + a[..., None, None] * K + b[..., None, None] * KK


def matrix_to_axis_angle(R: Float[Array, "*b 3 3"]) -> Float[Array, "*b 3"]:
    """Inverse of `axis_angle_to_matrix` (angle in [0, π]), via the quaternion for stability."""
    return quaternion_to_axis_angle(matrix_to_quaternion(R))


def matrix_to_quaternion(R: Float[Array, "*b 3 3"]) -> Float[Array, "*b 4"]:
    """Rotation matrix -> unit quaternion (w, x, y, z), w >= 0, by the largest-pivot method."""
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    tr = m00 + m11 + m22
    cands = jnp.stack(
        [
            jnp.stack([1 + tr, R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1),
            jnp.stack([R[..., 2, 1] - R[..., 1, 2], 1 + m00 - m11 - m22, R[..., 0, 1] + R[..., 1, 0], R[..., 0, 2] + R[..., 2, 0]], -1),
            jnp.stack([R[..., 0, 2] - R[..., 2, 0], R[..., 0, 1] + R[..., 1, 0], 1 - m00 + m11 - m22, R[..., 1, 2] + R[..., 2, 1]], -1),
            jnp.stack([R[..., 1, 0] - R[..., 0, 1], R[..., 0, 2] + R[..., 2, 0], R[..., 1, 2] + R[..., 2, 1], 1 - m00 - m11 + m22], -1),
        ],
        -2,
    )
    pivots = jnp.stack([1 + tr, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    idx = jnp.argmax(pivots, axis=-1)
    q = jnp.take_along_axis(cands, idx[..., None, None], axis=-2)[..., 0, :]
    q = q / jnp.sqrt(jnp.maximum(jnp.sum(q * q, -1, keepdims=True), _EPS))
    return q * jnp.where(q[..., :1] < 0, -1.0, 1.0)


def quaternion_to_axis_angle(q: Float[Array, "*b 4"]) -> Float[Array, "*b 3"]:
    """Unit quaternion (w, x, y, z) -> axis-angle, safe at zero rotation."""
    q = q * jnp.where(q[..., :1] < 0, -1.0, 1.0)
    xyz = q[..., 1:]
    s2 = jnp.sum(xyz * xyz, -1)
    small = s2 < 1e-12
    s = jnp.sqrt(jnp.where(small, 1.0, s2))
    angle = 2.0 * jnp.arctan2(s, q[..., 0])
    scale = jnp.where(small, 2.0 / jnp.maximum(q[..., 0], _EPS), angle / s)
    return xyz * scale[..., None]


def quaternion_to_matrix(q: Float[Array, "*b 4"]) -> Float[Array, "*b 3 3"]:
    """Quaternion (w, x, y, z), normalised first -> rotation matrix."""
    q = q / jnp.sqrt(jnp.maximum(jnp.sum(q * q, -1, keepdims=True), _EPS))
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return jnp.stack(
        [
            jnp.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            jnp.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            jnp.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def rot6d_to_matrix(d6: Float[Array, "*b 6"]) -> Float[Array, "*b 3 3"]:
    """Continuous 6D representation (first two matrix columns) -> matrix by Gram-Schmidt."""
    a1, a2 = d6[..., 0:3], d6[..., 3:6]
    b1 = a1 / jnp.sqrt(jnp.maximum(jnp.sum(a1 * a1, -1, keepdims=True), _EPS))
    a2p = a2 - jnp.sum(b1 * a2, -1, keepdims=True) * b1
    b2 = a2p / jnp.sqrt(jnp.maximum(jnp.sum(a2p * a2p, -1, keepdims=True), _EPS))
    b3 = jnp.cross(b1, b2)
    return jnp.stack([b1, b2, b3], axis=-1)


def matrix_to_rot6d(R: Float[Array, "*b 3 3"]) -> Float[Array, "*b 6"]:
    """Matrix -> 6D: its first two columns concatenated."""
    return jnp.concatenate([R[..., :, 0], R[..., :, 1]], axis=-1)


def axis_angle_to_rot6d(aa: Float[Array, "*b 3"]) -> Float[Array, "*b 6"]:
    return matrix_to_rot6d(axis_angle_to_matrix(aa))


def rot6d_to_axis_angle(d6: Float[Array, "*b 6"]) -> Float[Array, "*b 3"]:
    return matrix_to_axis_angle(rot6d_to_matrix(d6))


def geodesic_angle(R1: Float[Array, "*b 3 3"], R2: Float[Array, "*b 3 3"]) -> Float[Array, "*b"]:
    """Angle (radians) of R1ᵀR2, clipped so arccos stays differentiable away from 0 and π."""
    tr = jnp.einsum("...ij,...ij->...", R1, R2)
    c = jnp.clip((tr - 1.0) * 0.5, -1.0 + 1e-7, 1.0 - 1e-7)
    return jnp.arccos(c)


def make_transform(R: Float[Array, "*b 3 3"], t: Float[Array, "*b 3"]) -> Float[Array, "*b 4 4"]:
    """Stack a rotation and translation into a homogeneous 4x4 transform."""
    top = jnp.concatenate([R, t[..., :, None]], axis=-1)
    bottom = jnp.broadcast_to(jnp.array([0.0, 0.0, 0.0, 1.0], R.dtype), top.shape[:-2] + (1, 4))
    return jnp.concatenate([top, bottom], axis=-2)
