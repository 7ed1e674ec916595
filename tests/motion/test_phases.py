"""stages/motion.motion_phases: global stage, full stage and the L_pen clean-up stage cover every call once."""

from __future__ import annotations

import pytest

from anchorhoi_jax.stages.motion import MotionConfig, MotionWeights, motion_phases

PARENTS = (-1, 0, 1)


@pytest.mark.parametrize("steps,global_steps,final_steps,expect", [
    (1000, 200, 200, [2, 6, 2]),
    (1000, 0, 200, [8, 2]),
    (1000, 200, 0, [2, 8]),
    (300, 200, 200, [2, 0, 1]),
    (100, 200, 200, [1, 0]),
])
def test_phase_lengths_and_weights(steps, global_steps, final_steps, expect):
    cfg = MotionConfig(parents=PARENTS, steps_per_call=100, global_steps=global_steps, pen_final_steps=final_steps)
    w = MotionWeights.default(pen_object=0.05, pen_object_final=1.0, silhouette=0.5)
    ph = motion_phases(w, cfg, steps)
    assert [n for n, _ in ph] == expect
    assert sum(n for n, _ in ph) == -(-steps // 100)
    if global_steps:  # global stage: pose/object frozen, only L_J (+ smoothness)
        g = ph[0][1]
        assert float(g.pose_update) == 0.0 and float(g.contact) == 0.0 and float(g.silhouette) == 0.0
    has_final = len(ph) == (3 if global_steps else 2)
    if has_final:  # clean-up stage: only L_pen's SDF weight changes
        assert float(ph[-1][1].pen_object) == 1.0 and float(ph[-1][1].silhouette) == pytest.approx(0.5)
    full = ph[1][1] if global_steps else ph[0][1]
    assert float(full.pen_object) == pytest.approx(0.05)
    assert has_final == (final_steps > 0 and expect[-1] > 0 and len(expect) > (2 if global_steps else 1))
