"""Paths and synthetic inputs for the pipeline tests."""

from __future__ import annotations

from pathlib import Path

from anchorhoi_jax.pipeline.examples import box_static

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "smoke.yaml"
SMOKE_ANIMATE = REPO / "configs" / "smoke_animate.yaml"


def anny_static(path: Path, **kw) -> Path:
    """Anny in its rest pose with a 40 cm box under its right hand (pipeline/examples.py)."""
    return box_static(path, **kw)
