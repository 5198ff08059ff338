"""Mapper training: `python scripts/train_mapper.py --config configs/mapper/paper.py[:variant] --workdir W`.

Variants (after the colon, comma-separated): `heads` (every head as an input channel), `grid`
(3x3 convolutions on each image's token grid), `v2` (the mapper v2, scorer `mapper_v2`: every head as
an input channel and layer-1 attention as its prior, tokcomp_jax/mapper/model.py), `synthetic` (generate synthetic labels with a
known local rule into the workdir instead of reading config.data.dir), `runlocal` (a few
hundred steps, for tests and laptops). Example: `--config configs/mapper/paper.py:grid,synthetic`.
"""

import ml_collections

VARIANTS = ("heads", "grid", "v2", "synthetic", "runlocal")


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    variants = {name for name in arg.split(",") if name}
    unknown = variants - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown mapper config variants {sorted(unknown)}; known: {VARIANTS}")
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.dir = ""  # a label dataset written by scripts/label.py
    config.data.family = ""  # the MLLM family the labels come from (checked when pruning)
    config.data.train_split = "train"
    config.data.eval_splits = ("validation",)
    config.data.correct_only = True  # train on samples the MLLM answered correctly, as the paper
    config.data.buckets = (64, 256, 1024, 4096)

    config.data.synthetic = ml_collections.ConfigDict()
    config.data.synthetic.enabled = "synthetic" in variants
    config.data.synthetic.num_heads = 4
    config.data.synthetic.train = (4000, 3, 8)  # (samples, min side, max side) in tokens
    config.data.synthetic.validation = (500, 3, 8)
    config.data.synthetic.validation_2x = (500, 16, 20)  # at least 2x the largest training side
    if config.data.synthetic.enabled:
        config.data.eval_splits = ("validation", "validation_2x")

    config.model = ml_collections.ConfigDict()
    config.model.layout = "grid" if "grid" in variants else "sequence"
    config.model.input_channels = "heads" if variants & {"heads", "v2"} else "mean"
    config.model.prior = "attention" if "v2" in variants else "none"
    config.model.channels = (32, 64, 128, 256, 512)
    config.model.kernel_size = 3

    config.batch_size = 128
    config.num_steps = 3000
    config.learning_rate = 1e-3
    config.warmup_steps = 100
    config.weight_decay = 1e-4
    config.grad_clip = 1.0
    config.target_keep = 0.5  # the target keeps the top half of the relevance, renormalised

    config.log_every = 50
    config.eval_every = 500
    config.checkpoint_every = 500
    config.keep_checkpoints = 2

    if "runlocal" in variants:
        config.batch_size = 32
        config.num_steps = 200
        config.log_every = config.eval_every = config.checkpoint_every = 50
        config.data.synthetic.train = (512, 3, 8)
        config.data.synthetic.validation = (64, 3, 8)
        config.data.synthetic.validation_2x = (64, 16, 20)
    return config
