"""Relevance labels of a released model (any family) on your own data, for training its mapper:

    python scripts/label.py --config configs/label/released.py --out outputs/labels-7b \\
        --config.model=checkpoints/qwen2-vl-7b --config.data_dir=my_data/train.jsonl

`data_dir` is a benchmark in the generic jsonl + media format (tokcomp_jax/data/jsonl_vqa.py), or any
eval adapter's data with `--config.adapter`. Each sample is labelled for the model's own greedy answer;
`answer_correct` records whether it matches the reference, and the mapper trains on the correct ones
(configs/mapper/paper.py's `data.correct_only`, as the paper).

One bucket for the whole run (`buckets`): every sample is padded to it, and one holding more visual or
text tokens is refused by name. 4096 visual tokens hold an image of up to 3.2M pixels in Qwen2-VL and
Qwen2.5-VL (4096 x 28 x 28, e.g. 1792 x 1792), 4.2M in Qwen3-VL (4096 x 32 x 32), a LLaVA-OneVision
image up to about 768 x 768 (3645 tokens; 640 x 480 gives 2889, 384 x 384 1458) and any VILA1.5 image
(196); resize larger images for labelling (on the miniature the mapper scores 4x the tokens it was
trained on as well, docs/miniature.md) or raise `--config.buckets.visual`. Memory grows as the bucket
squared: the relevance holds a float32 [tokens, tokens] map per decoder layer for each of the
`max_new_tokens` answer slots (every slot is computed, used or not), 8 x 28 x 4352^2 x 4 bytes = 15.8
GiB for a 28-layer model at this bucket, one sample a batch; short answers (8 slots) keep it there, and
`--config.buckets.visual=2048` cuts it to 4.4 GiB. The README ("What labelling and a mapper cost")
estimates the time.

The mapper's validation split: a label dataset holds the one split this run writes (`split`, "train"),
and train_mapper.py reads its held-out splits (`config.data.eval_splits`, default "validation") from the
same dataset. Hold out a slice of the train split with TFDS's split slicing:

    python scripts/train_mapper.py --config configs/mapper/paper.py --workdir outputs/mapper-7b \\
        --config.data.dir=outputs/labels-7b/tfds --config.data.family=qwen2_vl \\
        --config.data.train_split="train[10%:]" --config.data.eval_splits="('train[:10%]',)"

(the two slices are disjoint and fixed; `results.json` reports the mapper's KL, top-k overlap and
Spearman correlation on the held-out 10% under the name `train[:10%]`). `--config.data.eval_splits="()"`
trains without held-out metrics, as the README's journey does on its four tiny samples.
"""

import ml_collections

from configs.label import tiny


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    del arg
    config = tiny.get_config()
    config.source = "benchmark"
    config.adapter = "jsonl"
    config.model = ""  # required: a converted or HF model directory
    config.data_dir = ""  # required: e.g. my_data/train.jsonl
    config.buckets = ml_collections.ConfigDict({"text": 256, "visual": 4096, "queries": 32})
    config.batch_size = 1
    config.shard_size = 64
    config.max_new_tokens = 8
    config.method = "gradient"
    config.split = "train"
    return config
