"""The memory plan: weights, KV cache and attention working set per device, checked against what a
model (and XLA's attention) really allocates and the released sizes (evaluate.py's refusal: tests/scripts/test_evaluate_script.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from configs.models import llava_onevision, qwen3_vl
from tokcomp_jax.eval.memory import attention_bytes, bytes_of, memory_plan, prefill_memory
from tokcomp_jax.models import Qwen2VL, Qwen2VLConfig
from tokcomp_jax.models.common.attention import attention_output
from tokcomp_jax.models.common.masks import SegmentMask
from tokcomp_jax.models.families import FAMILIES


def test_one_device_plan_is_what_the_model_allocates():
    config = Qwen2VLConfig.tiny()
    model = Qwen2VL(config, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    allocated = sum(x.nbytes for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    cache = model.language_model.init_cache(batch=3, slots=40, dtype=jnp.bfloat16)
    plan = memory_plan(config, data=1, model=1, dtype="bfloat16", batch_size=3, sequence=40)
    assert plan.weights == allocated
    assert plan.kv_cache == cache.key.nbytes + cache.value.nbytes


def test_released_sizes_split_over_the_mesh():
    """Qwen2-VL-7B in bfloat16: 8.29B parameters on one device; over 8 model devices everything the
    rules split (all but norms, biases and what 8 does not divide) shrinks eightfold; the cache
    splits over data by rows and over model by its 4 x 128 key/value columns."""
    config = Qwen2VLConfig.qwen2_vl_7b()
    one = memory_plan(config, 1, 1, "bfloat16", batch_size=8, sequence=4096)
    assert abs(one.weights / 2 - 8.29e9) / 8.29e9 < 0.01
    assert one.kv_cache == 2 * 28 * 8 * 4096 * 4 * 128 * 2
    split = memory_plan(config, 4, 8, "bfloat16", batch_size=8, sequence=4096)
    assert one.weights / 8 < split.weights < one.weights / 7
    assert split.kv_cache == one.kv_cache // 32
    assert not one.fits(16 * 2**30) and split.fits(16 * 2**30)
    with pytest.raises(ValueError, match="dtype 'float16'"):
        memory_plan(config, 1, 1, "float16", 1, 1)


@pytest.mark.parametrize("family", ["qwen3_vl", "llava_onevision"])  # packed DeepStack / 1-D positions
def test_a_compiled_prefill_holds_the_planned_cache_and_shrinks_with_pruning(family):
    """XLA's analysis of the compiled prefill (abstract weights): the caches it returns are the
    planner's KV cache for one row of tokens + new slots, its arguments hold the LLM's weights,
    and a pruned (shorter) prefill returns a proportionally smaller cache and no more temporaries."""
    config = {"qwen3_vl": qwen3_vl, "llava_onevision": llava_onevision}[family].PRESETS["tiny"]()
    full, pruned = (prefill_memory(config, "bfloat16", tokens, max_new_tokens=4) for tokens in (60, 30))
    assert full.kv_cache == memory_plan(config, 1, 1, "bfloat16", batch_size=1, sequence=64).kv_cache
    assert pruned.kv_cache * 64 == full.kv_cache * 34
    assert full.kv_cache <= full.outputs < full.kv_cache + 2**16  # + last logits, token, positions
    llm = nnx.state(nnx.eval_shape(FAMILIES[family].builder(config, jnp.bfloat16)).language_model)
    assert bytes_of(llm["layers"]) < full.arguments <= bytes_of(llm) + 2**16  # + embeddings, positions, mask
    assert full.weights == memory_plan(config, 1, 1, "bfloat16", batch_size=1, sequence=1).weights
    assert pruned.temporaries <= full.temporaries
    with pytest.raises(ValueError, match="tokens 0"):
        prefill_memory(config, "bfloat16", 0, max_new_tokens=4)


def test_the_planned_xla_scores_are_what_xla_allocates():
    """XLA's memory analysis of one compiled attention (float32 on CPU, where XLA keeps every dtype
    as asked) against attention_bytes("xla"): its temporaries are the scores and probabilities."""
    query = jax.ShapeDtypeStruct((1, 1024, 4, 64), jnp.float32)
    mask = SegmentMask(jax.ShapeDtypeStruct((1, 1024), jnp.int32))
    attend = jax.jit(lambda q, k, v, m: attention_output(q, k, v, m, "xla", False)[0])
    allocated = attend.lower(query, query, query, mask).compile().memory_analysis().temp_size_in_bytes
    planned = attention_bytes("xla", 1, 4, 4, 1024, 64, 4)
    assert 0.9 * planned < allocated < 1.1 * planned, (allocated, planned)


def test_a_16384_patch_image_does_not_fit_a_16_gib_chip_under_xla_and_does_under_splash():
    """Qwen2-VL-7B, one image of 16384 patches (1792 x 1792, 4096 tokens) over a 1 x 2 mesh: XLA's
    vision block holds 8 heads x 16384^2 float32 scores + bfloat16 probabilities (12 GiB) beside
    7.8 GiB of weights; splash holds padded operand copies, and the largest site becomes the first
    LLM layer, whose probabilities are read (the reference, under every kernel)."""
    config = Qwen2VLConfig.qwen2_vl_7b()
    plan = memory_plan(config, 1, 2, "bfloat16", batch_size=1, sequence=4176, kernel="xla", patches=16384)
    scores = 8 * 16384**2 * (4 + 2) + 16384**2
    assert plan.attention["xla"] == scores
    reference = 14 * 4176 * (512 * 6 + 4176 * 2) + 4176**2
    assert plan.attention["splash"] == plan.attention["cudnn"] == reference
    assert not plan.fits(16 * 2**30) and plan.total == plan.weights + plan.kv_cache + scores
    assert plan.fitting_kernels(16 * 2**30) == ["reference", "tiled", "splash", "cudnn"]
    assert "does NOT fit; it would with reference or tiled or splash or cudnn attention" in plan.report(16 * 2**30)
    assert memory_plan(config, 1, 2, "bfloat16", 1, 4176, kernel="splash", patches=16384).fits(16 * 2**30)
    with pytest.raises(ValueError, match="unknown attention kernel 'flash'"):
        memory_plan(config, 1, 2, "bfloat16", 1, 4176, kernel="flash")
