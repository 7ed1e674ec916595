"""Video priors (FramePack tiny pipeline, video files) and the CLIP score evaluator."""

from __future__ import annotations

import numpy as onp
import pytest

from anchorhoi_jax.priors import manifest
from anchorhoi_jax.priors.clip_score import CLIPScorer, make_tiny_clip_scorer
from anchorhoi_jax.priors.video import (
    FramePackPrior,
    VideoClip,
    VideoFilePrior,
    make_tiny_framepack,
    read_video,
    write_video,
)


def _clip(n=6, h=32, w=48, fps=12.0):
    t = onp.linspace(0, 1, n)[:, None, None, None]
    yy, xx = onp.mgrid[0:h, 0:w]
    base = onp.stack([xx / w, yy / h, 0.5 + 0 * xx], -1)[None]
    return VideoClip(frames=onp.clip(base * (0.5 + 0.5 * t), 0, 1).astype(onp.float32), fps=fps)


def test_mp4_round_trip(tmp_path):
    clip = _clip()
    path = write_video(tmp_path / "a.mp4", clip)
    back = read_video(path)
    assert back.frames.shape == clip.frames.shape and back.fps == pytest.approx(12.0)
    assert onp.abs(back.frames - clip.frames).mean() < 0.03  # lossy H.264
    assert read_video(path, max_frames=2).num_frames == 2


def test_frames_folder_and_validation(tmp_path):
    import imageio.v3 as iio

    d = tmp_path / "frames"
    d.mkdir()
    for i, f in enumerate(_clip(n=3).frames):
        iio.imwrite(d / f"{i:04d}.png", (f * 255).astype(onp.uint8))
    clip = read_video(d, fps=24)
    assert clip.frames.shape == (3, 32, 48, 3) and clip.fps == 24
    assert clip.duration_s == pytest.approx(3 / 24)
    iio.imwrite(d / "0003.png", onp.zeros((10, 10, 3), onp.uint8))
    with pytest.raises(ValueError, match=r"video prior: frame 0003.png is 10x10 \(WxH\), expected 48x32"):
        read_video(d)
    with pytest.raises(ValueError, match="expected 64x64"):
        read_video(d, expected_size=(64, 64))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="video prior: .*empty has no frames"):
        read_video(empty)
    with pytest.raises(FileNotFoundError, match="video prior: .*nope.mp4 does not exist"):
        read_video(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match="video prior: cannot read .*bad.mp4"):
        read_video(bad)


def test_video_file_prior_checks_render_size(tmp_path):
    path = write_video(tmp_path / "v.mp4", _clip())
    prior = VideoFilePrior(path)
    clip = prior.generate(onp.zeros((32, 48, 3)), "ignored", seconds=0.25)
    assert clip.num_frames == 3
    with pytest.raises(ValueError, match="expected 64x32"):
        prior.generate(onp.zeros((32, 64, 3)), "x")


def test_framepack_tiny_pipeline_generates_requested_frames():
    prior = make_tiny_framepack(fps=8.0)
    image = onp.random.default_rng(0).uniform(size=(32, 32, 3))
    clip = prior.generate(image, "a person sits down on a chair", seconds=1.0, num_inference_steps=2, seed=3)
    assert clip.frames.shape == (8, 32, 32, 3) and clip.fps == 8.0
    assert clip.frames.dtype == onp.float32 and 0 <= clip.frames.min() and clip.frames.max() <= 1
    again = prior.generate(image, "a person sits down on a chair", seconds=1.0, num_inference_steps=2, seed=3)
    onp.testing.assert_array_equal(clip.frames, again.frames)  # seeded
    with pytest.raises(ValueError, match="FramePack animates one image, got a batch of 2"):
        prior.generate(onp.stack([image, image]), "x")


def test_framepack_missing_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("ANCHORHOI_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(manifest.MissingWeightsError, match="missing weights for 'framepack'.*lllyasviel/FramePackI2V_HY"):
        FramePackPrior.from_pretrained(device="cpu")
    with pytest.raises(manifest.MissingWeightsError, match="missing weights for 'clip-vit-l14'"):
        CLIPScorer.from_pretrained()


def test_tiny_clip_score_matches_manual_cosine():
    import torch

    scorer = make_tiny_clip_scorer()
    imgs = onp.random.default_rng(1).uniform(size=(3, 40, 50, 3))
    s = scorer(imgs, ["a red chair", "a man", "a person sitting"])
    assert s.shape == (3,) and (s >= 0).all() and (s <= 100).all()
    x = scorer.preprocess(imgs)
    assert x.shape == (3, 3, 32, 32)
    with torch.no_grad():
        fi = scorer._features(scorer.model.get_image_features(pixel_values=x))
        tok = scorer.tokenizer(["a red chair", "a man", "a person sitting"], padding="max_length",
                               max_length=scorer.max_length, truncation=True, return_tensors="pt")
        ft = scorer._features(scorer.model.get_text_features(input_ids=tok.input_ids, attention_mask=tok.attention_mask))
    cos = torch.nn.functional.cosine_similarity(fi, ft).numpy()
    onp.testing.assert_allclose(s, 100 * onp.maximum(cos, 0), rtol=1e-4, atol=1e-4)
    one = scorer(imgs, "a man")
    assert one.shape == (3,)
    with pytest.raises(ValueError, match="2 texts for 3 images"):
        scorer(imgs, ["a", "b"])
