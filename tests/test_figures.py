"""Report figures: each opened as matplotlib objects and checked; dbs report end to end."""

import numpy as np
import pytest
from dbs_cli import dbs

from dbs_report import figures as F
from dbs_theory.measure.bopt_curve import BoptCurve
from dbs_theory.theory.laws import law_from_params
from dbs_report.report import build_report, markdown_to_html, write_report

from figcheck import check_figure, decades


def test_checker_catches_a_bad_figure():
    """The checker itself must be able to fail: a linear axis over 4 decades, no labels."""
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    ax.plot(np.geomspace(1, 1e4, 20), np.arange(20), label="x")
    ax.set_title("t")
    with pytest.raises(AssertionError, match="unlabelled"):
        check_figure(fig)
    ax.set_xlabel("data (tokens)")
    ax.set_ylabel("loss (nats)")
    with pytest.raises(AssertionError, match="decades"):
        check_figure(fig)
    ax.set_xscale("log")
    with pytest.raises(AssertionError, match="legend"):
        check_figure(fig)
    ax.legend()
    assert check_figure(fig) == 1
    assert decades(np.array([1.0, 1000.0])) == pytest.approx(3)


def test_each_figure_function_passes_the_checks():
    D = np.geomspace(1e3, 1e7, 100)
    curves = [dict(label=f"B={b}", D=D, loss=1 + 3 / (1 + D / (1e3 * b)) + 0.1 / b, batch=b) for b in (1, 4, 16)]
    check_figure(
        F.loss_curves(curves, "loss", crossovers=[dict(tokens=1e5, loss=2.0, b_small=8, b_large=16)]), "loss_curves"
    )
    law = law_from_params("three_phase", dict(smin=100, s1=150, sopt=300, s2=600, emin=3e4, c=0.5))
    S = np.geomspace(120, 1e4, 30)
    check_figure(
        F.es_panels([dict(target=2.0, S=S, E=law(S), laws={"three_phase": law}, bmin=law.bmin, bopt=law.bopt)]),
        "es_panels",
    )
    check_figure(
        F.bmin_bopt(
            [3, 2.5, 2], [10, 40, 200], [20, 90, 500], ([8, 30, 150], [12, 50, 260]), ([15, 70, 400], [25, 110, 600])
        ),
        "bmin_bopt",
    )
    curve = BoptCurve(
        "power",
        dict(k=1.0, alpha=0.48),
        np.array([1e5, 1e7]),
        np.array([100.0, 900.0]),
        None,
        1.0,
        None,
        extrapolate=True,
    )
    check_figure(
        F.bopt_schedule([1e5, 1e6, 1e7], [100, 300, 900], curve, ([0, 1e6, 3e6], [128, 256, 512]), 1e7), "bopt_schedule"
    )
    check_figure(
        F.comparison(
            [dict(label="a", D=D, loss=1 + 1 / np.sqrt(D)), dict(label="b", D=D, loss=1 + 2 / D)],
            "cmp",
            marks=[(1e5, "switch")],
        ),
        "comparison",
    )


def test_optimal_batches_figure():
    """The optimal schedule vs D with Bopt(D), Bmin(L(D)), B_noise(D) and the rules' schedules, log-log."""
    D = np.geomspace(10, 1e5, 80)
    bopt = dict(D=[1e2, 1e3, 1e4], B=[2.0, 6.0, 20.0], curve_D=D.tolist(), curve_B=(0.2 * D**0.5).tolist())
    along = dict(D=D, bmin=0.01 * D, b_noise=[None] + list(0.05 * D[1:]))
    rules = [("paper", ([0, 1e3, 1e4], [3.0, 6.0, 20.0])), ("late switch", ([0, 7.5e4], [10.0, 40.0]))]
    fig = F.optimal_batches(([0, 100, 1e3, 1e4], [0.5, 2.0, 10.0, 200.0]), along, bopt, rules, 1e5)
    assert check_figure(fig, "optimal_batches") == 1
    ax = fig.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    labels = ax.get_legend_handles_labels()[1]
    assert {"optimal schedule", "paper", "late switch", "Bopt(D) (envelope fit)"} <= set(labels)
    assert any(t.startswith("Bmin(L(D))") for t in labels) and any(t.startswith("B_noise(D)") for t in labels)
    check_figure(F.optimal_batches(([0, 100], [1.0, 5.0]), along, None, (), 1e5), "without Bopt")


