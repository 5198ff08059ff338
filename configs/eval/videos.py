"""The video benchmarks, from their local copies under --data_dir (16 frames sampled uniformly):

python scripts/evaluate.py --config configs/eval/videos.py --data_dir /data/benchmarks --model M ...
"""

from ml_collections import ConfigDict


def get_config() -> ConfigDict:
    config = ConfigDict()
    config.codec = "chat"
    config.benchmarks = [
        ConfigDict(dict(name="mvbench", adapter="mvbench", data_dir="MVBench")),
        ConfigDict(dict(name="video_mme", adapter="video_mme", data_dir="Video-MME")),
    ]
    config.batch_size = 4
    config.text_buckets = (128, 256, 512)
    config.visual_buckets = (256, 1024, 4096)
    config.max_new_tokens = 8
    return config
