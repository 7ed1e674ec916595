"""`anchorhoi track`: keypoint-anchored 4D tracking of a static interaction (paper Sec. 4, Eq. 3-6).

    anchorhoi track --static STATIC.npz --keypoints KP.npz [--video FRAMES] [--masks MASKS.npz] --out DIR
                    [--body anny | --smplx-model PATH] [--meshes] [--overwrite] [key=value ...]

File formats: anchorhoi_jax/io/formats.py; MASKS.npz: `load_masks` below. Writes DIR/motion.npz, DIR/metrics.json, the resolved
config, a manifest and (with --meshes) DIR/meshes/frame_XXXX.obj with the human and object of
every frame. Everything (inputs, body model, config, output directory) is validated before DIR is
created, so bad input leaves nothing behind.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class TrackWeights:
    """λ's of Eq. 4 (see stages/motion.MotionWeights)."""

    keypoints: float = 1.0
    contact: float = 1.0
    # The SDF part of L_pen is a sum over the L_pen vertices; at 1.0 it outweighed L_J and the full-size tracks
    # oscillated at the object (benchmarks/results/motion.md, session 4); the last steps restore full weight.
    pen_object: float = 0.05
    pen_object_final: float = 1.0  # L_pen's SDF weight in the clean-up phase (stages/motion.motion_phases)
    pen_parts: float = 1.0
    # As MotionWeights: 0.3 chosen on the dev draws with the Gauss-Newton init (H100, benchmarks/results/motion.md, session 6).
    smooth_joints: float = 0.3
    smooth_object: float = 0.1
    self_pen: float = 1.0
    pose_prior: float = 1e-5
    render: float = 0.0  # forced to 0 when no --video is given
    # Static-instance anchor at TrackConfig.static_frames (losses/anchor.py): human root + object pose, body pose.
    static_anchor: float = 0.01  # as MotionWeights (chosen on dev draws, benchmarks/results/motion.md)
    static_pose_anchor: float = 0.0
    # Object-at-rest prior (losses/object_rest.py) and its robust velocity scale (m per frame): off, as MotionWeights.
    object_rest: float = 0.0
    object_rest_scale: float = 0.0
    # Mask terms, inert without --masks (as MotionWeights): the silhouette part of L_reg (off by default) and the
    # object-at-rest anchor of the frames whose masks show the object at its static placement (losses/object_static.py).
    silhouette: float = 0.0
    object_static: float = 1.0


@dataclasses.dataclass(frozen=True)
class TrackConfig:
    steps: int = 1000  # paper Sec. 5
    steps_per_call: int = 100
    learning_rate: float = 0.01  # paper Sec. 5
    seeds: int = 1
    seed: int = 0
    init_noise: float = 0.0
    global_steps: int = 200  # first stage: global motion from keypoints only (stages/motion.motion_phases)
    sigma_px: float = 100.0
    sigma_anneal_steps: int = 400  # Eq. 5 σ from the image size down to sigma_px (0: constant σ)
    init_translation: bool = True  # per-frame translation from the torso keypoints before step 0
    init_smoothness: float = 300.0  # as MotionConfig (dev-selected with the object mask test, motion.md session 8)
    object_follows_human: bool = True
    pen_margin: float = 0.0
    lbs: str = "sparse"  # subset skinning ("sparse" gathers or "dense" GEMM; same values, sparse measured faster)
    num_object_points: int = 1024
    num_pen_vertices: int = 2048
    pen_near_fraction: float = 0.5  # share of the L_pen vertices sampled near the object
    pen_near_distance: float = 0.1  # metres
    contact_target: str = "static"  # Eq. 6 target: "static" offsets or "surface" points
    pen_parts_static_allowance: bool = False  # part capsules may overlap the object as in the static instance
    sdf_resolution: int = 64
    tau_n: float = 0.5
    contact_distance: float = 0.02  # metres; τ_d = ρ(contact_distance)
    sigma_d: float = 0.05
    # Frames of the video that show the static instance (the video was generated from its render, paper
    # Sec. 4 (a)): the static anchor terms tie them to it. [] (or --no-static-anchor) for any other video.
    static_frames: tuple[int, ...] = (0,)
    weights: TrackWeights = TrackWeights()


