"""One pipeline run end to end: run the graph in a run directory, export every seed, write the
resolved config, metrics, timings and manifest, and print the per-stage timing table."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as onp

from anchorhoi_jax.io.checkpoint import hash_file, hash_pytree
from anchorhoi_jax.pipeline.observe import Observer, StageTiming, timing_table
from anchorhoi_jax.pipeline.runner import External, run_graph

__all__ = ["RunResult", "run_pipeline", "externals", "text_digest", "enable_compilation_cache"]

log = logging.getLogger("anchorhoi_jax.pipeline")
CHECKPOINTS = "checkpoints"


@dataclasses.dataclass
class RunResult:
    out: Path
    outputs: dict[str, Any]
    timings: list[StageTiming]
    metrics: dict[str, Any]
    events: list = dataclasses.field(default_factory=list)  # observer (stage, step, time) records


def enable_compilation_cache() -> None:
    """Persist XLA executables between runs (a resumed or repeated run skips recompiling), unless the
    user configured a cache already. Called by the CLI, never by the library. Same executable, same bits."""
    import os

    if jax.config.jax_compilation_cache_dir or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    base = Path(os.environ.get("ANCHORHOI_CACHE", Path.home() / ".cache" / "anchorhoi_jax"))
    try:
        (base / "xla").mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # read-only home: run without a persistent cache
    jax.config.update("jax_compilation_cache_dir", str(base / "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def externals(*, static: dict | None, prompt: str, video_file: str | None, seed: int, num_seeds: int) -> dict:
    """The graph's external inputs with the digests that key the stages reading them."""
    key = jax.random.key(seed)
    ext = {
        "prompt": External(prompt, text_digest(prompt)),
        "video_file": External(video_file or "", hash_file(video_file) if video_file and Path(video_file).is_file()
                               else text_digest(video_file or "")),
        "seeds": External({"key": onp.asarray(jax.random.key_data(key)), "count": onp.int32(num_seeds)},
                          text_digest(f"seed={seed};seeds={num_seeds}")),
    }
    if static is not None:
        ext["static_in"] = External(static, hash_pytree(static))
    return ext


def run_pipeline(rd, stages, cfg, external: dict, body_fn, *, num_seeds: int, from_stage: str | None = None,
                 profile: bool = False, export: bool = True) -> RunResult:
    """Run `stages` with checkpoints under rd/checkpoints, then export (see pipeline/exports.py)."""
    from anchorhoi_jax.pipeline.exports import export_run

    obs = cfg.observe
    observer = Observer(progress=obs.progress, tensorboard_dir=rd.path / "tensorboard" if obs.tensorboard else None,
                        profile_dir=rd.path / "profile" if profile else None, profile_stage=obs.profile_stage,
                        profile_start=obs.profile_start, profile_steps=obs.profile_steps)
    rd.write_config(cfg)
    t0 = time.perf_counter()
    try:
        outputs, timings = run_graph(stages, cfg, external, rd.path / CHECKPOINTS, observer, key=jax.random.key(cfg.seed),
                                     num_seeds=num_seeds, from_stage=from_stage,
                                     checkpoint_every=obs.checkpoint_every, checkpoint_async=obs.checkpoint_async)
    finally:
        observer.close()
    metrics = {}
    if export:
        te = time.perf_counter()
        metrics = export_run(rd, body_fn(), outputs, cfg)
        timings.append(StageTiming("export", "ran", time.perf_counter() - te))
    table = timing_table(timings)
    log.info("timings:\n%s", table)
    print(table, file=sys.stderr)
    # Timings vary run to run: they go to the log and timings.json, never into the manifest.
    (rd.path / "timings.json").write_text(json.dumps(
        {"total_s": time.perf_counter() - t0, "stages": [dataclasses.asdict(t) for t in timings]}, indent=2) + "\n")
    return RunResult(rd.path, outputs, timings, metrics, observer.events)
