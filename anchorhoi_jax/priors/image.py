"""Image diffusion priors for SDS: DeepFloyd IF stage I (pixel) and Stable Diffusion 1.x/2.x (latent).

Both implement `sds.DiffusionPrior`: `encode` (differentiable, model-range NCHW -> diffused variable),
`embed` (text -> embeddings, computed once), `predict_eps`, and `free_text_encoder` (IF's T5-XXL
encoder is ~9.5 GB in fp16; once the view-tag prompts are embedded it is dropped, paper setup uses
IF stage I at 64 px). MVDream lives in `mvdream.py`.

Weights load from a local directory or the HF cache through `manifest.resolve_weights`
(offline-safe: never downloads unless asked). `make_tiny_if` / `make_tiny_sd` build randomly
initialised instances of the same diffusers/transformers classes for tests; `IF_I_XL_UNET_CONFIG`
and `SD21_BASE_UNET_CONFIG` are the published UNet configurations (for real-size benchmarks with
random weights: same compute as the released checkpoints).
"""

from __future__ import annotations

import gc
from typing import Sequence

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

from anchorhoi_jax.priors.bridge import ViewInfo
from anchorhoi_jax.priors.accelerate import GraphedVJP, StaticShapeGraphs, check_accelerate
from anchorhoi_jax.priors.manifest import resolve_weights
from anchorhoi_jax.priors.tiny import TINY_VOCAB_SIZE, tiny_tokenizer

__all__ = [
    "IF_I_XL_UNET_CONFIG",
    "SD21_BASE_UNET_CONFIG",
    "IFPrior",
    "SDPrior",
    "make_tiny_if",
    "make_tiny_sd",
    "resize_to",
]

# DeepFloyd/IF-I-XL-v1.0 unet/config.json (4.3 B parameters): the original IF config has
# model_channels 704, channel_mult (1, 2, 3, 4), 3 res blocks, attention at 32/16/8 px,
# 64-channel heads, T5-XXL (4096) projected to 2816 channels, scale-shift norm, attention pooling
# of the text into the time embedding (64 heads). diffusers' scripts/convert_if.py maps that to:
IF_I_XL_UNET_CONFIG = dict(
    sample_size=64,
    in_channels=3,
    out_channels=6,  # eps and the learned-variance interpolation; SDS uses eps = [:, :3]
    block_out_channels=(704, 1408, 2112, 2816),
    layers_per_block=3,
    down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D", "SimpleCrossAttnDownBlock2D",
                      "SimpleCrossAttnDownBlock2D"),
    up_block_types=("SimpleCrossAttnUpBlock2D", "SimpleCrossAttnUpBlock2D", "SimpleCrossAttnUpBlock2D",
                    "ResnetUpsampleBlock2D"),
    mid_block_type="UNetMidBlock2DSimpleCrossAttn",
    cross_attention_dim=2816,
    attention_head_dim=64,
    encoder_hid_dim=4096,
    encoder_hid_dim_type="text_proj",
    addition_embed_type="text",
    addition_embed_type_num_heads=64,
    act_fn="gelu",
    resnet_time_scale_shift="scale_shift",
    cross_attention_norm="group_norm",
    upcast_attention=False,
    use_linear_projection=False,
)

# stabilityai/stable-diffusion-2-1-base unet/config.json (865 M parameters).
SD21_BASE_UNET_CONFIG = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=1024,
    attention_head_dim=(5, 10, 20, 20),
    use_linear_projection=True,
    act_fn="silu",
    norm_num_groups=32,
    norm_eps=1e-5,
    flip_sin_to_cos=True,
    freq_shift=0,
    downsample_padding=1,
    center_input_sample=False,
    upcast_attention=False,
)


def resize_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Differentiable square resize (antialiased when shrinking) to the prior's resolution."""
    if x.shape[-2:] == (size, size):
        return x
    shrink = x.shape[-1] > size or x.shape[-2] > size
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)


