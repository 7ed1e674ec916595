"""Issue 7 evaluation: does anchor-based distillation transfer the interaction class of a learned prior?

    python benchmarks/learned_prior.py --prior .cache/prior/model --out DIR            # H100
    python benchmarks/learned_prior.py --smoke --out DIR                                 # CPU plumbing check
    python benchmarks/learned_prior.py --sweep "scale=20;scale=40" --seed-offset 1000 --out SW   # tuning keys
    python benchmarks/learned_prior.py --settings-from SW/sweep.json --out DIR         # evaluation keys
    # session 5b: sweep with --shape-init (the tuning runs start as the evaluation does) and pick by the
    # tuning-key accuracy of the anchor-free pipeline: ... --sweep "...;scale=10,sparsity=100" --shape-init,
    # then --settings-from SW/sweep.json --pick accuracy --shape-init

Every SDS view (both arms) is rendered over `--background`: white (session 3, the data's backdrop) or a
uniform random colour per view (session 4, with a prior trained by `train_prior.py --random-backdrop`);
the coarse field starts empty outside its density blob (`empty_outside_blob`), the blob optionally an
upright person-sized ellipsoid (`--blob-axes`, the same for every class), or (`--shape-init`, session 5)
from the standing body itself: its density fitted to the winding-number occupancy of the body the direct
arm starts from (`nerf.shape_init`, DreamHuman/HumanNorm-style); `--estimator` picks Eq. 1 or
the denoised-target option of priors.sds for both arms; both arms run exactly N SDS steps, N chosen
from their measured step times within `--sds-budget-s` before either real run starts.

For each class prompt of benchmarks/learned_prior_data.py and `--seeds` seeds (all 16 runs vmapped in
one program, their renders one torch batch split by class with `priors.guidance.StackedGuidance`):

1. coarse HOI NeRF by SDS with the learned prior (stages/coarse.py, the production IF guidance built by
   `priors.guidance.build_guidance(kind="real", if_dir=<the learned prior>)`);
2. human masks of canonical renders from the keypoint/segmentation net (benchmarks/train_prior.py;
   mediapipe is not installed on the GPU machine and is not made for 64 px renders) and the anchor NeRF
   by masked feature alignment (stages/anchor.py);
3. OpenPose-18 keypoints of the anchor's canonical renders (same net) and the Eq. 2 fit of the Anny body
   (stages/pose_fit.py), keypoints and intrinsics scaled x8 to the 512 px frame its default weights are
   tuned for (the same geometry);
4. classification of the fitted pose by the nearest class mean of hip/knee/shoulder/elbow angles of the
   training poses (`learned_prior_data.pose_features`), and the human-object relation on points of the
   coarse NeRF that the net labels "object": sitting = object points under the pelvis with the pelvis
   above their top; lifting = both wrists within `--contact-m` of object points.

Ablation "direct" (paper Table 3 top, "w/o anchor NeRF"): the Anny body itself (scale, global rotation,
translation, the same local joints the fit uses) rasterised softly (render/raster.py) and optimised by
SDS with the same guidance, cameras, lights, backgrounds and number of steps, plus the anatomical
joint-limit hinge; then the same classifier. No object exists there, so its accuracy is the pose class
alone; the anchor pipeline is reported both ways (pose alone, pose and relation).
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as onp  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import learned_prior_data as lpd  # noqa: E402
import train_prior as tp  # noqa: E402

from anchorhoi_jax.body.skinning import pose, rest_joints  # noqa: E402
from anchorhoi_jax.geometry.cameras import Camera  # noqa: E402
from anchorhoi_jax.nerf import shape_init  # noqa: E402
from anchorhoi_jax.nerf.field import FieldConfig  # noqa: E402
from anchorhoi_jax.priors.bridge import jax_to_torch, make_sds_step  # noqa: E402
from anchorhoi_jax.priors.guidance import GuidanceConfig, StackedGuidance, build_guidance  # noqa: E402
from anchorhoi_jax.priors.sds import SDSConfig  # noqa: E402
from anchorhoi_jax.render.raster import rasterize  # noqa: E402
from anchorhoi_jax.render.volume import RenderConfig, render_nerf_views  # noqa: E402
from anchorhoi_jax.stages import anchor as anchor_stage  # noqa: E402
from anchorhoi_jax.stages import coarse  # noqa: E402
from anchorhoi_jax.stages import pose_fit as pf  # noqa: E402

NC = len(lpd.CLASSES)
FIT_FRAME = 512  # pose_fit's default weights are in pixels of a 512 px view


# ------------------------------------------------------------------------------------------------
# Classifier and relations
# ------------------------------------------------------------------------------------------------
def classify(features: onp.ndarray, means: onp.ndarray) -> onp.ndarray:
    """Nearest class mean (Euclidean, radians) of (N, 8) joint-angle features."""
    d = ((features[:, None, :] - means[None]) ** 2).sum(-1)
    return d.argmin(-1)


def confusion(true: onp.ndarray, pred: onp.ndarray, n: int = NC) -> onp.ndarray:
    m = onp.zeros((n, n), onp.int64)
    for t, p in zip(true, pred):
        m[t, p] += 1
    return m


def relations(kp3d: onp.ndarray, points: onp.ndarray, valid: onp.ndarray, scale: onp.ndarray, *,
              seat_radius: float = 0.25, seat_gap: float = 0.40, contact: float = 0.15, min_points: int = 5):
    """Per run: (sitting relation holds, lifting relation holds), lengths scaled by the fitted human scale.

    kp3d (N, 18, 3) fitted keypoints; points (N, P, 3) object points; valid (N, P).
    sitting: >= min_points object points within seat_radius (horizontally) of the pelvis (mid-hip) and
      below it (up to 5 cm above), the highest of them at most seat_gap under the pelvis;
    lifting: both wrists within `contact` of some object point.
    """
    sit, lift = [], []
    for k, p, v, s in zip(kp3d, points, valid, scale):
        p = p[v]
        pelvis = 0.5 * (k[8] + k[11])
        if len(p) < min_points:
            sit.append(False)
            lift.append(False)
            continue
        # support: object points under the pelvis (a backrest behind it rises above and is ignored)
        support = (onp.linalg.norm((p - pelvis)[:, [0, 2]], axis=-1) < seat_radius * s) & (p[:, 1] <= pelvis[1] + 0.05 * s)
        top = p[support, 1].max() if support.sum() >= min_points else -onp.inf
        sit.append(bool(support.sum() >= min_points and pelvis[1] - top <= seat_gap * s))
        dl = onp.linalg.norm(p - k[7], axis=-1).min()
        dr = onp.linalg.norm(p - k[4], axis=-1).min()
        lift.append(bool(max(dl, dr) <= contact * s))
    return onp.array(sit), onp.array(lift)


def box_surface_points(centers, sizes, n: int = 600, seed: int = 0) -> tuple[onp.ndarray, onp.ndarray]:
    """Random points on the (up to 2) boxes of each training scene (relation-check calibration)."""
    rng = onp.random.default_rng(seed)
    N = centers.shape[0]
    u = rng.uniform(-0.5, 0.5, (N, 2, n, 3))
    axis = rng.integers(0, 3, (N, 2, n))
    sign = rng.choice([-0.5, 0.5], (N, 2, n))
    onp.put_along_axis(u, axis[..., None], sign[..., None], -1)
    pts = centers[:, :, None] + u * sizes[:, :, None]
    valid = onp.broadcast_to((sizes.min(-1) > 1e-3)[:, :, None], (N, 2, n))
    return pts.reshape(N, 2 * n, 3), valid.reshape(N, 2 * n)


def backproject(depth, mask, cams: Camera) -> tuple[jax.Array, jax.Array]:
    """World points of the pixels in `mask` from camera-z depth; (V*H*W, 3) and validity."""
    V, H, W = depth.shape
    u = jnp.arange(W, dtype=jnp.float32) + 0.5
    v = jnp.arange(H, dtype=jnp.float32) + 0.5
    uu, vv = jnp.meshgrid(u, v, indexing="xy")

    def one(d, K, T):
        x = (uu - K[0, 2]) / K[0, 0] * d
        y = (vv - K[1, 2]) / K[1, 1] * d
        pc = jnp.stack([x, y, d], -1)
        R, t = T[:3, :3], T[:3, 3]
        return jnp.einsum("ba,hwb->hwa", R, pc - t)

    pts = jax.vmap(one)(depth, cams.K, cams.T_cam_world)
    return pts.reshape(-1, 3), mask.reshape(-1)


# ------------------------------------------------------------------------------------------------
# Detector on JAX renders (torch, zero copy through the bridge)
# ------------------------------------------------------------------------------------------------
# OpenPose-18 under a horizontal image flip: right and left swap (nose, neck stay)
FLIP_OPENPOSE18 = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)


@torch.no_grad()
def detect(net, images: jax.Array, *, flip: bool = False, context: jax.Array | None = None):
    """images (..., H, W, 3) in [0, 1] -> keypoints (..., 18, 2) px, confidence (..., 18), class probs (..., 3, H, W).

    flip: test-time augmentation, the logits averaged with those of the mirrored image (mirrored back, its
    left/right heatmaps swapped), the usual flip test of keypoint detectors.
    context: images of the same views and camera with the scene around the person (the coarse HOI render of
    each anchor render); their logits are averaged with the images' (one pixel grid, so heatmaps add)."""
    lead = images.shape[:-3]

    def logits(imgs):
        x = jax_to_torch(jnp.asarray(imgs, jnp.float32)).reshape(-1, *imgs.shape[-3:]).permute(0, 3, 1, 2).contiguous()
        out = tp.detector_forward(net, x).float()
        if flip:
            m = tp.detector_forward(net, x.flip(-1)).float().flip(-1)
            perm = torch.as_tensor(FLIP_OPENPOSE18 + tuple(range(18, m.shape[1])), device=m.device)
            out = 0.5 * (out + m[:, perm])
        return out

    out = logits(images)
    if context is not None:
        if tuple(context.shape) != tuple(images.shape):
            raise ValueError(f"detect: context images {tuple(context.shape)} must match the images {tuple(images.shape)}")
        out = 0.5 * (out + logits(context))
    kp, conf = tp.decode_heatmaps(out)
    probs = torch.softmax(out[:, 18:], 1)
    f = lambda t: onp.asarray(t.cpu()).reshape(*lead, *t.shape[1:])  # noqa: E731
    return f(kp), f(conf), f(probs)


