"""Config schema of `anchorhoi generate`: the animate schema plus the composition (stages/composition.py)
and the number of seeds. Kept apart from pipeline/config.py because the composition schema pulls in
the priors (torch)."""

from __future__ import annotations

import dataclasses

from anchorhoi_jax.pipeline.config import AnimateConfig
from anchorhoi_jax.stages.composition import ComposeConfig

__all__ = ["GenerateConfig", "MAX_SEEDS"]

MAX_SEEDS = 64


@dataclasses.dataclass(frozen=True)
class GenerateConfig(AnimateConfig):
    """`anchorhoi generate`: text -> static HOI (composition) -> motion (animate) -> exports, for `seeds` seeds."""

    seeds: int = 1
    compose: ComposeConfig = ComposeConfig()

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.seeds <= MAX_SEEDS:
            raise ValueError(f"seeds must be in [1, {MAX_SEEDS}], got {self.seeds}")
