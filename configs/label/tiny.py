"""Relevance labels on random scenes with the tiny Qwen2-VL: `python scripts/label.py --config configs/label/tiny.py`.

`model` names an orbax or HF model directory; empty builds the tiny preset with random weights
(seed `model_seed`), enough to exercise the pipeline end to end.
"""

import ml_collections


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    del arg
    config = ml_collections.ConfigDict()
    config.model = ""
    config.model_seed = 0
    config.source = "scenes"
    config.count = 24
    config.sizes = ((56, 84), (84, 84), (112, 112))  # image sizes in pixels, cycled
    config.seed = 0
    config.buckets = ml_collections.ConfigDict({"text": 16, "visual": 64, "queries": 8})
    config.batch_size = 4
    config.shard_size = 8
    config.method = "gradient"
    config.max_new_tokens = 4
    config.eos_token_id = 0
    config.split = "train"
    return config
