"""Files written atomically, and the rule for output folders.

* :func:`write_bytes_atomic` — a temporary file in the same folder, then ``os.replace``:
  a reader sees the old file or the new one, never half of one.
* :func:`atomic_directory` — the files of a result are written into a temporary folder
  beside the target, which then replaces the target by two renames: an interrupted run
  leaves the previous result (or nothing), never half of one.

The output-folder rule (``docs/verification.md``): convexnn replaces only what it wrote
— ``certificate.json``, ``solution.npz``, ``summary.md``, ``certified-data/`` (a copy of
the data file) and, for a result set, ``reproduce.json`` and the files it lists. Everything else a
user keeps in the folder (notes, plots, sub-folders) is carried into the new folder
(hard links: no copy, nothing lost) before the swap. A symbolic link to a folder is
followed (the link stays). The current folder and its parents are refused, and so is a
folder whose parent cannot be written — before any work is done. Temporary folders of a
killed run are removed by the next run that writes beside them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from .errors import InvalidInputError

__all__ = ["CERTIFICATE_FILE", "SOLUTION_FILE", "SUMMARY_FILE", "REPRODUCE_FILE", "DATA_DIR",
           "RESULT_FILES", "atomic_directory", "write_bytes_atomic", "write_npz",
           "check_output_dir", "remove_active", "owned_entries"]

CERTIFICATE_FILE = "certificate.json"
SOLUTION_FILE = "solution.npz"
SUMMARY_FILE = "summary.md"
#: Written by ``convexnn reproduce``; lists the files of a result set.
REPRODUCE_FILE = "reproduce.json"
#: Copies of the data files a result was computed from (so anyone can verify it).
DATA_DIR = "certified-data"
#: What a result folder holds that convexnn wrote.
RESULT_FILES = (CERTIFICATE_FILE, SOLUTION_FILE, SUMMARY_FILE, DATA_DIR, REPRODUCE_FILE)

#: Temporary folders being written by this process (removed on an interrupt).
_ACTIVE: set[Path] = set()
_LOCK = threading.Lock()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_dir(path: str | os.PathLike) -> Path:
    """Check, before any work, that ``path`` can receive a result; return it resolved.

    A symbolic link to a folder is followed (the result goes into its target and the link
    stays). Refused with :class:`InvalidInputError`: an existing path that is not a folder,
    the current folder or one of its parents (they cannot be swapped safely), and a folder
    whose parent (or nearest existing ancestor) cannot be written — found by creating and
    removing a temporary folder there.
    """
    p = Path(path).expanduser()
    if p.is_symlink() and p.is_dir():
        p = p.resolve()
    p = p.absolute()
    if p.exists() and not p.is_dir():
        raise InvalidInputError(f"output path {p} exists and is not a folder; choose a folder.")
    here = Path.cwd().resolve()
    real = p.resolve()
    if real == here or real in here.parents:
        raise InvalidInputError(
            f"output folder {path} is the current folder or one of its parents; choose a "
            f"sub-folder (e.g. results/NAME)."
        )
    parent = real.parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    try:
        tempfile.TemporaryDirectory(prefix=".convexnn-probe.", dir=probe).cleanup()
    except OSError as exc:
        raise InvalidInputError(
            f"output folder {path}: cannot write in {probe} ({exc.strerror or exc}); choose a "
            "writable folder."
        ) from None
    return real


def owned_entries(folder: Path) -> set[str]:
    """The names in ``folder`` that convexnn wrote (and will replace)."""
    owned = set(RESULT_FILES)
    listing = folder / REPRODUCE_FILE
    if listing.is_file():
        try:
            files = json.loads(listing.read_text(encoding="utf-8")).get("files", [])
        except (OSError, ValueError, AttributeError, RecursionError):
            files = []
        if isinstance(files, list):
            owned |= {str(f).strip("/").split("/")[0] for f in files if isinstance(f, str)}
    return owned


def _link_tree(src: Path, dst: Path) -> None:
    """``dst`` holds what ``src`` holds: hard links to its files (copies where the file
    system has none), its folders recreated, symbolic links kept as links."""
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif src.is_dir():
        shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(src, dst)


def _link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


_STALE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-z_]+\.(?P<kind>tmp|old)$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale(parent: Path, name: str) -> None:
    """Remove the temporary folders a killed run left beside ``name``; if it was killed
    between the two renames of the swap, put the previous result back."""
    if not parent.is_dir():
        return
    for entry in parent.iterdir():
        m = _STALE.match(entry.name)
        if not m or m["name"] != name or not entry.is_dir() or _alive(int(m["pid"])):
            continue
        target = parent / name
        if m["kind"] == "old" and not target.exists():
            with contextlib.suppress(OSError):
                os.rename(entry, target)
                continue
        shutil.rmtree(entry, ignore_errors=True)


def remove_active() -> None:
    """Remove the temporary folders this process is writing (on an interrupt)."""
    with _LOCK:
        active = list(_ACTIVE)
        _ACTIVE.clear()
    for path in active:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``path`` when the block succeeds.

    On any exception (including KeyboardInterrupt) the temporary folder is removed and
    ``path`` is left as it was. Entries of ``path`` that convexnn did not write
    (:func:`owned_entries`) are carried into the new folder before the swap. The swap is
    two renames on the same file system; the previous folder is deleted only after the
    new one is in place.
    """
    target = check_output_dir(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(target.parent, target.name)
    tag = f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}"
    tmp = target.parent / f"{tag}.tmp"
    os.mkdir(tmp)
    with _LOCK:
        _ACTIVE.add(tmp)
    try:
        yield tmp
        old = None
        if target.exists():
            owned = owned_entries(target)
            for entry in target.iterdir():
                if entry.name not in owned and not (tmp / entry.name).exists():
                    _link_tree(entry, tmp / entry.name)
            old = target.parent / f"{tag}.old"
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
    finally:
        with _LOCK:
            _ACTIVE.discard(tmp)


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    """Write a file atomically: a temporary file in the same folder, then os.replace."""
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
