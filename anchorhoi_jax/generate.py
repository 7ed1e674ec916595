"""`anchorhoi generate`: a sentence -> static 3D human-object interaction -> 4D motion, for N seeds.

    anchorhoi generate "A man with sideburns sitting on a sofa" [--config configs/anchorhoi.yaml]
                       [--seeds N] [--out DIR] [--from-stage NAME] [--profile] [--overwrite] [key=value ...]

Stages (each checkpointed under DIR/checkpoints, keyed by the hash of its config and inputs):
coarse, masks, anchor, avatar, pose, object, static (composition, paper Sec. 4) -> render, video,
detect, contacts, motion (motion synthesis) -> exports per seed in DIR/seed_XXX/. All seeds run
vmapped through every stage. Re-running into DIR with --overwrite skips finished stages and resumes
an interrupted one; --from-stage reruns a stage and everything after it.
"""

from __future__ import annotations

import argparse

from anchorhoi_jax.animate import add_pipeline_args, pipeline_errors, preflight

STAGES = ("coarse", "masks", "anchor", "avatar", "pose", "object", "static", "render", "video", "detect", "segment",
          "contacts", "motion")


def add_parser(subparsers) -> argparse.ArgumentParser:
    from anchorhoi_jax.cli import add_common_run_args

    p = subparsers.add_parser("generate", help="text -> static HOI -> motion, N seeds, resumable",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("prompt", help="the interaction: one sentence, or 'human | action | object'")
    p.add_argument("--seeds", type=int, default=None, metavar="N", help="number of seeds (same as seeds=N)")
    add_pipeline_args(p, STAGES)
    add_common_run_args(p, default_out="outputs/generate")
    return p


def load(args: argparse.Namespace):
    """The validated config (prompt included) or a one-line UsageError."""
    from pathlib import Path

    from anchorhoi_jax.cli import UsageError
    from anchorhoi_jax.io.config import load_config
    from anchorhoi_jax.pipeline.config import check_prompt
    from anchorhoi_jax.pipeline.generate_config import GenerateConfig
    from anchorhoi_jax.pipeline.prompt import split_prompt

    try:
        prompt = check_prompt(args.prompt)
        split_prompt(prompt)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.config is not None and not Path(args.config).is_file():
        raise UsageError(f"config file not found: {args.config}")
    overrides = (list(args.overrides) + ([f"seed={args.seed}"] if args.seed is not None else [])
                 + ([f"seeds={args.seeds}"] if args.seeds is not None else []))
    cfg = load_config(GenerateConfig, args.config, overrides)
    import dataclasses

    return dataclasses.replace(cfg, prompt=prompt)


def preflight_compose(cfg) -> None:
    from anchorhoi_jax.cli import UsageError
    from anchorhoi_jax.priors.manifest import MissingWeightsError

    if cfg.compose.guidance.kind == "real":
        from anchorhoi_jax.priors.guidance import _check_real_weights

        try:
            _check_real_weights(cfg.compose.guidance)
        except MissingWeightsError as e:
            raise UsageError(" ".join(str(e).split())) from None
    if cfg.body.model == "smplx" and not __import__("pathlib").Path(cfg.body.smplx_model).exists():
        raise UsageError(f"body.smplx_model: no such file or folder: {cfg.body.smplx_model}")


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    preflight_compose(cfg)
    preflight(cfg, video_file=None, out=args.out, overwrite=args.overwrite)
    from anchorhoi_jax.pipeline.run import enable_compilation_cache

    enable_compilation_cache()
    with pipeline_errors("generate"):
        execute(cfg, out=args.out, overwrite=args.overwrite, from_stage=args.from_stage, profile=args.profile)
        return 0
    return 1


def execute(cfg, *, out, overwrite: bool = False, from_stage=None, profile=False, priors_fn=None, export=True):
    """Run the whole graph for `cfg` (GenerateConfig, prompt set) into `out`. Returns the RunResult.

    `priors_fn() -> ComposePriors` replaces the priors `cfg.compose` names (benchmarks inject
    real-size random-init models this way)."""
    from anchorhoi_jax.animate import _cached
    from anchorhoi_jax.io.run_dir import create_run_dir
    from anchorhoi_jax.pipeline.animate_graph import animate_stages
    from anchorhoi_jax.pipeline.bodies import load_motion_body
    from anchorhoi_jax.pipeline.compose_stages import compose_stages
    from anchorhoi_jax.pipeline.prompt import split_prompt
    from anchorhoi_jax.pipeline.run import externals, run_pipeline

    def compose_body():
        if cfg.body.model == "anny":
            from anchorhoi_jax.body.anny import load_anny

            return load_anny()
        from anchorhoi_jax.body.smplx import load_smplx

        return load_smplx(cfg.body.smplx_model, gender=cfg.body.gender)[0]

    def priors():
        import torch

        from anchorhoi_jax.stages.composition import build_priors

        device = "cuda" if torch.cuda.is_available() else "cpu"
        return build_priors(" | ".join(split_prompt(cfg.prompt)), cfg.compose, device=device)

    motion_body = _cached(lambda: load_motion_body(cfg.body.model, cfg.body.smplx_model))
    stages = compose_stages(_cached(compose_body), _cached(priors_fn or priors)) + animate_stages(motion_body)
    with create_run_dir(out, overwrite=overwrite) as rd:
        ext = externals(static=None, prompt=cfg.prompt, video_file=None, seed=cfg.seed, num_seeds=cfg.seeds)
        return run_pipeline(rd, stages, cfg, ext, motion_body, num_seeds=cfg.seeds, from_stage=from_stage,
                            profile=profile, export=export)
