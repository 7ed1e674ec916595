"""Keypoint detectors (BODY-18 mapping, mediapipe, OpenPose port) and human/object segmentation."""

from __future__ import annotations

import numpy as onp
import pytest
import torch

from anchorhoi_jax.priors import manifest
from anchorhoi_jax.priors.detect import (
    BLAZEPOSE_SHOULDERS,
    BLAZEPOSE_TO_OPENPOSE18,
    COCO17_TO_OPENPOSE18,
    OPENPOSE18_NAMES,
    MediaPipePoseDetector,
    OpenPoseBodyNet,
    OpenPoseDetector,
    as_uint8_images,
    to_openpose18,
)
from anchorhoi_jax.priors.segment import (
    GroundedSAMSegmenter,
    MediaPipeHumanObjectSegmenter,
    foreground_mask,
    object_mask,
)

COCO17 = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
          "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
          "right_ankle")


def _short(name: str) -> str:
    return name.replace("left_", "l_").replace("right_", "r_")


def test_coco_and_blazepose_tables_match_names():
    import mediapipe as mp

    blaze = [lm.name.lower() for lm in mp.solutions.pose.PoseLandmark]
    for j, name in enumerate(OPENPOSE18_NAMES):
        if name == "neck":
            assert COCO17_TO_OPENPOSE18[j] == -1 and BLAZEPOSE_TO_OPENPOSE18[j] == -1
            continue
        assert _short(COCO17[COCO17_TO_OPENPOSE18[j]]) == name
        assert _short(blaze[BLAZEPOSE_TO_OPENPOSE18[j]]) == name
    assert [blaze[i] for i in BLAZEPOSE_SHOULDERS] == ["right_shoulder", "left_shoulder"]


def test_to_openpose18_neck_and_batching():
    pts = onp.random.default_rng(0).normal(size=(2, 3, 17, 2))
    conf = onp.random.default_rng(1).uniform(size=(2, 3, 17))
    kp, c = to_openpose18(pts, conf)
    assert kp.shape == (2, 3, 18, 2) and c.shape == (2, 3, 18)
    onp.testing.assert_allclose(kp[..., 1, :], 0.5 * (pts[..., 5, :] + pts[..., 6, :]))
    onp.testing.assert_allclose(c[..., 1], onp.minimum(conf[..., 5], conf[..., 6]))
    onp.testing.assert_allclose(kp[..., 2, :], pts[..., 6, :])  # r_shoulder


def test_image_input_validation():
    assert as_uint8_images(onp.ones((4, 4, 3))).dtype == onp.uint8
    assert as_uint8_images(torch.zeros(2, 4, 4, 3)).shape == (2, 4, 4, 3)
    assert as_uint8_images(onp.zeros((2, 3, 4, 5, 3))).shape == (6, 4, 5, 3)
    with pytest.raises(ValueError, match=r"images must be \(..., H, W, 3\) RGB"):
        as_uint8_images(onp.zeros((2, 4, 4)))


def _stick_figure(h=256, w=192):
    """A synthetic blank image: mediapipe must report 'no person' (confidence 0), not crash."""
    return onp.full((h, w, 3), 0.8, onp.float32)


def test_mediapipe_detector_no_person_gives_zero_confidence():
    det = MediaPipePoseDetector()
    kp, conf = det(onp.stack([_stick_figure(), _stick_figure()]))
    kp1, conf1 = det(_stick_figure())
    kp3, conf3 = det(onp.stack([onp.stack([_stick_figure()] * 2)] * 1))  # seeds x views
    det.close()
    assert kp.shape == (2, 18, 2) and conf.shape == (2, 18)
    assert kp1.shape == (18, 2) and conf1.shape == (18,) and kp3.shape == (1, 2, 18, 2)
    assert (conf == 0).all()


def test_mediapipe_missing_model_is_one_clear_line(monkeypatch, tmp_path):
    import anchorhoi_jax.priors.detect as det_mod

    original = det_mod._blazepose_model_path
    with pytest.raises(ValueError, match="model_complexity must be 0, 1 or 2"):
        original(5)
    monkeypatch.setattr(det_mod, "_blazepose_model_path", lambda c: str(tmp_path / "pose_landmark_heavy.tflite"))
    with pytest.raises(manifest.MissingWeightsError) as e:
        MediaPipePoseDetector(model_complexity=2)
    assert "\n" not in str(e.value) and "pose_landmark_heavy.tflite is not in the mediapipe wheel" in str(e.value)


def test_openpose_port_layout_and_decoding():
    net = OpenPoseBodyNet()
    sd = net.state_dict()
    assert len(sd) == 2 * (12 + 5 * 2 + 5 * 7 * 2)  # weight + bias per conv: trunk, stage 1, stages 2-6
    flat = {k.split(".", 1)[1]: v for k, v in sd.items()}
    for k in ("conv1_1.weight", "conv4_4_CPM.bias", "conv5_5_CPM_L1.weight", "conv5_5_CPM_L2.weight",
              "Mconv1_stage2_L1.weight", "Mconv7_stage6_L2.bias"):
        assert k in flat
    assert flat["Mconv1_stage2_L1.weight"].shape == (128, 185, 7, 7)
    assert flat["conv5_5_CPM_L2.weight"].shape[0] == 19 and flat["Mconv7_stage6_L1.weight"].shape[0] == 38
    net2 = OpenPoseBodyNet()
    net2.load_port_state_dict(flat)
    assert all(torch.equal(a, b) for a, b in zip(net2.state_dict().values(), sd.values()))
    with pytest.raises(KeyError, match="OpenPose weights lack 'conv1_1.weight'"):
        net2.load_port_state_dict({})
    # Decoding: plant a heatmap peak per part and check pixel coordinates (centre convention).
    det = OpenPoseDetector(net, scales=(1.0,), box_size=64, smooth_sigma=1.0)
    target = onp.array([[10 + 2 * j, 5 + j] for j in range(18)])

    def fake_heatmaps(img):
        hm = torch.zeros(19, 48, 64)
        for j, (x, y) in enumerate(target):
            hm[j, y, x] = 0.9 if j != 7 else 0.01  # part 7 below threshold -> missing
        return hm

    det.heatmaps = fake_heatmaps
    kp, conf = det(onp.zeros((1, 48, 64, 3), onp.uint8))
    ok = onp.arange(18) != 7
    onp.testing.assert_allclose(kp[0, ok], target[ok] + 0.5)
    assert conf[0, 7] == 0 and (conf[0, ok] > 0).all()
    hm = OpenPoseDetector(net, scales=(0.5,), box_size=64).heatmaps(onp.zeros((40, 56, 3), onp.uint8))
    assert hm.shape == (19, 40, 56)


