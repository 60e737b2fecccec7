"""Files written atomically, and the rule for output folders.

* :func:`write_bytes_atomic` — a temporary file in the same folder, then ``os.replace``:
  a reader sees the old file or the new one, never half of one.
* :func:`atomic_directory` — a temporary folder beside the target that replaces it by
  renaming once every file is written: an interrupted run leaves the previous result (or
  nothing), never half of one.
* :func:`check_output_dir` — a folder may receive a result when it is new, empty, or a
  previous convexnn result (``certificate.json`` or ``reproduce.json``); anything else is
  refused before any work is done.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from .errors import InvalidInputError

__all__ = ["CERTIFICATE_FILE", "SOLUTION_FILE", "SUMMARY_FILE", "REPRODUCE_FILE",
           "atomic_directory", "write_bytes_atomic", "write_npz", "check_output_dir"]

CERTIFICATE_FILE = "certificate.json"
SOLUTION_FILE = "solution.npz"
SUMMARY_FILE = "summary.md"
#: Written by ``convexnn reproduce``; marks a directory convexnn may replace.
REPRODUCE_FILE = "reproduce.json"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _is_result_dir(path: Path) -> bool:
    return (path / CERTIFICATE_FILE).is_file() or (path / REPRODUCE_FILE).is_file()


def check_output_dir(path: str | os.PathLike) -> Path:
    """Check that ``path`` may receive a result: new, empty, or a previous convexnn result.

    Raises :class:`InvalidInputError` otherwise, so a mistyped ``--out`` never replaces a
    folder of other files.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InvalidInputError(f"output path {p} exists and is not a directory.")
    if p.is_dir() and any(p.iterdir()) and not _is_result_dir(p):
        raise InvalidInputError(
            f"output directory {p} exists, is not empty and holds no {CERTIFICATE_FILE}; "
            "refusing to replace it. Choose a new or empty directory."
        )
    return p


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` when the block succeeds.

    On any exception (including KeyboardInterrupt) the temporary directory is removed
    and ``path`` is left as it was. The swap is two renames on the same file system; the
    previous result is deleted only after the new one is in place.
    """
    target = check_output_dir(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; results are not
        yield tmp
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
        try:
            os.rename(tmp, target)
        except BaseException:
            if old is not None:
                os.rename(old, target)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    """Write a file atomically: a temporary file in the same directory, then os.replace."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays as an ``.npz`` archive (no object arrays), atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())
