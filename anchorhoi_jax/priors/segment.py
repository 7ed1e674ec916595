"""Human / object masks on renders and video frames (paper Sec. 4: Grounded-SAM instance masks).

Two back-ends with one output: boolean masks (N, H, W) for "person" and "object".

* Offline default (`MediaPipeHumanObjectSegmenter`): mediapipe selfie segmentation (the model is in
  the wheel) gives the person; the foreground comes from the render's alpha or from a known
  background colour/image; object = foreground minus person.
* `GroundedSAMSegmenter`: GroundingDINO (text -> boxes) + SAM (box -> mask), both transformers
  classes, when their weights are present (`manifest` names 'grounding-dino' and 'sam').
"""

from __future__ import annotations

from typing import Sequence

import numpy as onp
import torch

from anchorhoi_jax.priors.detect import as_uint8_images
from anchorhoi_jax.priors.manifest import resolve_weights

__all__ = ["foreground_mask", "object_mask", "MediaPipeHumanObjectSegmenter", "GroundedSAMSegmenter"]


def foreground_mask(images, *, alpha=None, background=None, threshold: float = 0.08) -> onp.ndarray:
    """Foreground (N, H, W) bool from alpha (> 0.5) or from the difference to a known background.

    background: (3,) colour in [0, 1] or (H, W, 3) / (N, H, W, 3) image; a pixel is foreground when
    any channel differs by more than `threshold`.
    """
    if alpha is not None:
        a = onp.asarray(alpha, onp.float32)
        return (a[None] if a.ndim == 2 else a) > 0.5
    if background is None:
        raise ValueError("foreground_mask needs alpha or background (colour or image) to tell the foreground")
    img = as_uint8_images(images).astype(onp.float32) / 255.0
    bg = onp.asarray(background, onp.float32)
    if bg.dtype == onp.uint8 or bg.max() > 1.0:
        bg = bg / 255.0
    return onp.abs(img - bg).max(-1) > threshold


def object_mask(foreground: onp.ndarray, person: onp.ndarray, *, dilate_person: int = 2) -> onp.ndarray:
    """Object = foreground minus the (slightly dilated) person mask; both (N, H, W) bool."""
    p = onp.asarray(person, bool)
    if dilate_person > 0:
        import cv2

        k = onp.ones((2 * dilate_person + 1,) * 2, onp.uint8)
        p = onp.stack([cv2.dilate(m.astype(onp.uint8), k) > 0 for m in p])
    return onp.asarray(foreground, bool) & ~p


class MediaPipeHumanObjectSegmenter:
    """Person from mediapipe selfie segmentation; object = foreground minus person."""

    def __init__(self, person_threshold: float = 0.5, model_selection: int = 0):
        import mediapipe as mp

        self._seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=model_selection)
        self.person_threshold = person_threshold

    def close(self):
        self._seg.close()

    def person_probability(self, images) -> onp.ndarray:
        imgs = as_uint8_images(images)
        return onp.stack([self._seg.process(im).segmentation_mask.astype(onp.float32) for im in imgs])

    def __call__(self, images, *, alpha=None, background=None) -> dict[str, onp.ndarray]:
        person = self.person_probability(images) > self.person_threshold
        fg = foreground_mask(images, alpha=alpha, background=background)
        if fg.shape != person.shape:
            raise ValueError(f"foreground {fg.shape} and images {person.shape} differ in size")
        person &= fg
        return {"person": person, "object": object_mask(fg, person), "foreground": fg}


class GroundedSAMSegmenter:
    """Text-prompted masks: GroundingDINO boxes, refined by SAM (highest predicted IoU of 3 masks)."""

    def __init__(self, dino, dino_processor, sam, sam_processor, *, device="cpu", box_threshold: float = 0.3,
                 text_threshold: float = 0.25):
        self.device = torch.device(device)
        self.dino = dino.to(self.device).eval()
        self.dino_processor = dino_processor
        self.sam = sam.to(self.device).eval()
        self.sam_processor = sam_processor
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold

    @classmethod
    def from_pretrained(cls, dino_dir=None, sam_dir=None, *, device="cpu", allow_download=False, **kw):
        from transformers import AutoProcessor, GroundingDinoForObjectDetection, SamModel, SamProcessor

        d = resolve_weights("grounding-dino", dino_dir, allow_download=allow_download)
        s = resolve_weights("sam", sam_dir, allow_download=allow_download)
        return cls(GroundingDinoForObjectDetection.from_pretrained(d, local_files_only=True),
                   AutoProcessor.from_pretrained(d, local_files_only=True),
                   SamModel.from_pretrained(s, local_files_only=True),
                   SamProcessor.from_pretrained(s, local_files_only=True), device=device, **kw)

    @torch.no_grad()
    def boxes(self, image: onp.ndarray, labels: Sequence[str]) -> dict[str, tuple[onp.ndarray, float] | None]:
        """Best box (x0, y0, x1, y1 pixels) and score per label, or None when nothing passes the thresholds."""
        text = " ".join(f"{lab.strip().lower()}." for lab in labels)
        inp = self.dino_processor(images=[image], text=[text], return_tensors="pt").to(self.device)
        out = self.dino(**inp)
        res = self.dino_processor.post_process_grounded_object_detection(
            out, inp["input_ids"], threshold=self.box_threshold, text_threshold=self.text_threshold,
            target_sizes=[image.shape[:2]])[0]
        names = res["text_labels"] if "text_labels" in res else res["labels"]
        best: dict[str, tuple[onp.ndarray, float] | None] = {lab: None for lab in labels}
        for box, score, name in zip(res["boxes"].cpu().numpy(), res["scores"].cpu().numpy(), names):
            for lab in labels:
                if lab.strip().lower() in str(name).lower() and (best[lab] is None or score > best[lab][1]):
                    best[lab] = (box.astype(onp.float32), float(score))
        return best

    @torch.no_grad()
    def mask_from_box(self, image: onp.ndarray, box: onp.ndarray) -> onp.ndarray:
        inp = self.sam_processor(images=[image], input_boxes=[[box.tolist()]], return_tensors="pt").to(self.device)
        out = self.sam(**inp, multimask_output=True)
        masks = self.sam_processor.image_processor.post_process_masks(
            out.pred_masks.cpu(), inp["original_sizes"].cpu(), inp["reshaped_input_sizes"].cpu())[0][0]  # (3, H, W)
        return masks[int(out.iou_scores[0, 0].argmax())].numpy().astype(bool)

    def __call__(self, images, labels: Sequence[str] = ("person", "object")) -> dict[str, onp.ndarray]:
        imgs = as_uint8_images(images)
        n, h, w, _ = imgs.shape
        out = {lab: onp.zeros((n, h, w), bool) for lab in labels}
        for i, im in enumerate(imgs):
            for lab, hit in self.boxes(im, labels).items():
                if hit is not None:
                    out[lab][i] = self.mask_from_box(im, hit[0])
        return out
