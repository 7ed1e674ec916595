"""`anchorhoi track` / the pipeline must run the objective the motion benchmark measured.

TrackWeights / TrackConfig (the CLI and pipeline config) restate MotionWeights / MotionConfig defaults; session 6
found TrackWeights.smooth_joints left at 0.1 after the benchmark default moved to 0.3. These tests catch that drift.
"""

import dataclasses

import numpy as onp

from anchorhoi_jax.stages.motion import MotionConfig, MotionWeights
from anchorhoi_jax.track import TrackConfig, TrackWeights


def test_track_weights_match_motion_weights():
    mw = MotionWeights.default()
    shared = [f.name for f in dataclasses.fields(TrackWeights) if hasattr(mw, f.name)]
    assert len(shared) == len(dataclasses.fields(TrackWeights)), "every TrackWeights field is a MotionWeights term"
    for name in shared:
        onp.testing.assert_allclose(getattr(TrackWeights(), name), float(getattr(mw, name)), rtol=1e-6, err_msg=name)


def test_track_config_matches_motion_config_defaults():
    motion_defaults = {f.name: f.default for f in dataclasses.fields(MotionConfig)
                       if f.default is not dataclasses.MISSING}
    shared = [f for f in dataclasses.fields(TrackConfig) if f.name in motion_defaults]
    assert len(shared) >= 10
    for f in shared:
        assert f.default == motion_defaults[f.name], f.name
