"""Model zoo, training loop, checkpoints and measurement (parameters, MACs, latency)."""

from ensprune.models.architecture import LAYERS, LayerSpec, SequentialNet, build_from_layers
from ensprune.models.checkpoint import load_model, save_model
from ensprune.models.factory import build_from_factory, resolve_factory, source_of
from ensprune.models.measure import (
    PRUNABLE_TYPES,
    Latency,
    ModelMeasurement,
    ParamCounts,
    checkpoint_size_bytes,
    count_macs,
    count_parameters,
    measure,
    measure_latency,
    measure_latency_ms,
    measure_model,
    prunable_parameters,
)
from ensprune.models.training import (
    TrainConfig,
    TrainHistory,
    evaluate,
    predict_logits,
    predict_proba,
    resolve_device,
    train_model,
)
from ensprune.models.zoo import MODELS, build_model, build_seeded

__all__ = [
    "LAYERS",
    "MODELS",
    "PRUNABLE_TYPES",
    "Latency",
    "LayerSpec",
    "ModelMeasurement",
    "ParamCounts",
    "SequentialNet",
    "TrainConfig",
    "TrainHistory",
    "build_from_factory",
    "build_from_layers",
    "build_model",
    "build_seeded",
    "checkpoint_size_bytes",
    "count_macs",
    "count_parameters",
    "evaluate",
    "load_model",
    "measure",
    "measure_latency",
    "measure_latency_ms",
    "measure_model",
    "predict_logits",
    "predict_proba",
    "prunable_parameters",
    "resolve_device",
    "resolve_factory",
    "save_model",
    "source_of",
    "train_model",
]
