"""Model presets as ml_collections configs, one module per family."""

from ml_collections import ConfigDict


def preset_config(presets: dict, variant: str, family: str) -> ConfigDict:
    """The ConfigDict of preset `variant` (a frozen config's to_dict), or a clear error naming the choices."""
    if variant not in presets:
        raise ValueError(f"unknown {family} preset {variant!r}; choose one of {sorted(presets)}")
    return ConfigDict(presets[variant]().to_dict())