def add_parser(subparsers) -> argparse.ArgumentParser:
    from anchorhoi_jax.cli import add_common_run_args

    p = subparsers.add_parser("track", help="turn a static interaction into motion from video keypoints (Eq. 3-6)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--static", required=True, metavar="STATIC.npz", help="static interaction (io/formats.py)")
    p.add_argument("--keypoints", required=True, metavar="KP.npz", help="OpenPose-18 keypoints and camera")
    p.add_argument("--video", default=None, metavar="FRAMES", help="frames (.npy (L,H,W,3) in [0,1] or a folder of images)")
    p.add_argument("--masks", default=None, metavar="MASKS.npz",
                   help="per-frame instance masks human_masks, object_masks (L,H,W) bool or 0/1: silhouette term of "
                        "L_reg and the object-at-rest test")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--body", choices=("anny",), default=None, help="use the Anny body (phenotype in STATIC.npz)")
    g.add_argument("--smplx-model", default=None, metavar="PATH", help="SMPL-X model file or folder")
    p.add_argument("--meshes", action="store_true", help="also write per-frame OBJ meshes")
    p.add_argument("--no-static-anchor", action="store_true",
                   help="the video does not start at the static instance (not generated from its render): "
                        "no frame is tied to it (static_frames=[])")
    add_common_run_args(p, default_out="outputs/track")
    return p


