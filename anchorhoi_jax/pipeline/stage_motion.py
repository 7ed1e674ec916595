"""Stages 'contacts' (Eq. 3) and 'motion' (Eq. 4-6), all seeds vmapped in one program.

Each seed has its own static HOI, so the constant `MotionData` (stages/motion.prepare_motion_data)
is built per seed on the host and stacked along a leading seed axis; the jitted update is
`vmap(update, in_axes=(0, 0, None))` (state and data per seed, weights shared and traced). The
checkpointed state is {"state": MotionState, "losses": (S, steps)}, so a resumed run reproduces the
uninterrupted one bit for bit, loss history included. The rendered-frame term of L_reg is off here
(weights.render is forced to 0): the driving video is generated from a render of the static HOI
and the keypoints carry its motion; `anchorhoi track --video` keeps that term for user videos.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as onp

from anchorhoi_jax.pipeline.bodies import MotionBody, static_body_params
from anchorhoi_jax.pipeline.errors import PipelineError
from anchorhoi_jax.pipeline.static import motion_model, seed_items

__all__ = ["make_contacts_stage_fn", "make_motion_stage_fn", "motion_config", "pose_joints_of", "pad_part_pairs",
           "stack_seed_data"]

# Radius (metres) of the inert capsule that pads the self-penetration pairs of seeds with fewer pairs: with
# r_a + r_b = −2 km a pair never overlaps, and r − dist never wins the max of the part occupancy.
_INERT_RADIUS = -1.0e3


def _seed_key(root: jax.Array, i: int) -> jax.Array:
    return jax.random.fold_in(root, i)


def pose_joints_of(body: MotionBody) -> tuple[int, ...]:
    """Joints the motion optimises: SMPL-X body joints 1..21 (hands/jaw/eyes stay static); Anny: all non-root."""
    from anchorhoi_jax.stages.motion import SMPLX_BODY_JOINTS

    return SMPLX_BODY_JOINTS if body.kind == "smplx" else tuple(range(1, body.model.num_joints))


def motion_config(body: MotionBody, cfg):
    from anchorhoi_jax.stages.motion import MotionConfig

    return MotionConfig.for_model(body.model, pose_joints=pose_joints_of(body), steps_per_call=cfg.log_every,
                                  learning_rate=cfg.learning_rate, sigma_px=cfg.sigma_px, init_noise=cfg.init_noise,
                                  global_steps=cfg.global_steps)


def _instance(body: MotionBody, st: dict):
    from anchorhoi_jax.stages.motion import StaticInstance

    p = static_body_params(body, st)
    return StaticInstance(betas=p.betas, scale=p.scale, pose=p.pose, transl=p.transl,
                          R_world_obj=jnp.asarray(st["object_rotation"], jnp.float32),
                          t_world_obj=jnp.asarray(st["object_translation"], jnp.float32))


def _thresholds(cfg) -> dict:
    from anchorhoi_jax.stages.contacts import gm_distance_threshold

    return dict(tau_n=cfg.tau_n, tau_d=gm_distance_threshold(cfg.contact_distance, cfg.sigma_d), sigma_d=cfg.sigma_d)


def _data_key(seeds_key: jax.Array, i: int) -> jax.Array:
    # The surface sampling key of seed i; 'contacts' and 'motion' share it, so both see the same V_o.
    return jax.random.split(_seed_key(seeds_key, i))[0]


def make_contacts_stage_fn(body_fn):
    """inputs: 'static', 'seeds' (root key data). Section: 'motion'. Output: Eq. 3 pairs per seed."""

    def contacts_stage(ctx, inputs, cfg):
        from anchorhoi_jax.body.model import BodyParams
        from anchorhoi_jax.body.skinning import pose
        from anchorhoi_jax.geometry.mesh import vertex_normals
        from anchorhoi_jax.stages.contacts import extract_contacts, object_surface_points

        body: MotionBody = body_fn()
        root = jax.random.wrap_key_data(jnp.asarray(inputs["seeds"]["key"]))
        hv, op, mask = [], [], []
        for i, st in seed_items(inputs["static"]):
            inst = _instance(body, st)
            model = motion_model(body, st)
            # Exactly the computation of stages/motion.prepare_motion_data (eager posing, same casts): the
            # motion stage recomputes these pairs and checks they are equal. A jitted pose here differed in
            # the last bits on the H100 and flipped threshold decisions on a 547k-face object mesh.
            posed = pose(model, BodyParams(betas=inst.betas, pose=inst.pose, transl=inst.transl, scale=inst.scale))
            nrm = vertex_normals(posed.vertices, model.faces)
            k_surf, _ = jax.random.split(_data_key(root, i))
            pts, n = object_surface_points(jnp.asarray(st["object_vertices"], jnp.float32),
                                           jnp.asarray(st["object_faces"], jnp.int32), cfg.num_object_points, key=k_surf)
            c = extract_contacts(pts, n, inst.R_world_obj, inst.t_world_obj, posed.vertices, nrm,
                                 jnp.asarray(body.candidates, jnp.int32), **_thresholds(cfg))
            hv.append(onp.asarray(c.human_vertex))
            op.append(onp.asarray(c.object_point))
            mask.append(onp.asarray(c.mask))
        return {"human_vertex": onp.stack(hv).astype(onp.int32), "object_point": onp.stack(op).astype(onp.float32),
                "mask": onp.stack(mask).astype(onp.float32)}

    return contacts_stage


def pad_part_pairs(parts: list) -> list:
    """Per-seed PartVolumes with equal shapes, for stacking along the seed axis.

    The non-adjacent part pairs of the self-penetration term depend on each seed's shape β (pairs that
    touch at rest are excluded, body/part_volumes.py), so seeds differ in their pair count. When they
    do, every seed gets one inert capsule appended (radius −1 km, zero-length, on the root joint) and its
    pair list padded with (inert, inert) pairs: relu(r_a + r_b − d) = 0 for them, and the inert capsule
    never attains the max of the part occupancy (L_pen), so each seed's loss terms and gradients are
    exactly its unpadded ones. Equal pair counts (one seed included) are returned unchanged.
    """
    counts = {int(p.pair_a.shape[0]) for p in parts}
    if len(counts) <= 1:
        return list(parts)
    q = max(counts)
    out = []
    for p in parts:
        n_parts = p.radius.shape[0]
        pad = jnp.full((q - p.pair_a.shape[0],), n_parts, p.pair_a.dtype)
        out.append(p.replace(
            q0=jnp.concatenate([p.q0, jnp.zeros((1, 3), p.q0.dtype)]),
            q1=jnp.concatenate([p.q1, jnp.zeros((1, 3), p.q1.dtype)]),
            radius=jnp.concatenate([p.radius, jnp.full((1,), _INERT_RADIUS, p.radius.dtype)]),
            joint=jnp.concatenate([p.joint, jnp.zeros((1,), p.joint.dtype)]),
            pair_a=jnp.concatenate([p.pair_a, pad]),
            pair_b=jnp.concatenate([p.pair_b, pad])))
    return out


def pad_support_points(points: list) -> list:
    """Per-seed object support points (MotionData.object_support_points: the object's convex-hull vertices,
    at most `max_support_points`, object frame) with equal counts, for stacking along the seed axis.

    Seeds' objects differ, and so do their hull vertex counts (H100 4-seed run, session 7: 256, 256, 93, 178).
    A shorter list is padded with its hull's vertex mean. That point lies inside the hull, so under any rigid
    motion it is never lower than the lowest hull vertex: `floor_support`'s per-frame lowest point and its
    gradient are exactly the unpadded ones; `floor`'s sum gains a term only while the mean itself is below the
    floor (most of the object sunk into it), never for an object resting on or above it. Equal counts (one seed
    included) and seeds without floor data (None) are returned unchanged."""
    if any(p is None for p in points):
        return list(points)
    counts = {int(p.shape[0]) for p in points}
    if len(counts) <= 1:
        return list(points)
    n = max(counts)
    return [p if p.shape[0] == n else
            jnp.concatenate([p, jnp.broadcast_to(jnp.mean(p, 0, keepdims=True), (n - p.shape[0], p.shape[1]))])
            for p in points]


def _with_entries(d):
    """`d` with its LBS-gradient entry lists (MotionData.sub_skin_entries, kernels/lbs.joint_entries) rebuilt
    from its (padded) skinning table: the lists are S·K long, so a seed padded to a wider K needs them again
    (the padding's zero weights sort after every joint's range and add nothing). Built on the host, as
    prepare_motion_data does."""
    if getattr(d, "sub_skin_entries", None) is None:
        return d
    from anchorhoi_jax.kernels.lbs import host_joint_entries

    num_joints = int(d.sub_skin_entries[0].shape[0]) - 1  # J_pad ≥ J; the padding rows stay empty
    return d.replace(sub_skin_entries=host_joint_entries(d.sub_skin_ids, d.sub_skin_w, num_joints))


def stack_seed_data(datas: list):
    """Per-seed MotionData stacked along a leading seed axis (part pairs padded by `pad_part_pairs`, object
    support points by `pad_support_points`).

    Raises PipelineError (one line) naming the first field whose shape still differs between seeds."""
    parts = pad_part_pairs([d.parts for d in datas])
    datas = [d.replace(parts=p) for d, p in zip(datas, parts)]
    if all(hasattr(d, "object_support_points") for d in datas):
        sup = pad_support_points([d.object_support_points for d in datas])
        datas = [d.replace(object_support_points=s) for d, s in zip(datas, sup)]
    # The sparse skinning table is as wide as the subset's most-weighted vertex (per seed): pad with
    # (joint 0, weight 0) columns, which add exactly nothing to Σ_k w_k A_k.
    k = max(int(d.sub_skin_ids.shape[1]) for d in datas)
    datas = [d if d.sub_skin_ids.shape[1] == k else _with_entries(d.replace(
        sub_skin_ids=jnp.pad(d.sub_skin_ids, ((0, 0), (0, k - d.sub_skin_ids.shape[1]))),
        sub_skin_w=jnp.pad(d.sub_skin_w, ((0, 0), (0, k - d.sub_skin_w.shape[1]))))) for d in datas]
    leaves = [jax.tree_util.tree_flatten_with_path(d)[0] for d in datas]
    for i, (path, leaf) in enumerate(leaves[0]):
        shapes = [jnp.shape(ls[i][1]) for ls in leaves]
        if len(set(shapes)) > 1:
            raise PipelineError(f"motion data field {jax.tree_util.keystr(path)} differs in shape between seeds "
                                f"({shapes}); the seeds cannot be vmapped together")
    return jax.tree.map(lambda *x: jnp.stack(x), *datas)


def _prepare(body: MotionBody, st: dict, kp, conf, K, T, image_size, key, cfg, masks: dict | None = None):
    """prepare_motion_data for one seed; `masks`: None or {"human_masks", "object_masks"} (L, H, W) bool."""
    from anchorhoi_jax.stages.motion import prepare_motion_data

    return prepare_motion_data(
        motion_model(body, st), _instance(body, st), st["object_vertices"], st["object_faces"], keypoints=kp,
        confidence=conf, K=K, T_cam_world=T, image_size=image_size, contact_candidates=body.candidates,
        openpose_ids=body.openpose, key=key, num_object_points=cfg.num_object_points,
        num_pen_vertices=cfg.num_pen_vertices, sdf_resolution=cfg.sdf_resolution, contact_thresholds=_thresholds(cfg),
        **(masks or {}))


def make_motion_stage_fn(body_fn):
    """inputs: 'static', 'contacts', 'detect', 'segment', 'render', 'video', 'seeds'. Section: 'motion'.

    With masks in the 'segment' output (pipeline/stage_segment.py) every seed's data carries them: the silhouette
    part of L_reg and the object-at-rest test (stages/motion.prepare_motion_data)."""

    def motion_stage(ctx, inputs, cfg):
        from anchorhoi_jax.pipeline.stage_segment import motion_masks
        from anchorhoi_jax.stages.motion import MotionWeights, motion_phases

        body: MotionBody = body_fn()
        root = jax.random.wrap_key_data(jnp.asarray(inputs["seeds"]["key"]))
        kp, conf = inputs["detect"]["keypoints"], inputs["detect"]["confidence"]
        H, W = inputs["video"]["frames"].shape[2:4]
        size = onp.asarray([W, H], onp.float32)
        seeds = seed_items(inputs["static"])
        masks = motion_masks(inputs["segment"], W) if "segment" in inputs else None
        datas = []
        for i, st in seeds:
            d = _prepare(body, st, kp[i], conf[i], inputs["render"]["K"][i], inputs["render"]["T_cam_world"][i], size,
                         _data_key(root, i), cfg, None if masks is None else masks[i])
            if not onp.array_equal(onp.asarray(d.contacts.human_vertex), inputs["contacts"]["human_vertex"][i]):
                raise PipelineError(f"seed {i}: the motion stage's contact pairs differ from the 'contacts' stage "
                                    "(inputs changed under a finished stage); rerun with --from-stage contacts")
            datas.append(d)
        data = stack_seed_data(datas)
        mcfg = motion_config(body, cfg)
        wd = dataclasses.asdict(cfg.weights)
        wd["render"] = 0.0
        weights = MotionWeights.default(**wd)
        init_fn, step_fn = _compiled(mcfg)
        keys = jnp.stack([jax.random.split(_seed_key(root, i))[1] for i, _ in seeds])
        S, K = len(seeds), mcfg.steps_per_call
        fresh = {"state": init_fn(data, keys), "losses": jnp.zeros((S, cfg.steps), jnp.float32)}
        carry = ctx.resume(like=fresh) or fresh
        schedule = [w for n, w in motion_phases(weights, mcfg, cfg.steps) for _ in range(n)]
        c0 = int(onp.asarray(carry["state"].step).reshape(-1)[0]) // K
        ctx.start(cfg.steps, initial=c0 * K)
        state, losses = carry["state"], carry["losses"]
        for c in range(c0, len(schedule)):
            state, l, terms = step_fn(state, data, schedule[c])
            losses = jax.lax.dynamic_update_slice(losses, l, (0, c * K))
            info = {"loss": l[:, -1], **{k: v for k, v in terms.items()}}
            ctx.callback((c + 1) * K, {"state": state, "losses": losses}, info)
        p = state.params
        R = jnp.einsum("slab,sbc->slac", jax.vmap(jax.vmap(_rodrigues))(p.object_delta_rot), data.static.R_world_obj)
        return {"global_orient": p.global_orient, "body_pose": p.body_pose, "transl": p.transl,
                "object_delta_rot": p.object_delta_rot, "object_translation": p.object_translation,
                "object_rotation": R, "losses": losses}

    return motion_stage


@functools.lru_cache(maxsize=4)
def _compiled(mcfg):
    """Seed-vmapped jitted (init, update) per static MotionConfig, reused across runs in one process."""
    from anchorhoi_jax.stages.motion import make_motion_step

    init, update = make_motion_step(mcfg)
    return jax.jit(jax.vmap(init)), jax.jit(jax.vmap(update, in_axes=(0, 0, None)), donate_argnums=(0,))


def _rodrigues(v):
    from anchorhoi_jax.geometry.rotations import axis_angle_to_matrix

    return axis_angle_to_matrix(v)
