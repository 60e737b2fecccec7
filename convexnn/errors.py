"""Exceptions raised by convexnn.

A shallow hierarchy: everything derives from :class:`ConvexNNError`, and each
subclass also derives from the built-in exception a caller would naturally
catch (``ValueError`` for bad input, ``RuntimeError`` for solver trouble), so
``except ValueError`` keeps working for code that does not know convexnn.
"""

from __future__ import annotations

__all__ = [
    "ConvexNNError",
    "InvalidInputError",
    "SolverUnavailableError",
    "SolverFailedError",
    "InfeasibleError",
    "UnboundedError",
    "ProblemTooLargeError",
    "VerificationError",
]


class ConvexNNError(Exception):
    """Base class of every error raised by convexnn."""


class InvalidInputError(ConvexNNError, ValueError):
    """An argument, file or spec value is malformed; the message names it and the fix.

    ``argument`` names the argument when a caller needs it (e.g. ``"solver_options"``, so
    that a spec can point at its ``[solver.options]`` section).
    """

    def __init__(self, message: str, argument: str | None = None):
        super().__init__(message)
        self.argument = argument


class SolverUnavailableError(ConvexNNError, RuntimeError):
    """The requested solver is not installed, or is installed without a licence."""


class SolverFailedError(ConvexNNError, RuntimeError):
    """The solver ran but returned no usable solution (status names what happened)."""

    def __init__(self, message: str, status: str | None = None):
        super().__init__(message)
        self.status = status


class InfeasibleError(SolverFailedError):
    """The solver reports the problem infeasible."""


class UnboundedError(SolverFailedError):
    """The solver reports the problem unbounded."""


class ProblemTooLargeError(ConvexNNError, MemoryError):
    """The problem would not fit in memory (or the enumeration is too large)."""


class VerificationError(ConvexNNError):
    """A saved certificate does not match what its arrays and data re-derive."""
