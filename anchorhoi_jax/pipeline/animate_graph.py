"""The motion half of the graph: static HOI -> render -> video -> detect (+ segment) -> contacts -> motion.

External inputs: 'static_in' (per-seed static HOI dicts read from STATIC.npz files), 'prompt',
'video_file' (path or ''), 'seeds' ({"key": raw key data of the run's root key, "count"}). The
'static' stage only commits 'static_in' to the checkpoints, so `anchorhoi export` finds every input
of the exports there (as it does after `generate`, whose 'static' stage assembles the composition).
"""

from __future__ import annotations

from anchorhoi_jax.pipeline.graph import Stage
from anchorhoi_jax.pipeline.stage_detect import make_detect_stage_fn
from anchorhoi_jax.pipeline.stage_motion import make_contacts_stage_fn, make_motion_stage_fn
from anchorhoi_jax.pipeline.stage_render import make_render_stage_fn
from anchorhoi_jax.pipeline.stage_segment import segment_stage
from anchorhoi_jax.pipeline.stage_video import video_stage

__all__ = ["animate_stages", "ANIMATE_EXTERNALS"]

ANIMATE_EXTERNALS = ("static_in", "prompt", "video_file", "seeds")


def static_input_stage() -> Stage:
    return Stage("static", ("static_in",), "body", lambda ctx, inputs, cfg: inputs["static_in"],
                 "static HOI instances from files")


def animate_stages(body_fn) -> list[Stage]:
    """`body_fn() -> MotionBody` is called lazily by the stages that need the body."""
    return [
        Stage("render", ("static",), ("render", "body"), _section(make_render_stage_fn(body_fn), "render"),
              "render the static HOI from the video camera"),
        Stage("video", ("render", "prompt", "video_file"), "video", video_stage, "video prior (image -> clip)"),
        Stage("detect", ("video", "render", "static"), "detect", make_detect_stage_fn(body_fn),
              "OpenPose-18 keypoints per frame"),
        Stage("segment", ("video", "prompt"), "segment", segment_stage, "human / object masks per frame"),
        Stage("contacts", ("static", "seeds"), "motion", make_contacts_stage_fn(body_fn), "contact keypoints (Eq. 3)"),
        Stage("motion", ("static", "contacts", "detect", "segment", "render", "video", "seeds"), "motion",
              make_motion_stage_fn(body_fn), "4D tracking (Eq. 4-6)"),
    ]


def _section(fn, name):
    """Adapt a stage fn that reads one part of a multi-section config dict."""

    def wrapped(ctx, inputs, sections):
        return fn(ctx, inputs, sections[name])

    wrapped.__name__ = getattr(fn, "__name__", name)
    return wrapped
