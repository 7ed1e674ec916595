"""Stage 'detect': OpenPose BODY-18 keypoints of every video frame (paper Sec. 4: OpenPose), checked
for a person before the motion stage runs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp

from anchorhoi_jax.body.skinning import pose
from anchorhoi_jax.geometry.cameras import project
from anchorhoi_jax.pipeline.bodies import MotionBody, static_body_params
from anchorhoi_jax.pipeline.errors import InputError
from anchorhoi_jax.pipeline.static import motion_model, seed_items

__all__ = ["make_detect_stage_fn", "static_keypoints", "check_person"]


def static_keypoints(body: MotionBody, st: dict, K, T_cam_world) -> onp.ndarray:
    """(18, 2) pixels of the static instance's OpenPose-18 points in the video camera."""
    posed = jax.jit(pose)(motion_model(body, st), static_body_params(body, st))
    pts = posed.all_joints[jnp.asarray(body.openpose)]
    uv, _ = project(jnp.asarray(K), jnp.asarray(T_cam_world), pts)
    return onp.asarray(uv)


def check_person(conf: onp.ndarray, min_frames: float, seed: int) -> None:
    """InputError unless at least `min_frames` of the frames show a person (torso keypoints found)."""
    torso = conf[:, [1, 2, 5, 8, 11]]
    seen = (torso > 0).sum(1) >= 2
    if seen.mean() < min_frames:
        raise InputError(f"no person detected in the video (seed {seed}: {int(seen.sum())} of {len(seen)} frames "
                         f"show a person; need {min_frames:.0%}); use a video with one clearly visible person")


def make_detect_stage_fn(body_fn):
    """inputs: 'video', 'render' (cameras), 'static'. Section: 'detect'."""

    def detect_stage(ctx, inputs, cfg):
        frames = inputs["video"]["frames"]  # (S, L, H, W, 3) uint8
        S, L, H, W, _ = frames.shape
        ctx.start(S)
        if cfg.kind == "static":
            body = body_fn()
            kps = []
            for i, st in seed_items(inputs["static"]):
                k = static_keypoints(body, st, inputs["render"]["K"][i], inputs["render"]["T_cam_world"][i])
                kps.append(onp.broadcast_to(k, (L, 18, 2)))
            kp = onp.stack(kps).astype(onp.float32)
            conf = onp.ones((S, L, 18), onp.float32)
        else:
            from anchorhoi_jax.priors import detect as D

            if cfg.kind == "openpose":
                import torch

                det = D.OpenPoseDetector.from_pretrained(cfg.openpose_dir,
                                                         device="cuda" if torch.cuda.is_available() else "cpu")
            else:
                det = D.MediaPipePoseDetector()
            kp, conf = det(frames)  # (S, L, 18, 2), (S, L, 18): the detectors keep leading axes
            kp, conf = onp.asarray(kp, onp.float32), onp.asarray(conf, onp.float32)
            conf = onp.where(conf >= cfg.min_confidence, conf, 0.0).astype(onp.float32)
        for i in range(S):
            check_person(conf[i], cfg.min_person_frames, i)
            ctx.callback(i + 1, None, {"visible": float((conf[i] > 0).mean())})
        return {"keypoints": kp, "confidence": conf}

    return detect_stage
