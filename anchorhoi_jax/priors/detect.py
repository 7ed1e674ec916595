"""2D body keypoint detectors with one interface returning OpenPose BODY-18 (CONVENTIONS.md).

    detector(images (N, H, W, 3) in [0, 1] or uint8) -> (keypoints (N, 18, 2) pixels, confidence (N, 18))

Pixel coordinates are continuous: the centre of pixel (u, v) is (u + 0.5, v + 0.5), as in
`geometry.cameras.project`. A missing keypoint has confidence 0. The paper (Sec. 4) extracts body
joints with OpenPose; two back-ends:

* `MediaPipePoseDetector` (default, offline): mediapipe 0.10.14 BlazePose (`solutions.pose`, the
  model ships inside the wheel). Its 33 landmarks map to BODY-18 by `BLAZEPOSE_TO_OPENPOSE18`; the
  neck, which BlazePose lacks, is the midpoint of the shoulders (confidence = the smaller of theirs).
* `OpenPoseDetector`: the CMU BODY-18 (COCO) network in the layout of the common PyTorch port
  (pytorch-openpose `body_pose_model.pth`, flat caffe layer names). Its heatmaps are already in
  BODY-18 order. Single-person decoding: the strongest smoothed heatmap peak per part (AnchorHOI
  renders and generated videos show one person); part-affinity grouping for crowds is not done.
"""

from __future__ import annotations

from typing import Protocol

import numpy as onp
import torch
import torch.nn.functional as F
from torch import nn

from anchorhoi_jax.priors.manifest import resolve_weights

__all__ = [
    "OPENPOSE18_NAMES",
    "BLAZEPOSE_TO_OPENPOSE18",
    "COCO17_TO_OPENPOSE18",
    "to_openpose18",
    "KeypointDetector",
    "MediaPipePoseDetector",
    "OpenPoseBodyNet",
    "OpenPoseDetector",
    "as_uint8_images",
]

OPENPOSE18_NAMES = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "r_hip",
                    "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear")
NECK = 1
# Source index for each BODY-18 slot; -1 = neck (midpoint of the two shoulders).
BLAZEPOSE_TO_OPENPOSE18 = (0, -1, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)
BLAZEPOSE_SHOULDERS = (12, 11)
COCO17_TO_OPENPOSE18 = (0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
COCO17_SHOULDERS = (6, 5)


def to_openpose18(points: onp.ndarray, conf: onp.ndarray, table=COCO17_TO_OPENPOSE18, shoulders=COCO17_SHOULDERS):
    """Reorder (..., K, D) points and (..., K) confidences into BODY-18; neck = mid-shoulders."""
    points = onp.asarray(points)
    conf = onp.asarray(conf)
    idx = onp.asarray(table)
    out = points[..., onp.maximum(idx, 0), :].copy()
    c = conf[..., onp.maximum(idx, 0)].copy()
    r, l = shoulders
    out[..., NECK, :] = 0.5 * (points[..., r, :] + points[..., l, :])
    c[..., NECK] = onp.minimum(conf[..., r], conf[..., l])
    return out, c


def leading_shape(images) -> tuple[int, ...]:
    """Batch axes of an (..., H, W, 3) image array (seeds, frames/views, ...); () for one image."""
    return tuple(onp.shape(images)[:-3])


def as_uint8_images(images) -> onp.ndarray:
    """(..., H, W, 3) float [0, 1] / uint8 (NumPy, JAX or torch) -> uint8 (N, H, W, 3) RGB, batch axes flattened."""
    a = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else onp.asarray(images)
    if a.ndim < 3 or a.shape[-1] != 3:
        raise ValueError(f"images must be (..., H, W, 3) RGB, got shape {a.shape}")
    a = a.reshape(-1, *a.shape[-3:])
    if a.dtype != onp.uint8:
        a = onp.clip(onp.rint(a.astype(onp.float32) * 255.0), 0, 255).astype(onp.uint8)
    return onp.ascontiguousarray(a)


class KeypointDetector(Protocol):
    def __call__(self, images) -> tuple[onp.ndarray, onp.ndarray]:
        """(..., H, W, 3) images -> keypoints (..., 18, 2) pixels, confidence (..., 18)."""
        ...


def _unflatten(lead: tuple[int, ...], kp: onp.ndarray, conf: onp.ndarray):
    return kp.reshape(*lead, 18, 2), conf.reshape(*lead, 18)


_BLAZEPOSE_FILES = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite", 2: "pose_landmark_heavy.tflite"}


def _blazepose_model_path(model_complexity: int):
    import os

    import mediapipe as mp

    if model_complexity not in _BLAZEPOSE_FILES:
        raise ValueError(f"model_complexity must be 0, 1 or 2, got {model_complexity}")
    return os.path.join(os.path.dirname(mp.__file__), "modules", "pose_landmark", _BLAZEPOSE_FILES[model_complexity])


class MediaPipePoseDetector:
    """BlazePose (mediapipe solutions.pose) in static-image mode, one person per image.

    model_complexity 1 ("full") ships inside the mediapipe wheel and is the offline default; 0 (lite)
    and 2 (heavy) are fetched by mediapipe on first use, so offline they must already be in place.
    """

    def __init__(self, model_complexity: int = 1, min_detection_confidence: float = 0.3):
        import os

        import mediapipe as mp

        from anchorhoi_jax.priors.manifest import MissingWeightsError

        path = _blazepose_model_path(model_complexity)
        if not os.path.exists(path):
            raise MissingWeightsError(
                f"missing weights for mediapipe BlazePose model_complexity={model_complexity}: "
                f"{os.path.basename(path)} is not in the mediapipe wheel; put it at {path} "
                "(mediapipe downloads it when online) or use model_complexity=1")

        self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=model_complexity,
                                            min_detection_confidence=min_detection_confidence,
                                            enable_segmentation=False)

    def close(self):
        self._pose.close()

    def __call__(self, images):
        imgs = as_uint8_images(images)
        n, h, w, _ = imgs.shape
        kp = onp.zeros((n, 18, 2), onp.float32)
        conf = onp.zeros((n, 18), onp.float32)
        for i, img in enumerate(imgs):  # frames/views one by one: mediapipe's graph takes single images
            res = self._pose.process(img)
            if res.pose_landmarks is None:
                continue
            lm = res.pose_landmarks.landmark
            # Normalised landmark coordinates are fractions of the image extent (continuous pixels / size).
            pts = onp.array([[p.x * w, p.y * h] for p in lm], onp.float32)
            vis = onp.array([p.visibility for p in lm], onp.float32)
            kp[i], conf[i] = to_openpose18(pts, vis, BLAZEPOSE_TO_OPENPOSE18, BLAZEPOSE_SHOULDERS)
        return _unflatten(leading_shape(images), kp, conf)