def _load_frames(path: str):
    import numpy as onp

    from anchorhoi_jax.cli import UsageError

    p = Path(path)
    if p.is_file() and p.suffix == ".npy":
        frames = onp.load(p)
    elif p.is_dir():
        import imageio.v3 as iio

        files = sorted(f for f in p.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not files:
            raise UsageError(f"--video {p}: no .png/.jpg frames in the folder")
        frames = onp.stack([iio.imread(f) for f in files]).astype(onp.float32) / 255.0
    else:
        raise UsageError(f"--video {p}: expected a .npy array or a folder of images")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise UsageError(f"--video {p}: frames must have shape (L, H, W, 3), got {frames.shape}")
    return frames.astype(onp.float32)


def load_masks(path: str, num_frames: int, image_size, kp_name: str = "KP.npz") -> dict:
    """Read and validate MASKS.npz: `human_masks` and `object_masks`, each (L, H, W) bool or 0/1 integers/floats.

    L = the keypoint frames, (W, H) = the keypoint file's `image_size`. Each mask must be non-empty in at
    least one frame (an all-empty mask has no silhouette and would mark no frame as showing the object).
    Returns the two arrays as bool. Errors: UsageError, one line.
    """
    import numpy as onp

    from anchorhoi_jax.cli import UsageError

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--masks {p}: no such file")
    try:
        with onp.load(p, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise UsageError(f"--masks {p}: not a readable .npz file ({' '.join(str(e).split())})") from None
    W, H = (int(x) for x in onp.asarray(image_size).reshape(-1)[:2])
    out = {}
    for key in ("human_masks", "object_masks"):
        if key not in d:
            raise UsageError(f"--masks {p.name}: missing key '{key}'")
        m = d[key]
        if m.ndim != 3 or m.shape[1:] != (H, W):
            raise UsageError(f"--masks {p.name}: '{key}' must have shape (L, {H}, {W}) (frames, image_size of "
                             f"{kp_name}), got {tuple(m.shape)}")
        if m.shape[0] != num_frames:
            raise UsageError(f"--masks {p.name}: '{key}' has {m.shape[0]} frames but {kp_name} has {num_frames}; "
                             "they must match")
        if m.dtype.kind not in "biuf" or (m.dtype.kind != "b" and not onp.isin(m, (0, 1)).all()):
            raise UsageError(f"--masks {p.name}: '{key}' must be binary (bool or 0/1), got dtype {m.dtype} with "
                             "other values")
        m = m.astype(bool)
        if not m.any():
            raise UsageError(f"--masks {p.name}: '{key}' is empty in every frame")
        out[key] = m
    return out


def _body_and_maps(args, static: dict):
    """Body model, its OpenPose-18 source (indices or a keypoint regressor), contact candidates,
    params of the static instance, and the joints the motion optimises."""
    import jax.numpy as jnp

    from anchorhoi_jax.cli import UsageError

    body = "anny" if args.body == "anny" else "smplx"
    if static["body_model"] != body:
        raise UsageError(f"STATIC.npz body_model is {static['body_model']!r} but --body {args.body or 'smplx'} was asked")
    if body == "anny":
        from anchorhoi_jax.body.anny import load_anny
        from anchorhoi_jax.body.model import BodyParams

        try:
            anny = load_anny()
        except FileNotFoundError as e:
            raise UsageError(f"--body anny: {' '.join(str(e).split())}") from None
        model = anny.model
        J = model.num_joints
        if static["betas"].shape[0] != model.num_shape:
            raise UsageError(f"STATIC.npz 'betas' has {static['betas'].shape[0]} Anny coefficients, the model has {model.num_shape}")
        if static["body_pose"].shape[0] != 3 * (J - 1):
            raise UsageError(f"STATIC.npz 'body_pose' must have {3 * (J - 1)} values for Anny (3·(J−1)), got {static['body_pose'].shape[0]}")
        pose = jnp.concatenate([jnp.asarray(static["global_orient"]), jnp.asarray(static["body_pose"])]).reshape(J, 3)
        params = BodyParams(betas=jnp.asarray(static["betas"], jnp.float32), pose=pose.astype(jnp.float32),
                            transl=jnp.asarray(static["transl"], jnp.float32), scale=jnp.asarray(static["scale"], jnp.float32))
        op, cand = body_openpose_and_contacts(anny)
        return model, params, op, jnp.asarray(cand, jnp.int32), motion_pose_joints(model)
    if args.smplx_model is None:
        raise UsageError("STATIC.npz holds an SMPL-X body: pass --smplx-model PATH")
    from anchorhoi_jax.body.smplx import load_smplx, make_params

    try:
        model, extras = load_smplx(args.smplx_model, num_betas=max(10, static["betas"].shape[0]),
                                   num_expression=max(10, 0 if static.get("expression") is None else static["expression"].shape[0]))
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(f"--smplx-model: {' '.join(str(e).split())}") from None
    blocks = {k: static[k] for k in ("global_orient", "body_pose", "jaw_pose", "leye_pose", "reye_pose",
                                      "left_hand_pose", "right_hand_pose") if static.get(k) is not None}
    params = make_params(model, extras, betas=static["betas"], expression=static.get("expression"),
                         transl=static["transl"], scale=static["scale"], **blocks)
    op_ids, candidates = smplx_openpose_and_contacts(model)
    return model, params, jnp.asarray(op_ids), jnp.asarray(candidates, jnp.int32), motion_pose_joints(model)


_ANNY_FIXED_PREFIXES = ("finger", "metacarpal", "toe", "eye.")  # stay at the static pose (no keypoint sees them)


def motion_pose_joints(model) -> tuple[int, ...]:
    """Joints whose local rotation the motion stage optimises per frame (the rest keep the static pose).

    SMPL-X: body_pose, joints 1..21 (hands, jaw and eyes stay as composed). Anny: every bone but the
    root, fingers, metacarpals, toes and eyes — the OpenPose-18 points constrain none of those.
    """
    if model.kind == "anny":
        return tuple(j for j, n in enumerate(model.joint_names) if j > 0 and not n.startswith(_ANNY_FIXED_PREFIXES))
    return tuple(range(1, 22))


def body_openpose_and_contacts(body):
    """OpenPose-18 source and Eq. 3 contact candidates C(V_h) of any body (SMPL-X `BodyModel` or `AnnyBody`).

    The OpenPose map is body/keypoints.py's (`keypoint_regressor(body, "openpose18")`): for SMPL-X
    one-hot rows over joints ++ extra points, returned as (18,) indices; for Anny the regressor
    itself (COCO vertex averages), which `stages/motion.prepare_motion_data` accepts. Candidates:
    the union of body/contact_regions.py's PROX-style regions (hands, soles, buttocks, back of
    thighs, back, forearms).
    """
    import numpy as onp

    from anchorhoi_jax.body.contact_regions import contact_regions
    from anchorhoi_jax.body.keypoints import keypoint_regressor

    reg = keypoint_regressor(body, "openpose18")
    cand = contact_regions(body)["union"]
    if reg.needs_vertices:
        return reg, cand
    W = onp.asarray(reg.point_weights)
    if not onp.all((W == 0) | (W == 1)) or not onp.all(W.sum(1) == 1):
        return reg, cand
    return onp.argmax(W, axis=1).astype(onp.int32), cand


def smplx_openpose_and_contacts(model):
    """(18,) OpenPose-18 indices into joints ++ extra points and contact candidates of an SMPL-X-layout model."""
    return body_openpose_and_contacts(model)


def run(args: argparse.Namespace) -> int:
    from anchorhoi_jax.cli import UsageError
    from anchorhoi_jax.io.config import load_config
    from anchorhoi_jax.io.formats import FormatError, read_keypoints, read_static
    from anchorhoi_jax.io.run_dir import check_output_dir

    if args.config is not None and not Path(args.config).is_file():
        raise UsageError(f"config file not found: {args.config}")
    overrides = list(args.overrides) + ([f"seed={args.seed}"] if args.seed is not None else [])
    overrides += ["static_frames=[]"] if getattr(args, "no_static_anchor", False) else []
    cfg = load_config(TrackConfig, args.config, overrides)
    try:
        static = read_static(args.static)
        kp = read_keypoints(args.keypoints)
    except FormatError as e:
        raise UsageError(str(e)) from None
    frames = None
    if args.video is not None:
        frames = _load_frames(args.video)
        if frames.shape[0] != kp["keypoints"].shape[0]:
            raise UsageError(f"--video has {frames.shape[0]} frames but {Path(args.keypoints).name} has "
                             f"{kp['keypoints'].shape[0]}; they must match")
    masks = None
    if getattr(args, "masks", None) is not None:
        # Checked against the keypoints; the video, if any, already matches them in length.
        masks = load_masks(args.masks, kp["keypoints"].shape[0], kp["image_size"], Path(args.keypoints).name)
    check_output_dir(args.out, overwrite=args.overwrite)
    model, params, op_ids, candidates, pose_joints = _body_and_maps(args, static)
    result = track(model, params, static, kp, cfg, op_ids, candidates, frames=frames, pose_joints=pose_joints,
                   masks=masks)
    _write(args, cfg, model, static, kp, result, cfg)
    return 0


def track(model, params, static: dict, kp: dict, cfg: TrackConfig, op_ids, candidates, *, frames=None,
          pose_joints: tuple[int, ...] | None = None, masks: dict | None = None) -> dict:
    """Run Eq. 3 + Eq. 4 optimisation; returns per-frame arrays, contacts and metrics (in memory).

    `op_ids`: (18,) indices into joints ++ extra points or a `KeypointRegressor` (Anny);
    `pose_joints`: the optimised joints (default `motion_pose_joints(model)`); `masks`: None or
    {"human_masks", "object_masks"} (L, H, W) bool (`load_masks`): the silhouette part of L_reg and
    the object-at-rest test of stages/motion.prepare_motion_data."""
    import jax
    import jax.numpy as jnp

    from anchorhoi_jax.stages.contacts import gm_distance_threshold
    from anchorhoi_jax.stages.motion import (
        MotionConfig, MotionWeights, StaticInstance, best_seed, prepare_motion_data, run_motion, select_seed,
    )

    st = StaticInstance(betas=params.betas, scale=params.scale, pose=params.pose, transl=params.transl,
                        R_world_obj=jnp.asarray(static["object_rotation"]), t_world_obj=jnp.asarray(static["object_translation"]))
    key = jax.random.key(cfg.seed)
    k_data, k_run = jax.random.split(key)
    data = prepare_motion_data(
        model, st, static["object_vertices"], static["object_faces"], keypoints=kp["keypoints"],
        confidence=kp["confidence"], K=kp["K"], T_cam_world=kp["T_cam_world"], image_size=kp["image_size"],
        contact_candidates=candidates, openpose_ids=op_ids, key=k_data, num_object_points=cfg.num_object_points,
        num_pen_vertices=cfg.num_pen_vertices, sdf_resolution=cfg.sdf_resolution,
        contact_thresholds=dict(tau_n=cfg.tau_n, tau_d=gm_distance_threshold(cfg.contact_distance, cfg.sigma_d), sigma_d=cfg.sigma_d),
        frames=frames, pen_near_fraction=cfg.pen_near_fraction, pen_near_distance=cfg.pen_near_distance,
        contact_target=cfg.contact_target, pen_parts_static_allowance=cfg.pen_parts_static_allowance,
        **(masks or {}),
    )
    wd = dataclasses.asdict(cfg.weights)
    if frames is None:
        wd["render"] = 0.0  # no video: the rendered-frame MSE has nothing to compare with
    weights = MotionWeights.default(**wd)
    mcfg = MotionConfig.for_model(
        model, pose_joints=tuple(pose_joints) if pose_joints is not None else motion_pose_joints(model),
        steps_per_call=cfg.steps_per_call, learning_rate=cfg.learning_rate, sigma_px=cfg.sigma_px,
        sigma_anneal_steps=cfg.sigma_anneal_steps, init_translation=cfg.init_translation,
        init_smoothness=cfg.init_smoothness, object_follows_human=cfg.object_follows_human, pen_margin=cfg.pen_margin,
        lbs=cfg.lbs, init_noise=cfg.init_noise, global_steps=cfg.global_steps, static_frames=tuple(cfg.static_frames))
    state, losses = run_motion(data, mcfg, weights, num_steps=cfg.steps, key=k_run, num_seeds=cfg.seeds)
    i = best_seed(losses)
    p = select_seed(state.params, i)
    return {"data": data, "mcfg": mcfg, "params": p, "losses": losses[i], "seed_index": i, "keypoint_source": op_ids}


def sequence_geometry(model, data, mcfg, p):
    """Full posed meshes, joints and object poses of a tracked sequence (for metrics and export)."""
    import jax
    import jax.numpy as jnp

    from anchorhoi_jax.body.model import BodyParams
    from anchorhoi_jax.body.skinning import pose
    from anchorhoi_jax.geometry.rotations import axis_angle_to_matrix
    from anchorhoi_jax.stages.motion import full_pose

    st = data.static
    P = jax.vmap(lambda g, b: full_pose(data, mcfg, g, b))(p.global_orient, p.body_pose)
    posed = jax.vmap(lambda q, t: pose(model, BodyParams(betas=st.betas, pose=q, transl=t, scale=st.scale)))(P, p.transl)
    R = jnp.einsum("lab,bc->lac", axis_angle_to_matrix(p.object_delta_rot), st.R_world_obj)
    return posed, P, R, p.object_translation


def sequence_keypoints(posed, source):
    """(L, 18, 3) OpenPose-18 points of posed frames from (18,) indices or a KeypointRegressor."""
    import jax
    import jax.numpy as jnp

    from anchorhoi_jax.body.keypoints import regress_keypoints

    allj = posed.all_joints
    if hasattr(source, "point_weights"):
        return jax.vmap(lambda a, v: regress_keypoints(source, a, v))(allj, posed.vertices)
    return allj[:, jnp.asarray(source)]


def _write(args, cfg, model, static, kp, result, cfg_dict) -> None:
    import numpy as onp

    from anchorhoi_jax import metrics as M
    from anchorhoi_jax.geometry.sdf import sdf_grid_from_mesh
    from anchorhoi_jax.io.formats import write_motion
    from anchorhoi_jax.io.run_dir import create_run_dir

    data, mcfg, p = result["data"], result["mcfg"], result["params"]
    posed, P, R, t = sequence_geometry(model, data, mcfg, p)
    kps = sequence_keypoints(posed, result.get("keypoint_source", data.openpose))
    grid = sdf_grid_from_mesh(static["object_vertices"], static["object_faces"], resolution=96, padding=0.05)
    c = data.contacts
    used = onp.unique(onp.asarray(model.faces))
    verts = posed.vertices[:, used]
    metrics = {
        **M.penetration_metrics(verts, R, t, grid),
        **M.contact_metrics(posed.vertices, R, t, c.human_vertex, c.object_point, c.mask),
        **M.self_penetration_metrics(data.parts, posed.T_world_joint, data.static.scale),
        **M.jitter(kps, kp["fps"]),
        **M.foot_skating(kps[:, [10, 13]]),  # OpenPose-18 ankles (any body model)
        "final_loss": float(result["losses"][-1]),
        "best_seed": int(result["seed_index"]),
    }
    valid = onp.asarray(c.mask) > 0
    pairs = onp.concatenate([onp.asarray(c.human_vertex)[valid, None].astype(onp.float32), onp.asarray(c.object_point)[valid]], 1)
    with create_run_dir(args.out, overwrite=args.overwrite) as rd:
        rd.write_config(cfg_dict)
        # body_pose in STATIC.npz's layout: SMPL-X joints 1..21 (63), Anny every non-root bone (3·(J−1)).
        bp = onp.asarray(P)[:, 1:22] if static["body_model"] == "smplx" else onp.asarray(P)[:, 1:]
        write_motion(rd.file("motion.npz"), global_orient=onp.asarray(p.global_orient),
                     body_pose=bp.reshape(bp.shape[0], -1), transl=onp.asarray(p.transl),
                     object_rotation=onp.asarray(R), object_translation=onp.asarray(t), betas=static["betas"],
                     expression=static.get("expression"), scale=static["scale"], body_model=static["body_model"],
                     contact_pairs=pairs, fps=kp["fps"])
        rd.record("motion.npz")
        rd.write_json("metrics.json", metrics)
        if args.meshes:
            from anchorhoi_jax.io.export import write_obj

            faces = onp.asarray(model.faces)
            ov, of = static["object_vertices"], static["object_faces"]
            for i in range(posed.vertices.shape[0]):
                vo = ov @ onp.asarray(R[i]).T + onp.asarray(t[i])
                v = onp.concatenate([onp.asarray(posed.vertices[i]), vo])
                f = onp.concatenate([faces, of + posed.vertices.shape[1]])
                name = f"meshes/frame_{i:04d}.obj"
                write_obj(rd.file(name), v, f)
                rd.record(name)
