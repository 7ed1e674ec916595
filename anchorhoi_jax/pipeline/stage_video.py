"""Stage 'video': the video prior animates each seed's render (paper Sec. 4, FramePack image-to-video),
or a user's video file replaces it (`anchorhoi animate --video FILE`)."""

from __future__ import annotations

import jax
import numpy as onp

from anchorhoi_jax.pipeline.errors import InputError

__all__ = ["video_stage", "build_video_prior"]


def build_video_prior(cfg, video_file: str | None):
    """The prior object for `cfg.kind` (priors/video.py). Missing weights raise MissingWeightsError."""
    from anchorhoi_jax.priors import video as V

    if cfg.kind == "file":
        if not video_file:
            raise InputError("video.kind=file needs a video: pass --video FILE")
        return V.VideoFilePrior(video_file)
    if cfg.kind == "tiny":
        return None  # built per seed (its random weights are seeded from the seed's key)
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return V.FramePackPrior.from_pretrained(cfg.framepack_dir, cfg.hunyuan_dir, cfg.siglip_dir, device=device,
                                            cpu_offload=cfg.cpu_offload)


def video_stage(ctx, inputs, cfg):
    """inputs: 'render' (image per seed), 'prompt', 'video_file' (path or ''). Section: 'video'."""
    from anchorhoi_jax.priors.video import make_tiny_framepack

    images = inputs["render"]["image"]
    prior = build_video_prior(cfg, inputs["video_file"] or None)
    ctx.start(len(images))
    frames, fps = [], None
    for i, image in enumerate(images):
        # torch generators are seeded from integers drawn from the JAX key (STYLE.md).
        seed = int(jax.random.randint(jax.random.fold_in(ctx.key, i), (), 0, 2**31 - 1))
        p = make_tiny_framepack(seed, fps=cfg.tiny_fps) if cfg.kind == "tiny" else prior
        try:
            clip = p.generate(image, inputs["prompt"], seconds=None if cfg.kind == "file" else cfg.seconds,
                              height=image.shape[0], width=image.shape[1],
                              num_inference_steps=cfg.num_inference_steps, guidance_scale=cfg.guidance_scale, seed=seed)
        except ValueError as e:  # unreadable / wrongly sized user video
            raise InputError(" ".join(str(e).split())) from None
        if clip.num_frames < 3:
            raise InputError(f"the video has {clip.num_frames} frames; the motion stage needs at least 3")
        frames.append(onp.round(onp.clip(clip.frames, 0, 1) * 255).astype(onp.uint8))
        fps = clip.fps
        ctx.callback(i + 1, None, {})
    return {"frames": onp.stack(frames), "fps": onp.float32(fps)}
