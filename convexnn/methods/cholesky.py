"""Kernel ridge with fixed kernel weights in closed form (one Cholesky factorisation).

``α = (K_η + μI)⁻¹Y``, ``J(η) = (μ/2)⟨Y, α⟩``, ``W_i = η_i Xᵀ D_i α``; the dual point of the
certificate is the residual ``μα``. Applies to formulations with fixed kernel weights
(``form.kernel_weights(data)``: the NTK).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..formulations.base import Formulation, SolveOptions
from ..kernels import kernel_ridge, kernel_ridge_weights
from ..memory import dense_bytes
from ..problem import ProblemData
from ..solution import Solution
from ..validation import Options as OptionsBase

__all__ = ["Options", "run", "memory_estimate"]


@dataclass(frozen=True)
class Options(OptionsBase):
    """``method="cholesky"`` takes no options."""


def memory_estimate(form: Formulation, data: ProblemData) -> int:
    """The n×n kernel (twice: product and Gram), the float masks and the weights."""
    n, d, P, c = data.n, data.d, data.P, data.c
    return dense_bytes(3 * n * n, 2 * n * P, 2 * P * d * c, 4 * n * d) + 2**20


def run(form: Formulation, data: ProblemData, reg: float, options: SolveOptions) -> Solution:
    """Solve the kernel ridge at ``μ = reg`` in closed form and certify it."""
    start = time.perf_counter()
    eta = form.kernel_weights(data)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    value, alpha = kernel_ridge(data.X, data.Y, data.M, eta, reg)
    W = kernel_ridge_weights(data.X, data.M, eta, alpha)
    solve_s = time.perf_counter() - start
    weights, extra = form.finalize(data, reg, {"W": W}, {}, options.form_options)
    return form.make_solution(
        data, reg, weights, options, status="optimal", solver="numpy", method="cholesky",
        build_s=build_s, solve_s=solve_s, dual={"z": reg * alpha},
        info={"closed_form_objective": value, **extra},
    )
