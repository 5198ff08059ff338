"""The miniature reproduction (issues 7, 16): `python scripts/demo.py --config configs/miniature.py[:full]`.

Variants: `demo` (default; `make demo`: starts from the shipped MLLM in assets/miniature-mllm,
which the full run produced), `full` (trains the MLLM from scratch; the run whose table the
README shows) and `test` (a few steps of a tiny model, for the tests). Every field can be
overridden on the command line, e.g. `--config.seed=1` or, to retrain the demo's MLLM from
scratch, `--config.mllm.pretrained=`.
"""

from pathlib import Path

import ml_collections

VARIANTS = ("demo", "full", "test")


def get_config(variant: str = "demo") -> ml_collections.ConfigDict:
    if variant not in VARIANTS:
        raise ValueError(f"unknown miniature variant {variant!r}; choose one of {VARIANTS}")
    config = ml_collections.ConfigDict()
    config.seed = 0

    # Datasets (builder config names): cluttered digits; train, validation*, test, test_2x, test_clips, test_4x.
    config.data = ml_collections.ConfigDict()
    config.data.config = {"demo": "demo", "full": "full", "test": "tiny"}[variant]
    config.data.builders = ("cluttered_digits_vqa",)

    config.mllm = ml_collections.ConfigDict()
    # A trained miniature to start from instead of training one (its manifest.json says how it was
    # made); "" trains from scratch, as the full run does.
    config.mllm.pretrained = ""
    config.mllm.seed = config.get_ref("seed")  # --config.seed=N redraws the data and the model's init
    config.mllm.model = ml_collections.ConfigDict(
        {
            "width": 128, "layers": 8, "heads": 4, "kv_heads": 2, "mlp": 256,
            "vision_width": 64, "vision_depth": 2, "vision_heads": 2,
        }
    )  # fmt: skip
    config.mllm.text_bucket = 16  # vision start / end, up to 12 question words, answer, EOS
    # 2..3 tokens per side (the training curriculum's small images), 4..6 (test), 8..12 (2x), 16..24 (4x, evaluated
    # only); clips 4 x 3 x 3
    config.mllm.visual_buckets = (9, 36, 144, 576)
    config.mllm.batch_size = 128  # rows of a smallest-bucket batch; larger buckets have fewer rows
    config.mllm.min_batch_size = 8
    config.mllm.eval_batch_size = 32
    config.mllm.num_steps = 5000
    # (first step, most visual tokens): 2x2 images first, then 3x3, 4x4, the test size, everything
    config.mllm.curriculum = ((0, 4), (400, 9), (800, 16), (1300, 36), (1800, 144))
    config.mllm.learning_rate = 2e-3
    config.mllm.warmup_steps = 200
    config.mllm.weight_decay = 0.01
    config.mllm.grad_clip = 1.0
    config.mllm.log_every = 25
    config.mllm.eval_every = 500
    config.mllm.checkpoint_every = 500
    # Relevance labels: training images of the test size (one bucket), then the oracle on the test splits.
    config.labels = ml_collections.ConfigDict()
    config.labels.train_count = 3000
    config.labels.tokens = (16, 36)
    config.labels.method = "gradient"
    config.labels.batch_size = 16
    config.labels.shard_size = 256

    # Overrides of configs/mapper/paper.py for this run, then one mapper per variant, on config.labels.method's
    # training labels unless the variant names other `labels`.
    config.mapper = ml_collections.ConfigDict({"num_steps": 3000, "batch_size": 64, "checkpoint_every": 1000})
    config.mapper.model = ml_collections.ConfigDict()
    config.mapper_variants = ml_collections.ConfigDict(
        {
            "mapper": {"model": {"layout": "sequence", "input_channels": "mean"}},  # the paper
            "mapper_grid": {"model": {"layout": "grid", "input_channels": "heads"}},
            # the v2 (scorer mapper_v2): per-head input, layer-1 attention as its prior, a learned correction,
            # trained on input-gradient labels (`labels`: the relevance method of a variant's training labels;
            # the best measured, docs/results.md)
            "mapper_v2": {
                "labels": "input_gradient",
                "model": {"layout": "sequence", "input_channels": "heads", "prior": "attention"},
            },
        }
    )

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 16
    config.eval.pictures = 6  # per evaluation split
    config.eval.prune_layer = 2

    if variant == "full":
        config.mllm.num_steps = 6000
        config.mapper.num_steps = 1500
    if variant == "demo":  # the full run's MLLM as shipped; fewer samples and mapper steps, the paper mapper only
        config.mllm.pretrained = str(Path(__file__).parents[1] / "assets" / "miniature-mllm")
        config.labels.train_count = 1000
        config.mapper.num_steps = 800
        del config.mapper_variants["mapper_grid"]
    if variant == "test":
        config.labels.train_count = 1500
        config.labels.tokens = (9, 36)
        config.mllm.model.update({"width": 32, "layers": 4, "heads": 2, "kv_heads": 1, "mlp": 64, "vision_width": 16})
        config.mllm.visual_buckets = (36,)  # one bucket: fewer compiles
        config.mllm.curriculum = ()
        config.mllm.batch_size = config.mllm.eval_batch_size = config.mllm.min_batch_size = 4
        config.mllm.num_steps = 4
        config.mllm.warmup_steps = 1
        config.mllm.log_every = config.mllm.eval_every = config.mllm.checkpoint_every = 2
        config.labels.batch_size = config.eval.batch_size = 4
        config.labels.shard_size = 4
        config.mapper.update({"num_steps": 4, "batch_size": 4, "checkpoint_every": 2, "log_every": 2, "eval_every": 2})
        config.mapper.model.channels = (4, 4, 4, 4, 4)
        config.mapper.data = {"correct_only": False}  # a 4-step model answers nothing right
        config.eval.pictures = 1
        config.eval.prune_layer = 1
    return config
