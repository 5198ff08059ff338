"""Your own benchmark in the generic jsonl format, with a released model of any family (chat codec):

    python scripts/evaluate.py --config configs/eval/jsonl.py:bench.jsonl --data_dir DATA \\
        --model MODEL_DIR --scorer attention --keep 0.5,0.25 --out outputs/eval

The variant after the colon is the jsonl file (or a directory holding test.jsonl) under --data_dir.
"""

from ml_collections import ConfigDict


def get_config(path: str = "test.jsonl") -> ConfigDict:
    config = ConfigDict()
    config.codec = "chat"
    config.benchmarks = [ConfigDict(dict(name=path.removesuffix(".jsonl").replace("/", "_"), adapter="jsonl",
                                         data_dir=path))]  # fmt: skip
    config.batch_size = 2
    config.text_buckets = (64, 128, 256)
    config.visual_buckets = (64, 256, 1024)
    config.max_new_tokens = 4
    return config
