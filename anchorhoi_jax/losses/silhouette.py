"""Silhouette part of L_reg (Eq. 4): the model's projection against per-frame instance masks.

The paper's L_reg includes "the mean squared error between the rendered model frame and video
frame". With per-frame human and object instance masks (Grounded-SAM in the pipeline,
priors/segment.py) the silhouette part of that comparison can be written without rasterising the
meshes every Adam step, as a two-sided chamfer between the *projected surface samples* of the
model (the skinned body vertices and the object surface points the motion stage already poses)
and the masks, each side against a table computed once per mask on the host:

* inside (model → mask): every projected point must fall inside the mask. The table is the
  Euclidean distance transform of the mask's complement (pixels to the nearest mask pixel, 0 inside),
  sampled bilinearly. Body points hidden behind the object and object points hidden behind the
  hands are inside the *union* of both masks but not inside their own instance mask, so both point
  sets are tested against the union (occlusion-safe without a depth test).
* coverage (mask → model): every mask pixel must have a projected point of its own instance
  nearby: min_j ‖s − u_j‖ over points for a fixed set of sampled boundary pixels s per frame. A
  visible mask pixel always lies in the projection of the full instance, so this side needs no
  occlusion handling. It stops the trivial solution of the inside side (a model that shrinks or
  moves away until every point falls inside).

Both sides are hinged: only distances beyond a tolerance cost (relu(d − τ)²). Masks are imperfect
by about a pixel at the boundary (segmentation), and the projected points are a sample of the
surface spaced a few pixels apart, so an un-hinged chamfer is biased at the true pose: it would
pull the body towards the camera (to cover the boundary between samples) or away from it (to put
every point strictly inside an eroded mask); a centimetre-scale depth bias is exactly the error
the keypoints cannot correct. τ_inside covers the mask imperfection, τ_coverage the sample
spacing (per frame: spacing in metres · focal length / depth). Values are in normalised pixels
(pixels / max(image width, height)), like Eq. 5, so weights do not depend on the resolution.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp
from flax import struct
from jaxtyping import Array, Float

__all__ = ["SilhouetteTargets", "silhouette_targets", "sample_distance", "silhouette_inside", "silhouette_coverage"]


@struct.dataclass
class SilhouetteTargets:
    """Per-frame tables of the masks (host-built by `silhouette_targets`, constant during tracking)."""

    outside_distance: Float[Array, "L h w"]  # pixels to the nearest pixel of human ∪ object, 0 inside (subsampled)
    human_samples: Float[Array, "L M 2"]  # pixel coordinates (u, v) of sampled human-mask boundary pixels
    human_weight: Float[Array, "L M"]  # 1 for a sample, 0 for padding (frames with smaller masks)
    object_samples: Float[Array, "L M 2"]
    object_weight: Float[Array, "L M"]
    frame_weight: Float[Array, "L"]  # 0 for frames without any mask (inside side off there)
    stride: int = struct.field(pytree_node=False, default=1)  # outside_distance cell size in pixels


def _boundary(mask: onp.ndarray) -> onp.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (image border counts as outside)."""
    p = onp.pad(mask, 1, constant_values=False)
    inner = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return mask & ~inner


def _spread(idx: onp.ndarray, m: int) -> onp.ndarray:
    """m of the indices, evenly spaced through the (row-major) list: deterministic, covers the contour."""
    if len(idx) <= m:
        return idx
    return idx[onp.linspace(0, len(idx) - 1, m).round().astype(int)]


