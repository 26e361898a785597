"""ensprune: compress neural-network ensembles (prune members, select diverse sub-ensembles, report)."""

from ensprune.errors import EnsPruneError

__version__ = "0.1.0"

__all__ = ["EnsPruneError", "__version__"]
