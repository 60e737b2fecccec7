"""The algorithms that solve the convex programs, one module each.

A method receives the formulation as an argument (it knows no program by name) and
returns a certified :class:`~convexnn.solution.Solution`. Each module provides

* ``Options`` — a frozen dataclass of its keyword options (validated on construction);
* ``run(form, data, reg, options)`` — solve and certify;
* ``memory_estimate(form, data)`` — peak bytes, checked before anything is built;
* optionally ``run_path(form, data, regs, options)`` — a warm-started path.

Formulations map the method names users write (``"ipm"``, ``"fast"``, ``"reweight"``,
``"cholesky"``) to these algorithms (``Formulation.methods``). :mod:`~convexnn.methods.augment`
wraps any of them in cutting planes over the patterns of the arrangement.
"""

from __future__ import annotations

from types import ModuleType

from ..errors import InvalidInputError
from ..formulations.base import Formulation
from ..problem import ProblemData
from . import augment, cholesky, group_lasso, ipm, relu_working_set, reweight

__all__ = ["ALGORITHMS", "algorithm", "memory_estimates", "augment"]

#: Algorithm name → module.
ALGORITHMS: dict[str, ModuleType] = {
    "ipm": ipm,
    "group_lasso": group_lasso,
    "relu_working_set": relu_working_set,
    "cholesky": cholesky,
    "reweight": reweight,
}


def algorithm(form: Formulation, method: str) -> ModuleType:
    """The module implementing ``form``'s method ``method`` (a name from ``form.methods``)."""
    try:
        return ALGORITHMS[form.methods[method]]
    except KeyError:
        raise InvalidInputError(
            f"method {method!r} is not available for {form.name}; choose one of "
            f"{['auto', *form.methods]}."
        ) from None


def memory_estimates(form: Formulation, data: ProblemData) -> dict[str, int]:
    """Estimated peak bytes of every method ``form`` offers on ``data``."""
    return {m: algorithm(form, m).memory_estimate(form, data) for m in form.methods}
