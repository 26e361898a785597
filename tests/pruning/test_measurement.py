"""The measurement report of a pruned network."""

from __future__ import annotations

import pytest
import torch

from ensprune.models import build_seeded
from ensprune.pruning import compact, make_method, measure_model, unit_layers


def test_report_of_masked_and_compacted_networks(make_context) -> None:
    dense = build_seeded("model_a", (1, 8, 8), 10, seed=0)
    method = make_method("magnitude", schedule="oneshot")
    masked_result = method.prune(dense, 0.75, make_context(epochs=0))
    keep = {u.name: torch.arange(u.width) < u.width // 2 for u in unit_layers(dense)}
    small = compact(dense, keep)

    base = measure_model(dense, latency=True, repeats=3, warmup=1)
    sparse = measure_model(masked_result.model, reference=dense, latency=False)
    compacted = measure_model(small, reference=dense, latency=True, repeats=3, warmup=1)

    assert base["sparsity"] == 0.0 and base["macs_dense"] == base["macs_effective"]
    assert set(base) >= {"latency_ms_b1", "latency_ms_b256", "file_bytes", "params_nonzero"}
    assert sparse["sparsity"] == pytest.approx(0.75, abs=1e-3)
    assert sparse["macs_dense"] == base["macs_dense"] > sparse["macs_effective"]
    assert sparse["file_bytes"] == pytest.approx(base["file_bytes"], rel=0.01)  # zeros are stored
    assert compacted["macs_dense"] == compacted["macs_effective"] < base["macs_dense"]
    assert compacted["file_bytes"] < base["file_bytes"]
    assert compacted["sparsity"] == pytest.approx(1 - compacted["prunable"] / base["prunable"])
    assert compacted["latency_ms_b256"] > 0
