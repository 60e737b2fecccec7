"""Registry of the convex programs: one module per formulation, one line each below."""

from __future__ import annotations

from ..errors import InvalidInputError
from .base import Formulation, Primal, Program, SolveOptions
from .gated_relu import GatedReLU, GatedReLUReweight
from .mkl import MKL
from .ntk import NTK
from .relu import ReLU

__all__ = ["REGISTRY", "Formulation", "Primal", "Program", "SolveOptions", "get_formulation"]

REGISTRY: dict[str, Formulation] = {
    f.name: f
    for f in (
        GatedReLU(),
        ReLU(),
        NTK(),
        MKL(),
        GatedReLUReweight(),
    )
}


def get_formulation(name: str | Formulation) -> Formulation:
    """The registered formulation called ``name`` (or ``name`` itself if it is one)."""
    if isinstance(name, Formulation):
        return name
    if not isinstance(name, str) or name not in REGISTRY:
        raise InvalidInputError(
            f"unknown formulation {name!r}; choose one of {sorted(REGISTRY)}."
        )
    return REGISTRY[name]
