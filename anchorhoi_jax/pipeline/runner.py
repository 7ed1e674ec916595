"""Run a stage graph: skip finished stages, resume interrupted ones, time each, honour --from-stage."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax

from anchorhoi_jax.io.checkpoint import stage_key
from anchorhoi_jax.io.config import config_hash
from anchorhoi_jax.pipeline.graph import Stage, downstream, order, section_of
from anchorhoi_jax.pipeline.observe import Observer, StageTiming
from anchorhoi_jax.pipeline.store import StageContext, StageStore, check_output_finite, to_host

__all__ = ["External", "run_graph", "section_hash", "stage_keys"]

log = logging.getLogger("anchorhoi_jax.pipeline")


@dataclasses.dataclass(frozen=True)
class External:
    """An input from outside the graph (prompt, seeds, a file) with the hash that keys it."""

    value: Any
    digest: str


def section_hash(section: Any) -> str:
    """Hash of a config section: a dataclass (io.config.config_hash), a dict of them, or a scalar."""
    if dataclasses.is_dataclass(section) and not isinstance(section, type):
        return config_hash(section)
    if isinstance(section, Mapping):
        return hashlib.sha256(json.dumps({k: section_hash(v) for k, v in section.items()}, sort_keys=True)
                              .encode()).hexdigest()
    return hashlib.sha256(repr(section).encode()).hexdigest()


def stage_keys(stages: Sequence[Stage], cfg: Any, external: Mapping[str, External]) -> dict[str, str]:
    """Checkpoint key of every stage: hash of its name, config section and its inputs' keys (recursive,
    so a change anywhere upstream changes every key below it)."""
    keys: dict[str, str] = {}
    for s in order(stages, external=list(external)):
        inputs = {i: (keys[i] if i in keys else external[i].digest) for i in s.inputs}
        keys[s.name] = stage_key(s.name, section_hash(section_of(cfg, s.section)), inputs)
    return keys


def _stage_rng(root: jax.Array, name: str) -> jax.Array:
    # One stream per stage, independent of the graph's shape (adding a stage never shifts others).
    return jax.random.fold_in(root, zlib.crc32(name.encode()) & 0x7FFFFFFF)


def run_graph(stages: Sequence[Stage], cfg: Any, external: Mapping[str, External], root: Path, observer: Observer,
              *, key: jax.Array, num_seeds: int, from_stage: str | None = None, checkpoint_every: int = 1,
              checkpoint_async: bool = True) -> tuple[dict[str, Any], list[StageTiming]]:
    """Run every stage in dependency order.

    A stage whose output checkpoint exists is loaded, not rerun ('cached'); one with mid-stage
    checkpoints continues from the newest ('resumed'); `from_stage` deletes the checkpoints of that
    stage and of everything downstream first, so they run again.

    Returns:
      (outputs by stage name (NumPy leaves), per-stage timings).
    """
    ordered = order(stages, external=list(external))
    keys = stage_keys(ordered, cfg, external)
    root = Path(root)
    redo = set(downstream(ordered, from_stage)) if from_stage is not None else set()
    outputs: dict[str, Any] = {k: v.value for k, v in external.items()}
    timings: list[StageTiming] = []
    for s in ordered:
        store = StageStore(root / keys[s.name])
        if s.name in redo and store.directory.exists():
            log.info("stage %s: --from-stage, discarding %s", s.name, store.directory)
            shutil.rmtree(store.directory)
        t0 = time.perf_counter()
        if store.finished():
            outputs[s.name] = store.load_output()
            timings.append(StageTiming(s.name, "cached", time.perf_counter() - t0))
            log.info("stage %s: finished earlier, loaded %s", s.name, store.directory.name)
            continue
        ctx = StageContext(s.name, store, observer, key=_stage_rng(key, s.name), num_seeds=num_seeds,
                           checkpoint_every=checkpoint_every, checkpoint_async=checkpoint_async)
        try:
            inputs = {i: outputs[i] for i in s.inputs}
            out = to_host(s.fn(ctx, inputs, section_of(cfg, s.section)))
            check_output_finite(s.name, out)
            store.save_output(out)
            store.drop_state()
        finally:
            store.close()
            observer.stage_end()
        outputs[s.name] = out
        status = "resumed" if ctx.resumed_from is not None else "ran"
        timings.append(StageTiming(s.name, status, time.perf_counter() - t0, ctx.last_step))
        log.info("stage %s: %s in %.2f s", s.name, status, timings[-1].seconds)
        if ctx.checkpoint_wait_s > 0.0:
            log.info("stage %s: waited %.3f s for checkpoint saves", s.name, ctx.checkpoint_wait_s)
    return outputs, timings
