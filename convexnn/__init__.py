"""convexnn — certified global optima of two-layer ReLU and gated-ReLU networks.

Exact convex reformulations (group lasso, cone-constrained programs), numpy duality-gap
certificates, and the path from the Neural Tangent Kernel to the optimum through
multiple kernel learning. See ``convexnn explain gated_relu``.
"""

from .certificate import Certificate
from .data import Dataset, add_bias, planted_relu, validate_xy
from .errors import (
    ConvexNNError,
    InfeasibleError,
    InvalidInputError,
    ProblemTooLargeError,
    SolverFailedError,
    SolverUnavailableError,
    UnboundedError,
    VerificationError,
)
from .export import load, save, verify
from .formulations import REGISTRY
from .formulations.mkl import kernel_ridge, lam_to_mu, mkl_value_from_gated, mu_to_lam
from .formulations.ntk import empirical_ntk, ntk_gram, ntk_weights
from .global_check import GlobalCheck, certify_global
from .networks import GatedReLUNetwork, ReLUNetwork
from .path import SolutionPath, solve_path
from .patterns import Patterns, enumerate_patterns, patterns_from_gates, sample_patterns
from .reweight import ReweightResult, reweight
from .solution import Solution
from .solve import solve
from .solvers import InaccurateSolutionWarning, available_solvers
from .spec import load_spec, solve_spec

__version__ = "0.1.0"

__all__ = [
    "Certificate",
    "ConvexNNError",
    "Dataset",
    "GatedReLUNetwork",
    "GlobalCheck",
    "InaccurateSolutionWarning",
    "InfeasibleError",
    "InvalidInputError",
    "Patterns",
    "ProblemTooLargeError",
    "REGISTRY",
    "ReLUNetwork",
    "ReweightResult",
    "Solution",
    "SolutionPath",
    "SolverFailedError",
    "SolverUnavailableError",
    "UnboundedError",
    "VerificationError",
    "__version__",
    "add_bias",
    "available_solvers",
    "certify_global",
    "empirical_ntk",
    "enumerate_patterns",
    "kernel_ridge",
    "lam_to_mu",
    "load",
    "load_spec",
    "mkl_value_from_gated",
    "mu_to_lam",
    "ntk_gram",
    "ntk_weights",
    "patterns_from_gates",
    "planted_relu",
    "reweight",
    "sample_patterns",
    "save",
    "solve",
    "solve_path",
    "solve_spec",
    "validate_xy",
    "verify",
]
