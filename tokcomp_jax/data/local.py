"""The base of this project's TFDS builders: their data is local (files, or made by code), so nothing
downloads and TFDS's "Downloading and preparing dataset ..." lines, which it prints unconditionally,
would only mislead."""

from __future__ import annotations

import tensorflow_datasets as tfds


class LocalBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    def _log_download_bytes(self) -> None:
        """Silent: nothing is downloaded."""

    def _log_download_done(self) -> None:
        """Silent: nothing was downloaded."""
