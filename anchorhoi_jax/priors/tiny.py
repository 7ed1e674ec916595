"""Tiny in-memory tokenizer for randomly initialised test instances of the priors.

Real tokenizers (T5 SentencePiece, CLIP BPE, Llama) need vocabulary files that are part of the
weights; tests run offline, so tiny models use this character-level tokenizer instead. It has the
`PreTrainedTokenizerFast` interface the priors call (padding, truncation, attention masks).
"""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

__all__ = ["tiny_tokenizer", "TINY_VOCAB_SIZE"]

_SPECIAL = ["<pad>", "</s>", "<unk>", "<s>"]
_CHARS = [" "] + list(string.ascii_lowercase + string.digits + ",.-'")
TINY_VOCAB_SIZE = len(_SPECIAL) + len(_CHARS)


def tiny_tokenizer(max_length: int = 16) -> PreTrainedTokenizerFast:
    """A lower-casing character tokenizer with `TINY_VOCAB_SIZE` ids; pad id 0, eos id 1."""
    vocab = {t: i for i, t in enumerate(_SPECIAL + _CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", bos_token="<s>",
        model_max_length=max_length,
    )
