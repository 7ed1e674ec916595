"""Differentiable triangle-mesh rasterizer in pure JAX (hard mode and a DIB-R-style soft mode).

Two passes, so memory stays O(H·W) whatever the mesh size:

1. *Candidate pass* (no gradient). Faces are projected, culled (behind the near plane, optionally
   back-facing), sorted nearest first and expanded into (face, pixel) fragments over their pixel
   bounding boxes (grown by the soft margin) in a fixed-size buffer; a scatter-min per pixel keeps one
   face: the nearest face covering the pixel centre, or, for an uncovered pixel (soft mode), the face
   nearest to it on screen. Cost is O(fragments), independent of how the faces are sized.
2. *Shading pass* (differentiable w.r.t. vertex positions, colours and camera). The selected face is
   re-evaluated from the differentiable projected vertices:
   - covered pixels: perspective-correct barycentric colour, depth and normal, alpha = 1 (gradients
     w.r.t. positions through the barycentrics);
   - soft mode, uncovered pixels within 3·sigma of the mesh (Chen et al. 2019, DIB-R): alpha =
     exp(−d²/sigma²), d the pixel distance to the nearest projected face, coloured by that face at its
     closest point and blended over the background. alpha is continuous across the silhouette (d → 0
     gives 1), so silhouettes pass gradients to the vertex positions;
   - hard mode: uncovered pixels are background (binary silhouettes; still differentiable w.r.t.
     vertex colours and, inside, positions).
   Occlusion boundaries *inside* the silhouette are hard in both modes.

Usage (one view; `rasterize_views` vmaps a batch of cameras):

    out = rasterize(vertices, faces, vertex_colors, camera, mode="soft", sigma=1.0, background=1.0)
    out["rgb"] (H, W, C), out["alpha"] (H, W), out["depth"] (H, W, camera z, 0 on background),
    out["normal"] (H, W, 3, world frame, unit where covered), out["face_ids"] (H, W, −1 = none)

All arguments are arrays or static Python values, so the function vmaps over seeds and views.
Faces wound counter-clockwise seen from outside (outward normals) are front-facing.
"""

from __future__ import annotations


import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from anchorhoi_jax.geometry.cameras import Camera, pixel_centers, world_to_camera

_BIG = 1e10


def vertex_normals(vertices: Float[Array, "V 3"], faces: Int[Array, "F 3"]) -> Float[Array, "V 3"]:
    """Area-weighted unit vertex normals (outward for counter-clockwise faces)."""
    tri = vertices[faces]
    n = jnp.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # |n| = 2·area: area weighting for free
    vn = jnp.zeros_like(vertices).at[faces.reshape(-1)].add(jnp.repeat(n, 3, axis=0))
    return vn * jax.lax.rsqrt(jnp.sum(vn * vn, -1, keepdims=True) + 1e-20)


def _cross2(a, b):
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _screen_barycentrics(p, tri):
    """Screen-space barycentrics of points p (..., 2) in triangles tri (..., 3, 2); also 2·signed area."""
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    area2 = _cross2(b - a, c - a)
    safe = jnp.where(jnp.abs(area2) < 1e-12, 1e-12, area2)
    b0 = _cross2(b - p, c - p) / safe
    b1 = _cross2(c - p, a - p) / safe
    b2 = 1.0 - b0 - b1
    return jnp.stack([b0, b1, b2], -1), area2


def _segment_distance(p, a, b):
    ab = b - a
    t = jnp.clip(jnp.sum((p - a) * ab, -1) / jnp.maximum(jnp.sum(ab * ab, -1), 1e-12), 0.0, 1.0)
    q = a + t[..., None] * ab
    # sqrt(x + eps): finite gradient where the pixel centre lies exactly on an edge.
    return jnp.sqrt(jnp.sum((p - q) ** 2, -1) + 1e-12)


def _signed_distance(p, tri, bary):
    """Signed pixel distance from p to the triangle boundary (inside > 0)."""
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    d = jnp.minimum(jnp.minimum(_segment_distance(p, a, b), _segment_distance(p, b, c)), _segment_distance(p, c, a))
    inside = jnp.all(bary >= 0.0, -1)
    return jnp.where(inside, d, -d)


