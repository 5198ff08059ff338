"""Shared fixtures: tiny random-init transformers Qwen2-VL checkpoints, built once per session."""

from __future__ import annotations

import os

# The suite compiles thousands of tiny graphs and runs each a few times: LLVM's optimisation of the
# CPU code costs more than it saves (1.65x faster on tests/prune/test_pruning.py). XLA's graph passes
# still run; every tolerance stays as it is. Subprocesses inherit it unless they set XLA_FLAGS.
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

import tokcomp_jax  # noqa: E402
from conversion.tiny import save_tiny_model  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_graphs():
    """Drop every compiled graph after each test module. One process compiles thousands of graphs in
    the suite; each CPU executable holds its own memory mappings, and without this the process runs
    into the kernel's mapping limit (vm.max_map_count, 65530) and LLVM aborts a later compile with
    "Cannot allocate memory" while resident memory is only ~6 GB."""
    yield
    jax.clear_caches()


@pytest.fixture(scope="session")
def tiny_qwen2vl(tmp_path_factory):
    """(HF directory, transformers model, Flax model loaded from that directory)."""
    directory = tmp_path_factory.mktemp("tiny_qwen2vl")
    torch_model = save_tiny_model(directory)
    return directory, torch_model, tokcomp_jax.load(directory)


def _saved_tiny(tmp_path_factory, name: str, make_model):
    """(HF directory, the transformers model make_model() builds, Flax model loaded from its directory)."""
    directory = tmp_path_factory.mktemp(name)
    torch_model = make_model()
    torch_model.save_pretrained(directory)
    return directory, torch_model, tokcomp_jax.load(directory)


@pytest.fixture(scope="session")
def tiny_qwen2_5_vl(tmp_path_factory):
    """(HF directory, transformers Qwen2.5-VL, Flax model loaded from that directory)."""
    from conversion.tiny import tiny_qwen2_5_vl_model

    return _saved_tiny(tmp_path_factory, "tiny_qwen2_5_vl", tiny_qwen2_5_vl_model)


@pytest.fixture(scope="session")
def tiny_qwen3_vl(tmp_path_factory):
    """(HF directory, transformers Qwen3-VL, Flax model loaded from that directory)."""
    from conversion.tiny import tiny_qwen3_vl_model

    return _saved_tiny(tmp_path_factory, "tiny_qwen3_vl", tiny_qwen3_vl_model)


@pytest.fixture(params=["tiny_qwen2vl", "tiny_qwen2_5_vl", "tiny_qwen3_vl"], ids=["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def tiny_qwen(request):
    """Each Qwen family's (HF directory, transformers model, Flax model), for tests against transformers."""
    return request.getfixturevalue(request.param)


SPECIAL = {"<|image_pad|>": 250, "<|video_pad|>": 251, "<|vision_start|>": 252, "<|vision_end|>": 253}
WORDS = "<|im_start|> <|im_end|> system user assistant You are a helpful assistant. what colour is the square ?"


@pytest.fixture(scope="session")
def tokenizer():
    """A word-level tokenizer with Qwen2-VL's special tokens (at the tiny config's ids) and chat template."""
    vocab = {"[UNK]": 0, **{word: i + 1 for i, word in enumerate(WORDS.split())}, **SPECIAL}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>", *SPECIAL]})
    fast.chat_template = (Path(__file__).parents[1] / "conversion" / "chat_templates" / "qwen2_vl.jinja").read_text()
    return fast
