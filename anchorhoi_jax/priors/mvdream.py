"""MVDream: multi-view (4-view) diffusion prior with camera conditioning (Shi et al. 2023b).

No diffusers pipeline exists, so the UNet is implemented here. It is the SD-2.1 latent UNet in
its original LDM layout (the "openaimodel" structure: `input_blocks`, `middle_block`,
`output_blocks`, `time_embed`, `out`) with two changes that make it multi-view:

* every transformer's self-attention (`attn1`) attends jointly over the tokens of all F views of
  one sample: (B*F, L, C) -> (B, F*L, C) before attention and back after ("3D self-attention");
* a camera-embedding MLP (`camera_embed`: Linear(16, 4C) - SiLU - Linear(4C, 4C)) maps each view's
  flattened normalised camera-to-world matrix and is added to the timestep embedding.

Parameter names follow the official checkpoint `sd-v2.1-base-4view.pt` (keys prefixed
`model.diffusion_model.`), so its UNet part loads with `strict=True`. The tests check the names and
the computation against diffusers' own LDM -> diffusers key converter and SD UNet (F = 1, no camera).
MVDream fine-tuned only the UNet; the VAE and OpenCLIP text encoder are those of SD-2.1-base, read
here from the diffusers layout of `stabilityai/stable-diffusion-2-1-base`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as onp
import torch
import torch.nn.functional as F
from torch import nn

from anchorhoi_jax.priors.bridge import ViewInfo, host_to_device
from anchorhoi_jax.priors.image import SDPrior, make_tiny_sd
from anchorhoi_jax.priors.manifest import resolve_weights

__all__ = [
    "MVDreamUNetConfig",
    "SD21_4VIEW_CONFIG",
    "MultiViewUNet",
    "MVDreamPrior",
    "mvdream_cameras",
    "load_mvdream_unet",
    "make_tiny_mvdream",
    "CHECKPOINT_PREFIX",
]

CHECKPOINT_PREFIX = "model.diffusion_model."


@dataclasses.dataclass(frozen=True)
class MVDreamUNetConfig:
    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (4, 2, 1)  # downsampling factors that get attention
    num_head_channels: int = 64
    context_dim: int = 1024
    camera_dim: int | None = 16
    transformer_depth: int = 1
    norm_groups: int = 32


# MVDream's sd-v2-base.yaml (sd-v2.1-base-4view).
SD21_4VIEW_CONFIG = MVDreamUNetConfig()


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding in the LDM order: [cos, sin]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 (as in the original UNet, also when its weights are fp16) and cast back."""

    def forward(self, x):
        w = None if self.weight is None else self.weight.float()
        b = None if self.bias is None else self.bias.float()
        return F.group_norm(x.float(), self.num_groups, w, b, self.eps).type(x.dtype)


class ResBlock(nn.Module):
    def __init__(self, ch: int, emb_ch: int, out_ch: int, groups: int):
        super().__init__()
        self.in_layers = nn.Sequential(GroupNorm32(groups, ch), nn.SiLU(), nn.Conv2d(ch, out_ch, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_ch, out_ch))
        self.out_layers = nn.Sequential(GroupNorm32(groups, out_ch), nn.SiLU(), nn.Dropout(0.0),
                                        nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip_connection = nn.Identity() if ch == out_ch else nn.Conv2d(ch, out_ch, 1)

    def forward(self, x, emb):
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class Attention(nn.Module):
    def __init__(self, query_dim: int, context_dim: int | None, heads: int, dim_head: int):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))

    def forward(self, x, context=None):
        context = x if context is None else context
        b = x.shape[0]
        q, k, v = (
            f(s).view(b, -1, self.heads, f.out_features // self.heads).transpose(1, 2)
            for f, s in ((self.to_q, x), (self.to_k, context), (self.to_v, context))
        )
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, -1, self.to_q.out_features))


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x):
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim))

    def forward(self, x):
        return self.net(x)


