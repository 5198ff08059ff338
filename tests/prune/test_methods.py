"""The method registry: every entry is usable through PruneConfig, and a bad entry is refused."""

from __future__ import annotations

import pytest

from tokcomp_jax.prune import SCORERS, PruneConfig
from tokcomp_jax.prune.in_llm import METHODS as IN_LLM
from tokcomp_jax.prune.methods import METHODS, Method, usable_without_labels


def test_every_registered_method_is_a_scorer_and_says_where_it_acts():
    assert SCORERS == tuple(METHODS)
    for name, method in METHODS.items():
        config = PruneConfig(scorer=name)
        assert config.inside_llm == (method.where == "llm") == (name in IN_LLM)
    assert "oracle" not in usable_without_labels() and "pdrop" in usable_without_labels()
    with pytest.raises(ValueError, match="unknown scorer 'sparsevlm'"):
        PruneConfig(scorer="sparsevlm")


def test_a_bad_registration_is_refused():
    with pytest.raises(ValueError, match="an input method has a score function"):
        Method("nothing", "nothing", "input")
    with pytest.raises(ValueError, match="needs unknown inputs"):
        Method("odd", "odd", "input", frozenset({"depth map"}), lambda context: None)
