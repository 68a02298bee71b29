"""The shipped ZKML models, built deterministically as ONNX from fixed weights.

Each model is one dense layer followed by ReLU (``scores = relu(W · features + b)``), small enough that
EZKL proves it in seconds. The weights are chosen by hand, not trained: they are the model's definition,
and ``python -m opgkit.zkml.models`` rewrites ``models/*.onnx`` byte for byte from them (a test checks
that the committed files match).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from opgkit import PROJECT_ROOT

MODELS_DIR = PROJECT_ROOT / "models"
OPSET = 13
IR_VERSION = 8


@dataclass(frozen=True)
class DenseReluModel:
    """``outputs = relu(weights · features + biases)`` with one row of ``weights`` per output."""

    name: str
    description: str
    features: tuple[str, ...]
    outputs: tuple[str, ...]
    weights: tuple[tuple[float, ...], ...]
    biases: tuple[float, ...]
    calibration: tuple[tuple[float, ...], ...]
    """Feature vectors EZKL calibrates its fixed-point scales on (the range the model is used over)."""

    def __post_init__(self):
        if len(self.weights) != len(self.outputs) or len(self.biases) != len(self.outputs):
            raise ValueError(f"{self.name}: one weight row and one bias per output")
        if any(len(row) != len(self.features) for row in self.weights):
            raise ValueError(f"{self.name}: every weight row needs one weight per feature")
        if any(len(sample) != len(self.features) for sample in self.calibration):
            raise ValueError(f"{self.name}: every calibration sample needs one value per feature")

    @property
    def path(self) -> Path:
        return MODELS_DIR / f"{self.name}.onnx"

    @property
    def feature_range(self) -> tuple[float, float]:
        """The interval every feature must lie in: the one the circuit is calibrated over (the smallest and
        largest calibration values)."""
        values = [x for sample in self.calibration for x in sample]
        return min(values), max(values)

    def evaluate(self, features) -> list[float]:
        """The model in plain floating point (what the circuit approximates in fixed point)."""
        if len(features) != len(self.features):
            raise ValueError(f"{self.name} takes {len(self.features)} features ({', '.join(self.features)})")
        return [
            max(0.0, bias + sum(w * x for w, x in zip(row, features)))
            for row, bias in zip(self.weights, self.biases)
        ]

    def to_onnx_bytes(self) -> bytes:
        """The serialised ONNX graph: Gemm(features, weights, biases) -> Relu."""
        import numpy as np
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        graph = helper.make_graph(
            nodes=[
                helper.make_node("Gemm", ["features", "weights", "biases"], ["linear"], transB=1),
                helper.make_node("Relu", ["linear"], ["scores"]),
            ],
            name=self.name,
            inputs=[helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, len(self.features)])],
            outputs=[helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, len(self.outputs)])],
            initializer=[
                numpy_helper.from_array(np.array(self.weights, dtype=np.float32), "weights"),
                numpy_helper.from_array(np.array(self.biases, dtype=np.float32), "biases"),
            ],
            doc_string=self.description,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="opgkit")
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model)
        return model.SerializeToString(deterministic=True)


def _grid(*levels: float) -> tuple[tuple[float, ...], ...]:
    """Calibration samples: each level on every feature, plus the corners 0 and 1."""
    samples = [(level,) * 4 for level in levels]
    samples += [(1.0, 0.0, 1.0, 0.0), (0.0, 1.0, 0.0, 1.0)]
    return tuple(samples)


LIQUIDATION_RISK = DenseReluModel(
    name="liquidation_risk",
    description="Scores a loan position for liquidation from four features scaled to [0, 1].",
    features=("loan_to_value", "price_volatility", "utilization", "collateral_liquidity"),
    outputs=("liquidation_risk", "safety_margin"),
    weights=((0.8, 0.6, 0.5, -0.7), (-0.4, -0.3, -0.2, 0.9)),
    biases=(0.1, 0.2),
    calibration=_grid(0.0, 0.25, 0.5, 0.75, 1.0),
)

CREDIT_LIMIT = DenseReluModel(
    name="credit_limit",
    description="Scores a borrower for a credit-limit increase from four features scaled to [0, 1].",
    features=("repayment_history", "income_stability", "debt_ratio", "account_age"),
    outputs=("approve", "decline"),
    weights=((0.9, 0.5, -0.6, 0.3), (-0.5, -0.4, 0.8, -0.2)),
    biases=(0.05, 0.15),
    calibration=_grid(0.0, 0.25, 0.5, 0.75, 1.0),
)

# Example feature vectors (used by the demo and the tests).
RISKY_POSITION = (0.9, 0.8, 0.95, 0.1)
"""Scored by LIQUIDATION_RISK as risk ~1.70, safety margin 0."""
SAFE_POSITION = (0.2, 0.1, 0.3, 0.9)
"""Scored by LIQUIDATION_RISK as risk 0, safety margin ~0.84."""
CREDIT_APPLICANT = (0.8, 0.7, 0.2, 0.5)
"""Scored by CREDIT_LIMIT as approve ~1.15, decline 0."""

MODELS = {model.name: model for model in (LIQUIDATION_RISK, CREDIT_LIMIT)}


def model_named(name: str) -> DenseReluModel:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; the shipped models are: {', '.join(MODELS)}") from None


def write_models(directory: Path = MODELS_DIR) -> list[Path]:
    """(Re)write every shipped model's ONNX file; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for model in MODELS.values():
        path = directory / f"{model.name}.onnx"
        path.write_bytes(model.to_onnx_bytes())
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_models(Path(sys.argv[1]) if len(sys.argv) > 1 else MODELS_DIR):
        print(written_path.relative_to(PROJECT_ROOT) if written_path.is_relative_to(PROJECT_ROOT) else written_path)
