"""``convexnn explain``: readable output for every formulation (no reST markup, no numpy
scalar reprs), the data matrices it names are the ones its programs are built from
(rebuilt here from X and the gates), and the primal and dual cvxpy problems it shows
solve to the same value as the certified solution (strong duality)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from cli_helpers import run

from convexnn.explain import FORMATS, explanation, render
from convexnn.formulations import REGISTRY

REST = re.compile(r":(func|mod|class|meth|attr|data|ref|doc|math):`|``")


@pytest.fixture(scope="module", params=sorted(REGISTRY))
def shown(request):
    return explanation(request.param)


def test_formulation_math_is_plain_text():
    for name, form in REGISTRY.items():
        assert form.math.strip(), name
        assert not REST.search(form.math), f"{name}: reST markup in its math text"


def test_every_format_is_free_of_markup_and_numpy_reprs(shown):
    for fmt in FORMATS:
        text = render(shown, fmt)
        prose = re.sub(r"^```\w*$", "", text, flags=re.M)  # Markdown's code fences
        assert not REST.search(prose), (shown.name, fmt, REST.search(prose))
        assert "np.float64(" not in text and "np.int64(" not in text, (shown.name, fmt)
        assert "dtype=" not in text and "array(" not in text, (shown.name, fmt)
        assert "CERTIFIED" in text, (shown.name, fmt)


def test_text_shows_math_problems_solution_and_certificate(shown):
    text = render(shown, "text")
    assert shown.math.splitlines()[0] in text
    for p in shown.problems:
        assert p.text in text and ("minimize" in p.text or "maximize" in p.text)
    assert "Certificate(" in text and "relative gap" in text
    assert shown.solution.certificate.certified


def test_named_matrices_are_the_data_the_programs_are_built_from(shown):
    arrays = {a.symbol: a.value for a in shown.arrays}
    X, M = arrays["X"], arrays["M"]
    # the masks are the patterns of the gates: M = 1[X G ≥ 0]
    G = shown.solution.patterns.gates
    np.testing.assert_array_equal(M, (X @ G >= 0).astype(float))
    if "A" in arrays:  # A = [D_1 X, …, D_P X]
        d = X.shape[1]
        for i in range(M.shape[1]):
            np.testing.assert_array_equal(arrays["A"][:, i * d:(i + 1) * d], M[:, [i]] * X)
    if "S" in arrays:
        np.testing.assert_array_equal(arrays["S"], 2 * M - 1)
    for p in shown.problems:  # every data matrix in a problem is named, none printed raw
        assert "[[" not in p.text and "C1" not in p.text, p.text


def test_primal_and_dual_problems_reach_the_certified_value(shown):
    cert = shown.solution.certificate
    values = {p.label: p.value for p in shown.problems}
    assert values, shown.name
    for label, value in values.items():
        assert value == pytest.approx(cert.objective, rel=1e-6, abs=1e-9), label
    # weak duality on the numpy side holds regardless of the solver
    assert cert.dual_objective <= cert.objective


def test_latex_is_ascii_and_balanced(shown):
    tex = render(shown, "latex")
    assert tex.isascii()
    body = re.sub(r"\\begin\{verbatim\}.*?\\end\{verbatim\}", "", tex, flags=re.S)
    body = body.replace(r"\{", "").replace(r"\}", "")
    assert body.count("{") == body.count("}")
    for env in set(re.findall(r"\\begin\{(\w+\*?)\}", body)):
        assert body.count(f"\\begin{{{env}}}") == body.count(f"\\end{{{env}}}"), env
    for eq in shown.latex:
        assert eq in tex


def test_markdown_has_display_math_and_closed_fences(shown):
    md = render(shown, "markdown")
    assert md.startswith(f"# `{shown.name}`")
    assert md.count("```") % 2 == 0
    lines = md.splitlines()
    assert lines.count("$$") == 2 * len(shown.latex) and shown.latex


def test_cli_formats(capsys):
    code, text, err = run(["explain", "gated_relu", "--markdown"], capsys)
    assert code == 0, err
    assert text.startswith("# `gated_relu`")
    code, text, err = run(["explain", "gated_relu", "--latex"], capsys)
    assert code == 0 and "\\begin{equation*}" in text
    code, _, err = run(["explain", "gated_relu", "--latex", "--markdown"], capsys)
    assert code == 2 and "not allowed with" in err
