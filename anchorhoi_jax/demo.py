"""`anchorhoi demo`: pose the embedded Anny body at random (seeded) and write what a body stage writes.

Outputs (in --out): body.obj / body.ply (posed mesh, vertex colours by body part), body.glb (static
scene), body_anim.glb (rest pose -> random pose, morph-target animation; `glb_frames` ≥ 2),
body.npz (betas, pose, transl, scale, phenotype), keypoints.npz (OpenPose-18 in 3D and in pixels),
overlay.png (render/raster.py hard-mode render, Lambert-shaded, with the OpenPose-18 skeleton on top), config.yaml, manifest.json,
run.log.

The random pose is drawn per joint as a rotation in world-aligned axes (y up, facing +z) applied
on top of Anny's reference A-pose (anny's own "local-ref" parameterisation, converted exactly by
`body.anny.anny_params`), within ranges that keep it plausible: hips and knees flex the natural
way, shoulders swing and lift, elbows bend about their own axis, the spine bends a little.
"""

from __future__ import annotations

import argparse
import functools
import logging
import time
from pathlib import Path

import numpy as onp

__all__ = [
    "add_parser",
    "run",
    "OPENPOSE18_LIMBS",
    "random_pose_axis_angle",
    "random_phenotype",
    "part_colors",
    "draw_skeleton",
]

log = logging.getLogger("anchorhoi_jax.demo")

# OpenPose's limb list for BODY-18 and its colour per limb (RGB, 0..255).
OPENPOSE18_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)
_LIMB_COLORS = onp.array([
    [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0], [0, 255, 0],
    [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255], [0, 0, 255], [85, 0, 255],
    [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85],
], onp.float32) / 255.0

# Per-joint ranges (radians) of the random rotation vector in world-aligned axes (x left, y up,
# z forward) for the left side and the centre line; right-side joints mirror them (x, −y, −z).
# Signs: a bone hanging down swings forward for negative x; a bone pointing up bends forward for
# positive x; positive z lifts a left limb sideways.
_RANGES = {
    "root": ((0.0, 0.0), (-0.35, 0.35), (0.0, 0.0)),
    "spine01": ((-0.04, 0.10), (-0.08, 0.08), (-0.05, 0.05)),
    "spine02": ((-0.04, 0.10), (-0.08, 0.08), (-0.05, 0.05)),
    "spine03": ((-0.04, 0.10), (-0.08, 0.08), (-0.05, 0.05)),
    "spine04": ((-0.04, 0.10), (-0.08, 0.08), (-0.05, 0.05)),
    "neck01": ((-0.10, 0.20), (-0.25, 0.25), (-0.08, 0.08)),
    "head": ((-0.15, 0.15), (-0.30, 0.30), (-0.10, 0.10)),
    "clavicle.L": ((-0.05, 0.05), (-0.05, 0.05), (-0.05, 0.10)),
    "upperarm01.L": ((-1.0, 0.4), (-0.4, 0.4), (-0.4, 1.1)),
    "wrist.L": ((-0.3, 0.3), (-0.3, 0.3), (-0.3, 0.3)),
    "upperleg01.L": ((-0.9, 0.25), (-0.2, 0.2), (-0.05, 0.25)),
    "lowerleg01.L": ((0.0, 1.2), (0.0, 0.0), (0.0, 0.0)),
    "foot.L": ((-0.2, 0.3), (-0.1, 0.1), (-0.1, 0.1)),
}
_ELBOW_RANGE = (0.1, 1.4)  # flexion about the elbow's own axis (upper arm × forearm)

_PART_COLORS = {  # linear RGB in [0, 1]
    "head": (0.93, 0.76, 0.62), "torso": (0.30, 0.45, 0.75), "arm.L": (0.85, 0.35, 0.30),
    "arm.R": (0.35, 0.70, 0.40), "hand": (0.93, 0.76, 0.62), "leg.L": (0.90, 0.62, 0.20),
    "leg.R": (0.55, 0.40, 0.75), "foot": (0.25, 0.25, 0.25),
}