class TransformerBlock3D(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int):
        super().__init__()
        self.attn1 = Attention(dim, None, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = Attention(dim, context_dim, heads, dim_head)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x, context, num_frames: int):
        bf, l, c = x.shape
        # Multi-view self-attention: the F views of one sample form one token sequence.
        x = x.reshape(bf // num_frames, num_frames * l, c)
        x = self.attn1(self.norm1(x)) + x
        x = x.reshape(bf, l, c)
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer3D(nn.Module):
    def __init__(self, ch: int, heads: int, dim_head: int, context_dim: int, depth: int, groups: int):
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.GroupNorm(groups, ch, eps=1e-6)
        self.proj_in = nn.Linear(ch, inner)
        self.transformer_blocks = nn.ModuleList(
            [TransformerBlock3D(inner, heads, dim_head, context_dim) for _ in range(depth)])
        self.proj_out = nn.Linear(inner, ch)

    def forward(self, x, context, num_frames: int):
        b, c, h, w = x.shape
        y = self.norm(x).flatten(2).transpose(1, 2)
        y = self.proj_in(y)
        for blk in self.transformer_blocks:
            y = blk(y, context, num_frames)
        y = self.proj_out(y)
        return y.transpose(1, 2).reshape(b, c, h, w) + x


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.op = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class EmbedSequential(nn.Sequential):
    """Routes (emb, context, num_frames) to the layers that take them."""

    def forward(self, x, emb, context, num_frames):
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer3D):
                x = layer(x, context, num_frames)
            else:
                x = layer(x)
        return x


class MultiViewUNet(nn.Module):
    """The MVDream UNet. forward(x (B*F, 4, h, w), t (B*F,), context (B*F, 77, 1024), camera (B*F, 16), F)."""

    def __init__(self, cfg: MVDreamUNetConfig = SD21_4VIEW_CONFIG):
        super().__init__()
        self.cfg = cfg
        mc, g = cfg.model_channels, cfg.norm_groups
        emb_ch = 4 * mc
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
        if cfg.camera_dim is not None:
            self.camera_embed = nn.Sequential(nn.Linear(cfg.camera_dim, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))

        def attn(ch):
            return SpatialTransformer3D(ch, ch // cfg.num_head_channels, cfg.num_head_channels, cfg.context_dim,
                                        cfg.transformer_depth, g)

        self.input_blocks = nn.ModuleList([EmbedSequential(nn.Conv2d(cfg.in_channels, mc, 3, padding=1))])
        skip_ch, ch, ds = [mc], mc, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers = [ResBlock(ch, emb_ch, mult * mc, g)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers.append(attn(ch))
                self.input_blocks.append(EmbedSequential(*layers))
                skip_ch.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(EmbedSequential(Downsample(ch)))
                skip_ch.append(ch)
                ds *= 2
        self.middle_block = EmbedSequential(ResBlock(ch, emb_ch, ch, g), attn(ch), ResBlock(ch, emb_ch, ch, g))
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [ResBlock(ch + skip_ch.pop(), emb_ch, mc * mult, g)]
                ch = mc * mult
                if ds in cfg.attention_resolutions:
                    layers.append(attn(ch))
                if level and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(EmbedSequential(*layers))
        self.out = nn.Sequential(GroupNorm32(g, ch), nn.SiLU(), nn.Conv2d(mc, cfg.out_channels, 3, padding=1))

    def forward(self, x, timesteps, context, camera=None, num_frames: int = 1):
        if x.shape[0] % num_frames:
            raise ValueError(f"MultiViewUNet: batch {x.shape[0]} is not a multiple of num_frames={num_frames}")
        dtype = self.time_embed[0].weight.dtype
        emb = self.time_embed(timestep_embedding(timesteps, self.cfg.model_channels).to(dtype))
        if camera is not None:
            emb = emb + self.camera_embed(camera.to(dtype))
        h = x.to(dtype)
        context = context.to(dtype)
        skips = []
        for blk in self.input_blocks:
            h = blk(h, emb, context, num_frames)
            skips.append(h)
        h = self.middle_block(h, emb, context, num_frames)
        for blk in self.output_blocks:
            h = blk(torch.cat([h, skips.pop()], dim=1), emb, context, num_frames)
        return self.out(h)


def mvdream_cameras(camera_to_world_cv: onp.ndarray) -> onp.ndarray:
    """OpenCV camera-to-world (N, 4, 4), world y up (CONVENTIONS.md) -> MVDream conditioning (N, 16).

    MVDream builds OpenGL camera-to-world matrices (x right, y up, z backward) in a y-up world,
    left-multiplies the y-up -> z-up ("blender") flip and normalises the camera position to the
    unit sphere. Our world is y up too, so only the camera axes (OpenCV -> OpenGL: negate y, z)
    and that flip are applied.
    """
    c2w = onp.asarray(camera_to_world_cv, onp.float64).reshape(-1, 4, 4)
    gl = c2w @ onp.diag([1.0, -1.0, -1.0, 1.0])
    flip_yz = onp.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], onp.float64)
    out = flip_yz @ gl
    t = out[:, :3, 3]
    out[:, :3, 3] = t / (onp.linalg.norm(t, axis=1, keepdims=True) + 1e-8)
    return out.reshape(-1, 16).astype(onp.float32)