@pytest.mark.slow
def test_dbs_report_on_simulate_optimal(tmp_path):
    """dbs simulate optimal -> dbs report: a section with the rules' table and the optimal schedule's figure."""
    r = dbs("simulate", "optimal", "--d", "60", "--budgets", "3e3", "--lr-schedule", "wsd", "--out", tmp_path / "opt")
    assert r.returncode == 0, r.stderr
    (s,) = build_report(tmp_path)
    assert s.title.startswith("simulate optimal") and "| floor ratio (ours) |" in s.text
    ((fig, name, caption),) = s.figures
    assert name == "optimal-3e+03" and "Bopt(D)" in caption
    check_figure(fig, name)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "optimal schedule" in labels and "paper" in labels and len(labels) >= 10


@pytest.mark.slow
def test_dbs_report_on_simulate_and_fit_outputs(tmp_path):
    sim, fit = tmp_path / "sim", tmp_path / "fit"
    assert dbs("simulate", "--d", "2000", "--write-log", "--quiet", "--out", sim).returncode == 0
    r = dbs("fit", sim / "runs.csv", "--bootstrap", "10", "--out", fit)
    assert r.returncode == 0, r.stderr
    assert (
        dbs(
            "simulate", "schedule", "--d", "2000", "--budgets", "1e5", "--quiet", "--out", tmp_path / "sched"
        ).returncode
        == 0
    )
    sections = build_report(tmp_path)
    assert sorted(s.title.split(" (")[0] for s in sections) == ["fit", "simulate", "simulate schedule"]
    n = 0
    for s in sections:
        for fig, name, caption in s.figures:
            n += check_figure(fig, f"{s.title}/{name}") > 0
            assert caption
    assert n >= 6
    r = dbs("report", tmp_path)
    assert r.returncode == 0, r.stderr
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == n and 'src="figures/' not in html  # self-contained
    pngs = list((tmp_path / "figures").glob("*.png"))
    assert len(pngs) == n and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_markdown_to_html_tables_code_and_escaping():
    out = markdown_to_html(
        "# T\n\n| a | b |\n|---|---|\n| **x** | <y> |\n\n```\ncode <z>\n```\n\n![fig](a.png)\n", {"a.png": b"\x89PNG"}
    )
    assert "<h1>T</h1>" in out and "<th>a</th>" in out and "<td><strong>x</strong></td>" in out
    assert "&lt;y&gt;" in out and "<pre><code>code &lt;z&gt;" in out and "<y>" not in out  # raw HTML escaped
    assert 'src="data:image/png;base64,iVBORw=="' in out  # the figure embedded, not linked


def test_write_report_refuses_a_folder_without_results(tmp_path):
    with pytest.raises(ValueError, match="no results"):
        write_report(tmp_path)


def test_the_report_shows_the_band_of_an_extrapolated_schedule(tmp_path):
    """dbs fit -> dbs schedule --extrapolate -> dbs report: a band figure, and the text says where the
    measured range ends."""

    def ok(*a):
        r = dbs(*a)
        assert r.returncode == 0, r.stderr
        return r.stdout

    ok("simulate", "--write-log", "--d", "300", "--quiet", "--out", str(tmp_path / "sim"))
    ok("fit", str(tmp_path / "sim" / "runs.csv"), "--bootstrap", "30", "--out", str(tmp_path / "fit"))
    out = ok(
        "schedule",
        "--from",
        str(tmp_path / "fit" / "fit.json"),
        "--rule",
        "paper",
        "--horizon",
        "1e7",
        "--extrapolate",
        "--out",
        str(tmp_path / "sched"),
    )
    assert "Past the measured range" in out and "Bopt in [" in out
    ok("report", str(tmp_path / "sched"))
    md = (tmp_path / "sched" / "report.md").read_text()
    assert "bopt-band" in md and "the band opens" in md


def test_wide_report_tables_scroll_in_their_own_box():
    """A wide per-target table overflowed the page; tables now scroll horizontally, and a
    phone gets the device width."""
    from dbs_report.report import markdown_to_html

    md = (
        "| "
        + " | ".join(f"column {i}" for i in range(30))
        + " |\n|"
        + "---|" * 30
        + "\n| "
        + " | ".join("1.234e+05" for _ in range(30))
        + " |\n"
    )
    page = markdown_to_html(md, {})
    style = page[page.index("<style>") : page.index("</style>")]
    table_rule = style[style.index("table{") :].split("}")[0]
    assert "overflow-x:auto" in table_rule and "display:block" in table_rule
    assert "name='viewport'" in page and "<table>" in page