def _mirror(rng):
    (xl, xh), (yl, yh), (zl, zh) = rng
    return (xl, xh), (-yh, -yl), (-zh, -zl)


def _range_table(joint_names) -> tuple[onp.ndarray, onp.ndarray]:
    lo = onp.zeros((len(joint_names), 3), onp.float32)
    hi = onp.zeros((len(joint_names), 3), onp.float32)
    for name, rng in _RANGES.items():
        for nm, r in ((name, rng), (name[:-2] + ".R", _mirror(rng)) if name.endswith(".L") else (None, None)):
            if nm is None:
                continue
            if nm not in joint_names:
                raise ValueError(f"demo pose table names joint '{nm}', which the body model lacks")
            j = joint_names.index(nm)
            lo[j] = [a for a, _ in r]
            hi[j] = [b for _, b in r]
    return lo, hi


def random_pose_axis_angle(key, joint_names, rest_joints, *, pose_scale: float = 1.0):
    """Random plausible per-joint rotations, (J, 3) axis-angle in world-aligned axes.

    Args:
      key: PRNG key.
      joint_names: the body's joint names (Anny rig).
      rest_joints: (J, 3) joint positions of the reference pose (for the elbow axes).
      pose_scale: multiplies every range (0 = reference pose).
    """
    import jax
    import jax.numpy as jnp

    lo, hi = _range_table(tuple(joint_names))
    k_box, k_elbow = jax.random.split(key)
    u = jax.random.uniform(k_box, lo.shape, jnp.float32)
    aa = (jnp.asarray(lo) + (jnp.asarray(hi) - jnp.asarray(lo)) * u) * pose_scale
    rest = jnp.asarray(rest_joints)
    angles = jax.random.uniform(k_elbow, (2,), jnp.float32, *_ELBOW_RANGE) * pose_scale
    for side, ang in zip(("L", "R"), angles):
        s, e, w = (joint_names.index(f"{n}.{side}") for n in ("upperarm01", "lowerarm01", "wrist"))
        axis = jnp.cross(rest[e] - rest[s], rest[w] - rest[e])  # rotating about u × f bends the elbow
        aa = aa.at[e].set(axis / jnp.linalg.norm(axis) * ang)
    return aa


def random_phenotype(key, jitter: float):
    """Random adult phenotype: gender uniform, the others around anny's average with std `jitter`."""
    import jax
    import jax.numpy as jnp

    from anchorhoi_jax.body.anny import Phenotype

    kg, kn = jax.random.split(key)
    n = jax.random.normal(kn, (5,), jnp.float32) * jitter
    centre = jnp.array([0.67, 0.5, 0.5, 0.5, 0.5], jnp.float32)  # age 2/3 = young adult
    lo = jnp.array([0.5, 0.05, 0.05, 0.05, 0.05], jnp.float32)
    v = jnp.clip(centre + n, lo, 0.95)
    return Phenotype(gender=jax.random.uniform(kg, (), jnp.float32), age=v[0], muscle=v[1], weight=v[2],
                     height=v[3], proportions=v[4])


def part_colors(model) -> onp.ndarray:
    """(V, 3) colours: each vertex takes the colour of the body part of its most weighted bone."""
    names = model.joint_names
    part_of = []
    for n in names:
        side = n[-1] if n.endswith((".L", ".R")) else None
        if n.startswith(("head", "neck", "eye", "jaw")):
            part_of.append("head")
        elif n.startswith(("wrist", "finger", "metacarpal")):
            part_of.append("hand")
        elif n.startswith(("foot", "toe")):
            part_of.append("foot")
        elif n.startswith(("upperarm", "lowerarm")) and side:
            part_of.append(f"arm.{side}")
        elif n.startswith(("upperleg", "lowerleg")) and side:
            part_of.append(f"leg.{side}")
        else:
            part_of.append("torso")
    table = onp.array([_PART_COLORS[p] for p in part_of], onp.float32)
    return table[onp.asarray(model.lbs_weights).argmax(-1)]


