"""Train the small pixel-space diffusion prior of issue 7 (and the keypoint/segmentation net its evaluation uses).

    python benchmarks/train_prior.py --data .cache/prior/data.npz --out .cache/prior/model --steps 8000

The prior is a DeepFloyd-IF-stage-I-shaped model at toy size, saved in IF's directory layout so the
production loader (`priors.image.IFPrior.from_pretrained(local_dir)`) and therefore the production SDS
path load it unchanged:

    OUT/model_index.json
    OUT/unet/          UNet2DConditionModel, IF block types (ResnetDownsample + SimpleCrossAttn,
                       text_proj of the encoder states, attention pooling of the text into the time
                       embedding, scale-shift norm), 64 px, <= 10 M parameters, fp16 variant
    OUT/scheduler/     DDPMScheduler, IF's squaredcos_cap_v2 betas, epsilon prediction
    OUT/text_encoder/  a 2-layer T5 encoder trained jointly (the learned text embedding), fp16 variant
    OUT/tokenizer/     a word-level T5 tokenizer over the class vocabulary and view tags
                       (tokenizer.json, and spiece.model: the same vocabulary as a SentencePiece
                       unigram model, the file IF's tokenizer directory has)

Training: standard noise prediction, ||eps_theta(sqrt(abar) x0 + sqrt(1-abar) eps; y, t) - eps||^2, t
uniform, prompts "a person <class>, <tag> view" (the view-dependent prompts `priors.sds.SDSGuidance`
builds), 10 % of them replaced by "" so classifier-free guidance has an unconditional model, random
horizontal flips, AdamW + cosine decay, EMA of the weights (the EMA is saved), bf16 autocast on CUDA.
Seeded: same seed + same data => same batches and initialisation.

The keypoint/segmentation net (`--detector-steps`): a small diffusers UNet2DModel mapping a 64 px
image to 18 OpenPose keypoint heatmaps + background/human/object logits, trained on the same renders
(ground-truth keypoints and coverage known). It replaces mediapipe in the evaluation
(benchmarks/learned_prior.py), which is not installed on the GPU machine and is not made for 64 px
images. Saved as OUT/detector.pt (fp16 state dict + config).
"""

from __future__ import annotations

import argparse
import json
import math
import struct as pystruct
import sys
import time
from pathlib import Path

import numpy as onp
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CLASSES = ("sitting on a box", "lifting a box", "pushing a crate", "standing beside a box")
VIEW_TAGS = ("front", "side", "back", "overhead")
MAX_LENGTH = 77  # IFPrior.embed pads to 77 tokens (T5-XXL's length in IF)


def class_prompt(c: int) -> str:
    return f"a person {CLASSES[c]}"


def all_prompts() -> list[str]:
    """Every prompt the prior is trained on: class x view tag, class alone, and "" (unconditional)."""
    out = [f"{class_prompt(c)}, {t} view" for c in range(len(CLASSES)) for t in VIEW_TAGS]
    return out + [class_prompt(c) for c in range(len(CLASSES))] + [""]


# ------------------------------------------------------------------------------------------------
# Tokenizer: word-level T5 (unigram over whole words), plus the same vocabulary as spiece.model
# ------------------------------------------------------------------------------------------------
SPECIAL = ("<pad>", "</s>", "<unk>")  # T5's ids 0, 1, 2


def vocabulary() -> list[tuple[str, float]]:
    """(piece, score) of the tokenizer: T5 specials, then "▁word" for every word of the prompts."""
    words = []
    for p in all_prompts():
        for w in p.replace(",", " , ").split():
            if w not in words:
                words.append(w)
    pieces = [(s, 0.0) for s in SPECIAL]
    pieces += [("▁" + w, -1.0) for w in words if w != ","] + [(",", -1.0), ("▁", -2.0)]
    return pieces


def build_tokenizer():
    from transformers import T5Tokenizer

    return T5Tokenizer(vocab=vocabulary(), extra_ids=0, model_max_length=MAX_LENGTH)


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32 fields are 10-byte two's complement varints
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, wire: int, payload: bytes) -> bytes:
    return _varint(num << 3 | wire) + payload


