"""Combined SDS guidance for text-to-3D stages: DeepFloyd IF stage I on single views + MVDream on groups of 4.

Paper Sec. 5: "We adopt DeepFloyd and a multi-view-consistent image diffusion model (MVDream) to compute
SDS gradients". Each prior returns dL/dx for the same rendered batch (Eq. 1 bracket pulled back to the
image); the stage receives their weighted sum

    dL/dx = Σ_k w_k · dL_SDS,k/dx ,

so one JAX forward/pullback serves both priors (bridge.make_sds_step). IF treats every view as its own
sample (own timestep) and may score only some of each group's views per iteration
(`GuidanceConfig.if_views_per_group`); MVDream needs the 4 views of a group together, with their cameras
(`ViewInfo.views_per_sample = 4`, `camera_to_world`).

`StackedGuidance` is the other composition a stage needs: a batch made of equal consecutive chunks, each
chunk scored by its own guidance (object stage: T_object on the object renders, T_inter on the joint
human + object renders), still in one torch batch and one optimiser step.

`build_guidance(prompt, cfg, device=..., dtype=...)` builds either tiny random priors (tests, smoke
preset) or the real ones from local weights (priors/manifest.py; nothing is downloaded unless asked).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal, Sequence

import numpy as onp
import torch

from anchorhoi_jax.priors.accelerate import check_accelerate
from anchorhoi_jax.priors.bridge import Guidance, LazyScalar, ViewInfo, host_to_device
from anchorhoi_jax.priors.manifest import MissingWeightsError, resolve_weights
from anchorhoi_jax.priors.sds import SDSConfig, SDSGuidance, sample_timesteps, sds_gradient, sds_loss

__all__ = [
    "GuidanceConfig",
    "CombinedGuidance",
    "StackedGuidance",
    "IndependentViews",
    "group_subset",
    "if_guidance",
    "mvdream_guidance",
    "accelerate_prior",
    "build_guidance",
    "load_if_prior",
]


def _sub_generator(generator: torch.Generator) -> torch.Generator:
    """A fresh generator on the same device seeded from `generator` (each part draws its own noise).

    Reading the seed back waits for the GPU (on CUDA), so callers draw all their sub-generators before they
    queue any prior work (same seeds, same order as drawing each just before its part)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    return torch.Generator(device=generator.device).manual_seed(seed)


def _slice_views(views: ViewInfo, lo: int, hi: int, views_per_sample: int | None = None) -> ViewInfo:
    cam = None if views.camera_to_world is None else views.camera_to_world[lo:hi]
    return ViewInfo(
        azimuth_deg=onp.asarray(views.azimuth_deg)[lo:hi],
        elevation_deg=onp.asarray(views.elevation_deg)[lo:hi],
        camera_to_world=cam,
        views_per_sample=views.views_per_sample if views_per_sample is None else views_per_sample,
    )


def _take_views(views: ViewInfo, rows: onp.ndarray, views_per_sample: int) -> ViewInfo:
    """The ViewInfo rows `rows` (any order) of a batch, regrouped by `views_per_sample`."""
    cam = None if views.camera_to_world is None else onp.asarray(views.camera_to_world)[rows]
    return ViewInfo(azimuth_deg=onp.asarray(views.azimuth_deg)[rows], elevation_deg=onp.asarray(views.elevation_deg)[rows],
                    camera_to_world=cam, views_per_sample=views_per_sample)


def group_subset(n: int, group: int, per_group: int, generator: torch.Generator) -> onp.ndarray:
    """Sorted batch rows: `per_group` distinct views drawn uniformly from each consecutive group of `group`.

    One draw of (n / group, group) uniforms from `generator` (argsort = a uniform random permutation per
    group), so the choice follows the step's random stream: same key, same views (resume, determinism).
    """
    if n % group:
        raise ValueError(f"batch of {n} images does not split into groups of {group} views")
    groups = n // group
    u = torch.rand((groups, group), generator=generator, device=generator.device)
    pick = u.argsort(dim=1)[:, :per_group].sort(dim=1).values.cpu().numpy()
    return (pick + group * onp.arange(groups)[:, None]).reshape(-1)


