"""Training loop for the mapper: optax, jitted steps, held-out metrics, resumable orbax checkpoints.

    train(config, workdir)  # config: configs/mapper/paper.py; resumes from workdir if it holds checkpoints

A checkpoint holds the parameters, the optimizer state and the step; the step alone fixes the
data position (LabelBatches has a constant number of batches per epoch), and the position is
saved beside it and checked on resume. A run resumed from any checkpoint ends with exactly the
parameters of an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
from tqdm import tqdm

from tokcomp_jax.data import labels
from tokcomp_jax.mapper.checkpoint import save_mapper
from tokcomp_jax.mapper.data import LabelBatches
from tokcomp_jax.mapper.inputs import MapperBatch
from tokcomp_jax.mapper.model import Mapper, MapperConfig, log_probabilities
from tokcomp_jax.mapper.objective import kl_divergence, quality_metrics, sparse_target

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"


def optimizer_for(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """AdamW with linear warm-up, cosine decay and global-norm clipping."""
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, config.warmup_steps, max(config.num_steps, config.warmup_steps + 1)
    )
    return optax.chain(
        optax.clip_by_global_norm(config.grad_clip), optax.adamw(schedule, weight_decay=config.weight_decay)
    )


def loss_fn(mapper: Mapper, batch: MapperBatch, relevance: jax.Array, weights: jax.Array, target_keep: float):
    """Weighted mean over samples of KL(sparse target || mapper prediction)."""
    log_probs = log_probabilities(mapper(batch), batch.mask)
    per_sample = kl_divergence(sparse_target(relevance, batch.mask, target_keep), log_probs)
    return (per_sample * weights).sum() / jnp.maximum(weights.sum(), 1.0)


@nnx.jit(static_argnames="target_keep")
def train_step(mapper, optimizer, batch, relevance, weights, target_keep: float):
    loss, grads = nnx.value_and_grad(loss_fn)(mapper, batch, relevance, weights, target_keep)
    optimizer.update(mapper, grads)
    return loss


@nnx.jit(static_argnames="target_keep")
def eval_step(mapper, batch, relevance, weights, target_keep: float):
    """Logits [B, N] and the batch's summed KL."""
    logits = mapper(batch)
    kl = kl_divergence(sparse_target(relevance, batch.mask, target_keep), log_probabilities(logits, batch.mask))
    return logits, (kl * weights).sum()


def evaluate(mapper: Mapper, data: LabelBatches, target_keep: float) -> dict[str, float]:
    """Held-out KL, top-k overlap with the labels' top-k and Spearman correlation, over every example."""
    scores, targets, kl_sum = [], [], 0.0
    for indices in data.in_order():
        batch, relevance, weights = data.batch(indices)
        logits, kl = eval_step(mapper, batch, relevance, weights, target_keep)
        logits = np.asarray(logits)
        kl_sum += float(kl)
        for row, index in enumerate(indices):
            count = data.examples[index]["relevance"].size
            scores.append(logits[row, :count])
            targets.append(data.examples[index]["relevance"])
    return {"kl": kl_sum / len(scores), **quality_metrics(scores, targets), "samples": len(scores)}


def load_examples(config: ml_collections.ConfigDict, split: str) -> list[dict]:
    examples = labels.read_split(config.data.dir, split)
    if config.data.correct_only:
        examples = [example for example in examples if example["answer_correct"]]
    if not examples:
        raise ValueError(f"split {split!r} of {config.data.dir} has no usable examples")
    return examples


def mapper_config(config: ml_collections.ConfigDict, num_heads: int) -> MapperConfig:
    return MapperConfig(
        layout=config.model.layout,
        input_channels=config.model.input_channels,
        num_heads=num_heads,
        channels=tuple(config.model.channels),
        kernel_size=config.model.kernel_size,
        family=config.data.family or None,
        prior=config.model.prior,
    )


def _batches(config, examples) -> LabelBatches:
    return LabelBatches(
        examples,
        layout=config.model.layout,
        kernel_size=config.model.kernel_size,
        buckets=config.data.buckets,
        batch_size=config.batch_size,
        seed=config.seed,
    )


# Config fields added after runs were recorded, with the value a run recorded without them had.
ADDED_FIELDS = {("model", "prior"): "none"}


def _check_same_config(path: Path, config: ml_collections.ConfigDict) -> None:
    """Record the run's config; refuse to resume a run that was started with a different one (a field
    added since the run was recorded counts as its old value)."""
    current = json.loads(config.to_json())
    if path.exists():
        recorded = json.loads(path.read_text())
        for (section, field), value in ADDED_FIELDS.items():
            recorded.get(section, {}).setdefault(field, value)
        if recorded != current:
            raise ValueError(f"{path.parent} holds a run with another config ({path}); use a fresh workdir")
    path.write_text(json.dumps(current, indent=2) + "\n")