def _string(num: int, s: bytes) -> bytes:
    return _field(num, 2, _varint(len(s)) + s)


def spiece_model_bytes(pieces: list[tuple[str, float]]) -> bytes:
    """A SentencePiece ModelProto (unigram) with these pieces, hand-encoded (no sentencepiece needed).

    ModelProto: 1 pieces {1 piece, 2 score (float), 3 type: NORMAL 1, UNKNOWN 2, CONTROL 3},
    2 trainer_spec {3 model_type UNIGRAM 1, 4 vocab_size, 40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id},
    3 normalizer_spec {1 name, 3 add_dummy_prefix, 4 remove_extra_whitespaces}.
    """
    types = {"<pad>": 3, "</s>": 3, "<unk>": 2}
    body = b""
    for p, s in pieces:
        sp = _string(1, p.encode()) + _field(2, 5, pystruct.pack("<f", s)) + _field(3, 0, _varint(types.get(p, 1)))
        body += _string(1, sp)
    trainer = (_field(3, 0, _varint(1)) + _field(4, 0, _varint(len(pieces))) + _field(40, 0, _varint(2))
               + _field(41, 0, _varint(-1)) + _field(42, 0, _varint(1)) + _field(43, 0, _varint(0)))
    normalizer = _string(1, b"identity") + _field(3, 0, _varint(1)) + _field(4, 0, _varint(1))
    return body + _string(2, trainer) + _string(3, normalizer)


# ------------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------------
def build_text_encoder(vocab_size: int, d_model: int = 128, layers: int = 2, seed: int = 0):
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    return T5EncoderModel(T5Config(vocab_size=vocab_size, d_model=d_model, d_kv=32, d_ff=2 * d_model,
                                   num_layers=layers, num_heads=d_model // 32, relative_attention_num_buckets=16,
                                   dropout_rate=0.0, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))


# Attention (self + text cross-attention) at 16 and 8 px only, as IF does at its low resolutions: at 32 px
# it cost a third of the step time (CPU fwd+bwd 44 s -> 29 s for 16 images) for what the pooled text
# embedding in the time embedding (addition_embed_type="text") already conditions on. 8.76 M parameters.
UNET_CONFIG = dict(
    sample_size=64, in_channels=3, out_channels=3, block_out_channels=(64, 96, 128, 160), layers_per_block=1,
    down_block_types=("ResnetDownsampleBlock2D", "ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D",
                      "SimpleCrossAttnDownBlock2D"),
    up_block_types=("SimpleCrossAttnUpBlock2D", "SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D",
                    "ResnetUpsampleBlock2D"),
    mid_block_type="UNetMidBlock2DSimpleCrossAttn", cross_attention_dim=128, attention_head_dim=32,
    encoder_hid_dim=128, encoder_hid_dim_type="text_proj", addition_embed_type="text",
    addition_embed_type_num_heads=4, act_fn="gelu", resnet_time_scale_shift="scale_shift",
    cross_attention_norm="group_norm", norm_num_groups=32,
)
TINY_UNET_CONFIG = dict(UNET_CONFIG, sample_size=16, block_out_channels=(32, 32), norm_num_groups=8,
                        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
                        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
                        cross_attention_dim=32, attention_head_dim=16, encoder_hid_dim=32,
                        addition_embed_type_num_heads=2)


def build_unet(config: dict, seed: int = 0):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(**config)


def build_scheduler():
    from diffusers import DDPMScheduler

    # IF stage I's schedule (squaredcos_cap_v2); fixed variance since the UNet predicts eps only.
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon",
                         variance_type="fixed_small", clip_sample=True)


def count_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------
def prompt_table(data) -> tuple[list[str], onp.ndarray, onp.ndarray]:
    """Prompts, and per image the index of its tagged prompt and of its untagged class prompt."""
    prompts = all_prompts()
    cls = onp.asarray(data["cls"], onp.int64)
    tag = onp.asarray(data["tag"], onp.int64)
    return prompts, cls * len(VIEW_TAGS) + tag, len(CLASSES) * len(VIEW_TAGS) + cls


