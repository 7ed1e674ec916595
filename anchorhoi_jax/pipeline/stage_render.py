"""Stage 'render': the static HOI seen by the video camera (the image the video prior animates)."""

from __future__ import annotations

import numpy as onp

from anchorhoi_jax.pipeline.bodies import MotionBody
from anchorhoi_jax.pipeline.render import framing_camera, render_scene, scene_arrays
from anchorhoi_jax.pipeline.static import human_colors, object_colors, object_world, posed_human, seed_items

__all__ = ["make_render_stage_fn"]


def make_render_stage_fn(body_fn):
    """`body_fn() -> MotionBody` (loaded lazily, once). Stage inputs: 'static'; section 'render'."""

    def render_stage(ctx, inputs, cfg):
        body: MotionBody = body_fn()
        images, Ks, Ts = [], [], []
        for _, st in seed_items(inputs["static"]):
            hv = posed_human(body, st)
            ov = object_world(st)
            K, T = framing_camera(onp.concatenate([hv, ov]), height=cfg.height, width=cfg.width, fov_deg=cfg.fov_deg,
                                  elevation_deg=cfg.elevation_deg, azimuth_deg=cfg.azimuth_deg, margin=cfg.margin)
            faces = onp.asarray(body.model.faces)
            v, f, c = scene_arrays(hv, faces, human_colors(st, hv.shape[0]), ov, st["object_faces"], object_colors(st))
            images.append(onp.asarray(render_scene(v, f, c, K, T, height=cfg.height, width=cfg.width)))
            Ks.append(K)
            Ts.append(T)
        return {"image": onp.stack(images).astype(onp.float32), "K": onp.stack(Ks), "T_cam_world": onp.stack(Ts)}

    return render_stage
