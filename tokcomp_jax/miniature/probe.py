"""Linear probes of the merged visual tokens: does the vision tower's output say what a cell holds?

    scores = probe_visual_tokens(model, examples, text_bucket=16, visual_buckets=(36, 144))

Each evidence token of a `boxed_digit` question (cluttered digits) is labelled with the digit
(the answer) and its frame colour (the question's colour word); a multinomial logistic
regression is fitted on the tokens of half the images and scored on the other half. High
probe accuracy with a low VQA accuracy says the LLM, not the vision tower, is what fails.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from flax import nnx

from tokcomp_jax.miniature.evaluate import image_of
from tokcomp_jax.miniature.samples import Samples, collate, group_indices
from tokcomp_jax.miniature.train import model_inputs

PROBED_KINDS = ("boxed_digit", "clip_boxed_digit")


@nnx.jit
def _embeddings(model, inputs):
    return model.embed(inputs)


def evidence_token_features(model, examples: Sequence[dict], text_bucket: int, visual_buckets, batch_size: int = 32):
    """(features [n, D] of the evidence token of each boxed_digit question, digit [n], colour word [n], image [n])."""
    chosen = [e for e in examples if e["kind"] in PROBED_KINDS]
    samples = Samples(model.config, chosen)
    features, digits, colours, images = [], [], [], []
    for group, indices in group_indices(chosen, visual_buckets).items():
        buckets = group.buckets(text_bucket)
        for start in range(0, len(indices), batch_size):
            chunk = samples.process([chosen[i] for i in indices[start : start + batch_size]])
            inputs = model_inputs(model.config, collate(chunk), buckets)
            embeds = np.asarray(_embeddings(model, inputs))
            is_visual = np.asarray(inputs.visual_token_mask)
            for row, sample in enumerate(chunk):
                visual = embeds[row][is_visual[row]]
                (token,) = np.flatnonzero(sample["evidence"])
                features.append(visual[token])
                words = [chosen[indices[start + row]][key] for key in ("question", "answer")]
                digits.append(words[1])
                colours.append(words[0].split()[-1])  # "which digit is boxed in <colour>"
                images.append(image_of(sample["sample_id"]))
    return np.stack(features), np.array(digits), np.array(colours), np.array(images)


def probe_visual_tokens(model, examples: Sequence[dict], text_bucket: int, visual_buckets, seed: int = 0) -> dict:
    """Held-out accuracy of linear probes for the digit and the frame colour of evidence tokens, with
    the majority-class rate beside each (what a probe that learned nothing scores)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    features, digits, colours, images = evidence_token_features(model, examples, text_bucket, visual_buckets)
    unique = np.unique(images)
    held_out = np.isin(images, np.random.default_rng(seed).permutation(unique)[: len(unique) // 2])
    scaler = StandardScaler().fit(features[~held_out])
    x_train, x_test = scaler.transform(features[~held_out]), scaler.transform(features[held_out])
    scores = {"tokens": int(len(features))}
    for name, labels in (("digit", digits), ("colour", colours)):
        probe = LogisticRegression(max_iter=2000, C=1.0).fit(x_train, labels[~held_out])
        majority = max(np.mean(labels[held_out] == value) for value in np.unique(labels))
        scores[name] = {"accuracy": float(probe.score(x_test, labels[held_out])), "majority": float(majority)}
    return scores
