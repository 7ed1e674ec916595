"""The GPU benchmark preset (configs/bench_pipeline.yaml) is exactly what benchmarks/pipeline.py documents
(configs/anchorhoi.yaml + GPU_OVERRIDES), so the recorded overrides describe the measured config."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from anchorhoi_jax.io.config import load_config, to_dict
from anchorhoi_jax.pipeline.generate_config import GenerateConfig

REPO = Path(__file__).resolve().parents[2]


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_pipeline", REPO / "benchmarks" / "pipeline.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_preset_equals_documented_overrides():
    bench = _bench_module()
    preset = load_config(GenerateConfig, REPO / "configs" / "bench_pipeline.yaml")
    documented = load_config(GenerateConfig, REPO / "configs" / "anchorhoi.yaml", bench.GPU_OVERRIDES)
    assert to_dict(preset) == to_dict(documented)
    assert preset.compose.object.mesh_threshold == "auto"  # explicit in the preset (saturated random fields)
    assert preset.compose.coarse.render.remat and preset.compose.object.render.remat
    # The composition ratio sums exactly the graph's composition stages before the static assembly.
    from anchorhoi_jax.pipeline.compose_stages import compose_stages

    names = [s.name for s in compose_stages(None, None)]
    assert names[-1] == "static" and tuple(names[:-1]) == bench.COMPOSITION_STAGES