def silhouette_targets(human_masks, object_masks, *, num_samples: int = 128, stride: int = 2) -> SilhouetteTargets:
    """Host precomputation from boolean instance masks (L, H, W) of the human and the object.

    `num_samples`: boundary pixels per mask and frame for the coverage side; `stride`: the distance
    table keeps every stride-th pixel centre (its memory is L·H·W/stride² floats)."""
    from scipy.ndimage import distance_transform_edt

    hm = onp.asarray(human_masks)
    om = onp.asarray(object_masks)
    if hm.ndim != 3 or om.shape != hm.shape:
        raise ValueError(f"silhouette masks must be (L, H, W) each and equal in shape, got human {hm.shape} and object {om.shape}")
    if num_samples < 1 or stride < 1:
        raise ValueError(f"silhouette_targets: num_samples and stride must be >= 1, got {num_samples} and {stride}")
    hm, om = hm > 0.5, om > 0.5
    L, H, W = hm.shape
    h, w = -(-H // stride), -(-W // stride)
    dist = onp.zeros((L, h, w), onp.float32)
    samples = {"h": onp.zeros((L, num_samples, 2), onp.float32), "o": onp.zeros((L, num_samples, 2), onp.float32)}
    weight = {"h": onp.zeros((L, num_samples), onp.float32), "o": onp.zeros((L, num_samples), onp.float32)}
    frame_w = onp.zeros((L,), onp.float32)
    for i in range(L):
        union = hm[i] | om[i]
        if union.any():
            frame_w[i] = 1.0
            dist[i] = distance_transform_edt(~union)[::stride, ::stride]
        for k, m in (("h", hm[i]), ("o", om[i])):
            ys, xs = onp.nonzero(_boundary(m))
            sel = _spread(onp.arange(len(ys)), num_samples)
            samples[k][i, : len(sel)] = onp.stack([xs[sel] + 0.5, ys[sel] + 0.5], -1)
            weight[k][i, : len(sel)] = 1.0
    return SilhouetteTargets(
        outside_distance=jnp.asarray(dist), human_samples=jnp.asarray(samples["h"]), human_weight=jnp.asarray(weight["h"]),
        object_samples=jnp.asarray(samples["o"]), object_weight=jnp.asarray(weight["o"]),
        frame_weight=jnp.asarray(frame_w), stride=int(stride),
    )


def sample_distance(table: Float[Array, "L h w"], frame, uv: Float[Array, "N 2"], stride: int) -> Float[Array, "N"]:
    """Bilinear sample of frame `frame`'s distance table at pixel coordinates uv (full resolution).

    One flat gather (frame index folded into the address), so under a vmap over frames XLA gathers
    N values per frame instead of materialising each frame's table. Points outside the image get
    the border value plus their distance to the image (the table continues growing outward)."""
    L, h, w = table.shape
    g = (uv - 0.5) / stride  # cell coordinates: cell j is the pixel with index j·stride, centre j·stride + 0.5
    gc = jnp.clip(g, 0.0, jnp.asarray([[w - 1, h - 1]], uv.dtype))
    beyond = jnp.sqrt(jnp.sum((g - gc) ** 2, -1) + 1e-12) * stride
    x0 = jnp.clip(jnp.floor(gc[:, 0]), 0, max(w - 2, 0)).astype(jnp.int32)
    y0 = jnp.clip(jnp.floor(gc[:, 1]), 0, max(h - 2, 0)).astype(jnp.int32)
    fx, fy = gc[:, 0] - x0, gc[:, 1] - y0
    x1, y1 = jnp.minimum(x0 + 1, w - 1), jnp.minimum(y0 + 1, h - 1)
    flat = table.reshape(-1)
    base = jnp.asarray(frame, jnp.int32) * (h * w)
    at = lambda y, x: flat[base + y * w + x]  # noqa: E731
    v = (at(y0, x0) * (1 - fx) * (1 - fy) + at(y0, x1) * fx * (1 - fy) + at(y1, x0) * (1 - fx) * fy
         + at(y1, x1) * fx * fy)
    return v + beyond


def silhouette_inside(
    uv: Float[Array, "N 2"], point_weight: Float[Array, "N"], table: Float[Array, "L h w"], frame, stride: int,
    norm, tolerance_px,
) -> tuple[Float[Array, ""], dict]:
    """Mean over points of relu(d − τ)², d = pixel distance of the projected point to the mask (model → mask)."""
    with jax.named_scope("loss.silhouette_inside"):
        d = sample_distance(table, frame, uv, stride)
        e = jax.nn.relu(d - tolerance_px) / norm
        value = jnp.sum(point_weight * e**2) / jnp.maximum(jnp.sum(point_weight), 1.0)
        return value, {"distance_px": d}


def silhouette_coverage(
    uv: Float[Array, "N 2"], point_weight: Float[Array, "N"], samples: Float[Array, "M 2"], sample_weight: Float[Array, "M"],
    norm, tolerance_px,
) -> tuple[Float[Array, ""], dict]:
    """Mean over mask samples of relu(min_j ‖s − u_j‖ − τ)² (mask → model); points with weight 0 never count."""
    with jax.named_scope("loss.silhouette_coverage"):
        d2 = jnp.sum((samples[:, None, :] - uv[None, :, :]) ** 2, -1)  # (M, N)
        d2 = jnp.where(point_weight[None] > 0, d2, jnp.inf)
        d = jnp.sqrt(jnp.min(d2, 1) + 1e-12)
        d = jnp.where(jnp.isfinite(d), d, 0.0)
        e = jax.nn.relu(d - tolerance_px) / norm
        value = jnp.sum(sample_weight * e**2) / jnp.maximum(jnp.sum(sample_weight), 1.0)
        return value, {"distance_px": d}
