"""Per-sample budgets under static shapes: each sample keeps as many visual tokens as its scores need.

    PruneConfig(scorer="attention", keep_ratio=0.25, budget="mass:0.9")

"fixed" (the default): every sample keeps ceil(keep_ratio * n) of its n visual tokens.
"mass:TAU" or "mass:TAU:MIN": a sample keeps the fewest of its top-scored tokens whose share of its
score mass reaches TAU, at least ceil(MIN * n) (and one) and at most ceil(keep_ratio * n). The keep
ratio still sets the static slots (the ceiling), so shapes and compiles are those of the fixed
budget; a sample that needs fewer tokens masks its unused slots, and its prefill FLOPs count only
what it kept. A scorer's mass is its scores as they are (attention probabilities, HAWK's norms) or
their softmax (the mapper's logits); `Method.mass` (prune/methods.py) says which, and a scorer
without one (a ranking, a random draw) has no mass to budget.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from tokcomp_jax.models.layout import VisualLayout
from tokcomp_jax.prune.select import per_sample_keep

MASS_KINDS = ("scores", "softmax")


@dataclasses.dataclass(frozen=True)
class Budget:
    rule: str = "fixed"  # "fixed" or "mass"
    mass: float = 1.0  # TAU: the share of the score mass a sample keeps
    min_ratio: float = 0.0  # MIN: the floor, as a share of the sample's tokens

    @classmethod
    def parse(cls, text: str) -> Budget:
        """'fixed', 'mass:TAU' or 'mass:TAU:MIN' (0 < TAU <= 1, 0 <= MIN <= 1) -> Budget; ValueError naming the form."""
        rule, *values = text.split(":")
        try:
            numbers = [float(v) for v in values]
        except ValueError:
            numbers = None
        if rule == "fixed" and not values:
            return cls()
        if rule == "mass" and numbers is not None and len(numbers) in (1, 2):
            budget = cls("mass", *numbers)
            if 0.0 < budget.mass <= 1.0 and 0.0 <= budget.min_ratio <= 1.0:
                return budget
        raise ValueError(
            f"budget {text!r}: expected 'fixed', 'mass:TAU' or 'mass:TAU:MIN' with 0 < TAU <= 1 and 0 <= MIN <= 1"
        )


def score_mass(scores: jax.Array, mask: jax.Array, kind: str) -> jax.Array:
    """Scores [B, N] -> each sample's share of its score mass per token [B, N] (0 at padding)."""
    if kind == "softmax":
        logits = jnp.where(mask, scores.astype(jnp.float32), -jnp.inf)
        mass = jnp.where(mask, jnp.exp(logits - logits.max(-1, keepdims=True)), 0.0)
    elif kind == "scores":
        mass = jnp.where(mask, jnp.maximum(scores.astype(jnp.float32), 0.0), 0.0)
    else:
        raise ValueError(f"unknown score mass {kind!r}; expected one of {MASS_KINDS}")
    return mass / jnp.maximum(mass.sum(-1, keepdims=True), jnp.finfo(jnp.float32).tiny)


def budget_keep(scores: jax.Array, layout: VisualLayout, keep_ratio: float, budget: Budget, kind: str) -> jax.Array:
    """Tokens each sample keeps [B] under `budget`, within [1, ceil(keep_ratio * n)] (0 without visual tokens)."""
    ceiling = per_sample_keep(keep_ratio, layout.visual_count)
    if budget.rule == "fixed":
        return ceiling
    mass = score_mass(scores, layout.visual_mask, kind)
    reached = jnp.cumsum(-jnp.sort(-mass, axis=-1), axis=-1) >= jnp.float32(budget.mass) - 1e-6
    needed = jnp.argmax(reached, axis=-1) + 1  # the first count whose mass reaches TAU
    needed = jnp.where(reached.any(-1), needed, ceiling)
    floor = jnp.maximum(per_sample_keep(budget.min_ratio, layout.visual_count), 1)
    return jnp.where(layout.visual_count > 0, jnp.clip(needed, jnp.minimum(floor, ceiling), ceiling), 0)