class IndependentViews:
    """Wraps a guidance so every image is its own sample (own timestep), whatever the batch grouping.

    IF stage I is a single-image prior: grouping its views (MVDream's groups of 4) would only correlate
    their timesteps.

    per_group (None = every view): score only `per_group` views of each group of `views.views_per_sample`
    consecutive views (the stage's MVDream group of 4 views of one seed), drawn uniformly without
    replacement from the step's generator (`group_subset`). The chosen views' gradients are multiplied by
    group / per_group and the others get zero, so the expected gradient equals scoring every view (the
    IF : MVDream weighting keeps its meaning) at per_group / group of the UNet work; per_group = 1 is the
    DreamFusion-IF convention of one rendered view per SDS iteration (threestudio configs/dreamfusion-if.yaml,
    `data.batch_size: 1`). The paper (Sec. 5) does not say how many views each prior scores per iteration.
    """

    def __init__(self, inner: Guidance, *, per_group: int | None = None):
        if per_group is not None and not (isinstance(per_group, int) and not isinstance(per_group, bool)
                                          and per_group >= 1):
            raise ValueError(f"IndependentViews: per_group must be None or an integer >= 1, got {per_group!r}")
        self.inner = inner
        self.per_group = per_group
        self.value_range = inner.value_range
        self.dtype = inner.dtype

    def subset(self, n: int, views: ViewInfo, generator: torch.Generator) -> tuple[onp.ndarray | None, float]:
        """(rows scored this step or None for all, their gradient scale); draws from `generator` iff it subsets."""
        group = views.views_per_sample
        if self.per_group is None or self.per_group >= group:
            return None, 1.0
        return group_subset(n, group, self.per_group, generator), group / self.per_group

    def __call__(self, x_model, *, views: ViewInfo, step: int, generator: torch.Generator):
        rows, scale = self.subset(x_model.shape[0], views, generator)
        if rows is None:
            return self.inner(x_model, views=dataclasses.replace(views, views_per_sample=1), step=step,
                              generator=generator)
        idx = host_to_device(rows, x_model.device, torch.int64)
        grad, info = self.inner(x_model[idx], views=_take_views(views, rows, 1), step=step, generator=generator)
        out = torch.zeros(x_model.shape, dtype=torch.float32, device=x_model.device)
        out[idx] = scale * grad.float()
        return out, info


def _to_part(x: torch.Tensor, src: tuple[float, float], dst: tuple[float, float], dtype: torch.dtype):
    """Re-express model-range images for a part with another range; returns (x_part, dx_part/dx)."""
    (lo, hi), (plo, phi) = src, dst
    scale = (phi - plo) / (hi - lo)
    if scale == 1.0 and plo == lo:
        return x.to(dtype), 1.0
    return ((x.float() - lo) * scale + plo).to(dtype), scale


def _checked_parts(owner: str, parts: Sequence[tuple[Guidance, float]]):
    """(parts with float weights, value range, dtype) of a multi-part guidance; the first part sets the model side."""
    parts = [(g, float(w)) for g, w in parts]
    if not parts:
        raise ValueError(f"{owner}: needs at least one (guidance, weight) part")
    if any(w < 0 for _, w in parts):
        raise ValueError(f"{owner}: weights must be >= 0, got {[w for _, w in parts]}")
    return parts, tuple(parts[0][0].value_range), parts[0][0].dtype


class CombinedGuidance:
    """Weighted sum of several guidances on the same batch: dL/dx = Σ_k w_k dL_k/dx (a `bridge.Guidance`).

    The input is in the first part's value range and dtype; other parts get it re-mapped (chain rule
    applied to their gradients). Every part draws its own noise from a generator seeded by `generator`.
    Parts with weight 0 are never called.
    """

    def __init__(self, parts: Sequence[tuple[Guidance, float]]):
        self.parts, self.value_range, self.dtype = _checked_parts("CombinedGuidance", parts)

    def __call__(self, x_model: torch.Tensor, *, views: ViewInfo, step: int, generator: torch.Generator):
        total = torch.zeros(x_model.shape, dtype=torch.float32, device=x_model.device)
        info: dict[str, float] = {}
        # Drawn even for w = 0 (the streams do not depend on weights), all before any part runs (_sub_generator).
        gens = [_sub_generator(generator) for _ in self.parts]
        for k, ((g, w), gen) in enumerate(zip(self.parts, gens)):
            if w == 0.0:
                continue
            x_k, dxk_dx = _to_part(x_model, self.value_range, tuple(g.value_range), g.dtype)
            grad, inf = g(x_k, views=views, step=step, generator=gen)
            total += (w * dxk_dx) * grad.float()
            name = getattr(g, "name", f"part{k}")
            info.update({f"{name}/{key}": v for key, v in inf.items()})  # read at log steps (LazyScalar)
        return total, info  # float32: an fp16 sum of the parts would lose the small ones


