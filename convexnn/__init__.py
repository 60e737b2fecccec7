"""convexnn — certified global optima of two-layer ReLU and gated-ReLU networks.

Exact convex reformulations (group lasso, cone-constrained programs), numpy duality-gap
certificates, and the path from the Neural Tangent Kernel to the optimum through
multiple kernel learning. See ``convexnn explain gated_relu`` and ``docs/``.

The public names below are imported on first use (``convexnn.solve`` loads the solvers;
``import convexnn`` alone does not), so the command line starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name → the module that defines it.
_PUBLIC = {
    "Certificate": "certificate",
    "ConvexNNError": "errors",
    "InfeasibleError": "errors",
    "InvalidInputError": "errors",
    "ProblemTooLargeError": "errors",
    "SolverFailedError": "errors",
    "SolverUnavailableError": "errors",
    "UnboundedError": "errors",
    "VerificationError": "errors",
    "Dataset": "data",
    "add_bias": "data",
    "planted_relu": "data",
    "validate_xy": "validation",
    "load": "verification",
    "verify": "verification",
    "save": "results",
    "REGISTRY": "formulations",
    "lam_to_mu": "formulations.mkl",
    "mu_to_lam": "formulations.mkl",
    "mkl_value_from_gated": "formulations.mkl",
    "kernel_ridge": "kernels",
    "empirical_ntk": "kernels",
    "ntk_gram": "kernels",
    "ntk_weights": "kernels",
    "GlobalCheck": "global_check",
    "certify_global": "global_check",
    "GatedReLUNetwork": "networks",
    "ReLUNetwork": "networks",
    "SolutionPath": "path",
    "solve_path": "path",
    "Patterns": "patterns",
    "enumerate_patterns": "patterns",
    "patterns_from_gates": "patterns",
    "sample_patterns": "patterns",
    "ReweightResult": "methods.reweight",
    "reweight": "methods.reweight",
    "Solution": "solution",
    "solve": "solving",
    "InaccurateSolutionWarning": "solvers",
    "available_solvers": "solvers",
    "load_spec": "spec",
    "GatedReLURegressor": "estimators",
    "GatedReLUClassifier": "estimators",
    "GatedReLURegressorCV": "estimators",
    "GatedReLUClassifierCV": "estimators",
    "ReLURegressor": "estimators",
    "ReLUClassifier": "estimators",
    "NTKRegressor": "estimators",
    "NTKClassifier": "estimators",
    "OptimalKernelRegressor": "estimators",
    "OptimalKernelClassifier": "estimators",
    "solve_spec": "problems",
}

__all__ = sorted([*_PUBLIC, "__version__"])


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'convexnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))

