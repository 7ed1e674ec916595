"""`anchorhoi metrics`: physical plausibility metrics (anchorhoi_jax/metrics.py) of a tracked sequence.

    anchorhoi metrics --motion DIR/motion.npz --static STATIC.npz --smplx-model PATH [--json OUT.json]

Poses the body of motion.npz in every frame, places the object of STATIC.npz with the per-frame
rotation/translation, and prints (or writes) penetration, contact (pairs stored in motion.npz),
self-penetration, jitter and foot skating.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("metrics", help="physical metrics of a motion.npz (penetration, contact, jitter, skating)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--motion", required=True, metavar="motion.npz")
    p.add_argument("--static", required=True, metavar="STATIC.npz", help="for the object mesh")
    p.add_argument("--smplx-model", required=True, metavar="PATH")
    p.add_argument("--json", default=None, metavar="OUT.json", help="write the metrics here (default: print)")
    p.add_argument("--pen-threshold-mm", type=float, default=10.0)
    return p


def compute(model, motion: dict, static: dict, *, pen_threshold_mm: float = 10.0) -> dict:
    """Metrics of a motion (arrays as read by io.formats.read_motion) for a body model."""
    import jax
    import jax.numpy as jnp
    import numpy as onp

    from anchorhoi_jax import metrics as M
    from anchorhoi_jax.body.model import BodyParams
    from anchorhoi_jax.body.part_volumes import fit_part_volumes
    from anchorhoi_jax.body.skinning import pose, rest_joints, rest_orientations, rest_vertices
    from anchorhoi_jax.geometry.sdf import sdf_grid_from_mesh

    L = motion["global_orient"].shape[0]
    J = model.num_joints
    nb = motion["body_pose"].shape[1] // 3
    betas = onp.zeros(model.num_shape, onp.float32)
    b = onp.concatenate([motion["betas"], motion["expression"] if motion.get("expression") is not None else []])
    betas[: min(len(b), model.num_shape)] = b[: model.num_shape]
    full = onp.zeros((L, J, 3), onp.float32)
    full[:, 0] = motion["global_orient"]
    full[:, 1 : 1 + nb] = motion["body_pose"].reshape(L, nb, 3)
    bj = jnp.asarray(betas)
    s = jnp.asarray(motion["scale"])
    posed = jax.vmap(lambda q, t: pose(model, BodyParams(betas=bj, pose=q, transl=t, scale=s)))(
        jnp.asarray(full), jnp.asarray(motion["transl"]))
    R, t = jnp.asarray(motion["object_rotation"]), jnp.asarray(motion["object_translation"])
    grid = sdf_grid_from_mesh(static["object_vertices"], static["object_faces"], resolution=96, padding=0.05)
    used = onp.unique(onp.asarray(model.faces))
    cp = motion["contact_pairs"]
    parts = fit_part_volumes(rest_vertices(model, bj), rest_joints(model, bj), rest_orientations(model, bj),
                             model.lbs_weights, model.faces, model.parents)
    return {
        **M.penetration_metrics(posed.vertices[:, used], R, t, grid, threshold_mm=pen_threshold_mm),
        **M.contact_metrics(posed.vertices, R, t, jnp.asarray(cp[:, 0].astype(onp.int32)), jnp.asarray(cp[:, 1:]),
                            jnp.ones(len(cp))),
        **M.self_penetration_metrics(parts, posed.T_world_joint, s),
        **M.jitter(posed.joints[:, :22], motion["fps"]),
        **M.foot_skating(posed.joints[:, [7, 8, 10, 11]]),
    }


def run(args: argparse.Namespace) -> int:
    from anchorhoi_jax.cli import UsageError
    from anchorhoi_jax.io.formats import FormatError, read_motion, read_static

    try:
        motion = read_motion(args.motion)
        static = read_static(args.static)
    except FormatError as e:
        raise UsageError(str(e)) from None
    if motion["body_model"] != "smplx":
        raise UsageError(f"{Path(args.motion).name}: body_model {motion['body_model']!r} is not supported here (smplx only)")
    from anchorhoi_jax.body.smplx import load_smplx

    try:
        model, _ = load_smplx(args.smplx_model)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(f"--smplx-model: {' '.join(str(e).split())}") from None
    m = compute(model, motion, static, pen_threshold_mm=args.pen_threshold_mm)
    text = json.dumps(m, indent=2, sort_keys=True) + "\n"
    if args.json:
        Path(args.json).write_text(text)
    else:
        print(text, end="")
    return 0