class StackedGuidance:
    """A batch of len(parts) equal consecutive chunks, chunk k scored by guidance k with weight w_k.

    Used when one render holds several image sets that need different prompts (object stage: object
    alone with T_object, human + object with T_inter); the chunks' ViewInfo rows are sliced alike.

    fuse=True: when every chunk is a CombinedGuidance (or a wrapper with `transparent = True` around one)
    over the same priors with the same SDS settings -- only the prompts differ -- each prior runs ONCE on
    all chunks (one encoder pass, one CFG UNet call of the whole batch) instead of once per chunk. The
    timesteps and noise are drawn from exactly the generators, in exactly the order, of the chunk-by-chunk
    path, and every operation is per sample (MVDream's 4-view groups never straddle chunks), so the
    result equals fuse=False up to the kernels' rounding at another batch size. Anything else (other
    estimators, mismatched parts) runs chunk by chunk. fuse_max_images: batches of more images run chunk by
    chunk even with fuse=True: there the UNets are compute-bound already (H100, IF-I-XL: 9.6 ms per image at
    8 images, 8.9 fused at 16, 9.1 at 32), so fusing would only double the activation memory of each call
    (the 4-seed object stage, 32 images per chunk, ran out of memory fused next to XLA's pool).
    """

    def __init__(self, parts: Sequence[tuple[Guidance, float]], *, fuse: bool = False, fuse_max_images: int = 16):
        self.parts, self.value_range, self.dtype = _checked_parts("StackedGuidance", parts)
        if not isinstance(fuse, bool):
            raise ValueError(f"StackedGuidance: fuse must be a bool, got {fuse!r}")
        if not (isinstance(fuse_max_images, int) and fuse_max_images >= 1):
            raise ValueError(f"StackedGuidance: fuse_max_images must be an integer >= 1, got {fuse_max_images!r}")
        self.fuse_max_images = fuse_max_images
        self._fused = _fusable(self.parts) if fuse else None

    def __call__(self, x_model: torch.Tensor, *, views: ViewInfo, step: int, generator: torch.Generator):
        n, k = x_model.shape[0], len(self.parts)
        if n % k:
            raise ValueError(f"StackedGuidance: batch of {n} images does not split into {k} equal chunks")
        m = n // k
        if (self._fused is not None and n <= self.fuse_max_images
                and all(m % g.views_per_sample(views) == 0 for g in self._fused.parts)):
            return _fused_call(self._fused, self.value_range, x_model, views, step, generator)
        out = torch.zeros(x_model.shape, dtype=torch.float32, device=x_model.device)
        info: dict[str, float] = {}
        gens = [_sub_generator(generator) for _ in self.parts]  # all before any chunk runs (_sub_generator)
        for i, ((g, w), gen) in enumerate(zip(self.parts, gens)):
            if w == 0.0:
                continue
            x_i, dxi_dx = _to_part(x_model[i * m : (i + 1) * m], self.value_range, tuple(g.value_range), g.dtype)
            grad, inf = g(x_i, views=_slice_views(views, i * m, (i + 1) * m), step=step, generator=gen)
            out[i * m : (i + 1) * m] = (w * dxi_dx) * grad.float()
            name = getattr(g, "name", f"chunk{i}")
            info.update({f"{name}/{key}": v for key, v in inf.items()})
        return out, info


def _sds_of(part) -> tuple[SDSGuidance, bool, int | None] | None:
    """(the SDSGuidance, whether every view is its own sample, IndependentViews.per_group) of a
    CombinedGuidance part, else None."""
    if isinstance(part, IndependentViews) and isinstance(part.inner, SDSGuidance):
        return part.inner, True, part.per_group
    if isinstance(part, SDSGuidance):
        return part, False, None
    return None


@dataclasses.dataclass
class _FusedPart:
    """Part k of every chunk: one prior, one SDS config, the chunks' own SDSGuidance (their prompts)."""

    name: str
    weights: list  # w_k of each chunk's CombinedGuidance
    sds: list  # each chunk's SDSGuidance
    independent: bool  # IndependentViews: every image its own sample
    per_group: int | None = None  # IndependentViews.per_group (views scored per group of views_per_sample)

    def views_per_sample(self, views: ViewInfo) -> int:
        return 1 if self.independent else views.views_per_sample