def _perspective_correct(bary_screen, z):
    """Perspective-correct barycentrics and depth from screen barycentrics and vertex depths."""
    w = bary_screen / z
    s = jnp.sum(w, -1, keepdims=True)
    s = jnp.where(jnp.abs(s) < 1e-12, 1e-12, s)
    return w / s, 1.0 / s[..., 0]


def _project(vertices, camera: Camera, near: float):
    p = world_to_camera(camera.T_cam_world, vertices)
    z = p[..., 2]
    zs = jnp.maximum(z, near)
    K = camera.K
    uv = jnp.stack([K[0, 0] * p[..., 0] / zs + K[0, 2], K[1, 1] * p[..., 1] / zs + K[1, 2]], -1)
    return uv, z


def _candidates(uv, z, vertices, faces, camera: Camera, *, mode, margin, max_fragments, near, far, cull_backfaces):
    """Non-differentiable pass: one face per pixel, (H, W) int32, −1 = none; and the overflow count.

    Every surviving face is expanded into the pixel centres of its (margin-grown) bounding box, laid
    out back to back in a fixed buffer of `max_fragments` (face, pixel) fragments; this load-balances
    tiny and huge faces alike. Faces are laid out nearest first, so if the buffer overflows only the
    farthest faces lose fragments. Per pixel the smallest key wins: covering fragments rank by depth,
    before (soft mode) uncovered ones ranked by their screen distance to the face.
    """
    H, W = camera.height, camera.width
    F = faces.shape[0]
    C = max_fragments
    tri_uv = uv[faces]  # (F, 3, 2)
    tri_z = z[faces]  # (F, 3)
    valid = jnp.all(tri_z > near, -1) & jnp.all(tri_z < far, -1)
    area2 = _cross2(tri_uv[:, 1] - tri_uv[:, 0], tri_uv[:, 2] - tri_uv[:, 0])
    valid &= jnp.abs(area2) > 1e-10
    if cull_backfaces:
        tri_w = vertices[faces]
        n = jnp.cross(tri_w[:, 1] - tri_w[:, 0], tri_w[:, 2] - tri_w[:, 0])
        valid &= jnp.sum(n * (camera.center_world[None] - tri_w[:, 0]), -1) > 0.0
    # Integer pixel-centre box: centres u + 0.5 within [min − margin, max + margin], clipped to the image.
    lo = jnp.maximum(jnp.ceil(jnp.min(tri_uv, 1) - margin - 0.5), 0.0)
    hi = jnp.minimum(jnp.floor(jnp.max(tri_uv, 1) + margin - 0.5), jnp.array([[W - 1, H - 1]], uv.dtype))
    ext = jnp.where(valid[:, None], jnp.maximum(hi - lo + 1.0, 0.0), 0.0)
    count = jnp.minimum(ext[:, 0] * ext[:, 1], float(C)).astype(jnp.int32)

    zmin = jnp.where(count > 0, jnp.min(tri_z, -1), jnp.inf)
    order = jnp.argsort(zmin)  # nearest faces first
    count_s = count[order]
    # Prefix sum in float32, clipped at C: exact below C (C < 2^24 is checked), and unlike an int32
    # cumsum it cannot wrap around when many faces cover the whole image.
    ends = jnp.minimum(jnp.cumsum(count_s.astype(jnp.float32)), float(C)).astype(jnp.int32)
    starts = jnp.concatenate([jnp.zeros((1,), jnp.int32), ends[:-1]])
    count_s = ends - starts
    overflow = jnp.maximum(jnp.sum(count_s.astype(jnp.float32)) - C, 0.0)

    slot = jnp.arange(C, dtype=jnp.int32)
    j = jnp.minimum(jnp.searchsorted(ends, slot, side="right"), F - 1).astype(jnp.int32)
    used = slot < ends[-1]
    local = slot - starts[j]
    f = order[j].astype(jnp.int32)
    bw = jnp.maximum(ext[f, 0].astype(jnp.int32), 1)
    px = lo[f, 0].astype(jnp.int32) + local % bw
    py = lo[f, 1].astype(jnp.int32) + local // bw
    p = jnp.stack([px.astype(uv.dtype) + 0.5, py.astype(uv.dtype) + 0.5], -1)  # (C, 2)
    tuv = tri_uv[f]
    bary, _ = _screen_barycentrics(p, tuv)
    inside = used & jnp.all(bary >= 0.0, -1)
    _, zpix = _perspective_correct(bary, tri_z[f])
    if mode == "hard":
        ok = inside
        key = zpix
    else:
        dist = -_signed_distance(p, tuv, bary)  # > 0 outside
        ok = used & (inside | (dist < margin))
        # Covering fragments (depth ≤ far) always beat uncovered ones (far + distance).
        key = jnp.where(inside, zpix, far + dist)
    pix = jnp.where(ok, py * W + px, H * W)
    key = jnp.where(ok, key, jnp.inf)
    best = jnp.full((H * W + 1,), jnp.inf, key.dtype).at[pix].min(key)
    win = ok & (key <= best[pix])
    fid = jnp.full((H * W + 1,), -1, jnp.int32).at[jnp.where(win, pix, H * W)].max(f)
    return fid[: H * W].reshape(H, W), overflow