def _log_metrics(path: Path, record: dict) -> None:
    with path.open("a") as file:
        file.write(json.dumps(record) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop log lines of steps after `step` (written by a run that was killed before checkpointing them)."""
    if path.exists():
        kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))


def train(config: ml_collections.ConfigDict, workdir: str | Path, stop_at_step: int | None = None) -> dict:
    """Train (or resume) a mapper in workdir; returns the final held-out metrics per split and, under
    "train", the KL of this invocation's first and last step.

    `stop_at_step` ends the run early after checkpointing that step (to split a run across
    preemptible jobs); calling train again continues it.
    """
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    train_data = _batches(config, load_examples(config, config.data.train_split))
    eval_data = {split: _batches(config, load_examples(config, split)) for split in config.data.eval_splits}
    num_heads = train_data.examples[0]["features"].shape[0]
    mapper = Mapper(mapper_config(config, num_heads), rngs=nnx.Rngs(config.seed))
    optimizer = nnx.Optimizer(mapper, optimizer_for(config), wrt=nnx.Param)

    manager = ocp.CheckpointManager(
        workdir / "checkpoints",
        options=ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints, save_interval_steps=1),
    )
    _check_same_config(workdir / CONFIG_FILE, config)
    start = 0
    if manager.latest_step() is not None:
        start = _restore(manager, mapper, optimizer, train_data)
        log.info("resumed from step %d", start)
    metrics_path = workdir / METRICS_FILE
    _truncate_metrics(metrics_path, start)

    end = config.num_steps if stop_at_step is None else min(stop_at_step, config.num_steps)
    plan, plan_epoch, losses = None, None, {}
    progress = tqdm(range(start, end), initial=start, total=config.num_steps, desc="mapper training", unit="step")
    for step in progress:
        epoch, position = divmod(step, train_data.batches_per_epoch)
        if plan_epoch != epoch:
            plan, plan_epoch = train_data.epoch_plan(epoch), epoch
        loss = train_step(mapper, optimizer, *train_data.batch(plan[position]), config.target_keep)
        done = step + 1
        logged = done % config.log_every == 0 or done == config.num_steps
        if logged or done in (start + 1, end):  # shown: every logged step, and this invocation's first and last
            losses[done] = float(loss)
            progress.set_postfix(train_kl=f"{losses[done]:.4f}")
        if logged:
            record = {"step": done, "epoch": epoch, "train_kl": losses[done]}
            if done % config.eval_every == 0 or done == config.num_steps:
                for split, data in eval_data.items():
                    record.update({f"{split}/{k}": v for k, v in evaluate(mapper, data, config.target_keep).items()})
            _log_metrics(metrics_path, record)
        if done % config.checkpoint_every == 0 or done == end:
            _save(manager, done, mapper, optimizer, train_data)
    manager.wait_until_finished()
    manager.close()
    if end < config.num_steps:
        return {}
    save_mapper(workdir / "mapper", mapper)
    results = {split: evaluate(mapper, data, config.target_keep) for split, data in eval_data.items()}
    if losses:  # this invocation's training loss, first and last step (W/metrics.jsonl has every logged one)
        first, last = min(losses), max(losses)
        results["train"] = {"first_step": first, "first_kl": losses[first], "last_step": last, "last_kl": losses[last]}
    (workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _save(manager, step, mapper, optimizer, data: LabelBatches) -> None:
    epoch, position = divmod(step, data.batches_per_epoch)
    manager.save(
        step,
        args=ocp.args.Composite(
            mapper=ocp.args.StandardSave(nnx.to_pure_dict(nnx.state(mapper, nnx.Param))),
            optimizer=ocp.args.StandardSave(nnx.to_pure_dict(nnx.state(optimizer))),
            data=ocp.args.JsonSave({"epoch": epoch, "batch_in_epoch": position, "seed": data.seed}),
        ),
    )


def _restore(manager, mapper, optimizer, data: LabelBatches) -> int:
    step = manager.latest_step()
    abstract = {
        name: jax.tree.map(ocp.utils.to_shape_dtype_struct, nnx.to_pure_dict(state))
        for name, state in (("mapper", nnx.state(mapper, nnx.Param)), ("optimizer", nnx.state(optimizer)))
    }
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            mapper=ocp.args.StandardRestore(abstract["mapper"]),
            optimizer=ocp.args.StandardRestore(abstract["optimizer"]),
            data=ocp.args.JsonRestore(),
        ),
    )
    expected = dict(zip(("epoch", "batch_in_epoch"), divmod(step, data.batches_per_epoch), strict=True))
    saved = {key: restored.data[key] for key in expected}
    if saved != expected or restored.data["seed"] != data.seed:
        raise ValueError(
            f"checkpoint at step {step} was written for data position {restored.data}, but this dataset and "
            f"seed put step {step} at {expected} (seed {data.seed}); use a fresh workdir for different data"
        )
    mapper_state, optimizer_state = nnx.state(mapper, nnx.Param), nnx.state(optimizer)
    nnx.replace_by_pure_dict(mapper_state, restored.mapper)
    nnx.replace_by_pure_dict(optimizer_state, restored.optimizer)
    nnx.update(mapper, mapper_state)
    nnx.update(optimizer, optimizer_state)
    return step
