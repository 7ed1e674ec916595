"""Stage checkpoints for the pipeline: where a stage keeps its optimiser state while it runs and its
output once it is done, and the `StageContext` a stage uses to resume and report progress.

Layout under the run's `checkpoints/` folder (io/checkpoint.py does the orbax work, digests and
refusal to overwrite):

    <stage>-<16 hex>/state/<step>/   mid-stage state (params, opt_state, step, key), last 2 kept
    <stage>-<16 hex>/output/0/       the finished stage's output (a nested dict of arrays)

The hex key hashes the stage name, its config section and its inputs' keys (io.checkpoint.stage_key),
so a changed config or upstream result never reuses a stale output, and an unchanged one is found
again (skip) or continued (resume mid-stage after a crash).
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as onp

from anchorhoi_jax.io.checkpoint import Checkpointer
from anchorhoi_jax.pipeline.errors import NonFiniteLossError
from anchorhoi_jax.pipeline.observe import Observer

__all__ = ["StageContext", "StageStore", "to_host"]

log = logging.getLogger("anchorhoi_jax.pipeline")


def to_host(tree: Any) -> Any:
    """Every leaf as a NumPy array (stage outputs look the same whether computed or restored)."""
    return jax.tree.map(lambda x: onp.asarray(x), jax.device_get(tree))


def _non_finite(info: dict[str, Any]) -> tuple[str, float] | None:
    for k, v in info.items():
        try:
            a = onp.asarray(v, dtype=onp.float64)
        except (TypeError, ValueError):
            continue
        if a.size and not onp.isfinite(a).all():
            bad = a[~onp.isfinite(a)].reshape(-1)[0]
            return k, float(bad)
    return None


class StageStore:
    """The checkpoint folders of one stage key."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._state: Checkpointer | None = None

    @property
    def output_dir(self) -> Path:
        return self.directory / "output"

    @property
    def state_dir(self) -> Path:
        return self.directory / "state"

    def finished(self) -> bool:
        return (self.output_dir / "0").is_dir()

    def load_output(self) -> Any:
        """The saved output (digest-checked). Raises CheckpointError if it is corrupt."""
        with Checkpointer(self.output_dir, max_to_keep=1, create=False) as c:
            return to_host(c.restore(0))

    def save_output(self, output: Any) -> None:
        with Checkpointer(self.output_dir, max_to_keep=1) as c:
            c.save(0, output)

    def state(self) -> Checkpointer:
        if self._state is None:
            self._state = Checkpointer(self.state_dir, max_to_keep=2)
        return self._state

    def drop_state(self) -> None:
        """Remove mid-stage states once the output is committed (the output supersedes them)."""
        self.close()
        if self.state_dir.is_dir():
            shutil.rmtree(self.state_dir)

    def close(self) -> None:
        if self._state is not None:
            self._state.close()
            self._state = None


class StageContext:
    """What a running stage sees: its PRNG key, resume, and the progress callback.

    A stage with an optimisation loop does

        state = ctx.resume(like=init_state) or init_state
        ctx.start(total_steps, initial=int(state.step))
        state, history = fit(state, ..., callback=ctx.callback)

    `callback(step, state, info)` (every `log_every` steps, the INTERFACES.md contract) checks that
    the losses in `info` are finite (else NonFiniteLossError; the last good checkpoint stays),
    updates the progress bar / TensorBoard / profiler, and saves `state` every `checkpoint_every`
    calls.
    """

    def __init__(self, name: str, store: StageStore, observer: Observer, *, key: jax.Array, num_seeds: int,
                 checkpoint_every: int = 1):
        self.name = name
        self.store = store
        self.observer = observer
        self.key = key
        self.num_seeds = num_seeds
        self.checkpoint_every = max(1, checkpoint_every)
        self.resumed_from: int | None = None
        self.last_step = 0
        self._calls = 0

    def resume(self, like: Any) -> Any | None:
        """The newest mid-stage state of this stage key restored into `like`'s structure, or None."""
        if not self.store.state_dir.is_dir():
            return None
        ckpt = self.store.state()
        step = ckpt.latest_step()
        if step is None:
            return None
        state = ckpt.restore(step, like=like)
        self.resumed_from = step
        log.info("stage %s: resuming from its checkpoint at step %d", self.name, step)
        return state

    def start(self, total: int | None, initial: int = 0) -> None:
        self.observer.stage_start(self.name, total, initial)
        self.last_step = initial

    def callback(self, step: int, state: Any, info: dict[str, Any]) -> None:
        step = int(step)
        bad = _non_finite(info)
        if bad is not None:
            last = self.store.state().latest_step() if self.store.state_dir.is_dir() else None
            kept = (f"the last good checkpoint (step {last}) is kept in {self.store.state_dir}" if last is not None
                    else "no checkpoint of this stage had been written yet")
            raise NonFiniteLossError(f"stage '{self.name}': non-finite loss ({bad[0]} = {bad[1]}) at step {step}; "
                                     f"run stopped, {kept}")
        scalars = {}
        for k, v in info.items():
            try:
                a = onp.asarray(v, dtype=onp.float64)
            except (TypeError, ValueError):
                continue
            if a.size:
                scalars[k] = float(a.mean()) if math.isfinite(float(a.mean())) else float("nan")
        self.observer.step(self.name, step, scalars)
        self.last_step = step
        self._calls += 1
        if state is not None and self._calls % self.checkpoint_every == 0:
            ckpt = self.store.state()
            if step not in ckpt.all_steps():
                ckpt.save(step, state)

    def checkpoint(self, step: int, state: Any) -> None:
        """Save a state now (e.g. at a stage's phase boundary)."""
        ckpt = self.store.state()
        if int(step) not in ckpt.all_steps():
            ckpt.save(int(step), state)


def check_output_finite(name: str, output: Any) -> None:
    """A stage output with NaN/inf is never committed."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(output):
        a = onp.asarray(leaf)
        if a.dtype.kind == "f" and not onp.isfinite(a).all():
            raise NonFiniteLossError(f"stage '{name}': its output {jax.tree_util.keystr(path)} has non-finite values; "
                                     "nothing was committed")

