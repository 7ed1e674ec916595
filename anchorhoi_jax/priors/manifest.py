"""Weights manifest and offline-safe resolution of pretrained prior weights.

Every pretrained model a prior can use is listed in `MANIFEST`: its Hugging Face repository, the
files it needs, and a SHA-256 where one is pinned. Resolution order for model `name`:

1. an explicit `local_dir` argument;
2. `$ANCHORHOI_WEIGHTS/<name>/` (default `~/.cache/anchorhoi/weights/<name>/`), laid out like the
   repository (the files of the manifest, relative to that directory);
3. the Hugging Face cache (`HF_HOME`), read with `local_files_only=True`.

Nothing is downloaded unless the caller passes `allow_download=True` *and* neither
`HF_HUB_OFFLINE` nor `ANCHORHOI_OFFLINE` is set. A missing weight raises `MissingWeightsError`
whose message is one line naming the repository, the files and where to put them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

__all__ = ["WeightSpec", "MANIFEST", "MissingWeightsError", "weights_root", "is_offline", "resolve_weights", "sha256_of"]


@dataclasses.dataclass(frozen=True)
class WeightSpec:
    """One downloadable model: where it lives and what files a prior reads from it."""

    name: str
    repo_id: str
    files: tuple[str, ...]  # glob patterns relative to the repository root
    required: tuple[str, ...]  # concrete files that must exist for the model to load
    sha256: tuple[tuple[str, str], ...] = ()  # (file, hex digest) where pinned
    note: str = ""
    url: str = ""  # non-HF source (e.g. a Google Drive link); then `repo_id` is informational


MANIFEST: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in [
        WeightSpec(
            "if-i-xl",
            "DeepFloyd/IF-I-XL-v1.0",
            files=("model_index.json", "scheduler/*", "tokenizer/*", "unet/config.json",
                   "unet/diffusion_pytorch_model.fp16.safetensors", "text_encoder/config.json",
                   "text_encoder/model.fp16-*.safetensors", "text_encoder/model.safetensors.index.fp16.json"),
            required=("unet/config.json", "scheduler/scheduler_config.json", "tokenizer/spiece.model",
                      "text_encoder/config.json"),
            note="gated: accept the DeepFloyd licence on huggingface.co first",
        ),
        WeightSpec(
            "sd-2.1-base",
            "stabilityai/stable-diffusion-2-1-base",
            files=("model_index.json", "scheduler/*", "tokenizer/*", "unet/config.json",
                   "unet/diffusion_pytorch_model.fp16.safetensors", "vae/config.json",
                   "vae/diffusion_pytorch_model.fp16.safetensors", "text_encoder/config.json",
                   "text_encoder/model.fp16.safetensors"),
            required=("unet/config.json", "vae/config.json", "text_encoder/config.json",
                      "scheduler/scheduler_config.json", "tokenizer/vocab.json"),
        ),
        WeightSpec(
            "sd-1.5",
            "stable-diffusion-v1-5/stable-diffusion-v1-5",
            files=("model_index.json", "scheduler/*", "tokenizer/*", "unet/config.json",
                   "unet/diffusion_pytorch_model.fp16.safetensors", "vae/config.json",
                   "vae/diffusion_pytorch_model.fp16.safetensors", "text_encoder/config.json",
                   "text_encoder/model.fp16.safetensors"),
            required=("unet/config.json", "vae/config.json", "text_encoder/config.json",
                      "scheduler/scheduler_config.json", "tokenizer/vocab.json"),
        ),
        WeightSpec(
            "mvdream-sd21",
            "MVDream/MVDream",
            files=("sd-v2.1-base-4view.pt",),
            required=("sd-v2.1-base-4view.pt",),
            note="the multi-view UNet; its VAE and text encoder come from 'sd-2.1-base'",
        ),
        WeightSpec(
            "framepack",
            "lllyasviel/FramePackI2V_HY",
            files=("config.json", "*.safetensors", "*.json"),
            required=("config.json",),
            note="transformer only; the VAE, text encoders and SigLIP come from 'hunyuanvideo-community'",
        ),
        WeightSpec(
            "hunyuanvideo-community",
            "hunyuanvideo-community/HunyuanVideo",
            files=("model_index.json", "scheduler/*", "tokenizer/*", "tokenizer_2/*", "text_encoder/*",
                   "text_encoder_2/*", "vae/*"),
            required=("vae/config.json", "text_encoder/config.json", "text_encoder_2/config.json",
                      "tokenizer/tokenizer_config.json", "tokenizer_2/tokenizer_config.json"),
        ),
        WeightSpec(
            "flux-redux-siglip",
            "lllyasviel/flux_redux_bfl",
            files=("feature_extractor/*", "image_encoder/*"),
            required=("feature_extractor/preprocessor_config.json", "image_encoder/config.json"),
        ),
        WeightSpec(
            "openpose-body",
            "lllyasviel/Annotators",
            files=("body_pose_model.pth",),
            required=("body_pose_model.pth",),
            note="the pytorch-openpose BODY-18 CMU model",
        ),
        WeightSpec(
            "grounding-dino",
            "IDEA-Research/grounding-dino-tiny",
            files=("config.json", "model.safetensors", "preprocessor_config.json", "tokenizer*", "special_tokens_map.json",
                   "vocab.txt"),
            required=("config.json", "model.safetensors", "preprocessor_config.json"),
        ),
        WeightSpec(
            "sam",
            "facebook/sam-vit-base",
            files=("config.json", "model.safetensors", "preprocessor_config.json"),
            required=("config.json", "model.safetensors", "preprocessor_config.json"),
        ),
        WeightSpec(
            "clip-vit-l14",
            "openai/clip-vit-large-patch14",
            files=("config.json", "model.safetensors", "preprocessor_config.json", "tokenizer*", "vocab.json",
                   "merges.txt", "special_tokens_map.json"),
            required=("config.json", "model.safetensors", "vocab.json", "merges.txt"),
        ),
    ]
}


class MissingWeightsError(FileNotFoundError):
    """Raised when a prior's weights are not on disk; the message is one actionable line."""


