"""CLIP score evaluator (transformers CLIP) for text-render agreement (paper Sec. 5 evaluation).

    score = 100 * max(cos(E_img(image), E_txt(text)), 0)     (the torchmetrics CLIPScore convention)

Images are resized (bicubic, shorter side), centre-cropped to the model's input size and normalised
with CLIP's mean/std here, so any (N, H, W, 3) [0, 1] or uint8 batch works, including tiny test models.
"""

from __future__ import annotations

from typing import Sequence

import numpy as onp
import torch
import torch.nn.functional as F

from anchorhoi_jax.priors.detect import as_uint8_images
from anchorhoi_jax.priors.manifest import resolve_weights

__all__ = ["CLIPScorer", "make_tiny_clip_scorer", "CLIP_MEAN", "CLIP_STD"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class CLIPScorer:
    def __init__(self, model, tokenizer, *, device="cpu", max_length: int = 77):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.size = int(model.config.vision_config.image_size)
        self.max_length = min(max_length, int(model.config.text_config.max_position_embeddings))

    @classmethod
    def from_pretrained(cls, local_dir=None, *, name: str = "clip-vit-l14", device="cpu", allow_download=False):
        from transformers import CLIPModel, CLIPTokenizer

        root = resolve_weights(name, local_dir, allow_download=allow_download)
        return cls(CLIPModel.from_pretrained(root, local_files_only=True),
                   CLIPTokenizer.from_pretrained(root, local_files_only=True), device=device)

    def preprocess(self, images) -> torch.Tensor:
        x = torch.from_numpy(as_uint8_images(images)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        h, w = x.shape[-2:]
        s = self.size / min(h, w)
        x = F.interpolate(x, size=(max(self.size, round(h * s)), max(self.size, round(w * s))), mode="bicubic",
                          align_corners=False, antialias=True).clamp(0, 1)
        top, left = (x.shape[-2] - self.size) // 2, (x.shape[-1] - self.size) // 2
        x = x[..., top:top + self.size, left:left + self.size]
        mean = torch.tensor(CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=self.device).view(1, 3, 1, 1)
        return (x - mean) / std

    @staticmethod
    def _features(out) -> torch.Tensor:
        # transformers < 5 returns a tensor, >= 5 may return a model output with pooler_output.
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    @torch.no_grad()
    def embed_images(self, images) -> torch.Tensor:
        f = self._features(self.model.get_image_features(pixel_values=self.preprocess(images)))
        return F.normalize(f.float(), dim=-1)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        tok = self.tokenizer(list(texts), padding="max_length", max_length=self.max_length, truncation=True,
                             return_tensors="pt")
        f = self._features(self.model.get_text_features(input_ids=tok.input_ids.to(self.device),
                                                        attention_mask=tok.attention_mask.to(self.device)))
        return F.normalize(f.float(), dim=-1)

    def __call__(self, images, texts: str | Sequence[str]) -> onp.ndarray:
        """(N,) CLIP scores; `texts` is one prompt for all images or one per image."""
        img = self.embed_images(images)
        texts = [texts] if isinstance(texts, str) else list(texts)
        if len(texts) not in (1, img.shape[0]):
            raise ValueError(f"CLIP score: {len(texts)} texts for {img.shape[0]} images (give 1 or one per image)")
        txt = self.embed_texts(texts)
        cos = (img * txt).sum(-1)
        return (100.0 * cos.clamp_min(0.0)).cpu().numpy()


def make_tiny_clip_scorer(seed: int = 0) -> CLIPScorer:
    from transformers import CLIPConfig, CLIPModel

    from anchorhoi_jax.priors.tiny import TINY_VOCAB_SIZE, tiny_tokenizer

    torch.manual_seed(seed)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=TINY_VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, max_position_embeddings=32, pad_token_id=0, bos_token_id=3,
                         eos_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=16)
    return CLIPScorer(CLIPModel(cfg), tiny_tokenizer(32))