# ------------------------------------------------------------------------------------------------
# Direct ablation: the body under SDS
# ------------------------------------------------------------------------------------------------
def make_direct(fbody: pf.PoseFitBody, setup: pf.PoseFitSetup, betas, colors, cfg: coarse.CoarseConfig, *,
                limits_weight: float, sigma: float = 1.0):
    """render_fn(params, (batch, _)) of the rasterised, lit Anny body for seed-stacked PoseFitParams."""
    faces = fbody.model.faces

    def render_seed(params: pf.PoseFitParams, batch: coarse.StepBatch):
        bp = pf.BodyParams(betas=betas, pose=jnp.zeros((setup.num_joints, 3)), transl=params.transl,
                           scale=jnp.exp(params.log_scale))
        verts = pose(fbody.model, bp, rotations=pf.fit_rotations(setup, params)).vertices

        def view(cam, light, amb, bg):
            # Anny is closed, consistently wound outward (watertight, positive volume): back faces are
            # never visible, and culling them halves the soft fragment buffer (F x 49 at sigma = 1).
            out = rasterize(verts, faces, colors, cam, mode="soft", sigma=sigma, background=0.0, cull_backfaces=True)
            n = out["normal"]
            lum = amb + (1 - amb) * jnp.abs(jnp.einsum("hwc,c->hw", n, light))
            rgb = out["rgb"] * lum[..., None]
            a = out["alpha"][..., None]
            return rgb + (1 - a) * bg

        return jax.vmap(view)(batch.camera, batch.light_dir, batch.ambient, batch.background)

    def render_fn(params, bw):
        batch, _ = bw
        return jax.vmap(render_seed)(params, batch)

    def extra(params, bw):
        def one(p):
            v, _ = pf.pose_prior_term(fbody.prior, pf.full_pose(setup, p), jnp.float32(0.0), jnp.float32(limits_weight))
            return v
        return jnp.sum(jax.vmap(one)(params)), {}

    return render_fn, extra


# ------------------------------------------------------------------------------------------------
# Field start: a centred blob in empty space
# ------------------------------------------------------------------------------------------------
def empty_outside_blob(params, offset: float):
    """Shift the raw density of fresh field params (leading seed axis) down by `offset`.

    nerf.field adds a Gaussian bias b(x) to the raw density and applies trunc_exp, so a fresh field
    (MLP output ~ 0) has sigma = exp(b(x)) >= 1/m everywhere: the 2 m box is an opaque fog that fills
    the frame, and SDS then only recolours it (the first session's collapse to a backdrop). With
    sigma = exp(b(x) - offset) the blob (b > offset) stays opaque and the rest of the box starts empty,
    as DreamFusion/Magic3D's density bias intends. Only the output bias of the density MLP changes,
    so the Adam state from `init` still matches.
    """
    bias = params["d2"]["bias"]
    off = jnp.asarray(offset, jnp.float32)  # scalar, or one per seed (S,)
    bias[...] = bias[...].at[..., 0].add(-off)
    return params


SHAPE_INIT = shape_init.ShapeInitConfig()


def standing_occupancy(fbody: pf.PoseFitBody, setup: pf.PoseFitSetup, betas, p0: pf.PoseFitParams,
                       field: FieldConfig, resolution: int):
    """Winding-number occupancy grid of the body at the direct arm's start `p0` (first seed; all equal)."""
    p = jax.tree.map(lambda a: a[0], p0)
    bp = pf.BodyParams(betas=betas, pose=jnp.zeros((setup.num_joints, 3)), transl=p.transl, scale=jnp.exp(p.log_scale))
    verts = pose(fbody.model, bp, rotations=pf.fit_rotations(setup, p)).vertices
    return jax.jit(shape_init.occupancy_grid, static_argnums=(2, 3))(verts, jnp.asarray(fbody.model.faces), field,
                                                                     resolution)


def shape_init_start(keys, params, fbody: pf.PoseFitBody, setup: pf.PoseFitSetup, betas, p0: pf.PoseFitParams,
                     field: FieldConfig, si_cfg: shape_init.ShapeInitConfig):
    """Seed-stacked coarse params fitted to the standing body (`--shape-init`) and a summary dict.

    The same function of the keys for the sweep (tuning keys) and the evaluation (evaluation keys)."""
    t0 = time.perf_counter()
    grid = standing_occupancy(fbody, setup, betas, p0, field, si_cfg.grid_resolution)
    fit = jax.jit(jax.vmap(lambda k, p: shape_init.fit_density(k, p, field, grid, si_cfg)))
    params, info = fit(jax.vmap(lambda k: jax.random.fold_in(k, 5))(keys), params)
    jax.block_until_ready(params)
    return params, dict(occupied_fraction=float(grid.mean()), loss_first=float(info["loss_first"].mean()),
                        loss_last=float(info["loss_last"].mean()), seconds=time.perf_counter() - t0,
                        config=dataclasses.asdict(si_cfg), grid_resolution=int(grid.shape[0]))


def standing_start(body_model, setup: pf.PoseFitSetup, S: int) -> tuple[jax.Array, pf.PoseFitParams]:
    """betas and the S-stacked standing pose (unit scale, root at the origin) both arms start from."""
    betas = jnp.zeros((1,), jnp.float32)
    root_rest = rest_joints(body_model, betas)[0]
    P = len(setup.fit_joints)
    p0 = pf.PoseFitParams(log_scale=jnp.zeros((S,)), global_rot6d=jnp.broadcast_to(jnp.array([1.0, 0, 0, 0, 1.0, 0]), (S, 6)),
                          transl=jnp.broadcast_to(-root_rest, (S, 3)), body_pose=jnp.zeros((S, P, 3)))
    return betas, p0


def over_white(rgb_premult, alpha):
    """Premultiplied renders over white: the backdrop of the training renders and of the SDS views."""
    return rgb_premult + (1.0 - alpha[..., None])


# ------------------------------------------------------------------------------------------------
# The anchor pipeline after the coarse stage, shared by the tuning sweep and the evaluation
# ------------------------------------------------------------------------------------------------
# Where the 2D keypoints of Eq. 2 come from (session 7). The anchor NeRF is extracted by 2D-masked alignment
# (stages/anchor.py): every ray through a pixel the segmentation calls "object" is made transparent, which also
# erases the human parts behind or inside the object along that ray -- exactly the hands and forearms in
# contact (lifting: the forearms reach into the held box; sessions 3-6 fitted them straighter). The coarse
# render of the same view still shows the hands in their context, and the keypoint net (like OpenPose on
# photographs) is trained on people occluded by the objects they touch.
#   anchor: keypoints of the anchor renders only (paper; sessions 3-6)
#   fused:  per view, the net's logits of the anchor render and of the coarse render averaged (one pixel grid)
#   both:   Eq. 2 over 2V observations, the anchor's V detections and the coarse render's V (same cameras,
#           each with its confidences; Geman-McClure lets the fit discard the one that disagrees)
#   coarse: keypoints of the coarse renders only -- a diagnostic that bypasses the anchor NeRF; never picked
KEYPOINT_SOURCES = ("anchor", "fused", "both", "coarse")
PICK_EXCLUDED_SOURCES = ("coarse",)

# (number of canonical views the keypoints are detected in, flip test, keypoint source). Session 6 swept
# (4|8 views) x (flip or not) with the anchor source: neither 8 views nor the flip test helped on tuning keys;
# session 7 sweeps the source (the coarse renders exist at the 4 canonical views only).
DETECT_VARIANTS = ((4, False, "anchor"), (4, False, "fused"), (4, False, "both"), (4, False, "coarse"))


def parse_margins(text: str) -> list[float | None]:
    """'0.1,0.2,none' -> [0.1, 0.2, None]: the anchor extractions a sweep compares (None = 2D-masked rays,
    a number = occluder rays transparent up to the occluder's surface + that many metres; session 8)."""
    out: list[float | None] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part.lower() == "none":
            out.append(None)
            continue
        try:
            v = float(part)
        except ValueError:
            raise ValueError(f"--sweep-anchor-margins: {part!r} is neither a number of metres nor 'none'") from None
        if not v >= 0:
            raise ValueError(f"--sweep-anchor-margins: margins must be >= 0 m, got {v}")
        out.append(v)
    if not out or len(set(out)) != len(out):
        raise ValueError(f"--sweep-anchor-margins: need distinct entries, got {text!r}")
    return out