def _disk_mask(H, W, centers, radius):
    yy, xx = onp.mgrid[0:H, 0:W].astype(onp.float32) + 0.5
    d2 = (xx[None] - centers[:, 0, None, None]) ** 2 + (yy[None] - centers[:, 1, None, None]) ** 2
    return d2 <= radius**2


def draw_skeleton(image: onp.ndarray, keypoints: onp.ndarray, confidence: onp.ndarray, *, radius: int = 4,
                  width: int = 3, alpha: float = 0.85) -> onp.ndarray:
    """Draw OpenPose-18 limbs and joints (OpenPose colours) on an (H, W, 3) float image."""
    img = image.copy()
    H, W = img.shape[:2]
    yy, xx = onp.mgrid[0:H, 0:W].astype(onp.float32) + 0.5
    for li, (a, b) in enumerate(OPENPOSE18_LIMBS):
        if confidence[a] <= 0 or confidence[b] <= 0:
            continue
        pa, pb = keypoints[a], keypoints[b]
        ab = pb - pa
        t = ((xx - pa[0]) * ab[0] + (yy - pa[1]) * ab[1]) / max(float(ab @ ab), 1e-9)
        t = onp.clip(t, 0.0, 1.0)
        d2 = (xx - pa[0] - t * ab[0]) ** 2 + (yy - pa[1] - t * ab[1]) ** 2
        m = d2 <= (0.5 * width) ** 2
        img[m] = (1 - alpha) * img[m] + alpha * _LIMB_COLORS[li]
    vis = confidence > 0
    if vis.any():
        masks = _disk_mask(H, W, keypoints[vis], radius)
        for m, c in zip(masks, _LIMB_COLORS[: len(keypoints)][vis]):
            img[m] = c
    return img


# ----------------------------------------------------------------------------------------------
# CLI


def add_parser(subparsers) -> argparse.ArgumentParser:
    from anchorhoi_jax.cli import add_common_run_args
    from anchorhoi_jax.io.config import DemoConfig

    p = subparsers.add_parser(
        "demo", help="pose the embedded Anny body; write meshes, GLB, keypoints and an overlay PNG",
        description=__doc__.split("\n\n")[0],
    )
    add_common_run_args(p, default_out="outputs/demo", schema=DemoConfig)
    return p


