"""BLAS threads inside a block of numerical work.

The structured methods run many small GEMMs and factorisations; on a shared machine BLAS
threads that wait for a busy core made them 10–150× slower, so the methods pin BLAS to one
thread by default (``threads=None`` leaves BLAS as configured).
"""

from __future__ import annotations

from typing import Any

__all__ = ["blas_threads"]


class blas_threads:
    """Limit BLAS threads inside a ``with`` block (no-op for None).

    One ``ThreadpoolController`` is kept for the process: building it scans the loaded
    libraries, which costs milliseconds — too much to repeat for every λ of a path.
    """

    _controller: Any = None

    def __init__(self, threads: int | None):
        self.threads = threads
        self._ctx = None

    def __enter__(self) -> blas_threads:
        if self.threads is not None:
            if blas_threads._controller is None:
                from threadpoolctl import ThreadpoolController

                blas_threads._controller = ThreadpoolController()
            self._ctx = blas_threads._controller.limit(limits=int(self.threads),
                                                       user_api="blas")
        return self

    def __exit__(self, *exc: object) -> bool:
        if self._ctx is not None:
            self._ctx.restore_original_limits()
        return False
