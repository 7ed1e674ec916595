"""`anchorhoi animate`: turn static HOI instances into motion (paper Sec. 4, "Motion Synthesis").

    anchorhoi animate --static STATIC.npz [STATIC.npz ...] (--prompt TEXT | --video FILE) --out DIR
                      [--config YAML] [--from-stage NAME] [--profile] [--overwrite] [key=value ...]

Each STATIC.npz (io/formats.py; `anchorhoi generate` writes seed_XXX/static/static.npz) is one seed;
all seeds run vmapped. The render of each static HOI is animated by the video prior
(`video.kind`: framepack | tiny), or `--video FILE` (mp4 or a folder of frames) drives every seed.
Then OpenPose-18 detection, contact keypoints (Eq. 3), 4D tracking (Eq. 4-6) and exports.
Re-running into the same DIR with --overwrite skips finished stages and resumes an interrupted one.
"""

from __future__ import annotations

import argparse

STAGES = ("static", "render", "video", "detect", "segment", "contacts", "motion")


def add_parser(subparsers) -> argparse.ArgumentParser:
    from anchorhoi_jax.cli import add_common_run_args

    p = subparsers.add_parser("animate", help="animate static HOI instances: video prior -> keypoints -> motion",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--static", nargs="+", required=True, metavar="STATIC.npz", help="static instance(s), one per seed")
    p.add_argument("--prompt", default=None, help="text for the video prior (default: the config's prompt)")
    p.add_argument("--video", default=None, metavar="FILE", help="drive the motion with this video instead of a video model")
    p.add_argument("--smplx-model", default=None, metavar="PATH", help="SMPL-X model file for SMPL-X static instances")
    add_pipeline_args(p, STAGES)
    add_common_run_args(p, default_out="outputs/animate")
    return p


def add_pipeline_args(p: argparse.ArgumentParser, stages) -> None:
    p.add_argument("--from-stage", default=None, choices=stages, metavar="NAME",
                   help=f"rerun this stage and everything after it ({', '.join(stages)})")
    p.add_argument("--profile", action="store_true",
                   help="write a jax.profiler trace of observe.profile_stage (steps observe.profile_start.."
                        "+observe.profile_steps) to DIR/profile")


def preflight(cfg, *, video_file: str | None, out: str, overwrite: bool) -> None:
    """Every check that needs no heavy work, before anything is written: weights, tensorboard, out dir."""
    from anchorhoi_jax.cli import UsageError
    from anchorhoi_jax.io.run_dir import check_output_dir
    from anchorhoi_jax.priors.manifest import MissingWeightsError, resolve_weights

    try:
        if cfg.video.kind == "framepack" and video_file is None:
            resolve_weights("framepack", cfg.video.framepack_dir)
            resolve_weights("hunyuanvideo-community", cfg.video.hunyuan_dir)
            resolve_weights("flux-redux-siglip", cfg.video.siglip_dir)
        if cfg.detect.kind == "openpose":
            resolve_weights("openpose-body", cfg.detect.openpose_dir)
        if cfg.segment.kind == "grounded_sam":
            resolve_weights("grounding-dino", cfg.segment.grounding_dino_dir)
            resolve_weights("sam", cfg.segment.sam_dir)
    except MissingWeightsError as e:
        raise UsageError(" ".join(str(e).split())) from None
    if cfg.observe.tensorboard:
        from anchorhoi_jax.pipeline.observe import tensorboard_writer  # noqa: F401

        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            try:
                import tensorboard  # noqa: F401
            except ImportError:
                raise UsageError("observe.tensorboard=true needs tensorboardX or tensorboard: pip install tensorboardX "
                                 "(or set observe.tensorboard=false)") from None
    check_output_dir(out, overwrite=overwrite)


def video_overrides(video: str | None) -> list[str]:
    """With --video: the render matches the video's frame size and the video stage reads the file."""
    if video is None:
        return []
    from anchorhoi_jax.cli import UsageError
    from anchorhoi_jax.priors.video import read_video

    try:
        clip = read_video(video, max_frames=1)
    except (ValueError, FileNotFoundError, OSError) as e:
        raise UsageError(f"--video {video}: {' '.join(str(e).split())}") from None
    h, w = clip.frames.shape[1:3]
    return ["video.kind=file", f"render.height={h}", f"render.width={w}"]


def load_statics(paths, smplx_model):
    from anchorhoi_jax.cli import UsageError
    from anchorhoi_jax.io.formats import FormatError
    from anchorhoi_jax.pipeline.static import seed_name, static_from_file

    kinds, statics = set(), {}
    for i, path in enumerate(paths):
        try:
            kind, st = static_from_file(path)
        except FormatError as e:
            raise UsageError(str(e)) from None
        kinds.add(kind)
        statics[seed_name(i)] = st
    if len(kinds) > 1:
        raise UsageError(f"--static files mix body models {sorted(kinds)}; animate one body model per run")
    kind = kinds.pop()
    if kind == "smplx" and smplx_model is None:
        raise UsageError("the static instances hold an SMPL-X body: pass --smplx-model PATH")
    return kind, statics


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from anchorhoi_jax.cli import UsageError
    from anchorhoi_jax.io.config import load_config
    from anchorhoi_jax.pipeline.config import AnimateConfig, check_prompt

    if args.config is not None and not Path(args.config).is_file():
        raise UsageError(f"config file not found: {args.config}")
    kind, statics = load_statics(args.static, args.smplx_model)
    body_over = [f"body.model={kind}"] + ([f"body.smplx_model={args.smplx_model}"] if args.smplx_model else [])
    overrides = (list(args.overrides) + body_over + video_overrides(args.video)
                 + ([f"seed={args.seed}"] if args.seed is not None else []))
    cfg = load_config(AnimateConfig, args.config, overrides)
    prompt = args.prompt if args.prompt is not None else cfg.prompt
    if args.video is None:
        try:
            prompt = check_prompt(prompt)
        except ValueError as e:
            raise UsageError(str(e)) from None
    import dataclasses

    cfg = dataclasses.replace(cfg, prompt=prompt or "")
    preflight(cfg, video_file=args.video, out=args.out, overwrite=args.overwrite)
    from anchorhoi_jax.pipeline.run import enable_compilation_cache

    enable_compilation_cache()
    with pipeline_errors("animate"):
        return execute(cfg, statics, out=args.out, overwrite=args.overwrite, video_file=args.video,
                       from_stage=args.from_stage, profile=args.profile)
    return 1


class pipeline_errors:
    """Report a PipelineError as one stderr line: exit 2 for unusable input, 1 for a failed run."""

    def __init__(self, command: str):
        self.command = command

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        from anchorhoi_jax.pipeline.errors import InputError, PipelineError

        if exc_type is not None and issubclass(exc_type, PipelineError):
            import sys

            print(f"anchorhoi {self.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
            raise SystemExit(2 if issubclass(exc_type, InputError) else 1)
        return False


def execute(cfg, statics: dict, *, out, overwrite: bool, video_file=None, from_stage=None, profile=False) -> int:
    """Run the animate graph for `statics` ({seed_XXX: static dict}) into `out`."""
    from anchorhoi_jax.io.run_dir import create_run_dir
    from anchorhoi_jax.pipeline.animate_graph import animate_stages, static_input_stage
    from anchorhoi_jax.pipeline.bodies import load_motion_body
    from anchorhoi_jax.pipeline.run import externals, run_pipeline
    from anchorhoi_jax.pipeline.static import seed_items

    first = seed_items(statics)[0][1]
    body_fn = _cached(lambda: load_motion_body(cfg.body.model, cfg.body.smplx_model, first))
    with create_run_dir(out, overwrite=overwrite) as rd:
        ext = externals(static=statics, prompt=cfg.prompt, video_file=video_file, seed=cfg.seed,
                        num_seeds=len(statics))
        run_pipeline(rd, [static_input_stage()] + animate_stages(body_fn), cfg, ext, body_fn, num_seeds=len(statics), from_stage=from_stage,
                     profile=profile)
    return 0


def _cached(fn):
    box = []

    def get():
        if not box:
            box.append(fn())
        return box[0]

    return get
