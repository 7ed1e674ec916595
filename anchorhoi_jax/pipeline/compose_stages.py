"""The composition half of the graph (paper Sec. 4 "Interaction Composition"), one checkpointed stage
per sub-stage of stages/composition.py:

    coarse  Φ̂ by SDS with T_inter            (resumable: optimiser state saved every log_every steps)
    masks   canonical renders of Φ̂ + human / object masks
    anchor  Φ_A by L_align                     (resumable)
    avatar  Θ = (β, D, C) by SDS with T_human   (resumable)
    pose    s, r, t, θ by Eq. 2 on skeletons of Φ_A
    object  object NeRF by SDS (T_object) + layout SDS, marching cubes   (resumable)
    static  the assembled static HOI X_s, per seed in the STATIC layout (+ colours, D)

Per-seed keys follow `composition.compose` (fold_in(seed key, 0..3) for coarse/anchor/avatar/object),
so the graph computes what `compose` computes, with checkpoints in between. Priors (torch) are built
once, lazily: a run whose composition stages are all cached never loads them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as onp

from anchorhoi_jax.pipeline.graph import Stage
from anchorhoi_jax.pipeline.pack import pack, pack_json, unpack, unpack_json
from anchorhoi_jax.pipeline.static import seed_name

__all__ = ["compose_stages", "seed_keys", "substage_keys"]


def seed_keys(seeds: dict) -> jax.Array:
    """(S,) per-seed keys: fold_in(root, i) (CONVENTIONS.md)."""
    root = jax.random.wrap_key_data(jnp.asarray(seeds["key"]))
    return jnp.stack([jax.random.fold_in(root, i) for i in range(int(seeds["count"]))])


def substage_keys(seeds: dict, i: int) -> jax.Array:
    return jax.vmap(lambda k: jax.random.fold_in(k, i))(seed_keys(seeds))


def _step(state) -> int:
    return int(onp.asarray(state.step).reshape(-1)[0])


def compose_stages(body_fn, priors_fn) -> list[Stage]:
    """`body_fn()`: the composition body (AnnyBody or SMPL-X BodyModel); `priors_fn()`: ComposePriors."""
    from anchorhoi_jax.stages import anchor as A
    from anchorhoi_jax.stages import avatar as AV
    from anchorhoi_jax.stages import coarse as CO
    from anchorhoi_jax.stages import composition as C
    from anchorhoi_jax.stages import object_stage as OB

    def coarse_like(inputs, cfg):
        return jax.eval_shape(lambda: CO.init_seeds(substage_keys(inputs["seeds"], 0), cfg.coarse)).params

    def avatar_like(inputs, cfg):
        return jax.eval_shape(lambda: AV.init_seeds(substage_keys(inputs["seeds"], 2), body_fn(), cfg.avatar)).params

    def renders_of(m):
        return C.CanonicalRenders(rgb=jnp.asarray(m["rgb"]), alpha=jnp.asarray(m["alpha"]),
                                  human_mask=jnp.asarray(m["human_mask"]), object_mask=jnp.asarray(m["object_mask"]))

    def pose_params(p):
        from anchorhoi_jax.body.model import BodyParams

        return BodyParams(betas=jnp.asarray(p["betas"]), pose=jnp.asarray(p["pose"]), transl=jnp.asarray(p["transl"]),
                          scale=jnp.asarray(p["scale"]))

    def coarse(ctx, inputs, cfg):
        keys = substage_keys(inputs["seeds"], 0)
        fresh = CO.init_seeds(keys, cfg.coarse)
        state = ctx.resume(like=fresh) or fresh
        ctx.start(cfg.coarse.steps, initial=_step(state))
        state, _ = C.run_coarse(keys, cfg, priors_fn(), state=state, callback=ctx.callback)
        return {"params": pack(state.params)}

    def masks(ctx, inputs, cfg):
        params = unpack(inputs["coarse"]["params"], coarse_like(inputs, cfg))
        renders, infos = C.run_masks(params, cfg, priors_fn())
        return {"rgb": renders.rgb, "alpha": renders.alpha, "human_mask": renders.human_mask,
                "object_mask": renders.object_mask, "info": pack_json(infos)}

    def anchor(ctx, inputs, cfg):
        keys = substage_keys(inputs["seeds"], 1)
        coarse_params = unpack(inputs["coarse"]["params"], coarse_like(inputs, cfg))
        fresh = jax.vmap(A.init)(keys, coarse_params)
        state = ctx.resume(like=fresh) or fresh
        ctx.start(cfg.anchor.steps, initial=_step(state))
        state, _ = C.run_anchor(keys, coarse_params, renders_of(inputs["masks"]), cfg, state=state,
                                callback=ctx.callback)
        return {"params": pack(state.params)}

    def avatar(ctx, inputs, cfg):
        keys = substage_keys(inputs["seeds"], 2)
        fresh = AV.init_seeds(keys, body_fn(), cfg.avatar)
        state = ctx.resume(like=fresh) or fresh
        ctx.start(cfg.avatar.steps, initial=_step(state))
        state, _ = C.run_avatar(keys, body_fn(), cfg, priors_fn(), state=state, callback=ctx.callback)
        return {"params": pack(state.params)}

    def pose(ctx, inputs, cfg):
        body = body_fn()
        anchor_params = unpack(inputs["anchor"]["params"], coarse_like(inputs, cfg))
        av = unpack(inputs["avatar"]["params"], avatar_like(inputs, cfg))
        betas = jax.vmap(lambda p: AV.avatar_betas(p, body))(av)
        res, infos = C.run_pose(anchor_params, body, betas, cfg, priors_fn())
        p = res.params
        return {"betas": p.betas, "pose": p.pose, "transl": p.transl, "scale": p.scale,
                "keypoints2d": res.keypoints2d, "confidence": res.confidence, "keypoints3d": res.keypoints3d,
                "fitted": onp.asarray(res.fitted, onp.int32), "info": pack_json(infos)}

    def object_(ctx, inputs, cfg):
        body = body_fn()
        keys = substage_keys(inputs["seeds"], 3)
        coarse_params = unpack(inputs["coarse"]["params"], coarse_like(inputs, cfg))
        renders = renders_of(inputs["masks"])
        av = unpack(inputs["avatar"]["params"], avatar_like(inputs, cfg))
        human = C.posed_avatars(av, body, pose_params(inputs["pose"]))
        fresh = OB.init_seeds(keys, coarse_params, C.canonical_cameras(cfg), renders.rgb, renders.alpha,
                              renders.object_mask, cfg.object)
        state = ctx.resume(like=fresh) or fresh
        ctx.start(cfg.object.steps, initial=_step(state))
        res, _ = C.run_object(keys, coarse_params, renders, human, cfg, priors_fn(), state=state,
                              callback=ctx.callback)
        return {seed_name(i): {"vertices": v, "faces": onp.asarray(f, onp.int32), "colors": c, "info": pack_json(info)}
                for i, ((v, f, c), info) in enumerate(zip(res.meshes, res.infos))}

    def static(ctx, inputs, cfg):
        body = body_fn()
        av = unpack(inputs["avatar"]["params"], avatar_like(inputs, cfg))
        P = inputs["pose"]
        S = P["betas"].shape[0]
        pres = C.PoseResult(params=pose_params(P), keypoints2d=jnp.asarray(P["keypoints2d"]),
                            confidence=jnp.asarray(P["confidence"]), keypoints3d=jnp.asarray(P["keypoints3d"]),
                            fitted=jnp.asarray(P["fitted"] > 0), reprojection_rms_px=jnp.zeros((S,), jnp.float32))
        objs = [inputs["object"][seed_name(i)] for i in range(S)]
        meshes = [(o["vertices"], o["faces"], o["colors"]) for o in objs]
        # the marching-cubes level per seed (object_stage.object_mesh_level) joins the masks/pose infos
        obj_infos = [unpack_json(o["info"]) if "info" in o else {} for o in objs]
        infos = [{**m, **p, **o} for m, p, o in zip(unpack_json(inputs["masks"]["info"]), unpack_json(P["info"]),
                                                     obj_infos)]
        hoi = C.assemble(body, av, pres, C.ObjectResult(state=None, meshes=meshes), infos)
        out = {}
        for s in range(S):
            # The STATIC.npz arrays of composition.static_arrays (SMPL-X: body joints 1..21 in body_pose, jaw /
            # eyes / hands split out, as track._body_and_maps reads them). String arrays stay out of the
            # checkpoint: the body kind is the run's body.model, phenotype names are Anny's constant list.
            st = {k: v for k, v in C.static_arrays(hoi, s, body=body).items() if k not in ("body_model", "phenotype_names")}
            st["human_colors"] = onp.clip(onp.asarray(st["human_colors"]), 0.0, 1.0)
            st["object_colors"] = onp.clip(onp.asarray(st["object_colors"]), 0.0, 1.0)
            st["info"] = pack_json(hoi.info[s])
            out[seed_name(s)] = st
        return out

    return [
        Stage("coarse", ("prompt", "seeds"), "compose", coarse, "coarse HOI NeRF by SDS (T_inter)"),
        Stage("masks", ("coarse", "seeds"), "compose", masks, "canonical renders + human/object masks"),
        Stage("anchor", ("coarse", "masks", "seeds"), "compose", anchor, "anchor NeRF by L_align"),
        Stage("avatar", ("prompt", "seeds"), "compose", avatar, "canonical avatar by SDS (T_human)"),
        Stage("pose", ("anchor", "avatar", "seeds"), "compose", pose, "pose from the anchor (Eq. 2)"),
        Stage("object", ("coarse", "masks", "avatar", "pose", "seeds"), "compose", object_,
              "object NeRF by SDS + layout SDS, marching cubes"),
        Stage("static", ("avatar", "pose", "object", "masks", "seeds"), ("compose", "body"), _first(static),
              "assemble the static HOI"),
    ]


def _first(fn):
    def wrapped(ctx, inputs, sections):
        return fn(ctx, inputs, sections["compose"])

    return wrapped