# ------------------------------------------------------------------------------------------------
# OpenPose BODY-18 (CMU COCO model) in the PyTorch-port layout
# ------------------------------------------------------------------------------------------------

_VGG = [("conv1_1", 3, 64, 3), ("conv1_2", 64, 64, 3), "pool", ("conv2_1", 64, 128, 3), ("conv2_2", 128, 128, 3),
        "pool", ("conv3_1", 128, 256, 3), ("conv3_2", 256, 256, 3), ("conv3_3", 256, 256, 3),
        ("conv3_4", 256, 256, 3), "pool", ("conv4_1", 256, 512, 3), ("conv4_2", 512, 512, 3),
        ("conv4_3_CPM", 512, 256, 3), ("conv4_4_CPM", 256, 128, 3)]
N_PAF, N_HEAT, N_FEAT = 38, 19, 128


def _block(spec, last_relu: bool) -> nn.Sequential:
    layers = []
    for i, s in enumerate(spec):
        if s == "pool":
            layers.append(("pool%d" % i, nn.MaxPool2d(2, 2)))
            continue
        name, cin, cout, k = s
        layers.append((name, nn.Conv2d(cin, cout, k, padding=k // 2)))
        if last_relu or i < len(spec) - 1:
            layers.append((name + "_relu", nn.ReLU(inplace=True)))
    from collections import OrderedDict

    return nn.Sequential(OrderedDict(layers))


class OpenPoseBodyNet(nn.Module):
    """VGG trunk + 6 stages of (PAF, heatmap) branches. Parameter names `<block>.<caffe layer>.*`."""

    def __init__(self):
        super().__init__()
        self.model0 = _block(_VGG, last_relu=True)
        for br, n_out in (("L1", N_PAF), ("L2", N_HEAT)):
            spec = [(f"conv5_1_CPM_{br}", N_FEAT, 128, 3), (f"conv5_2_CPM_{br}", 128, 128, 3),
                    (f"conv5_3_CPM_{br}", 128, 128, 3), (f"conv5_4_CPM_{br}", 128, 512, 1),
                    (f"conv5_5_CPM_{br}", 512, n_out, 1)]
            setattr(self, f"model1_{br[1]}", _block(spec, last_relu=False))
            for st in range(2, 7):
                cin = N_PAF + N_HEAT + N_FEAT
                spec = [(f"Mconv1_stage{st}_{br}", cin, 128, 7)] + [
                    (f"Mconv{j}_stage{st}_{br}", 128, 128, 7) for j in range(2, 6)] + [
                    (f"Mconv6_stage{st}_{br}", 128, 128, 1), (f"Mconv7_stage{st}_{br}", 128, n_out, 1)]
                setattr(self, f"model{st}_{br[1]}", _block(spec, last_relu=False))

    def forward(self, x):
        """x: (N, 3, H, W) BGR in [-0.5, 0.5) -> (PAFs (N, 38, H/8, W/8), heatmaps (N, 19, H/8, W/8))."""
        feat = self.model0(x)
        paf, heat = self.model1_1(feat), self.model1_2(feat)
        for st in range(2, 7):
            inp = torch.cat([paf, heat, feat], 1)
            paf, heat = getattr(self, f"model{st}_1")(inp), getattr(self, f"model{st}_2")(inp)
        return paf, heat

    def load_port_state_dict(self, flat: dict[str, torch.Tensor]) -> None:
        """Load the PyTorch port's flat caffe-named weights (`conv1_1.weight`, ...)."""
        own = self.state_dict()
        mapped = {}
        for k in own:
            src = k.split(".", 1)[1]
            if src not in flat:
                raise KeyError(f"OpenPose weights lack '{src}' (is this pytorch-openpose body_pose_model.pth?)")
            mapped[k] = flat[src]
        self.load_state_dict(mapped, strict=True)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    r = int(3 * sigma + 0.5)
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


class OpenPoseDetector:
    """OpenPose BODY-18 with multi-scale heatmap averaging and single-person peak decoding."""

    def __init__(self, net: OpenPoseBodyNet, *, device="cpu", box_size: int = 368,
                 scales: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0), smooth_sigma: float = 3.0, threshold: float = 0.1):
        self.net = net.to(device).eval().requires_grad_(False)
        self.device = torch.device(device)
        self.box_size = box_size
        self.scales = scales
        self.kernel = _gaussian_kernel(smooth_sigma).to(self.device)
        self.threshold = threshold

    @classmethod
    def from_pretrained(cls, local_dir=None, *, device="cpu", allow_download=False, **kw) -> "OpenPoseDetector":
        root = resolve_weights("openpose-body", local_dir, allow_download=allow_download)
        net = OpenPoseBodyNet()
        net.load_port_state_dict(torch.load(root / "body_pose_model.pth", map_location="cpu", weights_only=True))
        return cls(net, device=device, **kw)

    @torch.no_grad()
    def heatmaps(self, img_u8: onp.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (19, H, W) heatmaps averaged over scales, at full resolution."""
        h, w, _ = img_u8.shape
        x = torch.from_numpy(img_u8[..., ::-1].copy()).to(self.device).permute(2, 0, 1)[None].float()
        x = x / 256.0 - 0.5  # the CMU model's BGR input normalisation
        acc = torch.zeros(1, N_HEAT, h, w, device=self.device)
        for s in self.scales:
            f = s * self.box_size / h
            hs, ws = max(8, int(round(h * f))), max(8, int(round(w * f)))
            xs = F.interpolate(x, size=(hs, ws), mode="bicubic", align_corners=False)
            ph, pw = (-hs) % 8, (-ws) % 8
            xs = F.pad(xs, (0, pw, 0, ph), value=0.5 - 128 / 256.0)  # pad with grey, as the port does
            _, heat = self.net(xs)
            heat = F.interpolate(heat, scale_factor=8, mode="bicubic", align_corners=False)[..., :hs, :ws]
            acc += F.interpolate(heat, size=(h, w), mode="bicubic", align_corners=False)
        return acc[0] / len(self.scales)

    def __call__(self, images):
        imgs = as_uint8_images(images)
        n, h, w, _ = imgs.shape
        kp = onp.zeros((n, 18, 2), onp.float32)
        conf = onp.zeros((n, 18), onp.float32)
        k = self.kernel
        for i, img in enumerate(imgs):
            heat = self.heatmaps(img)[:18, None]  # (18, 1, H, W); channel 18 is background
            r = len(k) // 2  # separable Gaussian smoothing, edges replicated
            heat = F.conv2d(F.pad(heat, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
            heat = F.conv2d(F.pad(heat, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))[:, 0]
            flat = heat.flatten(1)
            val, idx = flat.max(1)
            ys, xs = (idx // w).float(), (idx % w).float()
            pts = torch.stack([xs + 0.5, ys + 0.5], -1).cpu().numpy()  # pixel centres
            v = val.cpu().numpy()
            ok = v >= self.threshold
            kp[i] = onp.where(ok[:, None], pts, 0.0)
            conf[i] = onp.where(ok, onp.clip(v, 0.0, 1.0), 0.0)
        return _unflatten(leading_shape(images), kp, conf)
