"""Per-seed output files of a run (CONVENTIONS.md file layouts), all written atomically (io/export):

    seed_XXX/static/  human.obj, human.ply (vertex colours), object.obj, hoi.glb, static.npz, render.png
    seed_XXX/motion/  motion.npz (issue-5 format), amass.npz (SMPL-X bodies: poses, trans, betas, gender,
                      mocap_framerate), hoi.glb (animated: human morph targets + object node TRS),
                      driving.mp4 (the video prior's clip), video.mp4 (driving | 4D result side by side),
                      meshes/frame_XXXX.obj (export.meshes=true)
    seed_XXX/metrics.json  physical metrics of the motion (anchorhoi_jax/metrics.py)
"""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as onp

from anchorhoi_jax.io.export import SceneMesh, write_animated_glb, write_glb, write_mp4, write_npz, write_obj, write_ply, write_png
from anchorhoi_jax.pipeline.bodies import MotionBody
from anchorhoi_jax.pipeline.render import render_sequence, scene_arrays
from anchorhoi_jax.pipeline.static import (
    human_colors, object_colors, object_world, posed_human, posed_sequence, seed_items, seed_name,
)

__all__ = ["export_static", "export_motion", "export_run", "amass_arrays", "motion_metrics"]

_OPTIONAL = ("expression", "jaw_pose", "leye_pose", "reye_pose", "left_hand_pose", "right_hand_pose",
             "phenotype_values", "human_colors", "object_colors", "displacements")


def export_static(rd, prefix: str, body: MotionBody, st: dict, image=None) -> None:
    """seed_XXX/static/*: meshes in the world frame (object placed), GLB scene, STATIC.npz, render."""
    from anchorhoi_jax.io.formats import write_static

    faces = onp.asarray(body.model.faces)
    hv = posed_human(body, st)
    hc = human_colors(st, hv.shape[0])
    oc = object_colors(st)
    d = f"{prefix}/static"
    write_obj(rd.file(f"{d}/human.obj"), hv, faces, hc)
    write_ply(rd.file(f"{d}/human.ply"), hv, faces, hc)
    write_obj(rd.file(f"{d}/object.obj"), object_world(st), st["object_faces"], oc)
    write_glb(rd.file(f"{d}/hoi.glb"), [
        SceneMesh("human", faces, hv, hc),
        SceneMesh("object", st["object_faces"], st["object_vertices"], oc, rotation=st["object_rotation"],
                  translation=st["object_translation"]),
    ])
    arrays = {k: onp.asarray(st[k]) for k in ("betas", "scale", "global_orient", "body_pose", "transl",
                                             "object_vertices", "object_faces", "object_rotation", "object_translation")}
    arrays["body_pose"] = arrays["body_pose"].reshape(-1).astype(onp.float32)
    arrays.update({k: onp.asarray(st[k]) for k in _OPTIONAL if k in st})
    if "phenotype_values" in arrays:
        from anchorhoi_jax.body.anny import PHENOTYPE_LABELS

        arrays["phenotype_names"] = onp.asarray(PHENOTYPE_LABELS)
    write_static(rd.file(f"{d}/static.npz"), body_model=onp.asarray(body.kind), **arrays)
    names = ["human.obj", "human.ply", "object.obj", "hoi.glb", "static.npz"]
    if "info" in st:  # the composition's per-seed record (mask sources, pose-fit policy, residuals)
        from anchorhoi_jax.io.export import atomic_write_text
        from anchorhoi_jax.pipeline.pack import unpack_json

        info = _json_safe(unpack_json(st["info"]))
        atomic_write_text(rd.file(f"{d}/info.json"), json.dumps(info, indent=2, sort_keys=True, allow_nan=False) + "\n")
        names.append("info.json")
    if image is not None:
        write_png(rd.file(f"{d}/render.png"), image)
        names.append("render.png")
    rd.record(*[f"{d}/{n}" for n in names])


def _json_safe(x):
    """NaN/inf (e.g. the reprojection RMS of a seed that kept the rest pose) become null: strict JSON."""
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    if isinstance(x, float) and not onp.isfinite(x):
        return None
    return x


