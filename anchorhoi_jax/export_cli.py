"""`anchorhoi export`: rebuild a finished run's per-seed files from its stage checkpoints.

    anchorhoi export --run RUN_DIR --out DIR [--overwrite] [key=value ...]

Reads RUN_DIR/config.yaml and the outputs of the 'static', 'render', 'video', 'contacts' and
'motion' stages in RUN_DIR/checkpoints (digest-checked; a corrupt one is reported), then writes
seed_XXX/{static,motion}/..., metrics.json, the config and a manifest into DIR. Overrides change
export settings only, e.g. `export.meshes=true` for per-frame OBJ meshes.
"""

from __future__ import annotations

import argparse

NEEDED = ("static", "render", "video", "contacts", "motion")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("export", help="rebuild a run's meshes, GLB, MP4 and npz files from its checkpoints",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="a generate/animate output directory")
    p.add_argument("--out", required=True, metavar="DIR", help="where to write the files")
    p.add_argument("--overwrite", action="store_true", help="write into an existing non-empty directory")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="export.* settings, e.g. export.meshes=true")
    return p


def find_outputs(run_dir) -> dict:
    """{stage: StageStore} of the finished stages in RUN_DIR/checkpoints (newest key per stage)."""
    from pathlib import Path

    from anchorhoi_jax.cli import UsageError
    from anchorhoi_jax.pipeline.store import StageStore

    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        raise UsageError(f"--run {run_dir}: no checkpoints folder; is it an `anchorhoi generate`/`animate` output?")
    found = {}
    for name in NEEDED:
        cands = [StageStore(d) for d in root.glob(f"{name}-*") if d.is_dir()]
        cands = [c for c in cands if c.finished()]
        if not cands:
            raise UsageError(f"--run {run_dir}: stage '{name}' has not finished (no output checkpoint); resume the run "
                             "first")
        found[name] = max(cands, key=lambda c: c.output_dir.stat().st_mtime)
    return found


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from anchorhoi_jax.cli import UsageError
    from anchorhoi_jax.io.config import load_config, read_preset
    from anchorhoi_jax.io.run_dir import check_output_dir, create_run_dir
    from anchorhoi_jax.pipeline.config import AnimateConfig
    from anchorhoi_jax.pipeline.exports import export_run

    cfg_path = Path(args.run) / "config.yaml"
    if not cfg_path.is_file():
        raise UsageError(f"--run {args.run}: no config.yaml (not a run directory)")
    bad = [o for o in args.overrides if not o.split("=", 1)[0].startswith("export.")]
    if bad:
        raise UsageError(f"only export.* settings can be changed at export time, got '{bad[0]}'")
    data = read_preset(cfg_path)
    if "compose" in data:
        from anchorhoi_jax.pipeline.generate_config import GenerateConfig as Schema
    else:
        Schema = AnimateConfig
    cfg = load_config(Schema, cfg_path, args.overrides)
    if Path(args.out).absolute() == Path(args.run).absolute():
        raise UsageError("--out must differ from --run (export writes a fresh set of files)")
    stores = find_outputs(args.run)
    check_output_dir(args.out, overwrite=args.overwrite)
    outputs = {name: s.load_output() for name, s in stores.items()}
    from anchorhoi_jax.pipeline.bodies import load_motion_body
    from anchorhoi_jax.pipeline.static import seed_items

    body = load_motion_body(cfg.body.model, cfg.body.smplx_model, seed_items(outputs["static"])[0][1])
    with create_run_dir(args.out, overwrite=args.overwrite) as rd:
        rd.write_config(cfg)
        export_run(rd, body, outputs, cfg)
    return 0
