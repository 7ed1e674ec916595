"""Progress and observability: per-stage progress bars with ETA (tqdm), optional TensorBoard scalars,
a jax.profiler trace over a window of steps, and the per-stage timing table printed at the end.

Nothing here changes results: the observer only reads the `(step, info)` a stage reports.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["Observer", "StageTiming", "timing_table", "tensorboard_writer"]

log = logging.getLogger("anchorhoi_jax.pipeline")


@dataclasses.dataclass
class StageTiming:
    """How a stage went: 'ran', 'resumed' (from a mid-stage checkpoint) or 'cached' (skipped)."""

    name: str
    status: str
    seconds: float
    steps: int = 0


def timing_table(rows: list[StageTiming]) -> str:
    """Plain-text table: stage, status, steps, seconds, share of the total."""
    total = sum(r.seconds for r in rows) or 1.0
    w = max([5] + [len(r.name) for r in rows])
    lines = [f"{'stage':<{w}}  {'status':<7}  {'steps':>6}  {'seconds':>9}  {'share':>6}"]
    for r in rows:
        lines.append(f"{r.name:<{w}}  {r.status:<7}  {r.steps:>6}  {r.seconds:>9.2f}  {100 * r.seconds / total:>5.1f}%")
    lines.append(f"{'total':<{w}}  {'':<7}  {'':>6}  {sum(r.seconds for r in rows):>9.2f}")
    return "\n".join(lines)


def tensorboard_writer(logdir: Path):
    """A SummaryWriter from tensorboardX, else torch.utils.tensorboard (needs the tensorboard package).

    Raises:
      ImportError: one line naming what to install.
    """
    try:
        from tensorboardX import SummaryWriter  # type: ignore[import-not-found]
    except ImportError:
        try:
            import tensorboard  # noqa: F401  (torch's writer needs it)
            from torch.utils.tensorboard import SummaryWriter  # type: ignore[no-redef]
        except ImportError:
            raise ImportError("observe.tensorboard=true needs tensorboardX or tensorboard: "
                              "pip install tensorboardX (or set observe.tensorboard=false)") from None
    return SummaryWriter(str(logdir))


class Observer:
    """Receives stage progress. One per run.

    Args:
      progress: show tqdm bars (stderr).
      tensorboard_dir: write scalars there (None = off); see `tensorboard_writer`.
      profile_dir / profile_stage / profile_start / profile_steps: trace steps
        [profile_start, profile_start + profile_steps) of `profile_stage` with jax.profiler
        (Perfetto-readable; the trace is written when the window closes, not per step).
    """

    def __init__(self, *, progress: bool = True, tensorboard_dir: Path | None = None, profile_dir: Path | None = None,
                 profile_stage: str = "motion", profile_start: int = 0, profile_steps: int = 100):
        self.progress = progress
        self._tb = tensorboard_writer(tensorboard_dir) if tensorboard_dir is not None else None
        self.profile_dir = profile_dir
        self.profile_stage = profile_stage
        self.profile_start = profile_start
        self.profile_steps = profile_steps
        self._tracing = False
        self.profiled = False
        self._bar = None
        self._stage = None
        self._t0 = 0.0
        self.events: list[tuple[str, int, float]] = []  # (stage, step, perf_counter): steady-state step rates

    # -- stage lifecycle ---------------------------------------------------------------------------
    def stage_start(self, name: str, total: int | None = None, initial: int = 0) -> None:
        self.stage_end()
        self._stage, self._t0 = name, time.perf_counter()
        if self.progress and total:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=name, unit="step", file=sys.stderr,
                             dynamic_ncols=True, leave=True)
        self.events.append((name, initial, self._t0))
        log.info("stage %s: start (step %d of %s)", name, initial, total)
        self._maybe_trace(initial)

    def step(self, name: str, step: int, info: dict[str, Any]) -> None:
        self.events.append((name, step, time.perf_counter()))
        if self._bar is not None:
            self._bar.update(max(0, step - self._bar.n))
            loss = info.get("loss")
            if loss is not None and math.isfinite(float(loss)):
                self._bar.set_postfix(loss=f"{float(loss):.4g}", refresh=False)
        if self._tb is not None:
            for k, v in info.items():
                try:
                    self._tb.add_scalar(f"{name}/{k}", float(v), step)
                except (TypeError, ValueError):
                    continue
        log.info("stage %s: step %d %s", name, step,
                 " ".join(f"{k}={float(v):.5g}" for k, v in info.items() if _is_scalar(v)))
        self._maybe_trace(step)

    def stage_end(self) -> None:
        if self._tracing:
            self._stop_trace()
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._tb is not None:
            self._tb.flush()
        self._stage = None

    def close(self) -> None:
        self.stage_end()
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    # -- profiler window ---------------------------------------------------------------------------
    def _maybe_trace(self, step: int) -> None:
        if self.profile_dir is None or self._stage != self.profile_stage or self.profiled:
            return
        if not self._tracing and self.profile_start <= step < self.profile_start + self.profile_steps:
            import jax

            self.profile_dir.mkdir(parents=True, exist_ok=True)
            jax.profiler.start_trace(str(self.profile_dir))
            self._tracing = True
            log.info("profiler: tracing %s from step %d into %s", self._stage, step, self.profile_dir)
        elif self._tracing and step >= self.profile_start + self.profile_steps:
            self._stop_trace()

    def _stop_trace(self) -> None:
        import jax

        jax.profiler.stop_trace()
        self._tracing = False
        self.profiled = True
        log.info("profiler: trace written to %s", self.profile_dir)


def _is_scalar(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False
