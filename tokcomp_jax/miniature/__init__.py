"""The paper's experiment in miniature: a tiny Qwen2-VL trained on grounded VQA, then labels ->
mapper -> pruned evaluation against every baseline (scripts/demo.py, configs/miniature.py)."""
