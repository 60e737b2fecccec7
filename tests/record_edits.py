"""Edits of a saved result as someone who knows the file format would make them (shared
by the rule and trust tests): recomputed digests, rewritten arrays, forged npy headers."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np


def arrays_digest(arrays) -> str:
    """What ``solution_sha256`` holds: anyone who edits an array can recompute it."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def rewrite(out, arrays=None, edit=None):
    """Replace arrays and/or record fields and recompute both digests (an edit that a
    digest cannot catch: only re-derivation can)."""
    from convexnn.results import RECORD_DIGEST, arrays_sha256, record_sha256

    rec = json.loads((out / "certificate.json").read_text())
    with np.load(out / "solution.npz", allow_pickle=False) as f:
        current = {k: f[k] for k in f.files}
    if arrays:
        current.update(arrays)
        np.savez(out / "solution.npz", **current)
        rec["solution_sha256"] = arrays_sha256(current)
    if edit:
        edit(rec)
    rec[RECORD_DIGEST] = record_sha256(rec)
    (out / "certificate.json").write_text(json.dumps(rec))


def claim_shape(path: Path, key: str, shape) -> None:
    """Rewrite member ``key`` of the npz file ``path`` with a header that claims ``shape``
    (over three float64 values)."""
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f8", "fortran_order": False, "shape": shape})
    members[f"{key}.npy"] = head.getvalue() + np.zeros(3).tobytes()
    with zipfile.ZipFile(path, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
