"""A triangle mesh (e.g. the posed human) and a NeRF (e.g. the object) in one image, with occlusion.

The mesh is rasterized first; its covered pixels give a per-ray depth limit, and NeRF samples whose
camera depth lies behind it are dropped (their density is zeroed before compositing), so the field
cannot show through the body while the parts of the field in front of the mesh still cover it. The
result is the "over" composite of premultiplied layers:
    C = C_nerf + (1 − A_nerf)·(C_mesh + (1 − A_mesh)·background),  A = A_nerf + (1 − A_nerf)·A_mesh.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from anchorhoi_jax.geometry.cameras import Camera
from anchorhoi_jax.nerf import field as nerf_field
from anchorhoi_jax.nerf.shading import shade
from anchorhoi_jax.render.raster import rasterize
from anchorhoi_jax.render.volume import RenderConfig, render_nerf


def render_mesh_and_nerf(
    params,
    cfg: nerf_field.FieldConfig,
    vertices: Float[Array, "V 3"],
    faces: Int[Array, "F 3"],
    vertex_colors: Float[Array, "V 3"],
    camera: Camera,
    key,
    *,
    render_cfg: RenderConfig = RenderConfig(),
    raster_mode: str = "soft",
    sigma: float = 1.0,
    background=0.0,
    light_dir=None,
    ambient=0.1,
    chunk: int | None = None,
) -> dict[str, Array]:
    """Render one view of mesh + field.

    The mesh is shaded like the field (`render_cfg.shading`, using the mesh normal map) so both
    layers are consistent under lambertian / textureless shading.

    Returns:
        dict with rgb (H, W, 3), alpha, depth (expected camera depth), normal, and the layers:
        mesh_rgb (premultiplied), mesh_alpha, nerf_rgb (premultiplied), nerf_alpha.
    """
    mesh = rasterize(vertices, faces, vertex_colors, camera, mode=raster_mode, sigma=sigma, background=0.0)
    covered = mesh["depth"] > 0.0
    limit = jnp.where(covered, mesh["depth"], jnp.inf)
    H, W = camera.height, camera.width
    if render_cfg.shading == "albedo":
        mesh_col = mesh["rgb"]
    else:
        # rgb = alpha · colour with a black background; shade the colour, then premultiply again.
        a = mesh["alpha"][..., None]
        col = mesh["rgb"] / jnp.maximum(a, 1e-6)
        mesh_col = a * shade(col.reshape(-1, 3), mesh["normal"].reshape(-1, 3), light_dir, mode=render_cfg.shading,
                             ambient=ambient).reshape(H, W, 3)
    nerf = render_nerf(params, cfg, camera, key, render_cfg=render_cfg, background=0.0, light_dir=light_dir,
                       ambient=ambient, depth_limit=limit, chunk=chunk)
    an = nerf["alpha"][..., None]
    am = mesh["alpha"][..., None]
    bg = jnp.broadcast_to(jnp.asarray(background, mesh_col.dtype), mesh_col.shape)
    rgb = nerf["rgb"] + (1.0 - an) * (mesh_col + (1.0 - am) * bg)
    alpha = nerf["alpha"] + (1.0 - nerf["alpha"]) * mesh["alpha"]
    depth = nerf["depth"] + (1.0 - nerf["alpha"]) * mesh["alpha"] * mesh["depth"]
    normal = nerf["normal"] + (1.0 - an) * am * mesh["normal"]
    return dict(rgb=rgb, alpha=alpha, depth=depth, normal=normal, mesh_rgb=mesh_col, mesh_alpha=mesh["alpha"],
                nerf_rgb=nerf["rgb"], nerf_alpha=nerf["alpha"])


__all__ = ["render_mesh_and_nerf"]
