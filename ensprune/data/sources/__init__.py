"""Dataset sources, one module each; importing this package registers them all in ``DATASETS``."""

from __future__ import annotations

from ensprune.data.sources import cifar10, digits, fashion_mnist, mnist, synthetic

__all__ = ["cifar10", "digits", "fashion_mnist", "mnist", "synthetic"]