def encode_prompts(text_encoder, tokenizer, prompts, device, max_length: int = MAX_LENGTH):
    tok = tokenizer(list(prompts), padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    return text_encoder(tok.input_ids.to(device), attention_mask=tok.attention_mask.to(device))[0]


def recomposite(x0: torch.Tensor, alpha: torch.Tensor, bg: torch.Tensor, white: float = 1.0) -> torch.Tensor:
    """Images rendered over a uniform `white`-valued backdrop, moved onto backdrop colours `bg`.

    x0 (N, 3, H, W) = premultiplied foreground + (1 - alpha) white, alpha (N, 1, H, W) the foreground
    coverage (human + object, exact for the box-filtered hard raster), bg (N, 3, 1, 1). Any model range.
    """
    return x0 + (1.0 - alpha) * (bg - white)


def lr_factor(step: int, warm: int, total: int) -> float:
    """Linear warm-up over `warm` steps, then cosine decay to 0 at `total`."""
    return min(1.0, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(step / total, 1.0)))


def train_prior(data, *, unet_config=UNET_CONFIG, steps: int, batch: int, lr: float = 3e-4, seed: int = 0,
                device="cuda", p_uncond: float = 0.1, p_untagged: float = 0.05, ema_decay: float = 0.999,
                max_minutes: float | None = None, log_every: int = 500, log=print, text_dim: int | None = None,
                random_backdrop: float = 0.0, cuda_graph: bool = False, probe: int = 200):
    """Noise-prediction training; returns (unet_ema, text_encoder_ema, tokenizer, scheduler, history).

    random_backdrop: fraction of training images whose white backdrop is replaced by a uniform random
    colour (needs data["human"] and data["obj"] coverage): DreamFusion's random backgrounds, so that
    "the object vanished into the backdrop" is not an image the prior explains (the SDS views then draw
    random backdrops too).
    cuda_graph (CUDA only): the whole step (batch draw, text encoder + UNet forward/backward, clipping,
    AdamW) is captured once as a CUDA graph and replayed, since at 64 px and ~9 M parameters the eager
    step is bound by kernel launches, not by arithmetic. The batch is then drawn from the default CUDA
    generator (seeded with `seed`; different draws than the eager path's own generator), the learning rate
    lives in a device tensor, and the EMA stays outside the graph. If capture fails the run goes on eagerly
    (reported in the history's `mode`).
    """
    import copy

    device = torch.device(device)
    cuda_graph = bool(cuda_graph and device.type == "cuda")
    tokenizer = build_tokenizer()
    te = build_text_encoder(len(tokenizer), d_model=text_dim or unet_config["encoder_hid_dim"], seed=seed).to(device)
    unet = build_unet(unet_config, seed=seed).to(device)
    sched = build_scheduler()
    res = unet_config["sample_size"]
    images = torch.as_tensor(onp.asarray(data["image"])).to(device)  # (N, H, W, 3) uint8
    if random_backdrop > 0:
        cover = torch.as_tensor(onp.minimum(onp.asarray(data["human"], onp.int32) + onp.asarray(data["obj"], onp.int32),
                                            255).astype(onp.uint8)).to(device)  # (N, H, W) uint8
    prompts, tagged, untagged = prompt_table(data)
    tagged, untagged = torch.as_tensor(tagged, device=device), torch.as_tensor(untagged, device=device)
    uncond_idx = len(prompts) - 1
    tok = tokenizer(prompts, padding="max_length", max_length=MAX_LENGTH, truncation=True, return_tensors="pt")
    ids, mask = tok.input_ids.to(device), tok.attention_mask.to(device)
    params = list(unet.parameters()) + list(te.parameters())
    # the learning rate is a device tensor under CUDA graphs (written before each replay)
    lr_now = torch.tensor(lr, device=device) if cuda_graph else lr
    opt = torch.optim.AdamW(params, lr=lr_now, weight_decay=0.01, betas=(0.9, 0.99),
                            **(dict(capturable=True, foreach=True) if cuda_graph else {}))
    # max_minutes: the step count is fixed after timing the first `probe` steps so that the cosine decay
    # ends inside the budget (the chosen count is reported; pass it as `steps` to reproduce the run).
    total = steps
    warm = min(200, steps // 10 + 1)
    ema_unet, ema_te = copy.deepcopy(unet).requires_grad_(False), copy.deepcopy(te).requires_grad_(False)
    ema_src, ema_dst = list(unet.parameters()) + list(te.parameters()), \
        list(ema_unet.parameters()) + list(ema_te.parameters())
    abar = sched.alphas_cumprod.to(device)
    if cuda_graph:
        torch.cuda.manual_seed(seed)
        gen = None  # default CUDA generator: graph-safe
    else:
        gen = torch.Generator(device=device).manual_seed(seed)
    N = images.shape[0]
    use_amp = device.type == "cuda"

    def forward_backward():
        """One optimiser step on a fresh batch; returns the (detached) loss tensor."""
        idx = torch.randint(0, N, (batch,), generator=gen, device=device)
        x0 = images[idx].permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if random_backdrop > 0:
            bg = torch.rand((batch, 3, 1, 1), generator=gen, device=device) * 2 - 1
            use = torch.rand((batch, 1, 1, 1), generator=gen, device=device) < random_backdrop
            x0 = torch.where(use, recomposite(x0, cover[idx][:, None].float() / 255.0, bg), x0)
        if x0.shape[-1] != res:
            x0 = F.interpolate(x0, size=(res, res), mode="bilinear", antialias=True, align_corners=False)
        flip = torch.rand(batch, generator=gen, device=device) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        u = torch.rand(batch, generator=gen, device=device)
        pidx = torch.where(u < p_uncond, uncond_idx, torch.where(u < p_uncond + p_untagged, untagged[idx], tagged[idx]))
        t = torch.randint(0, sched.config.num_train_timesteps, (batch,), generator=gen, device=device)
        noise = torch.randn(x0.shape, generator=gen, device=device)
        a = abar[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp, cache_enabled=False):
            emb = te(ids, attention_mask=mask)[0]  # all prompts at once (21 x 77): cheaper than gathering ids
            eps = unet(xt, t, encoder_hidden_states=emb[pidx], return_dict=False)[0]
        loss = F.mse_loss(eps.float()[:, :3], noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True if device.type == "cuda" else None)
        opt.step()
        return loss.detach()

    def set_lr(step):
        v = lr * lr_factor(step, warm, total)
        if cuda_graph:
            lr_now.fill_(v)
        else:
            for g in opt.param_groups:
                g["lr"] = v

    def ema(step):
        d = min(ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_dst, ema_src, 1 - d)

    history, t0 = [], time.perf_counter()
    mode = "eager"
    graph = static_loss = None
    step = 0
    t_probe = t0
    if cuda_graph:
        # warm-up (cuDNN autotuning, lazy state) on a side stream, then capture; these steps train too
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                set_lr(step)
                opt.zero_grad(set_to_none=True)
                forward_backward()
                ema(step)
                step += 1
        torch.cuda.current_stream().wait_stream(side)
        try:
            opt.zero_grad(set_to_none=True)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_loss = forward_backward()
            torch.cuda.synchronize()
            mode = "cuda_graph"
        except Exception as e:  # noqa: BLE001 -- any capture failure: train eagerly instead
            graph = None
            torch.cuda.synchronize()
            log(f"prior: CUDA graph capture failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); eager")
        log(f"prior: training mode {mode}")
    while step < total:
        if max_minutes is not None and step == probe // 4:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t_probe = time.perf_counter()  # steady state from here (cuDNN autotuning and allocator warm-up done)
        if max_minutes is not None and step == probe:
            if device.type == "cuda":
                torch.cuda.synchronize()
            now = time.perf_counter()
            per_step = (now - t_probe) / (probe - probe // 4)
            total = min(steps, max(probe + 1, probe + int((60 * max_minutes - (now - t0)) / per_step) // 100 * 100))
            history.append(dict(probe_ms_per_step=1e3 * per_step, images_per_s=batch / per_step, mode=mode,
                                chosen_steps=total))
            log(f"prior: {1e3 * per_step:.1f} ms/step ({batch / per_step:.0f} img/s, {mode}, steps "
                f"{probe // 4}-{probe}) -> {total} steps")
        set_lr(step)
        if graph is not None:
            graph.replay()
            loss = static_loss
        else:
            opt.zero_grad(set_to_none=True)
            loss = forward_backward()
        ema(step)
        step += 1
        if step % log_every == 0 or step == total:
            el = time.perf_counter() - t0
            history.append(dict(step=step, loss=float(loss), seconds=el, mode=mode))
            log(f"prior step {step}/{total} loss {float(loss):.4f} {el:.0f} s")
        if max_minutes is not None and time.perf_counter() - t0 > 60 * max_minutes * 1.15:
            log(f"prior: 1.15 x the time budget of {max_minutes} min reached at step {step}")
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return ema_unet.eval(), ema_te.eval(), tokenizer, sched, dict(history=history, steps_done=step, mode=mode,
                                                                   train_seconds=time.perf_counter() - t0)


def save_prior(out_dir, unet, text_encoder, tokenizer, scheduler, *, fp16: bool = True) -> Path:
    """IF-stage-I directory layout (see module docstring); fp16 weights as diffusers' "fp16" variant."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    variant = "fp16" if fp16 else None
    dtype = torch.float16 if fp16 else torch.float32
    import copy

    copy.deepcopy(unet).to(dtype).save_pretrained(out / "unet", variant=variant)
    copy.deepcopy(text_encoder).to(dtype).save_pretrained(out / "text_encoder", variant=variant)
    scheduler.save_pretrained(out / "scheduler")
    tokenizer.save_pretrained(out / "tokenizer")
    (out / "tokenizer" / "spiece.model").write_bytes(spiece_model_bytes(vocabulary()))
    (out / "model_index.json").write_text(json.dumps({
        "_class_name": "IFPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
        "scheduler": ["diffusers", "DDPMScheduler"], "text_encoder": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "T5Tokenizer"], "safety_checker": [None, None],
        "feature_extractor": [None, None], "watermarker": [None, None], "requires_safety_checker": False,
    }, indent=1))
    return out


@torch.no_grad()
def sample(prior, prompts, *, steps: int = 50, guidance: float = 4.0, seed: int = 0):
    """DDIM samples (len(prompts), 3, H, W) in [0, 1] from an `IFPrior` (its UNet and cached embeddings)."""
    from diffusers import DDIMScheduler

    dev = prior.device
    ddim = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon",
                         clip_sample=True, set_alpha_to_one=False)
    ddim.set_timesteps(steps, device=dev)
    emb = prior.embed(list(prompts) + [""])
    cond, unc = emb[:-1], emb[-1:].expand(len(prompts), *emb.shape[1:])
    g = torch.Generator(device=dev).manual_seed(seed)
    R = prior.resolution
    x = torch.randn((len(prompts), 3, R, R), generator=g, device=dev)
    for t in ddim.timesteps:
        tt = torch.full((len(prompts),), int(t), device=dev, dtype=torch.long)
        e = prior.predict_eps(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([unc, cond])).float()
        eu, ec = e.chunk(2)
        x = ddim.step(eu + guidance * (ec - eu), t, x).prev_sample
    return ((x.clamp(-1, 1) + 1) / 2).float()


# ------------------------------------------------------------------------------------------------
# Keypoint + segmentation net (replaces mediapipe in the evaluation)
# ------------------------------------------------------------------------------------------------
DETECTOR_CONFIG = dict(sample_size=64, in_channels=3, out_channels=18 + 3, block_out_channels=(32, 64, 128, 128),
                       layers_per_block=1, down_block_types=("DownBlock2D",) * 4, up_block_types=("UpBlock2D",) * 4,
                       norm_num_groups=16)


def build_detector(config=DETECTOR_CONFIG, seed: int = 0):
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return UNet2DModel(**config)


def detector_forward(net, x01: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) images in [0, 1] -> (N, 21, H, W) logits (18 heatmaps, bg/human/object)."""
    t = torch.zeros(x01.shape[0], device=x01.device, dtype=torch.long)
    return net(x01 * 2 - 1, t, return_dict=False)[0]


def decode_heatmaps(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoints (N, 18, 2) in pixels (centre of pixel u is u + 0.5) and confidence (N, 18) in [0, 1].

    Arg-max pixel refined by the sigmoid-weighted mean of its 3x3 neighbourhood.
    """
    hm = torch.sigmoid(logits[:, :18].float())
    N, K, H, W = hm.shape
    flat = hm.flatten(2)
    conf, arg = flat.max(-1)
    v, u = arg // W, arg % W
    pad = F.pad(hm, (1, 1, 1, 1))
    du = torch.arange(-1, 2, device=hm.device)
    wsum = torch.zeros_like(conf)
    su, sv = torch.zeros_like(conf), torch.zeros_like(conf)
    for dv in (-1, 0, 1):
        for duu in (-1, 0, 1):
            w = pad.flatten(2).gather(-1, ((v + 1 + dv) * (W + 2) + (u + 1 + duu))[..., None])[..., 0]
            wsum += w
            su += w * duu
            sv += w * dv
    del du
    uu = u.float() + su / wsum.clamp_min(1e-6) + 0.5
    vv = v.float() + sv / wsum.clamp_min(1e-6) + 0.5
    return torch.stack([uu, vv], -1), conf


def _heatmap_targets(kp, inframe, H, W, sigma=1.5):
    yy = torch.arange(H, device=kp.device).float() + 0.5
    xx = torch.arange(W, device=kp.device).float() + 0.5
    d2 = (xx[None, None, None, :] - kp[..., 0, None, None]) ** 2 + (yy[None, None, :, None] - kp[..., 1, None, None]) ** 2
    return torch.exp(-d2 / (2 * sigma**2)) * inframe[..., None, None]


def train_detector(data, *, steps: int, batch: int = 128, lr: float = 1e-3, seed: int = 0, device="cuda",
                   config=DETECTOR_CONFIG, p_remove_object: float = 0.5, log_every: int = 500, log=print):
    """Heatmap (focal-free BCE on Gaussian targets) + 3-class coverage CE; images with the object painted
    out half of the time (the anchor NeRF renders the human alone), random flips with left/right swap."""
    device = torch.device(device)
    net = build_detector(config, seed).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sch = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    img = torch.as_tensor(onp.asarray(data["image"])).to(device)
    hum = torch.as_tensor(onp.asarray(data["human"])).to(device)
    obj = torch.as_tensor(onp.asarray(data["obj"])).to(device)
    kp = torch.as_tensor(onp.asarray(data["keypoints"], onp.float32)).to(device)
    inf = torch.as_tensor(onp.asarray(data["inframe"])).to(device).float()
    flip_perm = torch.tensor([0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16], device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    N, H, W, _ = img.shape
    use_amp = device.type == "cuda"
    t0 = time.perf_counter()
    history = []
    for step in range(steps):
        idx = torch.randint(0, N, (batch,), generator=gen, device=device)
        x = img[idx].permute(0, 3, 1, 2).float() / 255.0
        h = hum[idx].float() / 255.0
        o = obj[idx].float() / 255.0
        k, fin = kp[idx], inf[idx]
        # paint the object out with the background colour (top-left pixel) half of the time
        rm = (torch.rand(batch, generator=gen, device=device) < p_remove_object).float()[:, None, None]
        bg = x[:, :, 0, 0][:, :, None, None]
        x = x * (1 - (o * rm)[:, None]) + bg * (o * rm)[:, None]
        o = o * (1 - rm)
        # brightness jitter and blur (NeRF renders are soft)
        x = x * (0.8 + 0.4 * torch.rand(batch, 1, 1, 1, generator=gen, device=device))
        blur = torch.rand(batch, generator=gen, device=device) < 0.3
        xb = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        x = torch.where(blur[:, None, None, None], xb, x).clamp(0, 1)
        flip = torch.rand(batch, generator=gen, device=device) < 0.5
        fl = flip[:, None, None, None]
        x = torch.where(fl, x.flip(-1), x)
        h = torch.where(flip[:, None, None], h.flip(-1), h)
        o = torch.where(flip[:, None, None], o.flip(-1), o)
        kf = torch.stack([W - k[..., 0], k[..., 1]], -1)[:, flip_perm]
        k = torch.where(flip[:, None, None], kf, k)
        fin = torch.where(flip[:, None], fin[:, flip_perm], fin)
        target_hm = _heatmap_targets(k, fin, H, W)
        cov = torch.stack([(1 - h - o).clamp(0, 1), h, o], 1)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = detector_forward(net, x)
        out = out.float()
        l_hm = F.binary_cross_entropy_with_logits(out[:, :18], target_hm, pos_weight=torch.tensor(20.0, device=device))
        l_seg = -(cov * F.log_softmax(out[:, 18:], 1)).sum(1).mean()
        loss = l_hm + l_seg
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sch.step()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            history.append(dict(step=step + 1, loss=float(loss.detach()), heatmap=float(l_hm.detach()), seg=float(l_seg.detach())))
            log(f"detector step {step + 1}/{steps} heatmap {float(l_hm):.4f} seg {float(l_seg):.4f} "
                f"{time.perf_counter() - t0:.0f} s")
    return net.eval(), dict(history=history, train_seconds=time.perf_counter() - t0)


def detector_eval(net, data, idx, device) -> dict:
    """PCK@3px on in-frame keypoints and human-mask IoU on held-out images `idx`."""
    with torch.no_grad():
        x = torch.as_tensor(onp.asarray(data["image"])[idx]).to(device).permute(0, 3, 1, 2).float() / 255.0
        out = detector_forward(net, x).float()
        kp, conf = decode_heatmaps(out)
        gt = torch.as_tensor(onp.asarray(data["keypoints"], onp.float32)[idx]).to(device)
        fin = torch.as_tensor(onp.asarray(data["inframe"])[idx]).to(device)
        err = (kp - gt).norm(dim=-1)
        pck = float(((err < 3.0) & fin).sum() / fin.sum())
        seg = out[:, 18:].argmax(1)
        h = torch.as_tensor(onp.asarray(data["human"])[idx]).to(device) > 127
        iou = float(((seg == 1) & h).sum() / ((seg == 1) | h).sum())
        return dict(pck_3px=pck, median_px=float(err[fin].median()), human_iou=iou)


def save_detector(path, net) -> Path:
    sd = {k: v.half() for k, v in net.state_dict().items()}
    torch.save(dict(config=DETECTOR_CONFIG, state_dict=sd), path)
    return Path(path)


def load_detector(path, device):
    blob = torch.load(path, map_location="cpu", weights_only=True)
    net = build_detector(blob["config"])
    net.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
    return net.to(device).eval()


# ------------------------------------------------------------------------------------------------
def _grid(images: onp.ndarray, rows: int) -> onp.ndarray:
    n, h, w, c = images.shape
    cols = n // rows
    return images[: rows * cols].reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def pack_dir(src: Path, dst: Path, piece: int = 15 * 2**20) -> list[Path]:
    """Tar `src` (paths relative to its parent) and split the tarball into `piece`-byte files dst/prior.tar.partNN."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(src, arcname=src.name)
    blob = buf.getvalue()
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(0, len(blob), piece):
        out.append(dst / f"prior.tar.part{i // piece:02d}")
        out[-1].write_bytes(blob[i:i + piece])
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=".cache/prior/data.npz")
    ap.add_argument("--out", default=".cache/prior/model")
    ap.add_argument("--results", default=None, help="where the sample grids and train json go (default: --out)")
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--max-minutes", type=float, default=6.0)
    ap.add_argument("--detector-steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--random-backdrop", type=float, default=0.0,
                    help="fraction of images moved onto a uniform random backdrop colour (coverage from the data)")
    ap.add_argument("--cuda-graph", action="store_true",
                    help="capture the whole training step as one CUDA graph (launch-bound step; eager if capture fails)")
    ap.add_argument("--pack", default=None, metavar="DIR",
                    help="also write the saved prior as DIR/prior.tar.partNN pieces of <= 15 MiB (files that come "
                         "back from the GPU machine are limited to 16 MiB; rejoin with `cat prior.tar.part* | tar x`)")
    ap.add_argument("--no-samples", action="store_true", help="skip the per-class sample grids")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    from anchorhoi_jax.io.export import write_png
    from anchorhoi_jax.priors.image import IFPrior

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest conv kernels once
    out = Path(args.out)
    res_dir = Path(args.results or args.out)
    res_dir.mkdir(parents=True, exist_ok=True)
    with onp.load(args.data) as f:
        data = {k: f[k] for k in f.files}
    print(f"data: {len(data['image'])} images, classes {list(data['classes'])}", flush=True)
    t0 = time.perf_counter()
    unet, te, tok, sched, info = train_prior(data, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
                                             device=args.device, max_minutes=args.max_minutes,
                                             random_backdrop=args.random_backdrop, cuda_graph=args.cuda_graph)
    train_minutes = (time.perf_counter() - t0) / 60
    save_prior(out, unet, te, tok, sched, fp16=True)
    # Round trip through the production loader: same eps as the in-memory EMA model (fp16 vs bf16/fp32).
    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    prior = IFPrior.from_pretrained(out, device=args.device, dtype=dtype) if dtype == torch.float16 else None
    if args.pack:
        pack_dir(out, Path(args.pack))
    summary = dict(train_minutes=train_minutes, steps_done=info["steps_done"], batch=args.batch, mode=info["mode"],
                   random_backdrop=args.random_backdrop, lr=args.lr,
                   params_million=count_params(unet) / 1e6, text_encoder_params_million=count_params(te) / 1e6,
                   images=int(len(data["image"])), history=info["history"],
                   unet_fp16_mb=sum(p.stat().st_size for p in (out / "unet").glob("*.safetensors")) / 2**20)
    if prior is not None and not args.no_samples:
        grids = {}
        for c in range(len(CLASSES)):
            prompts = [f"{class_prompt(c)}, {t} view" for t in VIEW_TAGS for _ in range(4)]
            x = sample(prior, prompts, steps=50, guidance=4.0, seed=args.seed + c)
            img = x.permute(0, 2, 3, 1).cpu().numpy()
            grid = _grid(img, rows=4)  # rows: front, side, back, overhead
            name = f"learned_prior_samples_{CLASSES[c].replace(' ', '_')}.png"
            write_png(res_dir / name, grid)
            grids[CLASSES[c]] = name
        summary["sample_grids"] = grids
    if args.detector_steps == 0:  # keypoint net trained by an earlier call (--detector-steps > 0)
        (res_dir / "train_prior.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=1))
        return
    td = time.perf_counter()
    det, dinfo = train_detector(data, steps=args.detector_steps, seed=args.seed, device=args.device)
    held = onp.arange(len(data["image"]))[-512:]
    summary["detector"] = dict(steps=args.detector_steps, train_minutes=(time.perf_counter() - td) / 60,
                               **detector_eval(det, data, held, args.device),
                               note="evaluated on the last 512 training images (in-distribution check only)")
    save_detector(out / "detector.pt", det)
    (res_dir / "train_prior.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=1))


if __name__ == "__main__":
    main()
