"""Training the miniature Qwen2-VL from scratch on grounded VQA: optax, jitted steps per bucket,
held-out accuracy, resumable orbax checkpoints, a learning-curve PNG.

    model = train_mllm(config, train_examples, {"validation": examples}, workdir)

Batch `step` is drawn from (seed, step) alone (a bucket with probability proportional to its
examples, then examples with replacement), so a resumed run sees exactly the batches an
uninterrupted one would. Batches of larger buckets have fewer rows (about as many visual tokens
as a batch of the smallest), so every step costs about the same.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
from tqdm import tqdm

from tokcomp_jax.files import write_text_atomically
from tokcomp_jax.miniature.samples import Group, Samples, collate, group_indices, miniature_config, token_grid
from tokcomp_jax.models import Qwen2VL
from tokcomp_jax.models.checkpoint import load, save
from tokcomp_jax.models.families import FAMILIES
from tokcomp_jax.models.layout import Buckets
from tokcomp_jax.prune.pruner import prepare_pruning

log = logging.getLogger(__name__)

MODEL_DIR = "model"
METRICS_FILE = "metrics.jsonl"


def model_inputs(config, batch: dict, buckets: Buckets):
    """A collated batch padded to the buckets (one vision block per image or frame): Qwen2VLInputs."""
    inputs, _ = prepare_pruning(config, batch, buckets)
    return inputs


def answer_loss(model: Qwen2VL, inputs, targets: jax.Array) -> jax.Array:
    """Mean cross-entropy of the answer and EOS tokens (targets [B, T], -1 elsewhere)."""
    logits = model(inputs).logits.astype(jnp.float32)
    weights = (targets >= 0).astype(jnp.float32)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(targets, 0))
    return (losses * weights).sum() / jnp.maximum(weights.sum(), 1.0)


@nnx.jit
def train_step(model, optimizer, inputs, targets):
    loss, grads = nnx.value_and_grad(answer_loss)(model, inputs, targets)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def predict_answers(model, inputs) -> jax.Array:
    """Greedy first answer token after each prompt: [B] (prompts right-padded)."""
    logits = model(inputs).logits
    last = inputs.attention_mask.sum(-1) - 1
    return jnp.argmax(logits[jnp.arange(logits.shape[0]), last], axis=-1)


def accuracy(
    model, samples: Samples, text_bucket: int, visual_buckets: Sequence[int], batch_size: int
) -> dict[str, float]:
    """Share of samples whose greedy first token is the reference answer: overall ("accuracy") and per kind."""
    correct, kinds = [], []
    for group, indices in group_indices(samples.examples, visual_buckets).items():
        buckets = group.buckets(text_bucket)
        for start in range(0, len(indices), batch_size):
            chunk = samples.process([samples.examples[i] for i in indices[start : start + batch_size]])
            padded = chunk + [chunk[-1]] * (batch_size - len(chunk))
            answers = np.asarray(predict_answers(model, model_inputs(samples.config, collate(padded), buckets)))
            correct += [int(answers[row]) == s["reference_ids"][0] for row, s in enumerate(chunk)]
            kinds += [s["kind"].split("/")[-1] for s in chunk]
    correct, kinds = np.array(correct), np.array(kinds)
    return {"accuracy": float(correct.mean())} | {k: float(correct[kinds == k].mean()) for k in sorted(set(kinds))}


def optimizer_for(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, config.warmup_steps, config.num_steps)
    return optax.chain(
        optax.clip_by_global_norm(config.grad_clip), optax.adamw(schedule, weight_decay=config.weight_decay)
    )


class StepBatches:
    """The training batch of each step, from (seed, step) only; the next one is prepared in a thread.

    `config.curriculum` ((first step, most visual tokens), ...) admits only examples with at most
    that many visual tokens from that step on: a tiny model trained from scratch learns to read
    the evidence on 4-token images within a few hundred steps, and not in a thousand on 16 or more
    (docs/results.md). An empty curriculum admits everything from the start.
    """

    def __init__(self, samples: Samples, config: ml_collections.ConfigDict):
        self.samples, self.config = samples, config
        pools = group_indices(samples.examples, config.visual_buckets)
        self.groups: list[Group] = list(pools)
        self.pools = [np.array(pool) for pool in pools.values()]
        self.tokens = [np.array([np.prod(token_grid(samples.examples[i])) for i in pool]) for pool in self.pools]
        self.curriculum = sorted(tuple(stage) for stage in config.get("curriculum", ()))
        self._pool = concurrent.futures.ThreadPoolExecutor(1)
        self._next: tuple[int, concurrent.futures.Future] | None = None

    def admitted(self, step: int) -> list[np.ndarray]:
        """Per group, the example indices the curriculum admits at `step`."""
        caps = [most for first, most in self.curriculum if first <= step]
        cap = caps[-1] if caps else np.inf
        admitted = [pool[tokens <= cap] for pool, tokens in zip(self.pools, self.tokens, strict=True)]
        if not any(len(pool) for pool in admitted):
            raise ValueError(f"the curriculum admits no training example at step {step} (at most {cap} visual tokens)")
        return admitted

    def batch_size(self, group: Group) -> int:
        """Rows per batch of a group: about as many visual tokens as `batch_size` rows of the smallest."""
        smallest = min(g.visual for g in self.groups)
        return max(self.config.min_batch_size, self.config.batch_size * smallest // group.visual)

    def _make(self, step: int):
        rng = np.random.default_rng([self.config.seed, step])
        pools = self.admitted(step)
        sizes = np.array([len(pool) for pool in pools])
        which = int(rng.choice(len(pools), p=sizes / sizes.sum()))
        chosen = rng.choice(pools[which], self.batch_size(self.groups[which]))
        batch = collate(self.samples.process([self.samples.examples[i] for i in chosen]), with_answers=True)
        buckets = self.groups[which].buckets(self.config.text_bucket)
        inputs = model_inputs(self.samples.config, batch, buckets)
        targets = np.pad(
            batch["targets"], ((0, 0), (0, buckets.sequence - batch["targets"].shape[1])), constant_values=-1
        )
        return inputs, jnp.asarray(targets)

    def __call__(self, step: int):
        future = self._next[1] if self._next and self._next[0] == step else self._pool.submit(self._make, step)
        self._next = (step + 1, self._pool.submit(self._make, step + 1))
        return future.result()


def train_mllm(
    config: ml_collections.ConfigDict,
    train_examples: Sequence[dict],
    held_out: dict[str, Sequence[dict]],
    workdir,
    stop_at_step: int | None = None,
) -> Qwen2VL:
    """Train (or resume) the miniature in workdir; saves `workdir/model` (tokcomp_jax.load) and returns it.

    `stop_at_step` checkpoints that step and returns early (no model directory); call again to continue.
    """
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    model_config = miniature_config(**config.model)
    model = Qwen2VL(model_config, rngs=nnx.Rngs(config.seed))
    optimizer = nnx.Optimizer(model, optimizer_for(config), wrt=nnx.Param)
    batches = StepBatches(Samples(model_config, train_examples), config)
    held_out = {split: Samples(model_config, examples) for split, examples in held_out.items()}

    manager = ocp.CheckpointManager(workdir / "checkpoints", options=ocp.CheckpointManagerOptions(max_to_keep=2))
    start = manager.latest_step() or 0
    if start:
        _restore(manager, start, model, optimizer)
        log.info("resumed the miniature from step %d", start)
    metrics_path = workdir / METRICS_FILE
    records = [json.loads(line) for line in metrics_path.read_text().splitlines()] if metrics_path.exists() else []
    records = [record for record in records if record["step"] <= start]

    end = config.num_steps if stop_at_step is None else min(stop_at_step, config.num_steps)
    progress = tqdm(range(start, end), initial=start, total=config.num_steps, desc="mllm", unit="step")
    for step in progress:
        loss = train_step(model, optimizer, *batches(step))
        done = step + 1
        if done % config.log_every == 0 or done == config.num_steps:
            record = {"step": done, "loss": float(loss)}
            if done % config.eval_every == 0 or done == config.num_steps:
                for split, samples in held_out.items():
                    scores = accuracy(model, samples, config.text_bucket, config.visual_buckets, config.eval_batch_size)
                    record.update({f"{split}/{name}": value for name, value in scores.items()})
            records.append(record)
            shown = {k.split("/")[0]: round(v, 3) for k, v in record.items() if k == "loss" or k.endswith("/accuracy")}
            progress.set_postfix(shown)
            write_text_atomically(metrics_path, "".join(json.dumps(r) + "\n" for r in records))
        if done % config.checkpoint_every == 0 or done == end:
            manager.save(done, args=ocp.args.Composite(**_state(model, optimizer, ocp.args.StandardSave)))
    manager.wait_until_finished()
    manager.close()
    if end < config.num_steps:
        return model
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    save(workdir / MODEL_DIR, FAMILIES["qwen2_vl"], model_config, "float32", params)
    plot_learning_curve(records, workdir / "learning_curve.png")
    return model


def load_pretrained(path, model_settings: ml_collections.ConfigDict) -> Qwen2VL:
    """A trained miniature (e.g. the shipped one, see its manifest.json); its architecture must be the
    one `model_settings` (config.mllm.model) describes."""
    model = load(path)
    expected = miniature_config(**model_settings)
    if model.config != expected:
        raise ValueError(f"the miniature in {path} has config {model.config}, not the configured {expected}")
    return model


def _state(model, optimizer, wrap):
    return {
        "model": wrap(nnx.to_pure_dict(nnx.state(model, nnx.Param))),
        "optimizer": wrap(nnx.to_pure_dict(nnx.state(optimizer))),
    }


def _restore(manager, step: int, model, optimizer) -> None:
    abstract = {
        name: jax.tree.map(ocp.utils.to_shape_dtype_struct, nnx.to_pure_dict(state))
        for name, state in (("model", nnx.state(model, nnx.Param)), ("optimizer", nnx.state(optimizer)))
    }
    restored = manager.restore(
        step, args=ocp.args.Composite(**{k: ocp.args.StandardRestore(v) for k, v in abstract.items()})
    )
    for module, name in ((model, "model"), (optimizer, "optimizer")):
        state = nnx.state(module, nnx.Param) if name == "model" else nnx.state(module)
        nnx.replace_by_pure_dict(state, restored[name])
        nnx.update(module, state)


def plot_learning_curve(records: list[dict], path: Path) -> Path:
    """Training loss and held-out accuracy against the step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(9, 3.2))
    loss_axis.plot([r["step"] for r in records], [r["loss"] for r in records])
    loss_axis.set(xlabel="step", ylabel="answer cross-entropy", yscale="log", title="training loss")
    for key in sorted({k for r in records for k in r if k.endswith("/accuracy")}):
        points = [(r["step"], r[key]) for r in records if key in r]
        accuracy_axis.plot(*zip(*points, strict=True), marker="o", label=key.split("/")[0])
    accuracy_axis.set(xlabel="step", ylabel="accuracy", ylim=(0, 1), title="held-out accuracy")
    accuracy_axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