def sweep_variants(margins: list[float | None]) -> list[tuple]:
    """(views, flip, source, occluder margin) rows of a sweep, in tie order: per anchor extraction (in the order
    given) the sources that use the anchor, then the coarse-only diagnostic once (it does not see the anchor)."""
    rows = [(nv, flip, src, m) for m in margins for nv, flip, src in DETECT_VARIANTS if src not in PICK_EXCLUDED_SOURCES]
    return rows + [(nv, flip, src, None) for nv, flip, src in DETECT_VARIANTS if src in PICK_EXCLUDED_SOURCES]


def canonical_views(n: int, res: int) -> pf.CanonicalViews:
    """n azimuths evenly around +y from the front (n = 4: 0/90/180/270, the anchor's views)."""
    return pf.CanonicalViews(azimuths_deg=tuple(360.0 * i / n for i in range(n)), radius=3.0, elevation_deg=10.0,
                             fov_y_deg=40.0, size=res)


def make_render_all(field: FieldConfig, rcfg: RenderConfig, cams: Camera, *, batch: int = 4):
    """jitted params (S, ...) -> premultiplied rgb (S, V, H, W, 3), alpha, depth (S, V, H, W) over black, albedo.

    `batch` runs at a time (lax.map): the hash-grid temporaries of all runs at once are ~1.1 GB per run and
    view (36 runs x 4 views asked the H100 for 41 GB)."""
    albedo = dataclasses.replace(rcfg, shading="albedo", normals=False)

    @jax.jit
    def render_all(params):
        def one(p):
            o = render_nerf_views(p, field, cams, None, render_cfg=albedo, background=0.0)
            return o["rgb"], o["alpha"], o["depth"]
        return jax.lax.map(one, params, batch_size=batch)

    return render_all


