"""Config schema of `anchorhoi generate` / `animate`: frozen dataclasses validated by io.config.

Every field has the paper's default (Sec. 5) where the paper gives one; presets live in configs/
(anchorhoi.yaml: paper defaults with the real priors; smoke.yaml: CPU minutes with tiny random
priors). Unknown or mistyped keys are rejected by io.config with the list of valid keys.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from anchorhoi_jax.track import TrackWeights

__all__ = ["BodyConfig", "StaticRenderConfig", "VideoConfig", "DetectConfig", "SegmentConfig", "MotionStageConfig",
           "ExportConfig",
           "ObserveConfig", "AnimateConfig", "MAX_PROMPT_CHARS", "check_prompt"]

MAX_PROMPT_CHARS = 300  # IF's T5 reads 77 tokens; 300 characters is well past any sensible prompt


def check_prompt(prompt: str) -> str:
    """The prompt, stripped; ValueError (one line) if it is empty or longer than MAX_PROMPT_CHARS."""
    p = " ".join(str(prompt).split())
    if not p:
        raise ValueError("the prompt is empty; describe the interaction, e.g. \"a man sitting on a sofa\"")
    if len(p) > MAX_PROMPT_CHARS:
        raise ValueError(f"the prompt has {len(p)} characters; at most {MAX_PROMPT_CHARS} are allowed")
    return p


@dataclasses.dataclass(frozen=True)
class BodyConfig:
    """Which body model: the embedded Anny (default, no download) or your SMPL-X file."""

    model: Literal["anny", "smplx"] = "anny"
    smplx_model: str | None = None  # SMPLX_NEUTRAL.npz (or folder) when model=smplx
    gender: Literal["neutral", "male", "female"] = "neutral"  # recorded in the AMASS export

    def __post_init__(self):
        if self.model == "smplx" and not self.smplx_model:
            raise ValueError("body.model=smplx needs body.smplx_model=PATH (your SMPLX_*.npz)")


@dataclasses.dataclass(frozen=True)
class StaticRenderConfig:
    """The camera that renders the static HOI for the video prior (and the 4D result video)."""

    height: int = 512
    width: int = 512
    fov_deg: float = 40.0
    elevation_deg: float = 10.0
    azimuth_deg: float = 20.0  # 0 = in front of the body (+z side)
    margin: float = 1.3  # the HOI's bounding sphere fills 1/margin of the shorter image side

    def __post_init__(self):
        if not (32 <= self.height <= 2048 and 32 <= self.width <= 2048):
            raise ValueError(f"render size must be within 32..2048 px, got {self.height}x{self.width}")
        if not 10.0 <= self.fov_deg <= 120.0:
            raise ValueError(f"render.fov_deg must be in [10, 120], got {self.fov_deg}")
        if self.margin < 1.0:
            raise ValueError(f"render.margin must be >= 1, got {self.margin}")


@dataclasses.dataclass(frozen=True)
class VideoConfig:
    """The video prior (paper Sec. 4: FramePack image-to-video from the render of the static HOI)."""

    kind: Literal["framepack", "tiny", "file"] = "framepack"
    seconds: float = 5.0
    num_inference_steps: int = 25
    guidance_scale: float = 10.0
    tiny_fps: float = 8.0  # frame rate of the tiny random FramePack (kind=tiny)
    framepack_dir: str | None = None
    hunyuan_dir: str | None = None
    siglip_dir: str | None = None
    cpu_offload: bool = False

    def __post_init__(self):
        if not 0.2 <= self.seconds <= 60.0:
            raise ValueError(f"video.seconds must be in [0.2, 60], got {self.seconds}")
        if not 1 <= self.num_inference_steps <= 200:
            raise ValueError(f"video.num_inference_steps must be in [1, 200], got {self.num_inference_steps}")


@dataclasses.dataclass(frozen=True)
class DetectConfig:
    """2D body keypoints of the video (paper: OpenPose)."""

    # openpose: the CMU BODY-18 net (weights 'openpose-body'); mediapipe: BlazePose, ships in its wheel;
    # static: the static instance's keypoints projected into every frame -- a motionless anchor for
    # smoke runs, where the tiny random video model draws noise that no detector can read.
    kind: Literal["openpose", "mediapipe", "static"] = "openpose"
    openpose_dir: str | None = None
    min_confidence: float = 0.1  # keypoints below this count as missing (confidence 0)
    min_person_frames: float = 0.5  # fraction of frames that must show a person

    def __post_init__(self):
        if not 0.0 <= self.min_confidence < 1.0:
            raise ValueError(f"detect.min_confidence must be in [0, 1), got {self.min_confidence}")
        if not 0.0 < self.min_person_frames <= 1.0:
            raise ValueError(f"detect.min_person_frames must be in (0, 1], got {self.min_person_frames}")


@dataclasses.dataclass(frozen=True)
class SegmentConfig:
    """Human / object instance masks of the video frames for the motion stage (paper Sec. 4: Grounded-SAM).

    kind: "none" (no masks: the motion stage runs on keypoints and contacts alone) or "grounded_sam"
      (GroundingDINO boxes for `human_label` and the object's name, refined by SAM; weights 'grounding-dino'
      and 'sam'). With masks the motion stage adds the silhouette part of L_reg (motion.weights.silhouette) and
      ties the frames whose object mask shows the object at its static placement to it (weights.object_static).
      The offline mediapipe segmenter of the composition is no option here: its object mask is foreground minus
      person, and a generated video frame has no known background to take the foreground from.
    object_label: the object's name for GroundingDINO; "" = the object part of the prompt (pipeline/prompt.py).
    """

    kind: Literal["none", "grounded_sam"] = "none"
    human_label: str = "person"
    object_label: str = ""
    box_threshold: float = 0.3
    text_threshold: float = 0.25
    grounding_dino_dir: str | None = None
    sam_dir: str | None = None

    def __post_init__(self):
        if not (0.0 < self.box_threshold < 1.0 and 0.0 < self.text_threshold < 1.0):
            raise ValueError(f"segment.box_threshold and segment.text_threshold must be in (0, 1), got "
                             f"{self.box_threshold}, {self.text_threshold}")
        if not self.human_label.strip():
            raise ValueError("segment.human_label must not be empty")


@dataclasses.dataclass(frozen=True)
class MotionStageConfig:
    """Contact keypoints (Eq. 3) and 4D tracking (Eq. 4-6); paper Sec. 5 defaults."""

    steps: int = 1000
    log_every: int = 100  # Adam steps per jitted call; progress/checkpoint granularity
    learning_rate: float = 0.01
    global_steps: int = 200
    sigma_px: float = 100.0
    init_noise: float = 0.0
    num_object_points: int = 1024
    num_pen_vertices: int = 2048
    sdf_resolution: int = 64
    tau_n: float = 0.5
    contact_distance: float = 0.02
    sigma_d: float = 0.05
    weights: TrackWeights = TrackWeights()

    def __post_init__(self):
        if self.steps < 1 or self.log_every < 1:
            raise ValueError(f"motion.steps and motion.log_every must be >= 1, got {self.steps}, {self.log_every}")
        if self.steps % self.log_every:
            raise ValueError(f"motion.steps ({self.steps}) must be a multiple of motion.log_every ({self.log_every})")
        if self.learning_rate <= 0:
            raise ValueError(f"motion.learning_rate must be positive, got {self.learning_rate}")


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """What each seed's folder gets besides the always-written files."""

    meshes: bool = False  # per-frame OBJ meshes of human + object (motion/meshes/frame_XXXX.obj)
    video_height: int = 256  # height of motion/video.mp4 (driving video | 4D render, side by side)
    metrics_sdf_resolution: int = 96  # object SDF grid of the penetration metrics (finer than the loss's)

    def __post_init__(self):
        if not 32 <= self.video_height <= 2048:
            raise ValueError(f"export.video_height must be in [32, 2048], got {self.video_height}")
        if not 8 <= self.metrics_sdf_resolution <= 256:
            raise ValueError(f"export.metrics_sdf_resolution must be in [8, 256], got {self.metrics_sdf_resolution}")