def test_openpose_missing_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("ANCHORHOI_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(manifest.MissingWeightsError, match="missing weights for 'openpose-body'.*body_pose_model.pth"):
        OpenPoseDetector.from_pretrained()
    with pytest.raises(manifest.MissingWeightsError, match="missing weights for 'grounding-dino'"):
        GroundedSAMSegmenter.from_pretrained()


def test_foreground_and_object_masks():
    img = onp.ones((1, 8, 8, 3), onp.float32)
    img[0, 2:6, 1:7] = 0.2
    fg = foreground_mask(img, background=(1.0, 1.0, 1.0))
    assert fg.sum() == 24
    alpha = onp.zeros((8, 8))
    alpha[0, 0] = 1
    assert foreground_mask(img, alpha=alpha).sum() == 1
    person = onp.zeros_like(fg)
    person[0, 2:6, 1:3] = True
    obj = object_mask(fg, person, dilate_person=0)
    assert obj.sum() == 16 and not (obj & person).any()
    assert object_mask(fg, person, dilate_person=1).sum() == 12
    with pytest.raises(ValueError, match="needs alpha or background"):
        foreground_mask(img)


def test_mediapipe_segmenter_on_empty_scene():
    seg = MediaPipeHumanObjectSegmenter()
    img = onp.full((2, 64, 48, 3), 0.9, onp.float32)
    img[:, 20:40, 10:30] = 0.1  # a dark box: foreground, not a person
    out = seg(img, background=(0.9, 0.9, 0.9))
    seg.close()
    assert out["person"].shape == (2, 64, 48) and out["object"].dtype == bool
    assert out["foreground"].sum() == 2 * 400
    fg = out["foreground"]
    assert not (out["object"] & out["person"]).any()
    assert not (out["object"] & ~fg).any() and not (out["person"] & ~fg).any()
    assert out["object"].sum() + out["person"].sum() > 0.5 * fg.sum()  # the box is accounted for


def _tiny_grounded_sam(tmp_path):
    from transformers import (BertConfig, BertTokenizerFast, GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoProcessor, SamConfig, SamMaskDecoderConfig, SamModel,
                              SamPromptEncoderConfig, SamProcessor, SamVisionConfig, SwinConfig)
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import GroundingDinoImageProcessorPil
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    torch.manual_seed(0)
    dino = GroundingDinoForObjectDetection(GroundingDinoConfig(
        backbone_config=SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2],
                                   window_size=4, out_features=["stage1", "stage2"]),
        text_config=BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32, max_position_embeddings=64),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=10, num_feature_levels=2, encoder_n_points=2,
        decoder_n_points=2, max_text_len=32, use_pretrained_backbone=False, use_timm_backbone=False, backbone=None))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "person", "chair"] + [chr(c) for c in range(97, 123)]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab))
    dproc = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessorPil(
        size={"shortest_edge": 64, "longest_edge": 64}), tokenizer=BertTokenizerFast(str(tmp_path / "vocab.txt")))
    sam = SamModel(SamConfig(
        vision_config=SamVisionConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=64,
                                      patch_size=16, output_channels=16, mlp_dim=32, global_attn_indexes=[0],
                                      window_size=0, num_pos_feats=8),
        prompt_encoder_config=SamPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=16,
                                                     mask_input_channels=4),
        mask_decoder_config=SamMaskDecoderConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                                 mlp_dim=32, iou_head_hidden_dim=16)))
    sproc = SamProcessor(image_processor=SamImageProcessorPil(size={"longest_edge": 64},
                                                              pad_size={"height": 64, "width": 64}))
    return GroundedSAMSegmenter(dino, dproc, sam, sproc, box_threshold=0.0, text_threshold=0.0)


def test_grounded_sam_tiny_end_to_end(tmp_path):
    seg = _tiny_grounded_sam(tmp_path)
    img = (onp.random.default_rng(0).uniform(size=(1, 48, 64, 3)) * 255).astype(onp.uint8)
    boxes = seg.boxes(img[0], ["person", "chair"])
    assert set(boxes) == {"person", "chair"}
    for hit in boxes.values():  # threshold 0: every query passes; the best box lies in the image
        assert hit is not None and hit[0].shape == (4,)
        assert -1 <= hit[0][0] <= hit[0][2] <= 65 and -1 <= hit[0][1] <= hit[0][3] <= 49
    out = seg(img, ["person", "chair"])
    assert out["person"].shape == (1, 48, 64) and out["person"].dtype == bool
    m = seg.mask_from_box(img[0], onp.array([5.0, 5.0, 40.0, 30.0], onp.float32))
    assert m.shape == (48, 64)