def rasterize(
    vertices: Float[Array, "V 3"],
    faces: Int[Array, "F 3"],
    vertex_colors: Float[Array, "V C"],
    camera: Camera,
    *,
    mode: str = "soft",
    sigma: float = 1.0,
    background=0.0,
    near: float = 0.01,
    far: float = 100.0,
    cull_backfaces: bool = True,
    max_fragments: int | None = None,
) -> dict[str, Array]:
    """Render one view of a triangle mesh with per-vertex colours.

    Args:
        vertices: (V, 3) world positions (metres).
        faces: (F, 3) int vertex indices, counter-clockwise seen from outside.
        vertex_colors: (V, C) per-vertex attributes (C = 3 for RGB), linear.
        camera: one view (OpenCV pinhole); `camera.height`, `camera.width` set the image size.
        mode: "soft" (differentiable silhouettes) or "hard" (binary coverage, for evaluation).
        sigma: soft silhouette width in pixels: alpha = exp(−d²/sigma²) at distance d outside the mesh.
            Must be a Python float (it sets the static fragment margin 3·sigma).
        background: scalar or (C,) colour of uncovered pixels.
        near, far: depth range (metres); faces with a vertex outside it are culled.
        cull_backfaces: drop faces whose outward normal points away from the camera (closed meshes).
        max_fragments: capacity of the (face, pixel) fragment buffer of the candidate pass (static).
            Default: hard 4·H·W + 2·F, soft 4·H·W + F·⌈2·margin + 1⌉²; `overflow_fragments` in the
            output counts fragments (of the farthest faces) that did not fit.

    Returns:
        dict with rgb (H, W, C), alpha (H, W), depth (H, W) camera z (0 where empty), normal (H, W, 3)
        world-frame unit normals of the covering face (0 where empty), face_ids (H, W) int32 (the face
        shading the pixel, −1 = none), overflow_fragments () float.
    """
    if mode not in ("soft", "hard"):
        raise ValueError(f"rasterize: mode must be 'soft' or 'hard', got {mode!r}")
    if vertices.ndim != 2 or vertices.shape[-1] != 3:
        raise ValueError(f"rasterize: vertices must be (V, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"rasterize: faces must be (F, 3), got {faces.shape}")
    if vertex_colors.ndim != 2 or vertex_colors.shape[0] != vertices.shape[0]:
        raise ValueError(
            f"rasterize: vertex_colors must be (V, C) with V = {vertices.shape[0]}, got {vertex_colors.shape}"
        )
    if camera.K.ndim != 2:
        raise ValueError("rasterize: camera must be a single view; use rasterize_views for a batch")
    if not isinstance(sigma, (int, float)) or sigma <= 0:
        raise ValueError(f"rasterize: sigma must be a positive Python float (pixels), got {sigma!r}")
    # exp(−d²/sigma²) < 1.3e−4 beyond 3 sigma: fragments farther than that are not generated.
    margin = 0.0 if mode == "hard" else 3.0 * float(sigma)
    H, W = camera.height, camera.width
    F = faces.shape[0]
    if max_fragments is None:
        max_fragments = 4 * H * W + 2 * F if mode == "hard" else 4 * H * W + F * int(math.ceil(2 * margin + 1)) ** 2
    if not 0 < max_fragments < 2**24:
        raise ValueError(f"rasterize: max_fragments must be in (0, 2^24), got {max_fragments}")
    faces = faces.astype(jnp.int32)

    with jax.named_scope("rasterize"):
        uv, z = _project(vertices, camera, near)
        fid, overflow = _candidates(
            jax.lax.stop_gradient(uv), jax.lax.stop_gradient(z), jax.lax.stop_gradient(vertices), faces, camera,
            mode=mode, margin=margin, max_fragments=max_fragments, near=near, far=far, cull_backfaces=cull_backfaces,
        )
        has = fid >= 0  # (H, W)
        vid = faces[jnp.where(has, fid, 0)]  # (H, W, 3)
        tri_uv = uv[vid]  # (H, W, 3, 2)
        tri_z = jnp.maximum(z[vid], near)
        pix = pixel_centers(H, W, uv.dtype)
        bary_s, _ = _screen_barycentrics(pix, tri_uv)
        covered = has & jnp.all(bary_s >= 0.0, -1)
        # Uncovered (soft fringe) pixels take the face's colour at the closest point: clamped barycentrics.
        bc = jnp.clip(bary_s, 0.0, 1.0)
        bc = bc / jnp.maximum(jnp.sum(bc, -1, keepdims=True), 1e-12)
        bary, depth = _perspective_correct(jnp.where(covered[..., None], bary_s, bc), tri_z)
        col = jnp.einsum("hwj,hwjc->hwc", bary, vertex_colors[vid])
        nrm = jnp.einsum("hwj,hwjc->hwc", bary, vertex_normals(vertices, faces)[vid])
        nrm = nrm * jax.lax.rsqrt(jnp.sum(nrm * nrm, -1, keepdims=True) + 1e-20)
        if mode == "hard":
            alpha = covered.astype(uv.dtype)
        else:
            d = _segment_free_distance(pix, tri_uv)
            alpha = jnp.where(covered, 1.0, jnp.where(has, jnp.exp(-(d * d) / (sigma * sigma)), 0.0))
        bg = jnp.broadcast_to(jnp.asarray(background, vertex_colors.dtype), vertex_colors.shape[-1:])
        rgb = alpha[..., None] * col + (1.0 - alpha[..., None]) * bg[None, None]
        depth = jnp.where(covered, depth, 0.0)
        nrm = jnp.where(covered[..., None], nrm, 0.0)
    return dict(rgb=rgb, alpha=alpha, depth=depth, normal=nrm, face_ids=fid, overflow_fragments=overflow)


def _segment_free_distance(p, tri):
    """Unsigned pixel distance from p to the triangle's boundary (used outside it, where it is smooth)."""
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    return jnp.minimum(jnp.minimum(_segment_distance(p, a, b), _segment_distance(p, b, c)), _segment_distance(p, c, a))


def rasterize_views(vertices, faces, vertex_colors, cameras: Camera, **kwargs) -> dict[str, Array]:
    """`rasterize` over a batch of cameras (leading view axis on K and T_cam_world); same keywords."""
    if cameras.K.ndim != 3:
        raise ValueError("rasterize_views: cameras must carry a leading view axis (K of shape (N, 3, 3))")
    return jax.vmap(lambda c: rasterize(vertices, faces, vertex_colors, c, **kwargs))(cameras)


def supersampled_camera(camera: Camera, factor: int) -> Camera:
    """The same view at `factor`× the resolution (anti-aliased ground truth: render, then `downsample`)."""
    S = jnp.diag(jnp.array([factor, factor, 1.0], camera.K.dtype))
    return Camera(K=S @ camera.K, T_cam_world=camera.T_cam_world, height=camera.height * factor,
                  width=camera.width * factor)


def downsample(image: Float[Array, "*b H W C"], factor: int) -> Float[Array, "*b h w C"]:
    """Box-filter an image by an integer factor."""
    *b, H, W, C = image.shape
    return image.reshape(*b, H // factor, factor, W // factor, factor, C).mean(axis=(-4, -2))


__all__ = ["rasterize", "rasterize_views", "vertex_normals", "supersampled_camera", "downsample"]
