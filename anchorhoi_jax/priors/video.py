"""Video priors: FramePack image-to-video (paper Sec. 4, Zhang and Agrawala 2025) and video files.

Both return a `VideoClip` (frames (L, H, W, 3) float32 in [0, 1], fps), the input of the motion
stage, which tracks the generated interaction video (paper Eq. 4-6) from a render of the static
composition.

* `FramePackPrior`: diffusers' `HunyuanVideoFramepackPipeline` (image + text -> L frames; 5 s at
  FramePack's native 30 fps by default). Weights: transformer 'framepack', VAE/text encoders
  'hunyuanvideo-community', SigLIP image encoder 'flux-redux-siglip' (see `manifest`).
* `VideoFilePrior` / `read_video`: any mp4 (imageio + imageio-ffmpeg) or folder of frames, so users
  can bring videos from any video model; validated (missing, unreadable, empty, size mismatch ->
  one-line errors).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as onp
import torch

from anchorhoi_jax.priors.detect import as_uint8_images
from anchorhoi_jax.priors.manifest import resolve_weights

__all__ = ["VideoClip", "read_video", "write_video", "VideoFilePrior", "FramePackPrior", "make_tiny_framepack",
           "FRAME_SUFFIXES"]

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclasses.dataclass(frozen=True)
class VideoClip:
    """frames (L, H, W, 3) float32 in [0, 1]; fps frames per second."""

    frames: onp.ndarray
    fps: float

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    def to_jax(self):
        import jax.numpy as jnp

        return jnp.asarray(self.frames)


def _check_size(name: str, shape, expected_hw) -> None:
    if expected_hw is not None and tuple(shape[:2]) != tuple(expected_hw):
        raise ValueError(f"video prior: {name} is {shape[1]}x{shape[0]} (WxH), expected {expected_hw[1]}x{expected_hw[0]}")


def read_video(path, *, expected_size: tuple[int, int] | None = None, fps: float | None = None,
               max_frames: int | None = None) -> VideoClip:
    """Read an mp4 (or any ffmpeg-readable file) or a folder of frames (sorted by name).

    Args:
      expected_size: (H, W) every frame must have, or None to take the first frame's size.
      fps: frame rate for frame folders (default 30) or to override the file's metadata.
      max_frames: keep at most this many leading frames.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"video prior: {p} does not exist")
    frames: list[onp.ndarray] = []
    if p.is_dir():
        import imageio.v3 as iio

        files = sorted(f for f in p.iterdir() if f.suffix.lower() in FRAME_SUFFIXES)
        if not files:
            raise ValueError(f"video prior: {p} has no frames ({'/'.join(FRAME_SUFFIXES)} files)")
        for f in files[:max_frames]:
            try:
                im = onp.asarray(iio.imread(f))
            except Exception as e:  # noqa: BLE001
                raise ValueError(f"video prior: cannot read frame {f}: {type(e).__name__}") from None
            im = im[..., :3] if im.ndim == 3 else onp.repeat(im[..., None], 3, -1)
            _check_size(f"frame {f.name}", im.shape, expected_size or (frames[0].shape[:2] if frames else None))
            frames.append(im)
        rate = 30.0 if fps is None else float(fps)
    else:
        import imageio.v2 as iio2

        try:
            reader = iio2.get_reader(str(p), format="ffmpeg")
            meta = reader.get_meta_data()
            for i, im in enumerate(reader):
                if max_frames is not None and i >= max_frames:
                    break
                im = onp.asarray(im)[..., :3]
                _check_size(f"frame {i} of {p.name}", im.shape, expected_size or (frames[0].shape[:2] if frames else None))
                frames.append(im)
            reader.close()
        except ValueError as e:
            if str(e).startswith("video prior:"):
                raise
            raise ValueError(f"video prior: cannot read {p}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"video prior: cannot read {p}: {type(e).__name__}") from None
        if not frames:
            raise ValueError(f"video prior: {p} has no frames")
        rate = float(fps if fps is not None else meta.get("fps", 30.0))
    arr = onp.stack(frames)
    arr = arr.astype(onp.float32) / (65535.0 if arr.dtype == onp.uint16 else 255.0)
    return VideoClip(frames=arr, fps=rate)


def write_video(path, clip: VideoClip, *, quality: int = 8) -> Path:
    """Write an H.264 mp4 (CONVENTIONS.md files) with imageio-ffmpeg."""
    import imageio.v2 as iio2

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with iio2.get_writer(str(p), format="ffmpeg", fps=clip.fps, codec="libx264", quality=quality,
                         macro_block_size=1) as w:
        for f in as_uint8_images(clip.frames):
            w.append_data(f)
    return p


class VideoFilePrior:
    """A "video prior" backed by a file: the same `generate` call as FramePack, returning that video."""

    def __init__(self, path, *, fps: float | None = None):
        self.path = Path(path)
        self.fps = fps

    def generate(self, image=None, prompt: str | None = None, *, height: int | None = None, width: int | None = None,
                 seconds: float | None = None, **_: Any) -> VideoClip:
        expected = (height, width) if height is not None and width is not None else None
        if expected is None and image is not None:
            expected = tuple(as_uint8_images(image).shape[1:3])
        clip = read_video(self.path, expected_size=expected, fps=self.fps)
        if seconds is not None:
            clip = VideoClip(clip.frames[: max(1, int(round(seconds * clip.fps)))], clip.fps)
        return clip


class FramePackPrior:
    """FramePack image-to-video through diffusers' HunyuanVideoFramepackPipeline."""

    def __init__(self, pipe, *, fps: float = 30.0, defaults: dict[str, Any] | None = None):
        self.pipe = pipe
        self.fps = fps
        self.defaults = dict(defaults or {})

    @classmethod
    def from_pretrained(cls, framepack_dir=None, hunyuan_dir=None, siglip_dir=None, *, device="cuda",
                        allow_download=False, cpu_offload: bool = False) -> "FramePackPrior":
        from diffusers import HunyuanVideoFramepackPipeline, HunyuanVideoFramepackTransformer3DModel
        from transformers import SiglipImageProcessor, SiglipVisionModel

        fp = resolve_weights("framepack", framepack_dir, allow_download=allow_download)
        hy = resolve_weights("hunyuanvideo-community", hunyuan_dir, allow_download=allow_download)
        sg = resolve_weights("flux-redux-siglip", siglip_dir, allow_download=allow_download)
        transformer = HunyuanVideoFramepackTransformer3DModel.from_pretrained(fp, torch_dtype=torch.bfloat16,
                                                                               local_files_only=True)
        fe = SiglipImageProcessor.from_pretrained(sg, subfolder="feature_extractor", local_files_only=True)
        ie = SiglipVisionModel.from_pretrained(sg, subfolder="image_encoder", torch_dtype=torch.float16,
                                               local_files_only=True)
        pipe = HunyuanVideoFramepackPipeline.from_pretrained(hy, transformer=transformer, feature_extractor=fe,
                                                             image_encoder=ie, torch_dtype=torch.float16,
                                                             local_files_only=True)
        if cpu_offload:
            pipe.enable_model_cpu_offload()
        else:
            pipe.to(device)
        pipe.vae.enable_tiling()
        return cls(pipe)

    def generate(self, image, prompt: str, *, seconds: float = 5.0, height: int | None = None,
                 width: int | None = None, num_inference_steps: int = 25, guidance_scale: float = 10.0,
                 seed: int = 0, last_image=None, **kw) -> VideoClip:
        """Animate `image` ((H, W, 3) [0, 1] or uint8) following `prompt`: L = round(seconds * fps) frames."""
        img = as_uint8_images(image)
        if img.shape[0] != 1:
            raise ValueError(f"FramePack animates one image, got a batch of {img.shape[0]}")
        h = height or img.shape[1]
        w = width or img.shape[2]
        n = max(1, int(round(seconds * self.fps)))
        from PIL import Image

        args = dict(self.defaults)
        args.update(kw)
        dev = getattr(self.pipe, "_execution_device", None) or "cpu"
        gen = torch.Generator(device="cpu" if str(dev).startswith("mps") else dev).manual_seed(int(seed))
        out = self.pipe(image=Image.fromarray(img[0]), last_image=None if last_image is None else
                        Image.fromarray(as_uint8_images(last_image)[0]), prompt=prompt, height=h, width=w,
                        num_frames=n, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                        generator=gen, output_type="np", **args).frames[0]
        frames = onp.asarray(out, onp.float32)
        if frames.shape[0] < n:
            raise RuntimeError(f"FramePack returned {frames.shape[0]} frames, fewer than the {n} requested")
        # Sections are generated in fixed windows, so the pipeline may return a few extra frames.
        return VideoClip(frames=onp.clip(frames[:n], 0.0, 1.0), fps=self.fps)


def make_tiny_framepack(seed: int = 0, *, fps: float = 8.0) -> FramePackPrior:
    """FramePack with tiny random components of the same classes (transformer, 3D VAE, Llama, CLIP, SigLIP)."""
    from diffusers import (AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler, HunyuanVideoFramepackPipeline,
                           HunyuanVideoFramepackTransformer3DModel)
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel, SiglipVisionConfig, SiglipVisionModel
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    from anchorhoi_jax.priors.tiny import TINY_VOCAB_SIZE, tiny_tokenizer

    torch.manual_seed(seed)
    transformer = HunyuanVideoFramepackTransformer3DModel(
        in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=10, num_layers=1, num_single_layers=1,
        num_refiner_layers=1, patch_size=2, patch_size_t=1, guidance_embeds=True, text_embed_dim=16,
        pooled_projection_dim=8, rope_axes_dim=(2, 4, 4), image_condition_type=None, has_image_proj=True,
        image_proj_dim=16, has_clean_x_embedder=True)
    vae = AutoencoderKLHunyuanVideo(
        in_channels=3, out_channels=3, latent_channels=4, down_block_types=("HunyuanVideoDownBlock3D",) * 4,
        up_block_types=("HunyuanVideoUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
        norm_num_groups=4, scaling_factor=0.476986, spatial_compression_ratio=8, temporal_compression_ratio=4,
        mid_block_add_attention=True)
    text_encoder = LlamaModel(LlamaConfig(vocab_size=TINY_VOCAB_SIZE, hidden_size=16, intermediate_size=32,
                                          num_attention_heads=4, num_key_value_heads=4, num_hidden_layers=2,
                                          pad_token_id=0, bos_token_id=3, eos_token_id=1))
    text_encoder_2 = CLIPTextModel(CLIPTextConfig(vocab_size=TINY_VOCAB_SIZE, hidden_size=8, intermediate_size=16,
                                                  num_attention_heads=2, num_hidden_layers=1, projection_dim=8,
                                                  max_position_embeddings=77, pad_token_id=0, bos_token_id=3,
                                                  eos_token_id=1))
    image_encoder = SiglipVisionModel(SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                                         num_attention_heads=2, image_size=32, patch_size=8))
    fe = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    pipe = HunyuanVideoFramepackPipeline(
        transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder=text_encoder, tokenizer=tiny_tokenizer(77), text_encoder_2=text_encoder_2,
        tokenizer_2=tiny_tokenizer(77), feature_extractor=fe, image_encoder=image_encoder)
    pipe.set_progress_bar_config(disable=True)
    # The tiny tokenizer has no Llama chat template: use the prompt as is.
    defaults = dict(prompt_template={"template": "{}", "crop_start": 0}, latent_window_size=3, max_sequence_length=32)
    return FramePackPrior(pipe, fps=fps, defaults=defaults)
