"""VILA1.5's prompts from its released llm/ files equal the ids VILA's own code makes
(tests/fixtures/reference/vila_ids.json: transformers 4.36.2's slow LlamaTokenizer, legacy=False,
the vicuna_v1 conversation and tokenizer_image_token; make_vila_ids.py beside it made them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from configs.models import vila
from tokcomp_jax.models.families import FAMILIES
from tokcomp_jax.models.vila.modeling import expand_image_placeholders
from tokcomp_jax.models.vila.tokenizer import SlowLlamaTokenizer, load_vila_tokenizer

FIXTURES = Path(__file__).parents[1] / "fixtures"
RELEASED_LLM = FIXTURES / "released" / "vila" / "llm"
CASES = json.loads((FIXTURES / "reference" / "vila_ids.json").read_text())["cases"]
IMAGE = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tokenizer():
    return load_vila_tokenizer(RELEASED_LLM)


def test_the_released_tokenizer_loads_as_vilas_slow_one(tokenizer):
    assert isinstance(tokenizer, SlowLlamaTokenizer)
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, len(tokenizer)) == (1, 2, 32000)


def test_spaces_are_tokenised_as_vila_does(tokenizer):
    """The fast tokenizer gives `▁a ▁▁ b` and drops a leading space's `▁`; VILA's slow one does not."""
    assert tokenizer.tokenize("a  b") == ["▁a", "▁", "▁b"]
    assert tokenizer.tokenize(" leading") == ["▁", "▁leading"]


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case['images']}img:{case['prompt'][:20]}")
def test_prompt_ids_equal_vilas_own(case, tokenizer):
    config = vila.tiny()
    chat = FAMILIES["vila"].chat(config, tokenizer)
    batch = chat.encode(case["prompt"], images=[IMAGE] * case["images"])
    expected = expand_image_placeholders(config, np.array([case["ids"]]))["input_ids"]
    np.testing.assert_array_equal(batch["input_ids"], expected)
    assert chat.eos_token_id == (tokenizer.eos_token_id,)
