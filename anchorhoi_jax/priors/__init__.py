"""Pretrained priors behind a thin torch bridge -- the only package that imports torch/diffusers/
transformers/mediapipe. Submodules are imported explicitly (nothing here imports torch):

  bridge       zero-copy DLPack JAX <-> torch, `make_sds_step` (split SDS step)
  sds          Eq. 1: timestep annealing, w(t), CFG, view prompts, clipping, analytic Gaussian prior
  image        DeepFloyd IF stage I and Stable Diffusion 1.x/2.x priors (+ published UNet configs)
  mvdream      MVDream multi-view UNet (official key names) and prior
  video        FramePack image-to-video, video files / frame folders
  detect       BODY-18 keypoints: mediapipe BlazePose (default), OpenPose PyTorch port
  segment      person / object masks: mediapipe (default), Grounded-SAM
  clip_score   CLIP score evaluator
  manifest     weights manifest, offline-safe resolution, one-line missing-weight errors
  tiny         in-memory tokenizer for tiny random test models
"""
