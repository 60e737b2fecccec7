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

#: The version of convexnn (also recorded in every ``certificate.json``).
__version__ = "0.1.0"

#: The registered convex programs, by name: ``gated_relu``, ``relu``, ``ntk``, ``mkl`` and
#: ``reweight``. Each value is a ``Formulation`` with its ``title``, regulariser name
#: (``reg_name``: ``"lam"`` or ``"mu"``), the ``methods`` it offers, its plain-text ``math``
#: and the page of ``docs/math/`` with the derivation. ``convexnn list`` prints them.
REGISTRY: dict  # loaded on first use, like every name of _PUBLIC

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
    "TrainResult": "nonconvex",
    "train_network": "nonconvex",
    "sweep": "sweeps.run",
    "SweepResult": "sweeps.run",
    "load_sweep": "sweeps.spec",
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

