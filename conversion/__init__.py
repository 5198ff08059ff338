"""HF/PyTorch checkpoints -> orbax, with parity verification against transformers (imports torch)."""
