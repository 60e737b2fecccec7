"""Experiment sweeps: data sets × models × a regularisation grid × folds, as resumable tasks
run locally or on a Dask cluster (``docs/sweeps.md``).

One module per job: :mod:`~convexnn.sweeps.spec` (the SWEEP.toml schema),
:mod:`~convexnn.sweeps.tasks` (planning the tasks and running one, a pure function of
its spec), :mod:`~convexnn.sweeps.models` (fit a grid, predict: formulations and
estimators), :mod:`~convexnn.sweeps.results` (per-task records, tables, summaries) and
:mod:`~convexnn.sweeps.run` (the schedulers and :func:`~convexnn.sweeps.run.sweep`).
"""

from .run import SweepResult, sweep
from .spec import load_sweep

__all__ = ["sweep", "SweepResult", "load_sweep"]