@dataclasses.dataclass
class _Fused:
    chunk_names: list
    chunk_weights: list
    combined: list  # each chunk's CombinedGuidance
    parts: list  # _FusedPart k = part k of every chunk


def _fusable(parts) -> _Fused | None:
    """The fused plan of StackedGuidance parts, or None when the chunks differ in more than their prompts."""
    combined, names = [], []
    for i, (g, _) in enumerate(parts):
        c = g
        while not isinstance(c, CombinedGuidance) and getattr(c, "transparent", False):
            c = c.inner
        if not isinstance(c, CombinedGuidance):
            return None
        combined.append(c)
        names.append(getattr(g, "name", f"chunk{i}"))
    first = combined[0]
    fparts = []
    for k, (g0, _) in enumerate(first.parts):
        s0 = _sds_of(g0)
        if s0 is None or getattr(s0[0].cfg, "estimator", "sds") != "sds":
            return None
        sds, weights = [], []
        for c in combined:
            if len(c.parts) != len(first.parts) or c.value_range != first.value_range:
                return None
            gi, wi = c.parts[k]
            si = _sds_of(gi)
            if (si is None or si[1:] != s0[1:] or si[0].prior is not s0[0].prior or si[0].cfg != s0[0].cfg
                    or getattr(gi, "name", None) != getattr(g0, "name", None)):
                return None
            sds.append(si[0])
            weights.append(wi)
        fparts.append(_FusedPart(getattr(g0, "name", f"part{k}"), weights, sds, s0[1], s0[2]))
    return _Fused(names, [w for _, w in parts], combined, fparts)


