"""Stage 'segment' (pipeline/stage_segment.py): its config, its output with and without masks (a stand-in for
Grounded-SAM, whose weights CI lacks), and the motion stage giving those masks to prepare_motion_data."""

from __future__ import annotations

import types

import jax
import numpy as onp
import pytest

import anchorhoi_jax.pipeline.stage_motion as stage_motion
import anchorhoi_jax.pipeline.stage_segment as stage_segment
from anchorhoi_jax.io.config import ConfigError, load_config
from anchorhoi_jax.pipeline.config import AnimateConfig
from anchorhoi_jax.pipeline.errors import InputError

S, L, H, W = 2, 3, 12, 20  # W not a multiple of 8: the bit packing must give back exactly W columns


class Ctx:
    def __init__(self):
        self.calls = []

    def start(self, total, initial=0):
        self.total = total

    def callback(self, step, state, info):
        self.calls.append((step, info))


class FakeSegmenter:
    """Human: left block; object: right block, absent in seed `missing` (when its frames are marked)."""

    def __call__(self, images, labels):
        human_label, obj_label = labels
        h = onp.zeros(images.shape[:3], bool)
        o = onp.zeros(images.shape[:3], bool)
        h[:, 2:10, 1:6] = True
        if images[0, 0, 0, 0] == 0:  # frames of a seed whose object the detector finds
            o[:, 5:11, 12:19] = True
        return {human_label: h, obj_label: o}


def test_segment_config_rejects_bad_keys_and_values():
    cfg = load_config(AnimateConfig, None, ["segment.kind=grounded_sam", "segment.object_label=chair"])
    assert cfg.segment.kind == "grounded_sam" and cfg.segment.object_label == "chair"
    for over, msg in [("segment.kind=mediapipe", "segment.kind"), ("segment.colour=1", "colour"),
                      ("segment.box_threshold=1.5", "segment.box_threshold and segment.text_threshold must be in (0, 1)")]:
        with pytest.raises(ConfigError, match=msg.replace("(", r"\(").replace(")", r"\)")) as e:
            load_config(AnimateConfig, None, [over])
        assert "\n" not in str(e.value)


def test_segment_stage_outputs_and_motion_masks(monkeypatch):
    frames = onp.zeros((S, L, H, W, 3), onp.uint8)
    cfg = load_config(AnimateConfig, None, ["segment.kind=grounded_sam"]).segment
    # kind=none: no masks, nothing built
    none = stage_segment.segment_stage(Ctx(), {"video": {"frames": frames}, "prompt": "x"}, AnimateConfig().segment)
    assert none["available"].shape == (S,) and not none["available"].any()
    assert stage_segment.motion_masks(none, W) is None

    seen = []
    monkeypatch.setattr(stage_segment, "build_segmenter", lambda c: seen.append(c) or FakeSegmenter())
    ctx = Ctx()
    out = stage_segment.segment_stage(ctx, {"video": {"frames": frames}, "prompt": "a man | sitting on | a box"}, cfg)
    assert seen == [cfg] and [c[0] for c in ctx.calls] == [1, 2]
    assert out["human_masks"].shape == (S, L, H, -(-W // 8)) and out["available"].tolist() == [True, True]
    masks = stage_segment.motion_masks(out, W)
    assert len(masks) == S and masks[1]["object_masks"].shape == (L, H, W)
    assert masks[0]["human_masks"][:, 2:10, 1:6].all() and masks[0]["human_masks"].sum() == L * 8 * 5
    assert masks[0]["object_masks"].sum() == L * 6 * 7
    # One seed without an object mask in any frame: no seed gets masks (one vmapped program).
    frames[1, 0, 0, 0, 0] = 255
    out = stage_segment.segment_stage(Ctx(), {"video": {"frames": frames}, "prompt": "a man | sitting on | a box"}, cfg)
    assert out["available"].tolist() == [True, False] and stage_segment.motion_masks(out, W) is None


def test_object_label_from_prompt_or_config():
    cfg = AnimateConfig().segment
    assert stage_segment.object_label(cfg, "a man | sitting on | the wooden chair") == "wooden chair"
    assert stage_segment.object_label(cfg, "A woman sitting on a sofa") == "sofa"
    assert stage_segment.object_label(cfg.__class__(object_label="a box"), "") == "box"
    with pytest.raises(InputError, match="set segment.object_label=NAME") as e:
        stage_segment.object_label(cfg, "a person leans on a box")
    assert "\n" not in str(e.value)


class _Stop(Exception):
    pass


def test_motion_stage_gives_segment_masks_to_prepare(monkeypatch):
    frames = onp.zeros((S, L, H, W, 3), onp.uint8)
    monkeypatch.setattr(stage_segment, "build_segmenter", lambda c: FakeSegmenter())
    seg = stage_segment.segment_stage(Ctx(), {"video": {"frames": frames}, "prompt": "p"},
                                      AnimateConfig().segment.__class__(kind="grounded_sam", object_label="box"))
    got = []

    def fake_prepare(body, st, kp, conf, K, T, size, key, cfg, masks=None):
        got.append((size.tolist(), masks))
        if len(got) == S:
            raise _Stop
        return types.SimpleNamespace(contacts=types.SimpleNamespace(human_vertex=onp.zeros(4, onp.int32)))

    monkeypatch.setattr(stage_motion, "_prepare", fake_prepare)
    inputs = {"seeds": {"key": jax.random.key_data(jax.random.key(0))}, "video": {"frames": frames},
              "detect": {"keypoints": onp.zeros((S, L, 18, 2)), "confidence": onp.ones((S, L, 18))},
              "render": {"K": onp.zeros((S, 3, 3)), "T_cam_world": onp.zeros((S, 4, 4))},
              "static": {"seed_000": {}, "seed_001": {}}, "segment": seg, "contacts": {"human_vertex": onp.zeros((S, 4))}}
    fn = stage_motion.make_motion_stage_fn(lambda: None)
    with pytest.raises(_Stop):
        fn(Ctx(), inputs, AnimateConfig().motion)
    assert [g[0] for g in got] == [[W, H]] * S
    for i, (_, m) in enumerate(got):
        onp.testing.assert_array_equal(m["human_masks"], stage_segment.unpack_masks(seg["human_masks"][i], W))
        assert m["object_masks"].dtype == bool and m["object_masks"].shape == (L, H, W)
    got.clear()
    with pytest.raises(_Stop):
        fn(Ctx(), {**inputs, "segment": {"available": onp.zeros((S,), bool)}}, AnimateConfig().motion)
    assert [g[1] for g in got] == [None] * S
