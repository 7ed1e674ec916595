"""Stage 'segment': per-frame human and object instance masks of the video (paper Sec. 4: Grounded-SAM),
for the silhouette part of L_reg and the object-at-rest test of the motion stage.

Output: {"available": (S,) bool} and, with segment.kind=grounded_sam, {"human_masks", "object_masks"}
(S, L, H, ceil(W/8)) uint8, the masks bit-packed along W (a 4-seed, 120-frame, 512² run keeps 16 MB in its
checkpoint instead of 126 MB). `available[i]` is False when seed i's human or object mask is empty in every
frame (the object's name not found, say): the motion stage then runs without masks for every seed, because
the seeds share one vmapped program and so one set of loss terms.
"""

from __future__ import annotations

import logging

import numpy as onp

from anchorhoi_jax.pipeline.errors import InputError

__all__ = ["segment_stage", "build_segmenter", "object_label", "pack_masks", "unpack_masks", "motion_masks"]

log = logging.getLogger("anchorhoi_jax.pipeline")


def pack_masks(masks) -> onp.ndarray:
    """(..., H, W) bool -> (..., H, ceil(W/8)) uint8."""
    return onp.packbits(onp.asarray(masks, bool), axis=-1)


def unpack_masks(packed, width: int) -> onp.ndarray:
    """Inverse of `pack_masks` for masks `width` pixels wide."""
    return onp.unpackbits(onp.asarray(packed, onp.uint8), axis=-1, count=int(width)).astype(bool)


def object_label(cfg, prompt: str) -> str:
    """The object's name for GroundingDINO: segment.object_label, else the object part of the prompt, without a
    leading article (GroundedSAMSegmenter matches the label inside the detected phrase: "box" in "box", not "a box")."""
    text = cfg.object_label
    if not text.strip():
        from anchorhoi_jax.pipeline.prompt import split_prompt

        try:
            text = split_prompt(prompt)[2]
        except ValueError:
            raise InputError(f"segment.kind={cfg.kind} needs the object's name: the prompt {prompt!r} does not name "
                             "it (write 'human | action | object') or set segment.object_label=NAME") from None
    words = text.split()
    return " ".join(words[1:] if len(words) > 1 and words[0].lower() in ("a", "an", "the") else words)


def build_segmenter(cfg):
    """The GroundedSAMSegmenter of priors/segment.py (missing weights raise MissingWeightsError)."""
    import torch

    from anchorhoi_jax.priors.segment import GroundedSAMSegmenter

    return GroundedSAMSegmenter.from_pretrained(cfg.grounding_dino_dir, cfg.sam_dir,
                                                device="cuda" if torch.cuda.is_available() else "cpu",
                                                box_threshold=cfg.box_threshold, text_threshold=cfg.text_threshold)


def segment_stage(ctx, inputs, cfg):
    """inputs: 'video' (frames (S, L, H, W, 3) uint8), 'prompt'. Section: 'segment'."""
    frames = inputs["video"]["frames"]
    S = frames.shape[0]
    if cfg.kind == "none":
        return {"available": onp.zeros((S,), bool)}
    label = object_label(cfg, inputs["prompt"])
    seg = build_segmenter(cfg)
    ctx.start(S)
    human, obj, ok = [], [], []
    for i in range(S):
        m = seg(frames[i], labels=(cfg.human_label, label))
        h, o = onp.asarray(m[cfg.human_label], bool), onp.asarray(m[label], bool)
        ok.append(bool(h.any() and o.any()))
        if not ok[-1]:
            log.warning("segment: seed %d has no %s mask in any frame; the motion stage runs without masks",
                        i, cfg.human_label if not h.any() else repr(label))
        human.append(pack_masks(h))
        obj.append(pack_masks(o))
        ctx.callback(i + 1, None, {"human_px": float(h.mean()), "object_px": float(o.mean())})
    return {"available": onp.asarray(ok, bool), "human_masks": onp.stack(human), "object_masks": onp.stack(obj)}


def motion_masks(segment: dict, width: int) -> list[dict] | None:
    """Per-seed {"human_masks", "object_masks"} (L, H, W) bool for prepare_motion_data, or None when the
    'segment' output has no masks or any seed lacks them (one vmapped program: all seeds or none)."""
    if "human_masks" not in segment or not onp.asarray(segment["available"]).all():
        return None
    return [{"human_masks": unpack_masks(h, width), "object_masks": unpack_masks(o, width)}
            for h, o in zip(segment["human_masks"], segment["object_masks"])]