def load_mvdream_unet(path, cfg: MVDreamUNetConfig = SD21_4VIEW_CONFIG, *, device="cpu", dtype=torch.float16):
    """Build `MultiViewUNet` and load the UNet part of an official MVDream checkpoint (strict)."""
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    unet_sd = {k[len(CHECKPOINT_PREFIX):]: v for k, v in sd.items() if k.startswith(CHECKPOINT_PREFIX)}
    if not unet_sd:
        raise ValueError(f"{path}: no '{CHECKPOINT_PREFIX}*' keys; is this an MVDream checkpoint?")
    with torch.device("meta"):
        unet = MultiViewUNet(cfg)
    unet.load_state_dict(unet_sd, strict=True, assign=True)
    return unet.to(device, dtype)


class MVDreamPrior(SDPrior):
    """Latent SDS with the multi-view UNet: batches are groups of `views_per_sample` (4) views."""

    def predict_eps(self, z_t, t, emb, views: ViewInfo | None = None) -> torch.Tensor:
        if views is None or views.camera_to_world is None:
            raise ValueError("MVDream needs ViewInfo.camera_to_world (N, 4, 4) for its camera conditioning")
        cam = host_to_device(mvdream_cameras(views.camera_to_world), z_t.device)  # no stream sync
        if cam.shape[0] != z_t.shape[0]:
            raise ValueError(f"MVDream: {cam.shape[0]} cameras for a batch of {z_t.shape[0]} latents")
        # num_frames is static (part of a CUDA graph's signature when accelerated).
        return self._run_unet(z_t.to(self.dtype), t, emb.to(self.dtype), cam,
                              num_frames=views.views_per_sample).float()

    def _raw_unet(self, z_t, t, emb, cam, *, num_frames: int):
        z_t = z_t.contiguous(memory_format=self.memory_format)
        return self.unet(z_t, t, emb, camera=cam, num_frames=num_frames)

    @classmethod
    def from_pretrained(cls, local_dir=None, sd_local_dir=None, *, device="cuda", dtype=torch.float16,
                        allow_download=False) -> "MVDreamPrior":
        root = resolve_weights("mvdream-sd21", local_dir, allow_download=allow_download)
        base = SDPrior.from_pretrained("sd-2.1-base", sd_local_dir, device="cpu", dtype=dtype,
                                       allow_download=allow_download)
        unet = load_mvdream_unet(root / "sd-v2.1-base-4view.pt", device="cpu", dtype=dtype)
        sched = _Sched(base.alphas_cumprod, base.prediction_type)
        return cls(unet, base.vae, sched, base.text_encoder, base.tokenizer, resolution=256, device=device, dtype=dtype)


class _Sched:
    """Minimal scheduler stand-in (alphas_cumprod + prediction type) for re-wrapping a prior."""

    def __init__(self, alphas_cumprod, prediction_type):
        self.alphas_cumprod = alphas_cumprod
        self.config = {"prediction_type": prediction_type}


def make_tiny_mvdream(seed: int = 0, *, resolution: int = 32, device="cpu", dtype=torch.float32) -> MVDreamPrior:
    """Tiny random MVDream prior: tiny SD VAE/text encoder + a 2-level multi-view UNet."""
    base = make_tiny_sd(seed, resolution=resolution)
    torch.manual_seed(seed)
    unet = MultiViewUNet(MVDreamUNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
                                           attention_resolutions=(1, 2), num_head_channels=16, context_dim=32,
                                           norm_groups=8))
    sched = _Sched(base.alphas_cumprod, "epsilon")
    return MVDreamPrior(unet, base.vae, sched, base.text_encoder, base.tokenizer, resolution=resolution,
                        max_length=16, device=device, dtype=dtype)
