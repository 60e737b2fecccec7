"""Kernel ridge with fixed kernel weights in closed form (one Cholesky factorisation).

``α = (K_η + μI)⁻¹Y``, ``J(η) = (μ/2)⟨Y, α⟩``, ``W_i = η_i Xᵀ D_i α``; the dual point of the
certificate is the residual ``μα``. Applies to formulations with fixed kernel weights
(``form.kernel_weights(data)``: the NTK).

:func:`run_path` solves a whole μ path from one factorisation of the kernel
(:class:`~convexnn.kernels.SpectralRidge`: the eigendecomposition of the small Gram of its
features when ``d·P < n``, else of ``K_η`` itself), each μ then in O(n·rank) instead of an
O(n³) Cholesky; every value is certified by the same numpy certificate.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..formulations.base import Formulation, SolveOptions
from ..kernels import SpectralRidge, kernel_ridge, kernel_ridge_weights
from ..memory import dense_bytes
from ..problem import ProblemData
from ..solution import Solution
from ..validation import Options as OptionsBase

__all__ = ["Options", "run", "run_path", "memory_estimate"]


@dataclass(frozen=True)
class Options(OptionsBase):
    """``method="cholesky"`` takes no options."""


def memory_estimate(form: Formulation, data: ProblemData) -> int:
    """The n×n kernel (twice: product and Gram), the float masks and the weights (also an
    upper bound for :func:`run_path`, whose feature form needs ``3·n·dP + 2(dP)²``)."""
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


def run_path(form: Formulation, data: ProblemData, regs: Sequence[float],
             options: SolveOptions) -> tuple[list[Solution], dict[str, Any]]:
    """The kernel ridge at every ``μ`` of ``regs`` from one factorisation of ``K_η``.

    Returns the certified solutions (in the order of ``regs``) and ``info`` with
    ``setup_s`` (the kernel weights and the factorisation), the form used and its rank.
    """
    start = time.perf_counter()
    eta = form.kernel_weights(data)
    ridge = SpectralRidge(data.X, data.M, eta, data.Y)
    setup_s = time.perf_counter() - start
    sols = []
    for i, mu in enumerate(regs):
        start = time.perf_counter()
        value, alpha = ridge.solve(float(mu))
        W = kernel_ridge_weights(data.X, data.M, eta, alpha)
        solve_s = time.perf_counter() - start
        weights, extra = form.finalize(data, float(mu), {"W": W}, {}, options.form_options)
        sols.append(form.make_solution(
            data, float(mu), weights, options, status="optimal", solver="numpy",
            method="cholesky", build_s=setup_s if i == 0 else 0.0, solve_s=solve_s,
            dual={"z": float(mu) * alpha},
            info={"closed_form_objective": value, "path_form": ridge.form, **extra}))
    return sols, {"setup_s": setup_s, "form": ridge.form,
                  "rank_bound": int(min(ridge.rank_bound, data.n))}
