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


def test_four_seed_floor_arithmetic():
    # One SDS stage (coarse, 10 reduced of 100 paper steps) and one other stage; networks at their best measured
    # ms per image, JAX at its better per-seed rate, glue free; other stages at their 1-seed time.
    bench = _bench_module()
    ph = lambda tot, jax_ms: {"total_ms": tot, "render_vjp_ms": jax_ms, "update_ms": 0.0, "to_torch_ms": 0.0,  # noqa: E731
                              "to_jax_ms": 0.0, "if_unet_calls_per_step": 1.0, "mvdream_unet_calls_per_step": 1.0,
                              "mvdream_encode_fwd_calls_per_step": 1.0}

    def run(step_ms, jax_ms, wall):
        stages = {"coarse": {"seconds": wall, "steps": 10}, "pose": {"seconds": 2.0, "steps": 0}}
        return {"stages": stages, "phases": {"coarse": ph(step_ms, jax_ms)},
                "projected_paper_steps_s": {"coarse": 0.0, "pose": 2.0}}

    s1, s4 = run(50.0, 10.0, 5.5), run(160.0, 44.0, 7.6)
    row = lambda n, ms, tf: {"images": n, "ms": ms, "ms_per_image": ms / n, "tflop_per_call": tf * n}  # noqa: E731
    sweep = {"images_per_seed": {"if_unet": 2, "mvdream_unet": 8, "mvdream_encode_fwd_vjp": 4}, "peak_tflops": 1000.0,
             "pieces": {"if_unet": {"2": row(2, 30.0, 3.0), "8": row(8, 80.0, 3.0)},
                        "mvdream_unet": {"8": row(8, 8.0, 0.25), "32": row(32, 24.0, 0.25)},
                        "mvdream_encode_fwd_vjp": {"4": row(4, 8.0, 0.5), "16": {"error": "OOM"}}}}
    f = bench.four_seed_floor(s1, s4, sweep, {"coarse": 100})
    d = f["sds_detail"]["coarse"]
    assert d["images_per_step"] == {"if_unet": 8, "mvdream_unet": 32, "mvdream_encode_fwd_vjp": 16}
    assert abs(d["network_floor_ms"] - (8 * 10.0 + 32 * 0.75 + 16 * 2.0)) < 1e-9  # 136 ms
    assert d["jax_floor_ms"] == 40.0 and abs(d["fixed_s"] - 5.0) < 1e-9  # min(5.5 - 0.5, 7.6 - 1.6)
    assert abs(f["stages_floor_s"]["coarse"] - (5.0 + 0.1 * 176.0)) < 1e-9 and f["stages_floor_s"]["pose"] == 2.0
    one = 5.5 + 0.05 * 90 + 2.0  # steady 1-seed projection
    assert abs(f["one_seed_s"] - one) < 1e-9 and f["two_x_reachable"] == (24.6 <= 2 * one)
    assert abs(d["network_at_peak_ms"] - (8 * 3.0 + 32 * 0.25 + 16 * 0.5)) < 1e-9  # TFLOP / (1000 TFLOP/s) in ms