def amass_arrays(st: dict, go, bp, transl, fps: float, gender: str) -> dict:
    """AMASS-style SMPL-X npz: poses (L, 165) = root, body 21, jaw, eyes, hands 2x15 (axis-angle)."""
    L = go.shape[0]

    def fixed(k, n):
        v = st.get(k)
        return onp.broadcast_to(onp.zeros(n, onp.float32) if v is None else onp.asarray(v, onp.float32), (L, n))

    poses = onp.concatenate([go, bp.reshape(L, 63), fixed("jaw_pose", 3), fixed("leye_pose", 3), fixed("reye_pose", 3),
                             fixed("left_hand_pose", 45), fixed("right_hand_pose", 45)], 1).astype(onp.float32)
    return {"poses": poses, "trans": onp.asarray(transl, onp.float32), "betas": onp.asarray(st["betas"], onp.float32),
            "gender": onp.asarray(gender), "mocap_framerate": onp.asarray(fps, onp.float64),
            "surface_model_type": onp.asarray("smplx"), "scale": onp.asarray(st["scale"], onp.float32)}


def motion_metrics(body: MotionBody, st: dict, verts, joints, T_world_joint, R, t, contacts: dict, fps: float,
                   losses, *, sdf_resolution: int = 96) -> dict:
    """Penetration, contact, self-penetration, jitter and foot skating of one seed's motion (metrics.py)."""
    from anchorhoi_jax import metrics as M
    from anchorhoi_jax.body.part_volumes import fit_part_volumes
    from anchorhoi_jax.body.skinning import rest_joints, rest_orientations, rest_vertices
    from anchorhoi_jax.geometry.sdf import sdf_grid_from_mesh
    from anchorhoi_jax.pipeline.bodies import static_body_params
    from anchorhoi_jax.pipeline.static import motion_model

    model = motion_model(body, st)
    betas = static_body_params(body, st).betas
    grid = sdf_grid_from_mesh(jnp.asarray(st["object_vertices"]), jnp.asarray(st["object_faces"]), resolution=sdf_resolution,
                              padding=0.05)
    parts = fit_part_volumes(rest_vertices(model, betas), rest_joints(model, betas), rest_orientations(model, betas),
                             model.lbs_weights, model.faces, model.parents)
    used = onp.unique(onp.asarray(model.faces))
    v = jnp.asarray(verts)
    names = body.model.joint_names
    feet = ([7, 8, 10, 11] if body.kind == "smplx" else
            [names.index(n) for n in ("foot.L", "foot.R", "toe1-1.L", "toe1-1.R")])
    body_joints = slice(0, 22) if body.kind == "smplx" else slice(None)
    R, t = jnp.asarray(R), jnp.asarray(t)
    return {
        **M.penetration_metrics(v[:, used], R, t, grid),
        **M.contact_metrics(v, R, t, jnp.asarray(contacts["human_vertex"]), jnp.asarray(contacts["object_point"]),
                            jnp.asarray(contacts["mask"])),
        **M.self_penetration_metrics(parts, jnp.asarray(T_world_joint), jnp.asarray(st["scale"])),
        **M.jitter(jnp.asarray(joints)[:, body_joints], fps),
        **M.foot_skating(jnp.asarray(joints)[:, feet]),
        "final_loss": float(onp.asarray(losses)[-1]),
    }


