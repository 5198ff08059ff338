"""Relevance by jax.vjp with attention hooks equals a PyTorch autograd reference on transformers' Qwen2-VL
and Qwen2.5-VL."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conversion.verify import random_batch
from tokcomp_jax.explain import append_answers, relevance
from tokcomp_jax.models import prepare_inputs
from tokcomp_jax.models.families import FAMILIES
from tokcomp_jax.models.layout import Buckets, visual_layout
from tokcomp_jax.models.qwen2_vl.positions import token_types

CASES = {"image": [[("image", 84, 112)]], "video": [[("video", 2, 56, 84)]]}
ANSWER = [7, 19, 3]


def torch_relevance(torch_model, config, batch: dict, answer_positions: np.ndarray, method: str) -> np.ndarray:
    """The same relevance with autograd: attentions kept with retain_grad, one backward per answer token."""
    args = {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in batch.items()}
    types = torch.from_numpy(token_types(batch["input_ids"], config.image_token_id, config.video_token_id))
    out = torch_model(**args, mm_token_type_ids=types, output_attentions=True)
    attentions = out.attentions
    for attention in attentions:
        attention.retain_grad()
    ids = batch["input_ids"][0]
    visual = np.flatnonzero(np.isin(ids, [config.image_token_id, config.video_token_id]))
    length = ids.size
    rows = []
    for position in answer_positions[0]:
        for attention in attentions:
            attention.grad = None
        log_probs = torch.log_softmax(out.logits[0, position - 1], dim=-1)
        log_probs[int(ids[position])].backward(retain_graph=True)
        relevance_matrix = torch.eye(length)
        for attention in attentions:
            if method == "gradient":
                layer_map = (attention.grad * attention).clamp(min=0).mean(1)[0]
            else:
                layer_map = attention.mean(1)[0]
            relevance_matrix = relevance_matrix + layer_map @ relevance_matrix
        rows.append(relevance_matrix[position - 1, visual].detach().numpy())
    return np.mean(rows, axis=0)


def torch_input_gradient(torch_model, config, batch: dict, answer_positions: np.ndarray) -> np.ndarray:
    """|| d log p(y_t) / d e_v ||_2 with autograd: the language model's inputs_embeds swapped for a leaf."""
    leaves = []

    def swap_for_leaf(module, args, kwargs):
        leaves.append(kwargs["inputs_embeds"].detach().requires_grad_(True))
        return args, {**kwargs, "inputs_embeds": leaves[-1]}

    handle = torch_model.model.language_model.register_forward_pre_hook(swap_for_leaf, with_kwargs=True)
    try:
        args = {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in batch.items()}
        types = torch.from_numpy(token_types(batch["input_ids"], config.image_token_id, config.video_token_id))
        logits = torch_model(**args, mm_token_type_ids=types).logits
    finally:
        handle.remove()
    ids = batch["input_ids"][0]
    visual = np.flatnonzero(np.isin(ids, [config.image_token_id, config.video_token_id]))
    rows = []
    for position in answer_positions[0]:
        (gradient,) = torch.autograd.grad(
            torch.log_softmax(logits[0, position - 1], dim=-1)[int(ids[position])], leaves[0], retain_graph=True
        )
        rows.append(gradient[0, visual].norm(dim=-1).numpy())
    return np.mean(rows, axis=0)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("method", ["gradient", "rollout", "input_gradient"])
def test_relevance_matches_pytorch_autograd(tiny_qwen, case, method):
    _, torch_model, model = tiny_qwen
    config = model.config
    batch, answer_positions = append_answers(random_batch(config, CASES[case], seed=2), [ANSWER])
    layout = visual_layout(
        batch["input_ids"], batch["attention_mask"], (config.image_token_id, config.video_token_id),
        Buckets(text=32, visual=64),
    )  # fmt: skip
    inputs = FAMILIES[config.family].prepare_inputs(config, **batch)
    ours = np.asarray(relevance(model, inputs, answer_positions, layout, method))
    if method == "input_gradient":
        reference = torch_input_gradient(torch_model, config, batch, answer_positions)
    else:
        reference = torch_relevance(torch_model, config, batch, answer_positions, method)
    count = reference.size
    np.testing.assert_allclose(ours[0, :count], reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())
    assert (ours[0, count:] == 0).all()