def _frozen(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Move to device (and cast only if needed), eval mode, no parameter gradients."""
    if next(module.parameters()).dtype != dtype:
        module = module.to(dtype)
    return module.to(device).eval().requires_grad_(False)


class _TextUNetPrior:
    """Shared pieces: tokenise + encode prompts once, free the encoder, eps from a diffusers UNet.

    `accelerate(mode)` (priors/accelerate.py) replays the UNet forward from CUDA graphs; `accelerated`
    says which mode is active ("none" on CPU, where nothing is captured).
    """

    value_range = (-1.0, 1.0)
    accelerated = "none"
    memory_format = torch.contiguous_format
    encoder_memory_format = torch.contiguous_format
    _unet_runner = None

    def __init__(self, unet, scheduler, text_encoder, tokenizer, *, resolution: int, max_length: int,
                 device, dtype: torch.dtype):
        self.device = torch.device(device)
        self.dtype = dtype
        self.resolution = resolution
        self.max_length = max_length
        self.unet = _frozen(unet, self.device, dtype)
        self.text_encoder = None if text_encoder is None else _frozen(text_encoder, self.device, dtype)
        self.tokenizer = tokenizer
        self.prediction_type = scheduler.config.get("prediction_type", "epsilon")
        self.alphas_cumprod = scheduler.alphas_cumprod.to(self.device, torch.float32)

    @torch.no_grad()
    def embed(self, prompts: Sequence[str]) -> torch.Tensor:
        if self.text_encoder is None:
            raise RuntimeError("text encoder already freed: embed all prompts (SDSGuidance does) before free_text_encoder()")
        tok = self.tokenizer(list(prompts), padding="max_length", max_length=self.max_length, truncation=True,
                             return_tensors="pt")
        ids = tok.input_ids.to(self.device)
        mask = tok.attention_mask.to(self.device)
        return self._encode_text(ids, mask).to(self.dtype)

    def _encode_text(self, ids, mask):
        return self.text_encoder(ids, attention_mask=mask)[0]

    def free_text_encoder(self) -> None:
        """Drop the text encoder and return its memory to the allocator (embeddings stay cached)."""
        self.text_encoder = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _raw_unet(self, z_t, t, emb):
        """The UNet output for model-dtype inputs (what a CUDA graph captures)."""
        z_t = z_t.contiguous(memory_format=self.memory_format)
        return self.unet(z_t, t, encoder_hidden_states=emb, return_dict=False)[0]

    def _run_unet(self, *args, **static):
        """`_raw_unet` eagerly, or replayed from the graph of this input signature when accelerated."""
        if self._unet_runner is not None:
            return self._unet_runner(*args, **static)
        return self._raw_unet(*args, **static)

    def accelerate(self, mode: str, *, channels_last: bool = False, encoder_channels_last: bool | None = None,
                   capture=None, capture_vjp=None) -> str:
        """Switch the UNet (and a latent prior's VAE encoder) to eager / CUDA graphs / compiled graphs.

        Returns the mode in effect: "none" on a CPU device (nothing to capture). Graphs are captured
        lazily, at the first call of each input signature (priors/accelerate.py). `channels_last`
        stores the UNet's conv weights and feeds its activations NHWC (cuDNN's native fp16 layout; the same
        arithmetic in another memory order), in any mode on CUDA; `encoder_channels_last` does the same for a
        latent prior's VAE (None: as `channels_last`). They differ because PyTorch's CUDA GroupNorm only
        reads NCHW: every GroupNorm of an NHWC network transposes its input and the next convolution
        transposes back, which the UNets' NHWC convolutions more than repay (H100, IF-I-XL on 2 images:
        25.7 ms NHWC vs 39.0 NCHW) but the SD VAE encoder at 256 px does not (4 images, forward + input VJP:
        22.1 ms NHWC vs 15.7 NCHW; benchmarks/results/pipeline.md, session 6). `capture` / `capture_vjp`
        replace the CUDA recorders (tests emulate them on CPU; without `capture_vjp` the encoder then stays
        eager).
        """
        mode = check_accelerate(mode, "accelerate mode")
        if not isinstance(channels_last, bool):
            raise ValueError(f"accelerate: channels_last must be a bool, got {channels_last!r}")
        if encoder_channels_last is None:
            encoder_channels_last = channels_last
        if not isinstance(encoder_channels_last, bool):
            raise ValueError(f"accelerate: encoder_channels_last must be a bool or None, got {encoder_channels_last!r}")
        on_cpu = self.device.type != "cuda" and capture is None  # CPU: everything stays eager and NCHW
        self.memory_format = torch.channels_last if channels_last and not on_cpu else torch.contiguous_format
        self.encoder_memory_format = (torch.channels_last if encoder_channels_last and not on_cpu
                                      else torch.contiguous_format)
        for m in self._conv_modules():
            m.to(memory_format=self.memory_format)
        for m in self._encoder_modules():
            m.to(memory_format=self.encoder_memory_format)
        self._unet_runner = None
        self.accelerated = "none"
        self._accelerate_encoder(False, None)
        if mode == "none" or on_cpu:
            return self.accelerated
        fn = self._raw_unet
        if mode == "compile":
            fn = torch.compile(fn, dynamic=False)
        self._unet_runner = StaticShapeGraphs(fn, capture=capture)
        if capture is None or capture_vjp is not None:
            self._accelerate_encoder(True, capture_vjp)
        self.accelerated = mode
        return mode

    def _conv_modules(self):
        return [self.unet]

    def _encoder_modules(self):
        return []

    def _accelerate_encoder(self, graphed: bool, capture_vjp) -> None:
        """Pixel priors have nothing to graph in `encode` (a resize); latent priors override this."""

    def _unet_eps(self, z_t, t, emb) -> torch.Tensor:
        out = self._run_unet(z_t.to(self.dtype), t, emb.to(self.dtype))
        out = out[:, : z_t.shape[1]]  # IF predicts [eps, variance]: keep eps
        if self.prediction_type == "v_prediction":
            # v = sqrt(a) eps - sqrt(1-a) z0  =>  eps = sqrt(a) v + sqrt(1-a) z_t
            a = self.alphas_cumprod[t].view(-1, 1, 1, 1)
            out = a.sqrt() * out.float() + (1 - a).sqrt() * z_t.float()
        return out

    def predict_eps(self, z_t, t, emb, views: ViewInfo | None = None) -> torch.Tensor:
        return self._unet_eps(z_t, t, emb)


class IFPrior(_TextUNetPrior):
    """DeepFloyd IF stage I: pixel-space SDS at 64 x 64, T5-XXL text embeddings (77 tokens)."""

    def encode(self, x_model: torch.Tensor) -> torch.Tensor:
        return resize_to(x_model, self.resolution).to(torch.float32)

    @classmethod
    def from_pretrained(cls, local_dir=None, *, device="cuda", dtype=torch.float16, allow_download=False,
                        load_text_encoder=True) -> "IFPrior":
        # AutoTokenizer: IF's own directory resolves to T5's tokenizer, and an IF-layout directory whose
        # tokenizer ships as tokenizer.json (the learned prior of benchmarks/train_prior.py) loads too.
        from transformers import AutoTokenizer

        root = resolve_weights("if-i-xl", local_dir, allow_download=allow_download)
        kw = dict(torch_dtype=dtype, local_files_only=True)
        variant = "fp16" if dtype == torch.float16 else None
        unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", variant=variant, **kw)
        sched = DDPMScheduler.from_pretrained(root, subfolder="scheduler", local_files_only=True)
        te = T5EncoderModel.from_pretrained(root, subfolder="text_encoder", variant=variant, **kw) if load_text_encoder else None
        tok = AutoTokenizer.from_pretrained(root, subfolder="tokenizer", local_files_only=True)
        return cls(unet, sched, te, tok, resolution=unet.config.sample_size, max_length=77, device=device, dtype=dtype)


class SDPrior(_TextUNetPrior):
    """Stable Diffusion 1.x/2.x latent SDS: images go through the VAE encoder (differentiably)."""

    def __init__(self, unet, vae, scheduler, text_encoder, tokenizer, *, resolution: int, max_length: int = 77,
                 device="cuda", dtype=torch.float16):
        super().__init__(unet, scheduler, text_encoder, tokenizer, resolution=resolution, max_length=max_length,
                         device=device, dtype=dtype)
        self.vae = _frozen(vae, self.device, dtype)
        self.scaling_factor = float(vae.config.scaling_factor)
        self._encoder = _LatentEncoder(self.vae, resolution, dtype, self.scaling_factor)

    def _encode_text(self, ids, mask):
        return self.text_encoder(ids)[0]  # SD never masks CLIP padding

    def _accelerate_encoder(self, graphed: bool, capture_vjp) -> None:
        # Forward and input-gradient of the encoder replayed from graphs: SDS still pulls dL/dz back
        # through the encoder's exact VJP (the Eq. 1 gradient w.r.t. the rendered image).
        def make():
            return _LatentEncoder(self.vae, self.resolution, self.dtype, self.scaling_factor,
                                  self.encoder_memory_format)

        self._encoder = GraphedVJP(make, capture=capture_vjp) if graphed else make()

    def encode(self, x_model: torch.Tensor) -> torch.Tensor:
        return self._encoder(x_model)

    def _encoder_modules(self):
        return [self.vae]

    @classmethod
    def from_pretrained(cls, name: str = "sd-2.1-base", local_dir=None, *, device="cuda", dtype=torch.float16,
                        allow_download=False) -> "SDPrior":
        from transformers import CLIPTokenizer

        root = resolve_weights(name, local_dir, allow_download=allow_download)
        kw = dict(torch_dtype=dtype, local_files_only=True)
        variant = "fp16" if dtype == torch.float16 else None
        unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", variant=variant, **kw)
        vae = AutoencoderKL.from_pretrained(root, subfolder="vae", variant=variant, **kw)
        te = CLIPTextModel.from_pretrained(root, subfolder="text_encoder", variant=variant, **kw)
        tok = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer", local_files_only=True)
        sched = DDPMScheduler.from_pretrained(root, subfolder="scheduler", local_files_only=True)
        res = unet.config.sample_size * 2 ** (len(vae.config.block_out_channels) - 1)
        return cls(unet, vae, sched, te, tok, resolution=res, device=device, dtype=dtype)


class _LatentEncoder(torch.nn.Module):
    """x (model range, any size) -> z = scaling · mode of the VAE posterior at the prior's resolution.

    The same computation as `vae.encode(x).latent_dist.mode()` (untiled): encoder, quant conv, and the
    mean half of the moments; the posterior mode is deterministic, SDS adds its own noise afterwards.
    Holds only the encoder's modules, so a graphed copy carries no decoder parameters.
    """

    def __init__(self, vae, resolution: int, dtype: torch.dtype, scaling_factor: float,
                 memory_format: torch.memory_format = torch.contiguous_format):
        super().__init__()
        self.encoder = vae.encoder
        self.quant_conv = getattr(vae, "quant_conv", None)
        self.resolution = resolution
        self.dtype = dtype
        self.scaling_factor = scaling_factor
        self.memory_format = memory_format

    def forward(self, x_model: torch.Tensor) -> torch.Tensor:
        x = resize_to(x_model, self.resolution).to(self.dtype).contiguous(memory_format=self.memory_format)
        h = self.encoder(x)
        if self.quant_conv is not None:
            h = self.quant_conv(h)
        mean = h.chunk(2, dim=1)[0]
        return mean.float() * self.scaling_factor


# ------------------------------------------------------------------------------------------------
# Tiny random instances (tests) -- same classes, tiny configs
# ------------------------------------------------------------------------------------------------


def make_tiny_if(seed: int = 0, *, resolution: int = 16, device="cpu", dtype=torch.float32) -> IFPrior:
    """IF stage I with the same block types as IF-I-XL but 2 levels of 32/64 channels."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=resolution, in_channels=3, out_channels=6, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn", cross_attention_dim=64, attention_head_dim=16,
        encoder_hid_dim=32, encoder_hid_dim_type="text_proj", addition_embed_type="text",
        addition_embed_type_num_heads=2, act_fn="gelu", resnet_time_scale_shift="scale_shift",
        cross_attention_norm="group_norm", norm_num_groups=8,
    )
    te = T5EncoderModel(T5Config(vocab_size=TINY_VOCAB_SIZE, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                                 relative_attention_num_buckets=8))
    sched = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="epsilon", variance_type="learned_range")
    return IFPrior(unet, sched, te, tiny_tokenizer(16), resolution=resolution, max_length=16, device=device, dtype=dtype)


def make_tiny_sd(seed: int = 0, *, resolution: int = 32, device="cpu", dtype=torch.float32,
                 prediction_type: str = "epsilon") -> SDPrior:
    """SD 2.x layout (linear projections, CLIP text encoder, 4-channel VAE) at toy width."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=resolution // 4, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=(2, 4), use_linear_projection=True, norm_num_groups=8,
    )
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32, 32),
                        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                        layers_per_block=1, norm_num_groups=8, sample_size=resolution)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=TINY_VOCAB_SIZE, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=1, num_attention_heads=4, max_position_embeddings=16,
                                      pad_token_id=0, bos_token_id=3, eos_token_id=1))
    sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                          prediction_type=prediction_type)
    return SDPrior(unet, vae, sched, te, tiny_tokenizer(16), resolution=resolution, max_length=16, device=device,
                   dtype=dtype)
