"""The miniature reproduction's test splits through the generic jsonl adapter:

    python scripts/evaluate.py --config configs/eval/miniature.py --data_dir outputs/miniature-full/jsonl \\
        --model outputs/miniature-full/mllm/model --mapper outputs/miniature-full/mappers/mapper/mapper \\
        --keep 0.5,0.25,0.111 --scorer mapper --out outputs/miniature-full/eval

`scripts/demo.py` exports the splits to OUT/jsonl. One-word answers: the first generated token.
"""

from ml_collections import ConfigDict


def get_config(splits: str = "test,test_2x") -> ConfigDict:
    """`splits`: the exported splits to evaluate, comma-separated (`configs/eval/miniature.py:test` for test alone)."""
    config = ConfigDict()
    config.codec = "miniature"
    config.benchmarks = [
        ConfigDict(dict(name=split, adapter="jsonl", data_dir=f"{split}.jsonl")) for split in splits.split(",")
    ]
    config.batch_size = 16
    config.text_buckets = (32,)
    config.visual_buckets = (36, 144, 576)
    config.max_new_tokens = 1
    return config
