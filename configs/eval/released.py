"""A released model of any family on the paper's benchmarks or on your own data, with its own chat
template and processors and buckets up to the largest inputs those processors produce:

    python scripts/evaluate.py --config configs/eval/released.py:images --data_dir /data/benchmarks \\
        --model checkpoints/qwen2-vl-7b --scorer attention --keep 0.5,0.25,0.111 --out outputs/eval-7b

Variants (after the colon): `images` (the image benchmarks of configs/eval/images.py), `videos`
(MVBench and Video-MME at 16 frames, configs/eval/videos.py) or a jsonl file (or a directory holding
test.jsonl) under --data_dir, in configs/eval/jsonl.py's format.

Visual tokens of one input at the released processors' defaults (docs/results.md, "Visual tokens per
input"): Qwen2-VL and Qwen2.5-VL up to 16384 (max_pixels 12845056 = 16384 x 28 x 28; 6724 at 2304 x
2304 pixels, 1944 at 1500 x 1000), Qwen3-VL up to 16384 (longest_edge 16777216 = 16384 x 32 x 32),
LLaVA-OneVision up to ~8.7k (anyres: 7290 for any square image of 2304 pixels or more, 8613 at 1500 x
1000), VILA1.5 196 per image; 16 frames of 1280 x 720: Qwen2-VL and Qwen2.5-VL 9568, Qwen3-VL 7040,
LLaVA-OneVision 3136. A sample holding more than the largest bucket is refused by name, so the buckets
reach 16384; each bucket compiles once per run and a batch pads to its own bucket only. Smaller images
(or `max_pixels` in the checkpoint's preprocessor_config.json) keep a run in the small buckets.

Answer lengths: every benchmark here is scored on a short reply (a word or phrase, yes / no, an
option letter; the rules in tokcomp_jax/eval/official.py), so 16 new tokens; your own jsonl data 32
(raise it with `--config.max_new_tokens` for longer reference answers). A batch of 4 at the largest
bucket holds 4 x 17424 tokens of KV cache: for Qwen2-VL-7B in bf16 3.72 GiB beside 15.44 GiB of
weights (`python scripts/memory_plan.py --preset qwen2_vl:7b --mesh 1x1 --batch 4 --sequence 17424`).
scripts/evaluate.py runs that plan before any weight loads and refuses a batch that does not fit:
lower `--config.batch_size` or shard the model (`--mesh_model N`).
"""

from ml_collections import ConfigDict

from configs.eval import images, videos

VARIANTS = ("images", "videos")  # anything else is a jsonl file under --data_dir


def get_config(variant: str = "images") -> ConfigDict:
    if variant == "images":
        config = images.get_config()
        config.max_new_tokens = 16
    elif variant == "videos":
        config = videos.get_config()
        config.max_new_tokens = 16
    else:
        config = ConfigDict()
        config.codec = "chat"
        config.benchmarks = [ConfigDict(dict(name=variant.removesuffix(".jsonl").replace("/", "_"), adapter="jsonl",
                                             data_dir=variant))]  # fmt: skip
        config.max_new_tokens = 32
    config.batch_size = 4
    config.text_buckets = (64, 128, 256, 512, 1024)
    config.visual_buckets = (256, 1024, 2048, 4096, 8192, 16384)
    return config
