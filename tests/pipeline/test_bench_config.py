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


def test_stage_log_parsing_and_partial_summary():
    bench = _bench_module()
    lines = [
        "2026-11-24 12:26:41,576 anchorhoi_jax.pipeline: stage coarse: start (step 0 of 40)",
        "2026-11-24 12:27:04,113 anchorhoi_jax.pipeline: stage coarse: step 20 step=20 if/sds_loss=2.7e+05",
        "2026-11-24 12:27:11,669 anchorhoi_jax.pipeline: stage coarse: step 40 step=40 if/sds_loss=2.6e+05",
        "2026-11-24 12:27:14,358 anchorhoi_jax.pipeline: stage coarse: ran in 35.84 s",
        "W1124 12:27:15.0 not a log line",
        "2026-11-24 12:27:57,281 anchorhoi_jax.pipeline: stage masks: cached in 5.44 s",
    ]
    stages, events = bench.parse_stage_log(lines)
    assert stages == {"coarse": {"status": "ran", "seconds": 35.84, "steps": 40},
                      "masks": {"status": "cached", "seconds": 5.44, "steps": 0}}
    rates = bench.stage_rates(events)
    assert abs(rates["coarse"]["s_per_step"] - 7.556 / 20) < 1e-6
    s = bench.summarize(stages, rates, {"coarse": 3000})
    assert abs(s["projected_paper_steps_s"]["coarse"] - (35.84 + 7.556 / 20 * 2960)) < 1e-3
    assert s["composition_s"] == 35.84 + 5.44 and not s["complete"]


def test_stop_after_stops_the_later_stages_and_rejects_unknown_names():
    import pytest

    from anchorhoi_jax.pipeline import compose_stages as CS

    bench = _bench_module()
    orig = CS.compose_stages
    try:
        with pytest.raises(SystemExit, match="--stop-after: expected one of"):
            bench._stop_after("nonsense")
        with pytest.raises(SystemExit, match="--stop-after: expected one of"):
            bench._stop_after("motion")  # the last stage: nothing to stop
        bench._stop_after("object")
        stages = {s.name: s for s in CS.compose_stages(None, None)}
        kept = {s.name: s for s in orig(None, None)}
        for name in ("coarse", "avatar", "object"):  # stages up to --stop-after keep their own functions
            assert stages[name].fn.__qualname__ == kept[name].fn.__qualname__
        assert stages["static"].fn.__qualname__ != kept["static"].fn.__qualname__
        with pytest.raises(bench.StopAfter, match="stopped before stage static"):
            stages["static"].fn(None, {}, None)
    finally:
        CS.compose_stages = orig