def run(args: argparse.Namespace) -> int:
    """Validate everything (config, output dir), then compute in memory, then write."""
    from anchorhoi_jax.cli import UsageError
    from anchorhoi_jax.io.config import DemoConfig, load_config
    from anchorhoi_jax.io.run_dir import check_output_dir, create_run_dir

    if args.config is not None and not Path(args.config).is_file():
        raise UsageError(f"config file not found: {args.config}")
    overrides = list(args.overrides) + ([f"seed={args.seed}"] if args.seed is not None else [])
    cfg = load_config(DemoConfig, args.config, overrides)
    check_output_dir(args.out, overwrite=args.overwrite)

    t0 = time.perf_counter()
    try:
        from anchorhoi_jax.body.anny import load_anny

        body = load_anny()
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None
    t_load = time.perf_counter() - t0
    result = compute_demo(body, cfg)
    t_compute = time.perf_counter() - t0 - t_load

    with create_run_dir(args.out, overwrite=args.overwrite) as rd:
        log.info("anny body loaded in %.2f s; posed and rendered in %.2f s", t_load, t_compute)
        rd.write_config(cfg)
        write_demo_outputs(rd, body, cfg, result)
        log.info("wrote %d files to %s", len(rd.files), rd.path)
    print(f"anchorhoi demo: wrote {len(rd.files) + 1} files to {rd.path} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _demo_core(body, key, pose_scale, jitter, n_frames: int):
    """Everything numeric of the demo in one jitted function (one compile: the FK/LBS graph of a
    104-bone rig is large, and eager execution would dispatch thousands of small ops).

    Returns phenotype, the frame-0..n−1 `BodyParams`, vertices (n, V, 3), joints (n, J, 3),
    OpenPose-18 keypoints (n, 18, 3) (body/keypoints.py) and the world-axes pose (J, 3); the last frame is the random pose,
    frame t is the pose scaled by t/(n−1) (n = 1: only the random pose).
    """
    import jax
    import jax.numpy as jnp

    from anchorhoi_jax.body.anny import C_PROJECT_ANNY, anny_params, phenotype_to_coeffs, reference_pose
    from anchorhoi_jax.body.keypoints import apply_regressor, keypoint_regressor
    from anchorhoi_jax.body.model import BodyParams
    from anchorhoi_jax.body.skinning import pose, pose_joints
    from anchorhoi_jax.geometry.rotations import axis_angle_to_matrix

    model = body.model
    k_shape, k_pose = jax.random.split(key)
    phen = random_phenotype(k_shape, jitter)
    betas = phenotype_to_coeffs(body.extras, phen)
    J = model.num_joints
    zero = BodyParams(betas=betas, pose=jnp.zeros((J, 3), betas.dtype), transl=jnp.zeros(3, betas.dtype),
                      scale=jnp.ones((), betas.dtype))
    ref_joints = pose_joints(model, zero, rotations=reference_pose(body, betas), with_extra=False)
    aa_world = random_pose_axis_angle(k_pose, model.joint_names, ref_joints, pose_scale=pose_scale)
    C = jnp.asarray(C_PROJECT_ANNY, betas.dtype)
    reg = keypoint_regressor(body, "openpose18")

    def frame(t):
        # World-axes deltas (project frame) -> anny's axes, then anny's exact local-ref conversion.
        D = jnp.einsum("ba,jbc,cd->jad", C, axis_angle_to_matrix(t * aa_world), C)
        params, L = anny_params(body, phen, D, jnp.zeros(3, betas.dtype))
        out = pose(model, params, rotations=L)
        return params, out.vertices, out.joints, apply_regressor(reg, out)

    ts = jnp.linspace(0.0, 1.0, n_frames, dtype=betas.dtype) if n_frames > 1 else jnp.ones((1,), betas.dtype)
    params, verts, joints, kps = jax.vmap(frame)(ts)
    # Stand the final pose on the floor (y = 0); the same offset moves every frame.
    offset = jnp.zeros(3, betas.dtype).at[1].set(-verts[-1, :, 1].min())
    params = params.replace(transl=params.transl + offset[None])
    o = offset[None, None]
    return phen, params, verts + o, joints + o, kps + o, aa_world


@functools.cache
def _jitted_core():
    import jax

    return jax.jit(_demo_core, static_argnames=("n_frames",))


def compute_demo(body, cfg) -> dict:
    """Pose, keypoints, animation frames and the overlay image for one config (all in memory)."""
    import jax
    import jax.numpy as jnp

    from anchorhoi_jax.geometry.cameras import Camera, intrinsics_from_fov, look_at, project

    model = body.model
    core = _jitted_core()
    phen, params_seq, frames, joints_seq, kps, aa_world = core(
        body, jax.random.key(cfg.seed), jnp.float32(cfg.body.pose_scale), jnp.float32(cfg.body.phenotype_jitter),
        n_frames=max(cfg.glb_frames, 1))
    params = jax.tree.map(lambda x: x[-1], params_seq)
    verts, joints = frames[-1], joints_seq[-1]
    kp3d = kps[-1]

    H, W = cfg.render.height, cfg.render.width
    centre = 0.5 * (verts.min(0) + verts.max(0))
    el, az = onp.deg2rad(cfg.render.elevation_deg), onp.deg2rad(cfg.render.azimuth_deg)
    eye = centre + cfg.render.distance * jnp.array([onp.sin(az) * onp.cos(el), onp.sin(el), onp.cos(az) * onp.cos(el)],
                                                   jnp.float32)
    cam = Camera(K=intrinsics_from_fov(cfg.render.fov_deg, H, W), T_cam_world=look_at(eye, centre), height=H, width=W)
    uv, depth = project(cam.K, cam.T_cam_world, kp3d)
    inside = (depth > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
    conf = inside.astype(jnp.float32)

    colors = part_colors(model)
    image = render_shaded(verts, model.faces, colors, cam)
    overlay = draw_skeleton(image, onp.asarray(uv), onp.asarray(conf),
                            radius=cfg.render.keypoint_radius, width=cfg.render.line_width)
    return dict(params=params, phenotype=phen, vertices=verts, joints=joints, colors=colors, kp3d=kp3d, uv=uv,
                conf=conf, camera=cam, overlay=overlay, frames=frames if cfg.glb_frames >= 2 else None,
                pose_axis_angle=aa_world)


@functools.cache
def _jitted_raster():
    import jax

    from anchorhoi_jax.render.raster import rasterize

    # One compile for the whole rasterizer (eager op-by-op dispatch is ~5x slower to first pixel).
    return jax.jit(functools.partial(rasterize, mode="hard", background=1.0, cull_backfaces=False))


def render_shaded(vertices, faces, colors, camera) -> onp.ndarray:
    """Hard-rasterised (render/raster.py), Lambert-shaded image of a coloured mesh on white, (H, W, 3).

    A headlight from the camera's upper left shades by |n·l| (two-sided, so winding does not matter).
    """
    import jax
    import jax.numpy as jnp

    # render/raster.py (at 62bd39f) broadcasts (F, 2) against (2,) when clipping face boxes, which
    # the test suite's rank-promotion="raise" rejects; allow it for this call only.
    with jax.numpy_rank_promotion("allow"):
        out = _jitted_raster()(jnp.asarray(vertices), jnp.asarray(faces), jnp.asarray(colors), camera)
    R = camera.T_cam_world[:3, :3]
    light = R.T @ jnp.array([-0.4, -0.5, -1.0], jnp.float32)  # camera-frame direction, in world axes
    light = light / jnp.linalg.norm(light)
    shade = 0.35 + 0.65 * jnp.abs(jnp.einsum("hwc,c->hw", out["normal"], light))
    rgb = jnp.where(out["alpha"][..., None] > 0, out["rgb"] * shade[..., None], 1.0)
    return onp.asarray(jnp.clip(rgb, 0.0, 1.0))


def write_demo_outputs(rd, body, cfg, r) -> None:
    from anchorhoi_jax.body.anny import PHENOTYPE_LABELS
    from anchorhoi_jax.body.keypoints import OPENPOSE18
    from anchorhoi_jax.io.export import SceneMesh, write_animated_glb, write_glb, write_npz, write_obj, write_ply, write_png

    model = body.model
    v = onp.asarray(r["vertices"])
    f = onp.asarray(model.faces)
    c = r["colors"]
    paths = [
        write_obj(rd.file("body.obj"), v, f, c),
        write_ply(rd.file("body.ply"), v, f, c),
        write_glb(rd.file("body.glb"), [SceneMesh("anny", f, v, c)]),
    ]
    if r["frames"] is not None:
        paths.append(write_animated_glb(rd.file("body_anim.glb"), [SceneMesh("anny", f, onp.asarray(r["frames"]), c)],
                                        fps=cfg.fps, interpolation="LINEAR"))
    p = r["params"]
    phen = r["phenotype"]
    paths.append(write_npz(rd.file("body.npz"), {
        "model": onp.array("anny"), "betas": p.betas, "pose": p.pose, "transl": p.transl, "scale": p.scale,
        "phenotype": onp.array([float(getattr(phen, k)) for k in PHENOTYPE_LABELS], onp.float32),
        "phenotype_labels": onp.array(PHENOTYPE_LABELS), "joints": r["joints"],
        "pose_world_axis_angle": r["pose_axis_angle"],
    }))
    cam = r["camera"]
    paths.append(write_npz(rd.file("keypoints.npz"), {
        "layout": onp.array("openpose18"), "names": onp.array(OPENPOSE18),
        "keypoints": r["uv"], "confidence": r["conf"], "keypoints_3d": r["kp3d"],
        "K": cam.K, "T_cam_world": cam.T_cam_world, "image_size": onp.array([cam.height, cam.width], onp.int32),
    }))
    paths.append(write_png(rd.file("overlay.png"), r["overlay"]))
    rd.record(*paths)