def _fused_call(plan: _Fused, value_range, x_model: torch.Tensor, views: ViewInfo, step: int,
                generator: torch.Generator):
    """StackedGuidance(CombinedGuidance...) with one prior call per part over all chunks (see StackedGuidance)."""
    K = len(plan.combined)
    n = x_model.shape[0]
    m = n // K
    # The generators of the chunk-by-chunk path, created in its order: chunk i from `generator`, part k from
    # chunk i's (drawn even for weight 0, as there).
    chunk_gens = [_sub_generator(generator) for _ in range(K)]
    part_gens = [[_sub_generator(g) for _ in plan.parts] for g in chunk_gens]
    out = torch.zeros(x_model.shape, dtype=torch.float32, device=x_model.device)
    info: dict[str, float] = {}
    for k, fp in enumerate(plan.parts):
        live = [i for i in range(K) if plan.chunk_weights[i] != 0.0 and fp.weights[i] != 0.0]
        if not live:
            continue
        s0 = fp.sds[live[0]]
        prior, cfg = s0.prior, s0.cfg
        vps = fp.views_per_sample(views)
        x_k, dxk_dx = _to_part(x_model, plan.combined[0].value_range, tuple(s0.value_range), s0.dtype)
        # Rows each live chunk scores (global batch rows): all of its m, or IndependentViews.per_group of each
        # group of views, drawn first from the chunk's own generator exactly as IndependentViews does before
        # handing that generator to the SDS part.
        group, scale, sel = views.views_per_sample, 1.0, []
        for i in live:
            base = onp.arange(i * m, (i + 1) * m)
            if fp.per_group is not None and fp.per_group < group:
                base = base[group_subset(m, group, fp.per_group, part_gens[i][k])]
                scale = group / fp.per_group
            sel.append(base)
        mj = len(sel[0])
        rows_np = onp.concatenate(sel)
        whole = len(rows_np) == n and bool((rows_np == onp.arange(n)).all())
        rows = None if whole else host_to_device(rows_np, x_model.device, torch.int64)
        sub_views = dataclasses.replace(views if whole else _take_views(views, rows_np, views.views_per_sample),
                                        views_per_sample=vps)
        with torch.enable_grad():
            x = (x_k if rows is None else x_k[rows]).detach().requires_grad_(True)
            z = prior.encode(x)
            T = prior.alphas_cumprod.shape[0]
            ts, noises, conds, unconds = [], [], [], []
            for j, i in enumerate(live):
                gen = part_gens[i][k]
                ts.append(sample_timesteps(cfg, step, mj // vps, T, gen, z.device).repeat_interleave(vps))
                zi = z[j * mj : (j + 1) * mj]
                noises.append(torch.randn(zi.shape, generator=gen, device=gen.device, dtype=z.dtype).to(z.device))
                c, u = fp.sds[i].embeddings_for(_slice_views(sub_views, j * mj, (j + 1) * mj, vps), mj)
                conds.append(c)
                unconds.append(u)
            t = torch.cat(ts)
            grad_z = sds_gradient(prior, z.detach(), t, torch.cat(noises), torch.cat(conds), torch.cat(unconds), cfg,
                                  sub_views)
            losses = [sds_loss(z[j * mj : (j + 1) * mj], grad_z[j * mj : (j + 1) * mj].to(z.dtype))
                      for j in range(len(live))]
            (grad_x,) = torch.autograd.grad(sum(losses), x)
            grad_x = torch.nan_to_num(grad_x, nan=0.0, posinf=0.0, neginf=0.0)
        for j, i in enumerate(live):
            w = plan.chunk_weights[i] * fp.weights[i] * dxk_dx * scale
            g = grad_x[j * mj : (j + 1) * mj].float()
            if whole:
                out[i * m : (i + 1) * m] += w * g
            else:
                out[host_to_device(sel[j], x_model.device, torch.int64)] += w * g
            gz = grad_z[j * mj : (j + 1) * mj]
            pre = f"{plan.chunk_names[i]}/{fp.name}"
            info.update({f"{pre}/sds_loss": LazyScalar(losses[j]), f"{pre}/t_mean": LazyScalar(ts[j].float().mean()),
                         f"{pre}/grad_norm": LazyScalar(gz.norm())})
    return out, info


def _concat_views(parts: Sequence[ViewInfo]) -> ViewInfo:
    cams = [p.camera_to_world for p in parts]
    return ViewInfo(azimuth_deg=onp.concatenate([onp.asarray(p.azimuth_deg) for p in parts]),
                    elevation_deg=onp.concatenate([onp.asarray(p.elevation_deg) for p in parts]),
                    camera_to_world=None if any(c is None for c in cams) else onp.concatenate(cams),
                    views_per_sample=parts[0].views_per_sample)


@dataclasses.dataclass(frozen=True)
class GuidanceConfig:
    """Which priors guide a stage and how strongly (static; host-side floats).

    kind: "tiny" (random tiny IF + MVDream of the real classes; tests / smoke preset) or "real"
      (pretrained weights found through the manifest; `if_dir`, `mvdream_dir`, `sd_dir` override the
      search: `if_dir` may be any IF-stage-I layout directory written by save_pretrained, e.g. the
      learned prior of issue 7; its text encoder / tokenizer fall back to the base IF-I-XL ones).
    if_weight / mvdream_weight: w_k of the weighted sum (0 disables a prior; it is then not loaded).
    if_scale / mvdream_scale: classifier-free guidance scales (DreamFusion-IF 20, MVDream 50).
    sds: the shared SDS settings (timestep range and its annealing, weighting, clipping); the
      guidance scale inside it is replaced by the per-prior scale, and MVDream never uses
      view-dependent prompts (it has camera conditioning instead).
    accelerate: how the torch priors run (priors/accelerate.py): "none" (eager), "cuda_graphs" (UNet
      forward and VAE-encoder forward/backward replayed from CUDA graphs captured per batch shape;
      same kernels, equal to eager up to fp16 rounding) or "compile" (TorchInductor, then graphs;
      minutes of compilation at the first step). On a CPU device every mode runs eagerly.
    channels_last: UNet convolutions in NHWC memory order on CUDA (same arithmetic, other cuDNN
      kernels; H100: IF-I-XL + MVDream guidance 112.7 vs 119.4 ms with graphs, benchmarks/results/coarse.md).
    encoder_channels_last: the same for the latent priors' VAE encoder (MVDream / SD). Default false: PyTorch's
      CUDA GroupNorm reads NCHW only, so an NHWC encoder transposes around each of its GroupNorms; at 256 px
      that costs more than NHWC convolutions gain (H100, forward + input VJP: 4 images 15.7 ms NCHW vs 22.1
      NHWC, 8 images 26.9 vs 40.3; the UNets stay faster NHWC). Same arithmetic either way.
    if_views_per_group: how many of each group of `views_per_sample` rendered views (a stage's 4 MVDream
      views of one seed) IF scores per SDS iteration. None (default here): every view. k < group: k views
      per group drawn uniformly from the step's random stream (deterministic given the seed), gradients
      scaled by group / k (unbiased for the all-view sum; `IndependentViews`). The paper (Sec. 5) does not
      fix it; configs/anchorhoi.yaml sets 1, the DreamFusion-IF convention (threestudio
      configs/dreamfusion-if.yaml scores one 64x64 view per iteration), a quarter of IF-I-XL's UNet work.
    """

    kind: Literal["tiny", "real"] = "real"
    if_weight: float = 1.0
    mvdream_weight: float = 1.0
    if_scale: float = 20.0
    mvdream_scale: float = 50.0
    sds: SDSConfig = SDSConfig(t_range_start=(0.02, 0.98), t_range_end=(0.02, 0.50), anneal_steps=3000,
                               anneal="linear")
    negative_prompt: str = ""
    if_dir: str | None = None
    mvdream_dir: str | None = None
    sd_dir: str | None = None
    allow_download: bool = False
    tiny_seed: int = 0
    tiny_if_resolution: int = 16
    tiny_mvdream_resolution: int = 32
    accelerate: Literal["none", "cuda_graphs", "compile"] = "cuda_graphs"
    channels_last: bool = True
    encoder_channels_last: bool = False
    if_views_per_group: int | None = None

    def __post_init__(self):
        if self.kind not in ("tiny", "real"):
            raise ValueError(f"GuidanceConfig.kind must be 'tiny' or 'real', got {self.kind!r}")
        check_accelerate(self.accelerate, "GuidanceConfig.accelerate")
        for name in ("channels_last", "encoder_channels_last"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"GuidanceConfig.{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("if_weight", "mvdream_weight", "if_scale", "mvdream_scale"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"GuidanceConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.if_weight == 0.0 and self.mvdream_weight == 0.0:
            raise ValueError("GuidanceConfig: if_weight and mvdream_weight are both 0 (no guidance)")
        k = self.if_views_per_group
        if k is not None and not (isinstance(k, int) and not isinstance(k, bool) and k >= 1):
            raise ValueError(f"GuidanceConfig.if_views_per_group must be null or an integer >= 1, got {k!r}")
        for name in ("tiny_if_resolution", "tiny_mvdream_resolution"):
            if getattr(self, name) < 8:
                raise ValueError(f"GuidanceConfig.{name} must be >= 8, got {getattr(self, name)}")


def accelerate_prior(prior, cfg: GuidanceConfig) -> str:
    """Apply cfg.accelerate / channels_last / encoder_channels_last to a prior (after its prompts are embedded);
    returns the mode in effect ("none" on CPU)."""
    return prior.accelerate(cfg.accelerate, channels_last=cfg.channels_last,
                            encoder_channels_last=cfg.encoder_channels_last)


def if_guidance(prior, prompt: str, cfg: GuidanceConfig) -> IndependentViews:
    """The IF part of a stage guidance for `prompt` (named "if"): SDS at cfg.if_scale, every view its own
    sample, cfg.if_views_per_group views scored per group. The prior's text encoder must still be loaded."""
    g = IndependentViews(SDSGuidance(prior, prompt, dataclasses.replace(cfg.sds, guidance_scale=cfg.if_scale),
                                     cfg.negative_prompt), per_group=cfg.if_views_per_group)
    g.name = "if"
    return g


def mvdream_guidance(prior, prompt: str, cfg: GuidanceConfig) -> SDSGuidance:
    """The MVDream part (named "mvdream"): SDS at cfg.mvdream_scale on groups of views, no view-tagged prompts
    (MVDream has camera conditioning instead)."""
    sds = dataclasses.replace(cfg.sds, guidance_scale=cfg.mvdream_scale, view_dependent_prompts=False)
    g = SDSGuidance(prior, prompt, sds, cfg.negative_prompt)
    g.name = "mvdream"
    return g


def load_if_prior(if_dir: str | None = None, *, device="cuda", dtype=torch.float16, allow_download: bool = False):
    """IF stage I from the manifest's 'if-i-xl' or from any directory in that layout (save_pretrained).

    The directory needs unet/ and scheduler/; text_encoder/ and tokenizer/ are read from it when present,
    otherwise from the base IF-I-XL weights (a fine-tuned UNet usually ships without them). The fp16
    weight variant is used when present, plain weights otherwise.
    """
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, T5EncoderModel

    from anchorhoi_jax.priors.image import IFPrior

    if if_dir is None:
        root = resolve_weights("if-i-xl", None, allow_download=allow_download)
    else:
        root = Path(if_dir)
        missing = [p for p in ("unet/config.json", "scheduler/scheduler_config.json") if not (root / p).exists()]
        if missing:
            raise MissingWeightsError(
                f"if_dir {root} is not an IF stage-I layout directory: missing {', '.join(missing)}")
    text_root = root
    if not ((root / "text_encoder" / "config.json").exists() and (root / "tokenizer").is_dir()):
        text_root = resolve_weights("if-i-xl", None, allow_download=allow_download)

    def variant(sub: Path, stem: str) -> str | None:
        return "fp16" if dtype == torch.float16 and any(sub.glob(f"{stem}*.fp16*")) else None

    kw = dict(torch_dtype=dtype, local_files_only=True)
    unet = UNet2DConditionModel.from_pretrained(
        root, subfolder="unet", variant=variant(root / "unet", "diffusion_pytorch_model"), **kw)
    sched = DDPMScheduler.from_pretrained(root, subfolder="scheduler", local_files_only=True)
    te = T5EncoderModel.from_pretrained(text_root, subfolder="text_encoder",
                                        variant=variant(text_root / "text_encoder", "model"), **kw)
    tok = AutoTokenizer.from_pretrained(text_root, subfolder="tokenizer", local_files_only=True)
    max_length = 77 if tok.model_max_length > 10_000 else min(77, int(tok.model_max_length))
    return IFPrior(unet, sched, te, tok, resolution=unet.config.sample_size, max_length=max_length, device=device,
                   dtype=dtype)


def _check_real_weights(cfg: GuidanceConfig) -> None:
    """Resolve every needed weight before loading anything: all missing ones in one line."""
    needed = []
    if cfg.if_weight > 0 and cfg.if_dir is None:
        needed.append(("if-i-xl", None))
    if cfg.mvdream_weight > 0:
        needed += [("mvdream-sd21", cfg.mvdream_dir), ("sd-2.1-base", cfg.sd_dir)]
    msgs = []
    for name, local in needed:
        try:
            resolve_weights(name, local, allow_download=cfg.allow_download)
        except MissingWeightsError as e:
            msgs.append(str(e))
    if msgs:
        raise MissingWeightsError(" | ".join(msgs))


def build_guidance(prompt: str, cfg: GuidanceConfig, *, device="cpu", dtype: torch.dtype = torch.float32):
    """The stage guidance for `prompt`: CombinedGuidance([(IF on every view, w_IF), (MVDream on groups of 4, w_MV)]).

    Text embeddings (view-tagged prompts for IF, the plain prompt for MVDream) are computed once and the
    text encoders are freed. Raises MissingWeightsError (one line naming every missing download) when
    `kind == "real"` and weights are absent.
    """
    from anchorhoi_jax.priors.image import make_tiny_if
    from anchorhoi_jax.priors.mvdream import MVDreamPrior, make_tiny_mvdream

    if cfg.kind == "real":
        _check_real_weights(cfg)
    parts = []
    if cfg.if_weight > 0:
        if cfg.kind == "tiny":
            prior = make_tiny_if(cfg.tiny_seed, resolution=cfg.tiny_if_resolution, device=device, dtype=dtype)
        else:
            prior = load_if_prior(cfg.if_dir, device=device, dtype=dtype, allow_download=cfg.allow_download)
        g = if_guidance(prior, prompt, cfg)
        prior.free_text_encoder()
        accelerate_prior(prior, cfg)
        parts.append((g, cfg.if_weight))
    if cfg.mvdream_weight > 0:
        if cfg.kind == "tiny":
            prior = make_tiny_mvdream(cfg.tiny_seed + 1, resolution=cfg.tiny_mvdream_resolution, device=device,
                                      dtype=dtype)
        else:
            prior = MVDreamPrior.from_pretrained(cfg.mvdream_dir, cfg.sd_dir, device=device, dtype=dtype,
                                                 allow_download=cfg.allow_download)
        g = mvdream_guidance(prior, prompt, cfg)
        prior.free_text_encoder()
        accelerate_prior(prior, cfg)
        parts.append((g, cfg.mvdream_weight))
    return CombinedGuidance(parts)