def _setup(tiny_qwen2vl, rows, answers):
    _, _, model = tiny_qwen2vl
    config = model.config
    batch, answer_positions = append_answers(random_batch(config, rows, seed=4), answers)
    layout = visual_layout(
        batch["input_ids"], batch["attention_mask"], (config.image_token_id, config.video_token_id),
        Buckets(text=32, visual=64),
    )  # fmt: skip
    return model, prepare_inputs(config, **batch), answer_positions, layout


def test_hooked_equals_naive_and_padding_changes_nothing(tiny_qwen2vl):
    """Two samples of different lengths with answers of different lengths, then the second one alone."""
    _, _, model = tiny_qwen2vl
    config = model.config
    visual_ids = (config.image_token_id, config.video_token_id)
    buckets = Buckets(text=32, visual=64)
    batch = random_batch(config, [[("image", 56, 84)], [("image", 112, 112)]], seed=4)
    batch, answer_positions = append_answers(batch, [[4, 9], [11, 2, 30, 8]])
    layout = visual_layout(batch["input_ids"], batch["attention_mask"], visual_ids, buckets)
    inputs = prepare_inputs(config, **batch)
    hooked = np.asarray(relevance(model, inputs, answer_positions, layout, "gradient"))
    naive = np.asarray(relevance(model, inputs, answer_positions, layout, "gradient_naive"))
    np.testing.assert_allclose(hooked, naive, rtol=1e-5, atol=1e-7)

    first_patches = int(batch["image_grid_thw"][0].prod())
    real = batch["attention_mask"][1].astype(bool)
    alone = {
        "input_ids": batch["input_ids"][1:, real],
        "attention_mask": batch["attention_mask"][1:, real],
        "pixel_values": batch["pixel_values"][first_patches:],
        "image_grid_thw": batch["image_grid_thw"][1:],
    }
    alone_layout = visual_layout(alone["input_ids"], alone["attention_mask"], visual_ids, buckets)
    single = relevance(model, prepare_inputs(config, **alone), answer_positions[1:], alone_layout, "gradient")
    np.testing.assert_allclose(hooked[1], np.asarray(single)[0], rtol=1e-5, atol=1e-7)


def test_raw_attention_methods_read_one_layer(tiny_qwen2vl):
    model, inputs, answer_positions, layout = _setup(tiny_qwen2vl, [[("image", 56, 84)]], [[5]])
    attention = np.asarray(model(inputs, return_first_layer_attention=True).first_layer_attention)[0].mean(0)
    first = np.asarray(relevance(model, inputs, answer_positions, layout, "first_layer_attention"))[0]
    visual = np.asarray(layout.visual_positions[0])
    visual = visual[visual >= 0]
    row = int(answer_positions[0, 0]) - 1
    np.testing.assert_allclose(first[: visual.size], attention[row, visual], rtol=1e-5, atol=1e-8)
    last = np.asarray(relevance(model, inputs, answer_positions, layout, "last_layer_attention"))
    assert not np.allclose(last, first)


def test_bad_input(tiny_qwen2vl):
    model, inputs, answer_positions, layout = _setup(tiny_qwen2vl, [[("image", 56, 84)]], [[5]])
    with pytest.raises(ValueError, match="unknown relevance method"):
        relevance(model, inputs, answer_positions, layout, "lime")
    batch = random_batch(model.config, [[("image", 56, 84)]], seed=0)
    with pytest.raises(ValueError, match="non-empty answer"):
        append_answers(batch, [[]])
    with pytest.raises(ValueError, match="2 answers for 1 samples"):
        append_answers(batch, [[1], [2]])