def export_motion(rd, prefix: str, body: MotionBody, st: dict, motion: dict, contacts: dict, driving: onp.ndarray,
                  fps: float, K, T, cfg) -> dict:
    """seed_XXX/motion/* and metrics.json for one seed. Returns the metrics."""
    from anchorhoi_jax.io.formats import write_motion
    from anchorhoi_jax.pipeline.stage_motion import pose_joints_of

    d = f"{prefix}/motion"
    go, bp, tr = (onp.asarray(motion[k]) for k in ("global_orient", "body_pose", "transl"))
    R, t = onp.asarray(motion["object_rotation"]), onp.asarray(motion["object_translation"])
    L = go.shape[0]
    verts, joints, Tj, _ = posed_sequence(body, st, go, bp, tr, pose_joints_of(body))
    valid = onp.asarray(contacts["mask"]) > 0
    pairs = onp.concatenate([onp.asarray(contacts["human_vertex"])[valid, None].astype(onp.float32),
                             onp.asarray(contacts["object_point"])[valid]], 1)
    write_motion(rd.file(f"{d}/motion.npz"), global_orient=go, body_pose=bp.reshape(L, -1), transl=tr,
                 object_rotation=R, object_translation=t, betas=st["betas"], expression=st.get("expression"),
                 scale=st["scale"], body_model=body.kind, contact_pairs=pairs, fps=fps)
    names = ["motion.npz"]
    if body.kind == "smplx":
        write_npz(rd.file(f"{d}/amass.npz"), amass_arrays(st, go, bp, tr, fps, cfg.body.gender))
        names.append("amass.npz")
    faces = onp.asarray(body.model.faces)
    hc = human_colors(st, verts.shape[1])
    oc = object_colors(st)
    write_animated_glb(rd.file(f"{d}/hoi.glb"), [
        SceneMesh("human", faces, verts, hc),
        SceneMesh("object", st["object_faces"], st["object_vertices"], oc, rotation=R, translation=t),
    ], fps=fps)
    names.append("hoi.glb")
    H, W = driving.shape[1:3]
    ov = onp.einsum("lab,nb->lna", R, onp.asarray(st["object_vertices"])) + t[:, None]
    sv, sf, sc = scene_arrays(verts[0], faces, hc, ov[0], st["object_faces"], oc)
    seq = onp.concatenate([verts, ov], 1)
    frames = render_sequence(seq, sf, sc, K, T, height=H, width=W)
    side = onp.concatenate([driving.astype(onp.float32) / 255.0, frames], axis=2)
    vh = cfg.export.video_height
    if vh != H:  # nearest-neighbour resize keeps the encoder input exact and dependency-free
        rows = onp.minimum((onp.arange(vh) * H / vh).astype(int), H - 1)
        w2 = int(round(side.shape[2] * vh / H))
        cols = onp.minimum((onp.arange(w2) * side.shape[2] / w2).astype(int), side.shape[2] - 1)
        side = side[:, rows][:, :, cols]
    write_mp4(rd.file(f"{d}/driving.mp4"), driving, fps)
    write_mp4(rd.file(f"{d}/video.mp4"), side, fps)
    names += ["driving.mp4", "video.mp4"]
    if cfg.export.meshes:
        for i in range(L):
            name = f"meshes/frame_{i:04d}.obj"
            write_obj(rd.file(f"{d}/{name}"), onp.concatenate([verts[i], ov[i]]),
                      onp.concatenate([faces, onp.asarray(st["object_faces"]) + verts.shape[1]]),
                      onp.concatenate([hc, oc]))
            names.append(name)
    rd.record(*[f"{d}/{n}" for n in names])
    metrics = motion_metrics(body, st, verts, joints, Tj, R, t, contacts, fps, motion["losses"],
                             sdf_resolution=cfg.export.metrics_sdf_resolution)
    rd.write_json(f"{prefix}/metrics.json", metrics)
    return metrics


def export_run(rd, body: MotionBody, outputs: dict, cfg) -> dict:
    """Every seed's static and motion files. Returns {seed_XXX: metrics}."""
    out = {}
    for i, st in seed_items(outputs["static"]):
        prefix = seed_name(i)
        export_static(rd, prefix, body, st, outputs["render"]["image"][i])
        m = {k: outputs["motion"][k][i] for k in outputs["motion"]}
        c = {k: outputs["contacts"][k][i] for k in outputs["contacts"]}
        out[prefix] = export_motion(rd, prefix, body, st, m, c, outputs["video"]["frames"][i],
                                    float(outputs["video"]["fps"]), outputs["render"]["K"][i],
                                    outputs["render"]["T_cam_world"][i], cfg)
    return out
