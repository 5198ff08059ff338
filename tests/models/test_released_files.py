"""A checkpoint's side files are read as transformers reads them: the processor's chat template
before the tokenizer's, and every eos id of generation_config.json stops a reply."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from conversion.tiny import save_tiny_checkpoint
from tokcomp_jax.generate import stop_ids
from tokcomp_jax.models.common.released import load_tokenizer, processor_chat_template, stop_token_ids
from tokcomp_jax.models.families import FAMILIES

PROCESSOR_TEMPLATE = "{% for m in messages %}PROCESSOR {{ m['role'] }}{% endfor %}"
JINJA_TEMPLATE = "{% for m in messages %}JINJA {{ m['role'] }}{% endfor %}"


@pytest.fixture(scope="module")
def qwen_checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("qwen2_vl")
    save_tiny_checkpoint("qwen2_vl", directory)
    return directory


def test_the_processor_template_comes_before_the_tokenizers(qwen_checkpoint, tmp_path):
    """transformers' ProcessorMixin: chat_template.json (legacy), else chat_template.jinja, else the
    tokenizer's own (tokenizer_config.json)."""
    (tmp_path / "tokenizer.json").write_bytes((qwen_checkpoint / "tokenizer.json").read_bytes())
    tokenizer_config = json.loads((qwen_checkpoint / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config, "chat_template": "TOKENIZER"}))
    assert processor_chat_template(tmp_path) is None
    assert load_tokenizer(tmp_path).chat_template == "TOKENIZER"
    (tmp_path / "chat_template.jinja").write_text(JINJA_TEMPLATE)
    assert processor_chat_template(tmp_path) == JINJA_TEMPLATE
    (tmp_path / "chat_template.json").write_text(json.dumps({"chat_template": PROCESSOR_TEMPLATE}))
    assert processor_chat_template(tmp_path) == PROCESSOR_TEMPLATE
    assert load_tokenizer(tmp_path).chat_template == PROCESSOR_TEMPLATE


def test_a_chat_template_json_without_a_string_is_refused(tmp_path):
    (tmp_path / "chat_template.json").write_text(json.dumps({"chat_template": 3}))
    with pytest.raises(ValueError, match="chat_template.json: field 'chat_template' must be a string"):
        processor_chat_template(tmp_path)


def test_every_generation_config_eos_id_stops_a_reply(qwen_checkpoint):
    tokenizer = load_tokenizer(qwen_checkpoint)
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert stop_token_ids(tokenizer, {}) == (end_of_turn,)
    assert stop_token_ids(tokenizer, {"eos_token_id": [end_of_turn, 7]}) == (end_of_turn, 7)
    assert stop_token_ids(tokenizer, {"eos_token_id": 7}) == (end_of_turn, 7)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_each_family_reads_its_generation_config(name, tmp_path):
    """The chat's stop ids include generation_config.json's, wherever the family keeps it."""
    save_tiny_checkpoint(name, tmp_path)
    family = FAMILIES[name]
    generation_dir = family.tokenizer_directory(tmp_path)
    (generation_dir / "generation_config.json").write_text(json.dumps({"eos_token_id": [5, 6]}))
    config = family.read_config(tmp_path)
    chat = family.chat(config, family.load_tokenizer(tmp_path), family.read_side_files(tmp_path))
    assert chat.eos_token_id[-2:] == (5, 6)
    assert chat.decode([9, 5, 6]) == chat.decode([9])


def test_decode_stops_at_any_stop_id():
    """greedy decode's bookkeeping: the first of several stop ids ends the answer."""
    tokens = jnp.array([[4, 6, 5, 0]])
    stops = jnp.asarray(stop_ids((5, 6)))
    is_stop = np.asarray(jnp.isin(tokens, stops))
    assert is_stop.tolist() == [[False, True, True, False]]
    assert stop_ids(5) == (5,)
