"""VILA1.5's tokenizer as VILA's own code loads it: the slow sentencepiece LlamaTokenizer with
`legacy=False` (NVlabs/VILA, llava/model/language_model/builder.py, `build_llm_and_tokenizer`:
`AutoTokenizer.from_pretrained(llm_path, use_fast=False, legacy=False)`).

transformers 5 loads `tokenizer.model` into its fast (tokenizers) LlamaTokenizer even with
`use_fast=False`, which splits runs of spaces differently (`"a  b"`: `▁a ▁▁ b` there, `▁a ▁ ▁b` in
VILA's) and drops the `▁` a leading space makes. transformers 4's slow LlamaTokenizer is
transformers 5's SentencePieceBackend plus the `tokenize` below (LlamaTokenizer.tokenize of
transformers 4.36, non-legacy branch); tests/models/test_vila_tokenizer.py holds it to ids made
by transformers 4.36.2 itself.
"""

from __future__ import annotations

import os
from pathlib import Path

from transformers.tokenization_utils_sentencepiece import SPIECE_UNDERLINE, SentencePieceBackend

from tokcomp_jax.models.common.released import check_tokenizer_directory


class SlowLlamaTokenizer(SentencePieceBackend):
    """transformers 4's slow LlamaTokenizer(legacy=False): the text gets one `▁` in front and
    sentencepiece's own dummy prefix is off, so spaces are tokenised as written."""

    def tokenize(self, text: str, **kwargs) -> list[str]:
        if self.legacy or not text:
            return super().tokenize(text, **kwargs)
        tokens = super().tokenize(SPIECE_UNDERLINE + text.replace(SPIECE_UNDERLINE, " "), **kwargs)
        if len(tokens) > 1 and tokens[0] == SPIECE_UNDERLINE and tokens[1] in self.all_special_tokens:
            tokens = tokens[1:]
        return tokens


def load_vila_tokenizer(directory: str | os.PathLike):
    """The tokenizer of a VILA1.5 llm/ directory: the slow sentencepiece one where it holds
    tokenizer.model (Llama-2 based sizes), else transformers' (Llama-3 based sizes ship tokenizer.json)."""
    directory = Path(directory)
    check_tokenizer_directory(directory)
    if (directory / "tokenizer.model").is_file():
        return SlowLlamaTokenizer.from_pretrained(directory, local_files_only=True, legacy=False)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(directory, local_files_only=True)
