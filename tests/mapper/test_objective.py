"""The sparse target, the KL loss and the quality metrics."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from tokcomp_jax.mapper.objective import kl_divergence, quality_metrics, sparse_target, spearman, top_k_overlap


def test_sparse_target_keeps_the_top_half_of_real_tokens():
    relevance = jnp.array([[0.1, 0.4, 0.2, 0.3, 9.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    mask = jnp.array([[True, True, True, True, False], [True, True, True, False, False]])
    target = np.asarray(sparse_target(relevance, mask, 0.5))
    np.testing.assert_allclose(target[0], [0, 4 / 7, 0, 3 / 7, 0], rtol=1e-6)  # padding's 9.0 is ignored
    np.testing.assert_allclose(target[1], [1, 0, 0, 0, 0])  # ceil(0.5 * 3) = 2 kept, one of them 0


def test_sparse_target_of_all_zero_relevance_is_uniform_over_kept_tokens():
    target = np.asarray(sparse_target(jnp.zeros((1, 4)), jnp.ones((1, 4), bool), 0.5))
    np.testing.assert_allclose(target, [[0.5, 0.5, 0, 0]])


def test_kl_is_zero_at_the_target_and_positive_elsewhere():
    target = jnp.array([[0.5, 0.5, 0.0]])
    assert float(kl_divergence(target, jnp.log(jnp.array([[0.5, 0.5, 1e-9]])))[0]) < 1e-6
    np.testing.assert_allclose(kl_divergence(target, jnp.log(jnp.array([[0.25, 0.25, 0.5]]))), [np.log(2)], rtol=1e-6)


def test_metrics():
    labels = np.array([4.0, 3.0, 2.0, 1.0])
    assert top_k_overlap(labels, labels, 0.5) == 1.0
    assert top_k_overlap(-labels, labels, 0.5) == 0.0
    assert top_k_overlap(np.array([4.0, 1.0, 3.0, 2.0]), labels, 0.5) == 0.5
    assert spearman(-labels, labels) == -1.0
    assert spearman(np.ones(4), labels) == 0.0
    metrics = quality_metrics([labels, labels[:3]], [labels, labels[:3]])
    assert metrics == {"overlap@0.5": 1.0, "overlap@0.25": 1.0, "overlap@0.111": 1.0, "spearman": 1.0}