def anchor_fields(keys, coarse_params, field: FieldConfig, rcfg: RenderConfig, cams: Camera, c_rgb, c_alpha, human, *,
                  steps: int, n_rays: int, chunk: int = 16, c_depth=None, occluder_margin: float | None = None):
    """Φ_A from Φ̂ by masked feature alignment (stages/anchor.py), vmapped over `chunk` runs at a time (runs are
    independent; the evaluation's 16 are one chunk, as in sessions 3-5); returns the anchor params.

    occluder_margin (m, with the coarse depths `c_depth`): occluder rays are made transparent only up to the
    occluder's surface + margin (session 8, `alignment_rays(depth=...)`); None = the paper's 2D-masked rays."""
    if occluder_margin is not None and c_depth is None:
        raise ValueError("anchor_fields: occluder_margin needs the coarse renders' depth (c_depth)")
    acfg = anchor_stage.AnchorConfig(steps_per_call=max(1, min(100, steps)), n_rays=n_rays,
                                     render=dataclasses.replace(rcfg, shading="albedo", normals=False))
    if occluder_margin is None:
        rays = jax.vmap(lambda r, a, m: anchor_stage.alignment_rays(cams, r, a, m))(c_rgb, c_alpha, human)
    else:
        rays = jax.vmap(lambda r, a, m, d: anchor_stage.alignment_rays(cams, r, a, m, depth=d, occluder_margin=occluder_margin))(
            c_rgb, c_alpha, human, c_depth)
    a_update = jax.jit(jax.vmap(anchor_stage.make_update(field, acfg), in_axes=(0, 0, None)))
    aw = anchor_stage.AnchorWeights.default()
    out = []
    for lo in range(0, keys.shape[0], chunk):
        part = slice(lo, lo + chunk)
        a_state = jax.vmap(anchor_stage.init)(jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys[part]),
                                              jax.tree.map(lambda a: a[part], coarse_params))
        r = jax.tree.map(lambda a: a[part], rays)
        for _ in range(max(1, steps // acfg.steps_per_call)):
            a_state, _ = a_update(a_state, r, aw)
        out.append(a_state.params)
    return jax.tree.map(lambda *a: jnp.concatenate(a), *out)


def anchor_keypoints(det, a_rgb8, a_alpha8, n_views: int, flip: bool, source: str = "anchor", coarse_img=None):
    """Keypoints of the anchor renders at the 8 azimuths (S, 8, H, W, ...): all 8 or every second (the 4
    canonical views); confidences under 0.25 zeroed (as sessions 3-5). `source` (KEYPOINT_SOURCES) adds the
    coarse renders `coarse_img` (S, 4, H, W, 3) over white at the 4 canonical views: "both" returns
    (S, 2 * 4, 18, 2), the anchor's 4 views then the coarse render's 4 (cameras: `keypoint_cameras`)."""
    if n_views not in (4, 8):
        raise ValueError(f"detection views must be 4 or 8, got {n_views}")
    if source not in KEYPOINT_SOURCES:
        raise ValueError(f"keypoint source must be one of {KEYPOINT_SOURCES}, got {source!r}")
    if source != "anchor" and (n_views != 4 or coarse_img is None):
        raise ValueError(f"keypoint source {source!r} needs the coarse renders of the 4 canonical views (got {n_views} views"
                         f"{'' if coarse_img is not None else ', no coarse renders'})")
    sel = slice(None, None, 8 // n_views)
    a_img = over_white(a_rgb8[:, sel], a_alpha8[:, sel])
    if source == "coarse":
        kp, conf, _ = detect(det, coarse_img, flip=flip)
    elif source == "fused":
        kp, conf, _ = detect(det, a_img, flip=flip, context=jnp.asarray(coarse_img))
    else:
        kp, conf, _ = detect(det, a_img, flip=flip)
        if source == "both":
            kc, cc, _ = detect(det, coarse_img, flip=flip)
            kp, conf = onp.concatenate([kp, kc], 1), onp.concatenate([conf, cc], 1)
    return kp, onp.where(conf > 0.25, conf, 0.0)


def keypoint_cameras(cams4: Camera, cams8: Camera, n_views: int, source: str) -> Camera:
    """The cameras of `anchor_keypoints`' views: 4 or 8 canonical ones, the 4 twice for source "both"."""
    if source == "both":
        return jax.tree.map(lambda a: jnp.concatenate([a, a]), cams4)
    return cams4 if n_views == 4 else cams8


def fit_keypoints(fbody: pf.PoseFitBody, setup: pf.PoseFitSetup, betas, kp, conf, cams: Camera, res: int,
                  fcfg: pf.PoseFitConfig):
    """Eq. 2 fit of the body to each run's multi-view keypoints (S, V, 18, 2) px of res-px views (x FIT_FRAME/res,
    the 512 px frame pose_fit's default weights are tuned for; the same geometry)."""
    S = kp.shape[0]
    sc = FIT_FRAME / res
    Ks = jnp.diag(jnp.array([sc, sc, 1.0])) @ cams.K
    data = pf.MultiViewKeypoints(keypoints=jnp.asarray(kp * sc), confidence=jnp.asarray(conf, jnp.float32),
                                 K=jnp.broadcast_to(Ks, (S,) + Ks.shape),
                                 T_cam_world=jnp.broadcast_to(cams.T_cam_world, (S,) + cams.T_cam_world.shape))
    fitted, kp3d, aux = jax.jit(jax.vmap(pf.make_fit(setup, fcfg), in_axes=(None, None, 0, None, None)))(
        fbody, betas, data, jnp.zeros(3), pf.PoseFitWeights.default())
    return fitted, onp.asarray(kp3d), aux


def judge(kp3d, scale, true, means, c_depth, obj_mask, cams: Camera, contact: float) -> dict:
    """Pose class (nearest class mean), relations on the coarse field's object points, and correctness."""
    feat = onp.asarray(lpd.pose_features(jnp.asarray(kp3d)))
    pred = classify(feat, means)
    pts, valid = jax.vmap(lambda d, m: backproject(d, m, cams))(c_depth, jnp.asarray(obj_mask))
    sit, lift = relations(kp3d, onp.asarray(pts), onp.asarray(valid), onp.asarray(scale), contact=contact)
    ok_pose = pred == true
    ok_full = ok_pose & onp.where(true == 0, sit, onp.where(true == 1, lift, True))
    return dict(features=feat, pred=pred, sit=sit, lift=lift, ok_pose=ok_pose, ok_full=ok_full)


def make_direct_runner(fbody: pf.PoseFitBody, setup: pf.PoseFitSetup, betas, p0, colors, ccfg: coarse.CoarseConfig,
                       keys, *, views: int, res: int):
    """run(n, guidance, state=None) -> SDSState: the direct ablation (the body under SDS, seed-stacked runs,
    the coarse stage's views, lights and backdrops drawn from the same keys), and its render_fn.

    The SDS step closes over its guidance (priors.bridge.make_sds_step), so `run` builds the step for the
    guidance it is given: sessions 3-5 built it once with the first guidance, whose t_max anneal spanned
    --steps instead of the N steps run, so their direct arm annealed more slowly than the coarse arm."""
    render_fn, extra = make_direct(fbody, setup, betas, colors, ccfg, limits_weight=10.0)
    steps: dict[int, tuple] = {}

    @jax.jit
    def sample(i):
        return jax.vmap(lambda k: coarse.sample_step_batch(jax.random.fold_in(jax.random.fold_in(k, 2), i), i,
                                                           n_views=views, resolution=res, camera=ccfg.camera,
                                                           shading=ccfg.shading))(keys)

    def run(n: int, guidance, state=None):
        if id(guidance) not in steps:
            steps[id(guidance)] = (guidance,) + make_sds_step(render_fn, optax.adam(1e-2), guidance, extra_loss_fn=extra)
        _, d_init, d_step = steps[id(guidance)]
        state = d_init(p0, jax.random.key(11)) if state is None else state
        start = int(state.step)
        for i in range(start, start + n):
            batch = sample(jnp.int32(i))
            state, _ = d_step(state, (batch, None), coarse.views_info(batch, 1))
        jax.block_until_ready(state.params)
        return state

    return run, render_fn


# ------------------------------------------------------------------------------------------------
def _grid(images: onp.ndarray) -> onp.ndarray:
    """(R, C, H, W, 3) -> (R*H, C*W, 3)."""
    R, C, H, W, _ = images.shape
    return images.transpose(0, 2, 1, 3, 4).reshape(R * H, C * W, 3)


def _draw_kp(img: onp.ndarray, kp: onp.ndarray, conf: onp.ndarray) -> onp.ndarray:
    from anchorhoi_jax.demo import draw_skeleton

    return draw_skeleton(img, kp, (conf > 0).astype(onp.float32), radius=1, width=1, alpha=0.9)


def smoke_artifacts(tmp: Path, device) -> tuple[Path, Path, Path, Path]:
    """CPU plumbing check: a tiny prior (a few steps on random data), a random detector, the frozen body."""
    data = dict(image=onp.random.default_rng(0).integers(0, 255, (16, 16, 16, 3), dtype=onp.uint8),
                cls=onp.arange(16) % NC, tag=onp.arange(16) % 4)
    unet, te, tok, sched, _ = tp.train_prior(data, unet_config=tp.TINY_UNET_CONFIG, steps=2, batch=4, device=device,
                                             log=lambda *_: None)
    prior = tp.save_prior(tmp / "prior", unet, te, tok, sched, fp16=False)
    det = tp.build_detector(dict(tp.DETECTOR_CONFIG, block_out_channels=(16, 16, 16, 16), norm_num_groups=8))
    torch.save(dict(config=dict(tp.DETECTOR_CONFIG, block_out_channels=(16, 16, 16, 16), norm_num_groups=8),
                    state_dict={k: v.half() for k, v in det.state_dict().items()}), tmp / "detector.pt")
    from anchorhoi_jax.body.anny import CACHE_FORMAT, Phenotype, load_anny

    anny = tmp / f"anny-frozen-f{CACHE_FORMAT}.npz"
    onp.savez_compressed(anny, **lpd.frozen_anny_arrays(load_anny(), Phenotype()))
    classes = tmp / "classes.json"
    classes.write_text(json.dumps(dict(mean=onp.random.default_rng(1).uniform(0, 1.5, (NC, 8)).tolist())))
    return prior, tmp / "detector.pt", anny, classes


def calibrate(data_path: Path, classes_path: Path, contact_m: float) -> dict:
    """Nearest-class-mean accuracy and relation pass rates on the training scenes (ground truth)."""
    with onp.load(data_path) as f:
        feats, cls, kp3d = f["features"], f["scene_cls"].astype(onp.int64), f["kp3d"]
        centers, sizes = f["obj_centers"], f["obj_sizes"]
    stats = json.loads(classes_path.read_text())
    means = onp.asarray(stats["mean"], onp.float32)
    pred = classify(feats, means)
    pts, valid = box_surface_points(centers, sizes)
    sit, lift = relations(kp3d, pts, valid, onp.ones(len(kp3d)), contact=contact_m)
    calib = dict(
        classifier_accuracy_train=float((pred == cls).mean()),
        classifier_confusion_train=confusion(cls, pred).tolist(),
        sitting_relation_rate={lpd.CLASSES[c]: float(sit[cls == c].mean()) for c in range(NC)},
        lifting_relation_rate={lpd.CLASSES[c]: float(lift[cls == c].mean()) for c in range(NC)},
        scenes=int(len(cls)),
    )
    stats["relation_calibration"] = calib
    classes_path.write_text(json.dumps(stats, indent=1))
    print(json.dumps(calib, indent=1))
    return calib


def markdown(r: dict) -> str:
    """The results section (benchmarks/results/learned_prior.md)."""
    cls = r["classes"]

    def table(cm):
        cls = lpd.CLASSES
        head = "| true \\ predicted | " + " | ".join(lpd.CLASSES) + " |\n|---|" + "---|" * NC + "\n"
        return head + "".join(f"| {c} | " + " | ".join(str(x) for x in row) + " |\n" for c, row in zip(cls, cm)
                              if any(row))

    sec = r["seconds"]
    lines = [
        "## Learned prior: anchor NeRF vs direct body SDS (issue 7, paper Table 3 top)",
        "",
        f"Device: {r['device']}; jax {r['versions']['jax']}, torch {r['versions']['torch']}. "
        f"Command: `python benchmarks/learned_prior.py --out DIR --train-json DIR/train_prior.json` after "
        "`python benchmarks/train_prior.py` (data: `python benchmarks/learned_prior_data.py`, CPU).",
        "",
        f"Prior: {r.get('params_million', float('nan')):.2f} M-parameter IF-layout UNet + 2-layer T5 text encoder, "
        f"trained {r.get('train_minutes', float('nan')):.1f} min on renders of 4 interaction classes; "
        f"{r['runs']} runs = {len(cls)} classes x {r['seeds']} seeds, vmapped.",
        "",
        "| | accuracy |",
        "|---|---|",
        f"| anchor NeRF -> keypoints -> Eq. 2 fit (pose class and relation) | **{r['accuracy_anchor']:.3f}** |",
        f"| anchor NeRF, pose class only | {r['accuracy_anchor_pose_only']:.3f} |",
        f"| direct: body under SDS (pose class; no object exists) | **{r['accuracy_direct']:.3f}** |",
        "",
        "Per class (anchor, pose+relation / pose only / direct): " + "; ".join(
            f"{c}: {r['per_class_anchor'][c]:.2f} / {r['per_class_anchor_pose_only'][c]:.2f} / {r['per_class_direct'][c]:.2f}"
            for c in cls),
        "",
        "Confusion, anchor pipeline (pose class):",
        "",
        table(r["confusion_anchor_pose"]),
        "Confusion, direct:",
        "",
        table(r["confusion_direct"]),
        f"Steps: coarse {r['steps']['coarse']} SDS, anchor {r['steps']['anchor']}, pose fit {r['steps']['pose_fit']}, "
        f"direct {r['steps']['direct']} SDS. Seconds: coarse {sec['coarse']:.0f}, anchor+detection {sec['anchor_and_detect']:.0f}, "
        f"fit {sec['pose_fit']:.0f}, direct {sec['direct']:.0f}, whole evaluation {sec['total']:.0f}"
        + (f"; train + evaluation {r['eval_plus_train_minutes']:.1f} min." if "eval_plus_train_minutes" in r else "."),
        "",
        f"Anchor opacity vs predicted human mask IoU: {r['anchor_iou_vs_human_mask']:.3f}. "
        f"Relation calibration on the training scenes (exact boxes): {json.dumps(r.get('calibration', {}))}.",
        "",
    ]
    return "\n".join(lines)


def parse_sweep(text: str) -> list[dict]:
    """'scale=20,offset=6,tmax=0.98,lr=0.01;...' -> one dict per config (missing keys: the defaults).

    Keys: scale (CFG), offset (start density shift), tmax / tend (t_max at the first / last step), lr,
    est (0 = SDS Eq. 1, 1 = the denoised-target estimator), k (its DDIM steps), sparsity (weight of the
    coarse stage's opacity sparsity term, threestudio's lambda_sparsity; configs with different values
    run as separate vmapped groups because the regulariser weights are shared by the runs of a fit)."""
    out = []
    for part in text.split(";"):
        cfg = dict(scale=15.0, offset=6.0, tmax=0.98, tend=0.5, lr=1e-2, est=0.0, k=4.0, sparsity=1.0)
        for kv in filter(None, part.split(",")):
            k, v = kv.split("=")
            if k not in cfg:
                raise ValueError(f"--sweep: unknown key {k!r} (known: {sorted(cfg)})")
            cfg[k] = float(v)
        out.append(cfg)
    return out


ESTIMATORS = ("sds", "denoised")


def sds_settings(*, tmax: float, tend: float, est: float, k: float, steps: int) -> SDSConfig:
    """SDSConfig of a run: t_max annealed linearly tmax -> tend over `steps`; the denoised estimator
    with uniform w(t) (its residual z - x0_hat already shrinks with t), Eq. 1 with DreamFusion's w(t)."""
    e = ESTIMATORS[int(est)]
    return SDSConfig(t_range_start=(0.02, tmax), t_range_end=(0.02, tend), anneal_steps=steps, anneal="linear",
                     estimator=e, denoise_steps=int(k), weighting="uniform" if e == "denoised" else "sds")


def sweep(args, out: Path, log, prior_dir, det, field, rcfg, res, device, dtype, *, body, setup, fbody,
          means, n_anchor_rays: int) -> dict:
    """The evaluation's pipeline on tuning keys, for several SDS settings at once (session 6).

    Runs are config-major, then class, then `--sweep-seeds` seeds; run (config, class c, seed j) gets the
    tuning key offset + c * seeds + j, the same for every config (common random numbers: configs differ
    only in their settings) and laid out like the evaluation's keys. All runs vmapped, configs with
    different `sparsity` as separate coarse groups; each (config, class) chunk its own guidance. Then, as
    the evaluation does: canonical renders, human masks, anchor NeRF, anchor keypoints -> Eq. 2 fit ->
    pose class and relation, for every detection variant of DETECT_VARIANTS; and the direct arm (the body
    under SDS) with the same guidance and steps, so both arms get the same tuning runs. `--pick accuracy`
    then takes the (config, detection variant) of max anchor accuracy. Never on the evaluation keys."""
    if args.seed_offset == 0:
        raise ValueError("--sweep tunes settings: use --seed-offset != 0 (offset 0 are the evaluation keys)")
    cfgs = parse_sweep(args.sweep)
    groups = sorted({c["sparsity"] for c in cfgs})
    runs = [(i, c, j) for g in groups for i in range(len(cfgs)) if cfgs[i]["sparsity"] == g
            for c in range(NC) for j in range(args.sweep_seeds)]
    S = len(runs)
    n = args.sweep_steps
    ccfg = coarse.CoarseConfig(field=field, render=rcfg, resolution=res, steps=n, views=args.views, log_every=50,
                               shading=coarse.ShadingConfig(albedo_steps=n, background=args.background))
    root = jax.random.key(7)
    idx_key = jnp.asarray([c * args.sweep_seeds + j for _, c, j in runs])
    keys = jax.vmap(lambda i: jax.random.fold_in(root, args.seed_offset + i))(idx_key)
    st0 = coarse.init_seeds(keys, ccfg)
    betas, p0 = standing_start(body.model, setup, S)
    si_info = None
    if args.shape_init:
        si_cfg = shape_init.ShapeInitConfig(steps=5, points=256, grid_resolution=16) if args.smoke else SHAPE_INIT
        params0, si_info = shape_init_start(keys, st0.params, fbody, setup, betas, p0, field, si_cfg)
        log(f"sweep shape init: {S} runs from the standing body in {si_info['seconds']:.1f} s "
            f"(mse {si_info['loss_first']:.2f} -> {si_info['loss_last']:.3f})")
    else:
        params0 = empty_outside_blob(st0.params, jnp.asarray([cfgs[i]["offset"] for i, _, _ in runs]))
    st0 = st0.replace(params=params0)
    # one guidance per (config, class) chunk of seeds, in run order (shared by the coarse groups and the direct arm)
    chunk_parts = []
    for s in range(0, S, args.sweep_seeds):
        i, c, _ = runs[s]
        sds = sds_settings(tmax=cfgs[i]["tmax"], tend=cfgs[i]["tend"], est=cfgs[i]["est"], k=cfgs[i]["k"], steps=n)
        gc = GuidanceConfig(kind="real", if_dir=str(prior_dir), mvdream_weight=0.0, if_scale=cfgs[i]["scale"], sds=sds)
        chunk_parts.append((build_guidance(lpd.class_prompt(c), gc, device=device, dtype=dtype), 1.0))
    finals, hist = [], []
    t0 = time.perf_counter()
    for g in groups:
        idx = onp.asarray([s for s, (i, _, _) in enumerate(runs) if cfgs[i]["sparsity"] == g])
        parts = [chunk_parts[s // args.sweep_seeds] for s in idx[::args.sweep_seeds]]
        st = jax.tree.map(lambda a: a[idx], st0)
        weights = coarse.CoarseWeights.default(sparsity=g).replace(
            lr=jnp.asarray([cfgs[runs[s][0]]["lr"] for s in idx], jnp.float32))
        t1 = time.perf_counter()
        st, h = coarse.fit(st, ccfg, weights, StackedGuidance(parts))
        jax.block_until_ready(st.params)
        log(f"sweep group sparsity={g:g}: {len(idx)} runs x {n} steps in {time.perf_counter() - t1:.1f} s")
        finals.append(st.params)
        hist += h[-1:]
    params = jax.tree.map(lambda *a: jnp.concatenate(a), *finals)  # run order (group-major)
    sds_s = time.perf_counter() - t0

    # ---- the evaluation's anchor pipeline on every run
    t0 = time.perf_counter()
    cams4 = pf.canonical_cameras(canonical_views(4, res))
    cams8 = pf.canonical_cameras(canonical_views(8, res))
    c_rgb, c_alpha, c_depth = make_render_all(field, rcfg, cams4)(params)
    img = onp.asarray(over_white(c_rgb, c_alpha))
    _, _, probs = detect(det, img)
    human = jnp.asarray(probs[:, :, 1]) * (c_alpha > 0.05)
    obj_mask = (probs[:, :, 2] > 0.5) & (onp.asarray(c_alpha) > 0.5)
    true = onp.asarray([c for _, c, _ in runs])
    fcfg = pf.PoseFitConfig(global_steps=2, pose_steps=2, num_hypotheses=1) if args.smoke else pf.PoseFitConfig()
    margins = parse_margins(args.sweep_anchor_margins)
    variants = sweep_variants(margins)
    judged, kps, anchors, anchor_ious = {}, {}, {}, {}
    for m in margins:  # one anchor extraction per occluder margin (session 8), the same coarse fields and masks
        t1 = time.perf_counter()
        a_params = anchor_fields(keys, params, field, rcfg, cams4, c_rgb, c_alpha, human, steps=args.anchor_steps,
                                 n_rays=n_anchor_rays, chunk=args.anchor_chunk, c_depth=c_depth, occluder_margin=m)
        anchors[m] = make_render_all(field, rcfg, cams8)(a_params)[:2]
        del a_params
        anchor_ious[m] = float(anchor_stage.mask_iou(anchors[m][1][:, ::2], human))
        log(f"sweep anchor (occluder margin {m}): {S} runs, {args.anchor_steps} steps, IoU {anchor_ious[m]:.3f}, "
            f"{time.perf_counter() - t1:.1f} s")
    anchor_iou = anchor_ious[margins[0]]
    for nv, flip, src, m in variants:
        t1 = time.perf_counter()
        a_rgb8, a_alpha8 = anchors[margins[0] if m is None and None not in anchors else m]
        kp, conf = anchor_keypoints(det, a_rgb8, a_alpha8, nv, flip, src, img)
        fitted, kp3d, _ = fit_keypoints(fbody, setup, betas, kp, conf, keypoint_cameras(cams4, cams8, nv, src), res, fcfg)
        judged[nv, flip, src, m] = judge(kp3d, fitted.scale, true, means, c_depth, obj_mask, cams4, args.contact_m)
        kps[nv, flip, src, m] = (kp, conf)
        log(f"sweep variant views={nv} flip={flip} source={src} occluder margin={m}: anchor accuracy "
            f"{judged[nv, flip, src, m]['ok_full'].mean():.3f} ({time.perf_counter() - t1:.1f} s)")

    # ---- pictures (rows = runs: coarse over white at azimuths 0 and 90 with the coarse-render keypoints | per
    # anchor extraction, the anchor at the same 2 with its anchor-render keypoints), arrays for CPU re-analysis, stats
    kc, cfc = kps[4, False, "coarse", None]
    cols = [(img, kc, cfc)]
    for m in margins:
        ka, cfa = kps[4, False, "anchor", m]
        cols.append((onp.asarray(over_white(anchors[m][0][:, ::2], anchors[m][1][:, ::2])), ka, cfa))
    drawn = onp.stack([[_draw_kp(im[s, v], k[s, v], c[s, v]) for im, k, c in cols for v in range(2)] for s in range(S)])
    from anchorhoi_jax.io.export import write_png

    write_png(out / "sweep.png", onp.clip(_grid(drawn), 0, 1))
    onp.savez_compressed(out / "sweep_arrays.npz", coarse_rgb=onp.asarray(c_rgb, onp.float16),
                         coarse_alpha=onp.asarray(c_alpha, onp.float16), coarse_depth=onp.asarray(c_depth, onp.float16),
                         true=true, config=onp.asarray([i for i, _, _ in runs]), margins=onp.asarray(
                             [onp.nan if m is None else m for m in margins]),
                         **{f"anchor_rgb4_m{k}": onp.asarray(anchors[m][0][:, ::2], onp.float16) for k, m in enumerate(margins)},
                         **{f"anchor_alpha4_m{k}": onp.asarray(anchors[m][1][:, ::2], onp.float16) for k, m in enumerate(margins)})
    al = onp.asarray(c_alpha)
    stats = []
    for s, (i, c, j) in enumerate(runs):
        r = dict(config=i, cls=lpd.CLASSES[c], seed=j, coverage=float(al[s].mean()),
                 human_prob=float(probs[s, :, 1].mean()), object_prob=float(probs[s, :, 2].mean()))
        for (nv, flip, src, m), jd in judged.items():
            tag = f"v{nv}{'f' if flip else ''}_{src}" + ("" if m is None else f"_m{m:g}")
            r[tag] = dict(pred=lpd.CLASSES[int(jd["pred"][s])], correct=bool(jd["ok_full"][s]),
                          correct_pose=bool(jd["ok_pose"][s]), sit=bool(jd["sit"][s]), lift=bool(jd["lift"][s]),
                          features=jd["features"][s].round(3).tolist())
        stats.append(r)

    def tabulate(pred_d):
        """per run and per (config, detection variant) rows; direct columns None until the direct arm ran"""
        rows = [dict(r, pred_direct=None if pred_d is None else lpd.CLASSES[int(pred_d[s])],
                     correct_direct=None if pred_d is None else bool(pred_d[s] == true[s])) for s, r in enumerate(stats)]
        per_cfg = []
        for i in range(len(cfgs)):  # config-major, then the variants in sweep_variants order (the tie order)
            sel = onp.asarray([ci == i for ci, _, _ in runs])
            base = dict(accuracy_direct=None if pred_d is None else float((pred_d[sel] == true[sel]).mean()),
                        per_class_direct=None if pred_d is None else {
                            lpd.CLASSES[c]: float((pred_d == true)[sel & (true == c)].mean()) for c in range(NC)},
                        **{k: float(onp.mean([r[k] for r in stats if r["config"] == i])) for k in keys_})
            for nv, flip, src, m in variants:
                jd = judged[nv, flip, src, m]
                per_cfg.append(dict(config=cfgs[i], variant=dict(detect_views=nv, detect_flip=flip, keypoint_source=src,
                                                                 anchor_occluder_margin=m),
                                    accuracy=float(jd["ok_full"][sel].mean()),
                                    accuracy_pose=float(jd["ok_pose"][sel].mean()),
                                    per_class={lpd.CLASSES[c]: float(jd["ok_full"][sel & (true == c)].mean())
                                               for c in range(NC)}, **base))
        return dict(steps=n, seed_offset=args.seed_offset, seeds_per_class=args.sweep_seeds,
                    keys="tuning index c * seeds + j per (class c, seed j), the same for every config",
                    start="standing body (shape init)" if args.shape_init else "blob", shape_init=si_info,
                    sds_seconds=sds_s, anchor_iou_vs_human_mask=anchor_iou,
                    anchor_iou_per_margin={str(m): v for m, v in anchor_ious.items()}, runs=rows, per_config=per_cfg,
                    history=hist)

    keys_ = ("coverage", "human_prob", "object_prob")
    result = tabulate(None)
    (out / "sweep.json").write_text(json.dumps(result, indent=1))
    for r in result["per_config"]:
        log(f"sweep {json.dumps({k: r[k] for k in ('config', 'variant', 'accuracy', 'accuracy_pose')})}")

    if args.sweep_skip_direct:  # nothing of the direct arm is selected by this sweep (its SDS settings are fixed)
        log("sweep direct: skipped (--sweep-skip-direct)")
        return result
    # ---- the direct arm on the same runs, guidance and steps
    t0 = time.perf_counter()
    colors = jnp.asarray(lpd.random_colors(jax.random.key(3), jnp.asarray(lpd.part_ids(body.model))))
    run_direct, _ = make_direct_runner(fbody, setup, betas, p0, colors, ccfg, keys, views=args.views, res=res)
    d_state = run_direct(n, StackedGuidance(chunk_parts))
    kp3d_d = onp.asarray(jax.vmap(lambda p: pf.keypoints3d(fbody, setup, p, betas))(d_state.params))
    feat_d = onp.asarray(lpd.pose_features(jnp.asarray(kp3d_d)))
    pred_d = classify(feat_d, means)
    direct_s = time.perf_counter() - t0
    log(f"sweep direct: {S} runs x {n} steps in {direct_s:.1f} s")

    result = dict(tabulate(pred_d), direct_seconds=direct_s)
    for s_, r in enumerate(result["runs"]):
        r["features_direct"] = feat_d[s_].round(3).tolist()
    (out / "sweep.json").write_text(json.dumps(result, indent=1))
    for r in result["per_config"][::len(variants)]:
        log(f"sweep direct {json.dumps({k: r[k] for k in ('config', 'accuracy_direct', 'per_class_direct')})}")
    return result


PICK_RULES = ("human_prob", "accuracy")


def pick_config(per_config: list[dict], rule: str) -> dict:
    """The sweep config a rule fixed in advance picks: `human_prob` = max mean human probability of the
    coarse renders (session 4); `accuracy` = max tuning-key accuracy (pose and relation, anchor-free
    pipeline), ties by pose-only accuracy, then by human probability, then the first listed."""
    if rule not in PICK_RULES:
        raise ValueError(f"--pick must be one of {PICK_RULES}, got {rule!r}")
    if rule == "human_prob":
        return max(per_config, key=lambda r: r["human_prob"])
    if any("accuracy" not in r for r in per_config):
        raise ValueError("--pick accuracy needs a sweep.json with per-config accuracy (this script's --sweep)")
    # variants that bypass the anchor NeRF (keypoints of the coarse renders alone) are diagnostics, never picked
    rows = [r for r in per_config if r.get("variant", {}).get("keypoint_source", "anchor") not in PICK_EXCLUDED_SOURCES]
    return max(rows, key=lambda r: (r["accuracy"], r["accuracy_pose"], r["human_prob"]))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prior", default=".cache/prior/model")
    ap.add_argument("--detector", default=None, help="default: PRIOR/detector.pt")
    ap.add_argument("--anny", default=".cache/prior/anny/anny-frozen-f1.npz")
    ap.add_argument("--classes", default=".cache/prior/classes.json")
    ap.add_argument("--train-json", default=None, help="train_prior.json to merge (train_minutes, params_million)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=2000,
                    help="most SDS steps of the coarse stage; the direct ablation runs exactly as many")
    ap.add_argument("--anchor-steps", type=int, default=300)
    ap.add_argument("--views", type=int, default=1, help="random SDS views per run and step (16 runs share a batch)")
    ap.add_argument("--if-scale", type=float, default=15.0)
    ap.add_argument("--lr", type=float, default=1e-2, help="Adam step of the coarse field (paper: 0.01)")
    ap.add_argument("--sparsity", type=float, default=1.0)
    ap.add_argument("--blob-density", type=float, default=10.0)
    ap.add_argument("--blob-radius", type=float, default=0.5)
    ap.add_argument("--blob-axes", default="1,1,1",
                    help="x,y,z factors of the start blob's radius (nerf.field.FieldConfig.blob_axes); e.g. 0.5,1.6,0.5 "
                         "is a person-sized upright ellipsoid, the same for every class and both arms' fairness unaffected")
    ap.add_argument("--background", default="white", choices=("white", "random"),
                    help="backdrop of every SDS view of both arms: white (the session-3 data) or a uniform random "
                         "colour per view (DreamFusion; pair with train_prior.py --random-backdrop)")
    ap.add_argument("--estimator", default="sds", choices=ESTIMATORS,
                    help="guidance estimator of both arms: sds (Eq. 1) or denoised (priors.sds multi-step target)")
    ap.add_argument("--denoise-steps", type=int, default=4, help="DDIM steps of the denoised estimator")
    ap.add_argument("--shape-init", action="store_true",
                    help="start every coarse field from the standing body (nerf.shape_init: density fitted to the "
                         "occupancy of the body the direct arm starts from; no blob, no offset) instead of the blob")
    ap.add_argument("--density-offset", type=float, default=6.0,
                    help="raw density shift of the fresh field (empty_outside_blob); 0 = the field's own start")
    ap.add_argument("--t-max-start", type=float, default=0.98, help="t_max of the first SDS step")
    ap.add_argument("--t-max-end", type=float, default=0.5, help="t_max after the linear anneal over the N steps")
    ap.add_argument("--sds-budget-s", type=float, default=240.0,
                    help="seconds for coarse + direct together: the step count N (<= --steps, same for both arms) "
                         "is chosen from their measured step times before either real run starts")
    ap.add_argument("--seed-offset", type=int, default=0,
                    help="runs use keys fold_in(key(7), offset + i); tune on an offset != 0, report offset 0")
    ap.add_argument("--classes-only", default=None, help="comma list of class ids (tuning runs); default all")
    ap.add_argument("--sweep", default=None, metavar="CFG;CFG;...",
                    help="tuning mode: coarse stage only, one run per (config, class) on keys offset by --seed-offset "
                         "(use one far from 0), e.g. 'scale=20,offset=6,tmax=0.98,lr=0.01;scale=40,...'; writes "
                         "sweep.png (rows: runs, config-major) and sweep.json (coverage, detector confidence)")
    ap.add_argument("--sweep-steps", type=int, default=300)
    ap.add_argument("--sweep-seeds", type=int, default=1, help="tuning seeds per (config, class) of --sweep")
    ap.add_argument("--sweep-anchor-margins", default="none",
                    help="anchor extractions the sweep compares, in tie order: 'none' (2D-masked rays, the paper) or an "
                         "occluder margin in metres (occluder rays transparent only up to the occluder + margin)")
    ap.add_argument("--sweep-skip-direct", action="store_true",
                    help="skip the direct arm in a sweep that selects nothing of it (fixed SDS settings)")
    ap.add_argument("--anchor-chunk", type=int, default=16, help="runs per vmapped anchor extraction")
    ap.add_argument("--anchor-margin", type=float, default=None,
                    help="occluder margin (m) of the anchor extraction; default: 2D-masked rays (paper); "
                         "--settings-from takes it from the picked sweep entry")
    ap.add_argument("--pick", default="human_prob", choices=PICK_RULES,
                    help="rule of --settings-from: max mean human probability of the coarse renders (session 4) or "
                         "max tuning-key accuracy of the anchor-free pipeline (ties: pose-only accuracy, human prob)")
    ap.add_argument("--settings-from", default=None, metavar="SWEEP_JSON",
                    help="take if-scale, density-offset, t-max-start and lr from the sweep's config whose coarse "
                         "renders the segmentation net labels most as human (mean human probability, tuning keys)")
    ap.add_argument("--contact-m", type=float, default=0.15)
    ap.add_argument("--detect-views", type=int, default=4, choices=(4, 8),
                    help="anchor renders the keypoints are detected in and fitted to: the 4 canonical azimuths or "
                         "8 (with the diagonals); --settings-from takes it from the picked sweep entry")
    ap.add_argument("--keypoint-source", default="anchor", choices=KEYPOINT_SOURCES,
                    help="2D keypoints of Eq. 2 from the anchor renders (paper), the anchor and coarse renders fused "
                         "(logits averaged), both as separate observations, or the coarse renders alone (diagnostic); "
                         "--settings-from takes it from the picked sweep entry")
    ap.add_argument("--detect-flip", action="store_true",
                    help="flip test of the keypoint net (logits averaged with the mirrored image's)")
    ap.add_argument("--smoke", action="store_true", help="CPU plumbing check with tiny artifacts and sizes")
    ap.add_argument("--calibrate", default=None, metavar="DATA_NPZ",
                    help="only check the classifier and the relation tests on the training scenes (exact boxes, "
                         "ground-truth keypoints) and store the rates in --classes")
    args = ap.parse_args(argv)
    if args.calibrate:
        calibrate(Path(args.calibrate), Path(args.classes), args.contact_m)
        return
    if args.sweep and args.seed_offset == 0:
        raise ValueError("--sweep tunes settings: use --seed-offset != 0 (offset 0 are the evaluation keys)")
    chosen = None
    if args.settings_from:
        sw = json.loads(Path(args.settings_from).read_text())
        chosen = pick_config(sw["per_config"], args.pick)
        c = chosen["config"]
        args.if_scale, args.density_offset, args.t_max_start, args.lr = c["scale"], c["offset"], c["tmax"], c["lr"]
        args.t_max_end, args.estimator, args.denoise_steps = c["tend"], ESTIMATORS[int(c["est"])], int(c["k"])
        args.sparsity = c.get("sparsity", args.sparsity)
        if "variant" in chosen:  # session-6 sweeps also pick the detection variant
            args.detect_views, args.detect_flip = chosen["variant"]["detect_views"], chosen["variant"]["detect_flip"]
            args.keypoint_source = chosen["variant"].get("keypoint_source", "anchor")  # session-7 sweeps
            args.anchor_margin = chosen["variant"].get("anchor_occluder_margin")  # session-8 sweeps
        rule = ("max mean human probability of the coarse renders" if args.pick == "human_prob" else
                "max tuning-key accuracy (pose and relation) of the anchor-free pipeline; ties: pose-only accuracy, "
                "then mean human probability, then the first listed")
        chosen = dict(chosen, rule=rule + " (sweep on tuning keys)", sweep_seed_offset=sw["seed_offset"],
                      sweep_steps=sw["steps"], all_configs=sw["per_config"])
    t_start = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_lines: list[str] = []

    def log(msg):
        line = f"[{time.perf_counter() - t_start:7.1f} s] {msg}"
        print(line, flush=True)
        log_lines.append(line)

    # Albedo shading (no normals: a third of the lambertian step) over the white backdrop the prior was
    # trained on; remat keeps the vjp residuals of 16 runs small.
    # shape init: no blob; the fresh field's density is fitted to the standing body instead
    blob = dict(blob_density=0.0 if args.shape_init else args.blob_density, blob_radius=args.blob_radius,
                blob_axes=tuple(float(a) for a in args.blob_axes.split(",")))
    res, field, rcfg, n_anchor_rays = 64, FieldConfig(log2_table_size=16, max_resolution=512, **blob), \
        RenderConfig(n_coarse=32, n_fine=32, shading="albedo", remat=True), 4096
    if args.smoke:
        prior_dir, det_path, anny_path, classes_path = smoke_artifacts(out / "smoke", device)
        res, field, rcfg, n_anchor_rays = 16, FieldConfig(n_levels=4, log2_table_size=10, max_resolution=64, hidden=16,
                                                          **blob), RenderConfig(n_coarse=8, n_fine=8, shading="albedo"), 256
    else:
        prior_dir, anny_path, classes_path = Path(args.prior), Path(args.anny), Path(args.classes)
        det_path = Path(args.detector or prior_dir / "detector.pt")
    run_classes = list(range(NC)) if args.classes_only is None else [int(c) for c in args.classes_only.split(",")]
    S = len(run_classes) * args.seeds
    means = onp.asarray(json.loads(classes_path.read_text())["mean"], onp.float32)

    # ---- body, detector, guidance
    body = lpd.load_frozen_anny(anny_path)
    betas = jnp.zeros((1,), jnp.float32)
    setup, fbody = pf.make_setup(body)
    det = tp.load_detector(det_path, device)
    if args.sweep:
        return sweep(args, out, log, prior_dir, det, field, rcfg, res, device, dtype, body=body, setup=setup,
                     fbody=fbody, means=means, n_anchor_rays=n_anchor_rays)

    def make_guidance(anneal_steps: int):
        sds = sds_settings(tmax=args.t_max_start, tend=args.t_max_end, est=ESTIMATORS.index(args.estimator),
                           k=args.denoise_steps, steps=anneal_steps)
        gcfg = GuidanceConfig(kind="real", if_dir=str(prior_dir), mvdream_weight=0.0, if_scale=args.if_scale, sds=sds)
        # runs are class-major: chunk i = the seeds of run_classes[i]
        return StackedGuidance([(build_guidance(lpd.class_prompt(c), gcfg, device=device, dtype=dtype), 1.0)
                                for c in run_classes])

    guidance = make_guidance(args.steps)
    log(f"prior {prior_dir} loaded ({tp.count_params(guidance.parts[0][0].parts[0][0].inner.prior.unet) / 1e6:.2f} M UNet params)")

    # ---- configs of both arms. White backdrop on every SDS view (the training renders' backdrop);
    # albedo only (the renders' headlight shading is baked into the albedo).
    ccfg = coarse.CoarseConfig(field=field, render=rcfg, resolution=res, steps=args.steps, views=args.views,
                               log_every=50, shading=coarse.ShadingConfig(albedo_steps=args.steps, background=args.background))
    root = jax.random.key(7)
    keys = jax.vmap(lambda i: jax.random.fold_in(root, args.seed_offset + i))(jnp.arange(S))
    weights = coarse.CoarseWeights.default(lr=args.lr, sparsity=args.sparsity)
    colors = jnp.asarray(lpd.random_colors(jax.random.key(3), jnp.asarray(lpd.part_ids(body.model))))
    betas, p0 = standing_start(body.model, setup, S)
    run_direct, render_fn = make_direct_runner(fbody, setup, betas, p0, colors, ccfg, keys, views=args.views, res=res)

    start_cache = {}
    si_cfg = shape_init.ShapeInitConfig(steps=5, points=256, grid_resolution=16) if args.smoke else SHAPE_INIT

    def fresh_coarse():
        st = coarse.init_seeds(keys, ccfg)
        if not args.shape_init:
            return st.replace(params=empty_outside_blob(st.params, args.density_offset))
        if "params" not in start_cache:  # fitted once; a pure function of the keys
            params, info = shape_init_start(keys, st.params, fbody, setup, betas, p0, field, si_cfg)
            start_cache.update(params=params, info={k: v for k, v in info.items() if k != "grid_resolution"})
            log(f"shape init: standing body occupancy ({info['grid_resolution']}^3, {100 * info['occupied_fraction']:.2f} % of the box), "
                f"raw-density mse {start_cache['info']['loss_first']:.2f} -> {start_cache['info']['loss_last']:.3f} "
                f"in {start_cache['info']['seconds']:.1f} s")
        return st.replace(params=start_cache["params"])

    # ---- step count N for both arms from measured step times (compiles both, then times 20 steps each)
    w0, w1 = (1, 2) if args.smoke else (5, 20)
    t0 = time.perf_counter()
    tmp = run_direct(w0, guidance)
    t1 = time.perf_counter()
    run_direct(w1, guidance, tmp)
    t_direct = (time.perf_counter() - t1) / w1
    cst, _ = coarse.fit(fresh_coarse(), ccfg, weights, guidance, until=w0)
    jax.block_until_ready(cst.params)
    t1 = time.perf_counter()
    cst, _ = coarse.fit(cst, ccfg, weights, guidance, until=w0 + w1)
    jax.block_until_ready(cst.params)
    t_coarse = (time.perf_counter() - t1) / w1
    del tmp, cst
    n_steps = int(min(args.steps, max(min(50, args.steps), (args.sds_budget_s - (time.perf_counter() - t0)) / (t_coarse + t_direct))))
    n_steps = n_steps // 50 * 50 if n_steps >= 100 else n_steps
    if n_steps != args.steps:
        guidance = make_guidance(n_steps)  # t_max anneals over the steps both arms actually run
    log(f"step times: coarse {1e3 * t_coarse:.0f} ms, direct {1e3 * t_direct:.0f} ms (warm-up with compile "
        f"{time.perf_counter() - t0:.0f} s) -> N = {n_steps} SDS steps for both arms")

    # ---- coarse HOI NeRF, all runs vmapped
    state = fresh_coarse()
    t0 = time.perf_counter()
    done = 0
    hist = []
    while done < n_steps:
        state, h = coarse.fit(state, ccfg, weights, guidance, until=min(done + 50, n_steps))
        jax.block_until_ready(state.params)
        done = int(onp.asarray(state.step)[0])
        hist += h
    coarse_s = time.perf_counter() - t0
    coarse_steps = done
    log(f"coarse: {coarse_steps} steps in {coarse_s:.1f} s; last {hist[-1] if hist else {}}")

    # ---- canonical views (4 azimuths) of the coarse fields: rgb, alpha, depth
    views = canonical_views(4, res)
    cams = pf.canonical_cameras(views)
    cams8 = pf.canonical_cameras(canonical_views(8, res))
    render_all = make_render_all(field, rcfg, cams)

    t0 = time.perf_counter()
    c_rgb, c_alpha, c_depth = render_all(state.params)
    kp_c, conf_c, probs_c = detect(det, over_white(c_rgb, c_alpha))
    human = jnp.asarray(probs_c[:, :, 1]) * (c_alpha > 0.05)
    obj_mask = (probs_c[:, :, 2] > 0.5) & (onp.asarray(c_alpha) > 0.5)

    # ---- anchor NeRF: Φ_A from Φ̂ by masked feature alignment, rendered at 8 azimuths (every second = the 4)
    a_params = anchor_fields(keys, state.params, field, rcfg, cams, c_rgb, c_alpha, human, steps=args.anchor_steps,
                             n_rays=n_anchor_rays, chunk=args.anchor_chunk, c_depth=c_depth,
                             occluder_margin=args.anchor_margin)
    a_rgb8, a_alpha8, _ = make_render_all(field, rcfg, cams8)(a_params)
    a_rgb, a_alpha = a_rgb8[:, ::2], a_alpha8[:, ::2]
    kp_a, conf_a = anchor_keypoints(det, a_rgb8, a_alpha8, args.detect_views, args.detect_flip, args.keypoint_source,
                                    over_white(c_rgb, c_alpha))
    anchor_iou = float(anchor_stage.mask_iou(a_alpha, human))
    anchor_s = time.perf_counter() - t0
    log(f"anchor: {args.anchor_steps} steps, alpha-vs-human-mask IoU {anchor_iou:.3f}, {anchor_s:.1f} s; keypoints in "
        f"{args.detect_views} views{' with the flip test' if args.detect_flip else ''}, source {args.keypoint_source}, "
        f"occluder margin {args.anchor_margin}")

    # ---- Eq. 2 fit of the body to the anchor's keypoints (x8 to the 512 px frame)
    t0 = time.perf_counter()
    fcfg = pf.PoseFitConfig(global_steps=2, pose_steps=2, num_hypotheses=1) if args.smoke else pf.PoseFitConfig()
    fitted, kp3d_a, fit_aux = fit_keypoints(fbody, setup, betas, kp_a, conf_a,
                                            keypoint_cameras(cams, cams8, args.detect_views, args.keypoint_source),
                                            res, fcfg)
    fit_s = time.perf_counter() - t0
    log(f"pose fit: {fit_s:.1f} s, reprojection rms {onp.asarray(fit_aux['reproj_rms_px']).round(1).tolist()} px@512")

    # ---- classify + relations
    true = onp.repeat(onp.asarray(run_classes), args.seeds)
    jd = judge(kp3d_a, fitted.scale, true, means, c_depth, obj_mask, cams, args.contact_m)
    feat_a, pred_a, sit, lift = jd["features"], jd["pred"], jd["sit"], jd["lift"]
    correct_pose, correct_full = jd["ok_pose"], jd["ok_full"]

    # ---- direct ablation: the body under SDS, same guidance / cameras / backdrop / number of steps
    t0 = time.perf_counter()
    d_state = run_direct(coarse_steps, guidance)  # the guidance whose t_max anneal spans the N steps
    d_done = coarse_steps
    direct_s = time.perf_counter() - t0
    kp3d_d = onp.asarray(jax.vmap(lambda p: pf.keypoints3d(fbody, setup, p, betas))(d_state.params))
    feat_d = onp.asarray(lpd.pose_features(jnp.asarray(kp3d_d)))
    pred_d = classify(feat_d, means)
    log(f"direct: {d_done} steps in {direct_s:.1f} s")

    # ---- pictures: coarse / anchor with keypoints / direct, one row per run
    crgb = onp.asarray(c_rgb)
    argb = onp.asarray(a_rgb8[:, ::8 // args.detect_views])  # the views the keypoints were detected in
    akp = onp.stack([[_draw_kp(argb[s, v], kp_a[s, v], conf_a[s, v]) for v in range(argb.shape[1])] for s in range(S)])
    dbatch = jax.vmap(lambda k: coarse.sample_step_batch(k, jnp.int32(10**6), n_views=4, resolution=res,
                                                         camera=dataclasses.replace(ccfg.camera, mvdream_group=True),
                                                         shading=coarse.ShadingConfig(albedo_steps=10**7, background="white")))(keys)
    drgb = onp.asarray(jax.jit(render_fn)(d_state.params, (dbatch, None)))
    from anchorhoi_jax.io.export import write_png

    write_png(out / "learned_prior_runs.png", onp.clip(_grid(onp.concatenate([crgb, akp, drgb], 1)), 0, 1))

    # ---- results
    cm_pose = confusion(true, pred_a)
    cm_direct = confusion(true, pred_d)
    per_class = lambda ok: {lpd.CLASSES[c]: float(ok[true == c].mean()) for c in run_classes}  # noqa: E731
    # relation check on the training geometry (exact boxes, learned_prior_data): how often it holds
    calib = json.loads(classes_path.read_text()).get("relation_calibration", {})
    tj = Path(args.train_json) if args.train_json else None
    dev = jax.devices()[0]
    result = dict(
        device=dev.device_kind if dev.platform == "gpu" else f"cpu ({dev.device_kind})",
        smoke=bool(args.smoke),
        accuracy_anchor=float(correct_full.mean()),
        accuracy_anchor_pose_only=float(correct_pose.mean()),
        accuracy_direct=float((pred_d == true).mean()),
        per_class_anchor=per_class(correct_full), per_class_anchor_pose_only=per_class(correct_pose),
        per_class_direct=per_class(pred_d == true),
        confusion_anchor_pose=cm_pose.tolist(), confusion_direct=cm_direct.tolist(),
        relation_sitting_holds=[bool(x) for x in sit[true == 0]], relation_lifting_holds=[bool(x) for x in lift[true == 1]],
        classes=[lpd.CLASSES[c] for c in run_classes], seeds=args.seeds, runs=int(S), seed_offset=args.seed_offset,
        pred_anchor=pred_a.tolist(), pred_direct=pred_d.tolist(), true=true.tolist(),
        features_anchor=feat_a.round(3).tolist(), features_direct=feat_d.round(3).tolist(),
        class_means=means.round(3).tolist(), feature_names=list(lpd.FEATURE_NAMES),
        anchor_iou_vs_human_mask=anchor_iou,
        steps=dict(coarse=coarse_steps, direct=d_done, anchor=args.anchor_steps, pose_fit=fcfg.global_steps + fcfg.pose_steps),
        seconds=dict(coarse=coarse_s, anchor_and_detect=anchor_s, pose_fit=fit_s, direct=direct_s,
                     total=time.perf_counter() - t_start),
        settings=dict(resolution=res, views=args.views, if_scale=args.if_scale, lr=args.lr, sparsity=args.sparsity,
                      density_offset=None if args.shape_init else args.density_offset,
                      start="standing body (shape init)" if args.shape_init else "blob", shape_init=start_cache.get("info"),
                      t_max=(args.t_max_start, args.t_max_end), background=args.background,
                      estimator=args.estimator, denoise_steps=args.denoise_steps,
                      step_times_ms=dict(coarse=1e3 * t_coarse, direct=1e3 * t_direct), field=dataclasses.asdict(field),
                      render=dataclasses.asdict(rcfg), canonical_views=dataclasses.asdict(views),
                      contact_m=args.contact_m, detector="heatmap UNet trained on the same renders (train_prior.py)",
                      detect_views=args.detect_views, detect_flip=bool(args.detect_flip),
                      keypoint_source=args.keypoint_source, anchor_occluder_margin=args.anchor_margin,
                      direct_anneal="t_max anneal over the N steps run (fixed in session 6; sessions 3-5: over --steps)"),
        coarse_history=hist[-3:], log=log_lines, calibration=calib, settings_chosen=chosen,
        versions=dict(jax=jax.__version__, torch=torch.__version__),
    )
    if tj is not None and tj.exists():
        t = json.loads(tj.read_text())
        result.update(train_minutes=t["train_minutes"], params_million=t["params_million"], train=t)
        result["eval_plus_train_minutes"] = result["seconds"]["total"] / 60 + t["train_minutes"] + \
            t.get("detector", {}).get("train_minutes", 0.0)
    (out / "learned_prior.json").write_text(json.dumps(result, indent=1))
    onp.savez_compressed(out / "eval_arrays.npz", coarse_rgb=onp.asarray(c_rgb, onp.float16),
                         coarse_alpha=onp.asarray(c_alpha, onp.float16), anchor_rgb8=onp.asarray(a_rgb8, onp.float16),
                         anchor_alpha8=onp.asarray(a_alpha8, onp.float16), true=true, kp3d_anchor=kp3d_a,
                         kp3d_direct=kp3d_d)
    (out / "learned_prior.md").write_text(markdown(result))
    print(json.dumps({k: result[k] for k in ("device", "accuracy_anchor", "accuracy_anchor_pose_only", "accuracy_direct",
                                            "per_class_anchor", "per_class_direct", "confusion_anchor_pose",
                                            "confusion_direct", "seconds")}, indent=1))


if __name__ == "__main__":
    main()
