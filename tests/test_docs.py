"""The documentation is code that runs: the README's and the docs pages' Python blocks
execute, every docstring example passes as a doctest, every public name is documented
(numpydoc parameters and returns for functions) and has its API page, and the spec shown
in the docs is a valid spec. With the docs extra installed, a slow test builds the site
with warnings as errors."""

from __future__ import annotations

import contextlib
import doctest
import importlib
import inspect
import io
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import convexnn
from convexnn.spec import load_spec

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[str]:
    return FENCE.findall(path.read_text(encoding="utf-8"))


def run_blocks(path: Path) -> None:
    """Run a page's Python blocks in order, in one namespace (as a reader would)."""
    namespace: dict = {"__name__": f"docs:{path.name}"}
    for k, block in enumerate(python_blocks(path)):
        code = compile(block, f"{path.relative_to(REPO)} (python block {k + 1})", "exec")
        with contextlib.redirect_stdout(io.StringIO()):
            exec(code, namespace)


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_python_blocks_of_the_pages_run(page):
    run_blocks(page)


def test_readme_has_python_blocks():
    assert len(python_blocks(REPO / "README.md")) >= 3


def _modules():
    for info in pkgutil.walk_packages(convexnn.__path__, "convexnn."):
        if info.name != "convexnn.__main__":  # running it is the command line
            yield importlib.import_module(info.name)


def test_docstring_examples_pass():
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    ran = 0
    for module in _modules():
        for test in finder.find(module, module.__name__):
            if test.examples:
                with contextlib.redirect_stdout(io.StringIO()) as out:
                    result = runner.run(test)
                assert result.failed == 0, out.getvalue()
                ran += result.attempted
    assert ran >= 20  # the examples exist (a finder that finds nothing must not pass)


# ---------------------------------------------------------------------------
# every public name is documented
# ---------------------------------------------------------------------------


def _section(doc: str, title: str) -> list[str] | None:
    """The lines of a numpydoc section (None when absent)."""
    lines = inspect.cleandoc(doc).splitlines()
    for i in range(len(lines) - 1):
        if lines[i].strip() == title and set(lines[i + 1].strip()) == {"-"}:
            body = []
            for k in range(i + 2, len(lines)):
                if k + 1 < len(lines) and lines[k + 1].strip() and \
                        set(lines[k + 1].strip()) == {"-"}:
                    break
                body.append(lines[k])
            return body
    return None


def documented_parameters(doc: str) -> set[str]:
    names: set[str] = set()
    for line in _section(doc, "Parameters") or []:
        if line and not line[0].isspace():
            head = line.split(" : ")[0]
            names.update(part.strip().lstrip("*") for part in head.split(","))
    return names


def _data_comment(name: str) -> bool:
    """A ``#:`` comment right above ``name =`` or ``name:`` in ``convexnn/__init__.py``."""
    lines = (REPO / "convexnn" / "__init__.py").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"{re.escape(name)}\s*[:=]", line):
            return i > 0 and lines[i - 1].startswith("#:")
    return False


def test_the_checks_can_fail():
    assert documented_parameters("""Summary.

    Parameters
    ----------
    a, b : int
        Text.
    **kw
        More.

    Returns
    -------
    int
    """) == {"a", "b", "kw"}
    assert _section("Summary.", "Returns") is None
    assert not _data_comment("no_such_name")


@pytest.mark.parametrize("name", convexnn.__all__)
def test_every_public_name_is_documented(name):
    obj = getattr(convexnn, name)
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        assert _data_comment(name), f"convexnn.{name} needs a '#:' comment in __init__.py"
        return
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    assert doc and doc.strip(), f"convexnn.{name} has no docstring"
    if inspect.isfunction(obj):
        params = [p for p in inspect.signature(obj).parameters]
        missing = set(params) - documented_parameters(doc)
        assert not missing, f"convexnn.{name}: parameters without a description {missing}"
        assert _section(doc, "Returns") is not None, f"convexnn.{name}: no Returns section"


def test_api_reference_lists_exactly_the_public_names():
    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    listed = re.findall(r"^   (\w+)$", text, flags=re.M)
    assert sorted(listed) == sorted(convexnn.__all__)


def test_the_spec_shown_in_the_docs_is_valid(tmp_path):
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"^```toml\n(.*?)^```", text, flags=re.S | re.M)
    path = tmp_path / "shown.toml"
    path.write_text(block, encoding="utf-8")
    spec = load_spec(path)
    assert spec.model.formulation == "gated_relu"


@pytest.mark.slow
def test_site_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("sphinx_gallery")
    out = tmp_path / "html"
    env = dict(os.environ, CONVEXNN_DOCS_FAST="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html",
                           str(REPO / "docs"), str(out)], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for name in convexnn.__all__:
        assert (out / "generated" / f"convexnn.{name}.html").is_file(), name
    assert list((out / "_images").glob("sphx_glr_plot_1_arrangement_001.png"))
