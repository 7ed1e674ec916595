"""Stage checkpoints for the pipeline: where a stage keeps its optimiser state while it runs and its
output once it is done, and the `StageContext` a stage uses to resume and report progress.

Layout under the run's `checkpoints/` folder (io/checkpoint.py does the orbax work, digests and
refusal to overwrite):

    <stage>-<16 hex>/state/<step>/   mid-stage state (params, opt_state, step, key), last 2 kept
                                     (written by a background thread: the stage keeps stepping while
                                     orbax writes and hashes; at most one save in flight)
    <stage>-<16 hex>/output/0/       the finished stage's output (a nested dict of arrays)

The hex key hashes the stage name, its config section and its inputs' keys (io.checkpoint.stage_key),
so a changed config or upstream result never reuses a stale output, and an unchanged one is found
again (skip) or continued (resume mid-stage after a crash).
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import shutil
import time
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
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: concurrent.futures.Future | None = None

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
        self.wait_state()  # orbax saves never overlap (its async machinery is process-global)
        with Checkpointer(self.output_dir, max_to_keep=1) as c:
            c.save(0, output)

    def state(self) -> Checkpointer:
        if self._state is None:
            self._state = Checkpointer(self.state_dir, max_to_keep=2)
        return self._state

    def save_state(self, step: int, state: Any, *, background: bool = True, name: str = "") -> float:
        """Save a mid-stage state as `step` (skipped if that step exists); returns the seconds the caller waited.

        background=True: the state's device arrays are copied (a snapshot, so a later donation cannot
        free them) and a worker thread writes, verifies and hashes the copy while the stage goes on
        (why: a coarse/object NeRF state is 0.2 GB per seed; a synchronous orbax save + sha256 digest
        stalled every `log_every`-th SDS step). At most one save is in flight: the next save, `wait_state`,
        `close` and `drop_state` wait for it, and a failed background save is raised by the next of them.
        """
        t0 = time.perf_counter()
        self.wait_state()
        ckpt = self.state()
        if int(step) in ckpt.all_steps():
            return time.perf_counter() - t0
        if not background:
            self._timed_save(ckpt, int(step), state, name)
            return time.perf_counter() - t0
        snap = jax.tree.map(lambda x: x.copy() if isinstance(x, jax.Array) else x, state)
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="anchorhoi-ckpt")
        self._pending = self._pool.submit(self._timed_save, ckpt, int(step), snap, name)
        return time.perf_counter() - t0

    @staticmethod
    def _timed_save(ckpt: Checkpointer, step: int, state: Any, name: str) -> None:
        t0 = time.perf_counter()
        ckpt.save(step, state)
        log.info("stage %s: state of step %d saved in %.3f s", name, step, time.perf_counter() - t0)

    def wait_state(self) -> None:
        """Block until the background save (if any) is committed; re-raise its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def drop_state(self) -> None:
        """Remove mid-stage states once the output is committed (the output supersedes them)."""
        self.close()
        if self.state_dir.is_dir():
            shutil.rmtree(self.state_dir)

    def close(self) -> None:
        try:
            self.wait_state()
        except Exception as e:  # noqa: BLE001 -- an older state failed to save; the error is not the caller's
            log.warning("a background checkpoint save failed: %s: %s", type(e).__name__, e)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
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
    calls (in a background thread unless `checkpoint_async=False`; `checkpoint_wait_s` sums the time the
    stage itself waited for saves).
    """

    def __init__(self, name: str, store: StageStore, observer: Observer, *, key: jax.Array, num_seeds: int,
                 checkpoint_every: int = 1, checkpoint_async: bool = True):
        self.name = name
        self.store = store
        self.observer = observer
        self.key = key
        self.num_seeds = num_seeds
        self.checkpoint_every = max(1, checkpoint_every)
        self.checkpoint_async = bool(checkpoint_async)
        self.checkpoint_wait_s = 0.0
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
            self.store.wait_state()  # a save still in flight is of an earlier, finite step: keep it
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
            self.checkpoint_wait_s += self.store.save_state(step, state, background=self.checkpoint_async,
                                                            name=self.name)

    def checkpoint(self, step: int, state: Any) -> None:
        """Save a state now (e.g. at a stage's phase boundary; committed when this returns)."""
        self.checkpoint_wait_s += self.store.save_state(int(step), state, background=False, name=self.name)


def check_output_finite(name: str, output: Any) -> None:
    """A stage output with NaN/inf is never committed."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(output):
        a = onp.asarray(leaf)
        if a.dtype.kind == "f" and not onp.isfinite(a).all():
            raise NonFiniteLossError(f"stage '{name}': its output {jax.tree_util.keystr(path)} has non-finite values; "
                                     "nothing was committed")

