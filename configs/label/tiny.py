"""Relevance labels: `python scripts/label.py --config configs/label/tiny.py --out DIR`.

source "scenes": random scenes with the tiny Qwen2-VL (`model` empty builds the tiny preset with
random weights, seed `model_seed`), enough to exercise the pipeline end to end.
source "benchmark": your own data, read by an eval adapter (`adapter`, e.g. "jsonl" for
tokcomp_jax/data/jsonl_vqa.py's format, from `data_dir`), with a released model of any family
(`model`, its tokenizer from `tokenizer` or the model directory). Each sample's label is for the
model's own greedy answer; `answer_correct` records whether it matches the reference (the paper
trains the mapper on the correct ones).
"""

import ml_collections


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    del arg
    config = ml_collections.ConfigDict()
    config.model = ""
    config.model_seed = 0
    config.source = "scenes"  # or "benchmark"
    config.count = 24
    config.sizes = ((56, 84), (84, 84), (112, 112))  # image sizes in pixels, cycled
    config.seed = 0
    config.adapter = "jsonl"  # source "benchmark": tokcomp_jax.eval.adapters name
    config.data_dir = ""
    config.tokenizer = ""  # default: the model directory (VILA1.5: its llm/)
    config.buckets = ml_collections.ConfigDict({"text": 16, "visual": 64, "queries": 8})
    config.batch_size = 4
    config.shard_size = 8
    config.method = "gradient"
    config.max_new_tokens = 4
    config.eos_token_id = 0  # source "scenes"; a chat model's comes from its tokenizer
    config.split = "train"
    return config