def weights_root() -> Path:
    return Path(os.environ.get("ANCHORHOI_WEIGHTS", Path.home() / ".cache" / "anchorhoi" / "weights"))


def is_offline() -> bool:
    flags = (os.environ.get(k, "") for k in ("HF_HUB_OFFLINE", "ANCHORHOI_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(f.strip().lower() in ("1", "true", "yes", "on") for f in flags)


def sha256_of(path: Path, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _has_required(root: Path, spec: WeightSpec) -> bool:
    return root.is_dir() and all((root / r).exists() for r in spec.required)


def _missing_message(spec: WeightSpec, where: Path) -> str:
    src = spec.url or f"huggingface.co/{spec.repo_id}"
    fetch = f"huggingface-cli download {spec.repo_id} {' '.join(spec.files)} --local-dir {where}"
    extra = f" ({spec.note})" if spec.note else ""
    return f"missing weights for '{spec.name}': download {src}{extra} into {where} (e.g. `{fetch}`), or pass local_dir=..."


def resolve_weights(name: str, local_dir: str | os.PathLike | None = None, *, allow_download: bool = False) -> Path:
    """Directory holding `name`'s files (see module docstring for the search order).

    Raises:
      KeyError: `name` is not in the manifest.
      MissingWeightsError: no complete copy found (and downloading not allowed or offline).
    """
    if name not in MANIFEST:
        raise KeyError(f"unknown prior weights '{name}'; known: {', '.join(sorted(MANIFEST))}")
    spec = MANIFEST[name]
    default_dir = weights_root() / name
    if local_dir is not None:
        root = Path(local_dir)
        if not _has_required(root, spec):
            raise MissingWeightsError(_missing_message(spec, root))
        return _verified(root, spec)
    if _has_required(default_dir, spec):
        return _verified(default_dir, spec)
    try:
        from huggingface_hub import snapshot_download

        offline = is_offline() or not allow_download
        path = Path(snapshot_download(spec.repo_id, allow_patterns=list(spec.files), local_files_only=offline))
        if _has_required(path, spec):
            return _verified(path, spec)
    except Exception:  # noqa: BLE001 - any hub failure means "not available here"
        pass
    raise MissingWeightsError(_missing_message(spec, default_dir))


def _verified(root: Path, spec: WeightSpec) -> Path:
    for rel, digest in spec.sha256:
        p = root / rel
        if p.exists() and sha256_of(p) != digest:
            raise MissingWeightsError(f"checksum mismatch for '{spec.name}' file {p}: expected sha256 {digest}; re-download it")
    return root