@dataclasses.dataclass(frozen=True)
class ObserveConfig:
    """Progress bars, TensorBoard scalars, checkpoint frequency and the profiler window."""

    progress: bool = True
    tensorboard: bool = False  # needs tensorboardX (or tensorboard); scalars in <out>/tensorboard
    checkpoint_every: int = 1  # save a stage's state every N progress callbacks
    checkpoint_async: bool = True  # write it in a background thread while the stage goes on (pipeline/store.py)
    profile_stage: str = "motion"  # with --profile: trace this stage ...
    profile_start: int = 0  # ... from this step ...
    profile_steps: int = 100  # ... for this many steps (into <out>/profile)

    def __post_init__(self):
        if self.checkpoint_every < 1:
            raise ValueError(f"observe.checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if not isinstance(self.checkpoint_async, bool):
            raise ValueError(f"observe.checkpoint_async must be true or false, got {self.checkpoint_async!r}")


@dataclasses.dataclass(frozen=True)
class AnimateConfig:
    """`anchorhoi animate`: static HOI -> render -> video -> keypoints (+ masks) -> contacts -> motion -> exports."""

    prompt: str = ""  # the interaction text (video prior conditioning)
    seed: int = 0
    body: BodyConfig = BodyConfig()
    render: StaticRenderConfig = StaticRenderConfig()
    video: VideoConfig = VideoConfig()
    detect: DetectConfig = DetectConfig()
    segment: SegmentConfig = SegmentConfig()
    motion: MotionStageConfig = MotionStageConfig()
    export: ExportConfig = ExportConfig()
    observe: ObserveConfig = ObserveConfig()

    def __post_init__(self):
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if len(self.prompt) > MAX_PROMPT_CHARS:
            raise ValueError(f"prompt has {len(self.prompt)} characters; at most {MAX_PROMPT_CHARS} are allowed")
