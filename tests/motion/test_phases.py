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


def test_pose_prior_anneals_geometrically_over_the_full_stage():
    cfg = MotionConfig(parents=PARENTS, steps_per_call=100, global_steps=200, pen_final_steps=200)
    w = MotionWeights.default(pose_prior=1e-5, pose_prior_anneal=0.01, pen_object=0.05, pen_object_final=1.0)
    ph = motion_phases(w, cfg, 1000)
    assert [n for n, _ in ph] == [2, 1, 1, 1, 1, 1, 1, 2]  # global, 6 single full-stage calls, clean-up
    pp = [float(x.pose_prior) for _, x in ph]
    assert pp[0] == 0.0  # global stage: no prior (pose frozen)
    assert pp[1:7] == pytest.approx([1e-5 * 0.01 ** (k / 5) for k in range(6)], rel=1e-5)
    assert pp[7] == pytest.approx(1e-7, rel=1e-5) and float(ph[7][1].pen_object) == 1.0
    assert all(float(x.pen_object) == pytest.approx(0.05) for _, x in ph[1:7])
    # anneal 1 (default): the stage layout of before, the prior constant
    ph1 = motion_phases(MotionWeights.default(), cfg, 1000)
    assert [n for n, _ in ph1] == [2, 6, 2] and float(ph1[2][1].pose_prior) == pytest.approx(1e-5)
