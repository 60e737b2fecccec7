"""Registry of the convex programs: one module per formulation, one line each below."""

from __future__ import annotations

from ..errors import InvalidInputError
from ..reweight import Reweight
from .base import Formulation, ProblemData, SolveOptions, prepare
from .gated_relu import GatedReLU
from .mkl import MKL
from .ntk import NTK
from .relu import ReLU

__all__ = ["REGISTRY", "Formulation", "ProblemData", "SolveOptions", "get_formulation", "prepare"]

REGISTRY: dict[str, Formulation] = {
    f.name: f
    for f in (
        GatedReLU(),
        ReLU(),
        NTK(),
        MKL(),
        Reweight(),
    )
}


def get_formulation(name: str | Formulation) -> Formulation:
    """The registered formulation called ``name`` (or ``name`` itself if it is one)."""
    if isinstance(name, Formulation):
        return name
    if name not in REGISTRY:
        raise InvalidInputError(
            f"unknown formulation {name!r}; choose one of {sorted(REGISTRY)}."
        )
    return REGISTRY[name]
