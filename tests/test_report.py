"""The report: results.json, its hash, figures, summary.md, the verdict table. Synthetic records, no model."""
import json
import math
import os

import numpy as np
import pytest
from rich.console import Console

from mcis_claims.errors import ReportError
from mcis_claims.report import RunReport, render_verdict_table
from mcis_claims.records import SCHEMA_VERSION, CellRecord, CurveSet, _jsonable, load_results, results_hash

RADII = np.concatenate([[0.0], np.geomspace(0.02, 4.0, 20)])  # (21,) as the default schedule
RECORD_FIELDS = {"claim", "model", "layer", "site", "n", "statistic", "effect", "p_value", "p_adjusted", "verdict",
                 "reason", "sesoi", "alpha", "spec", "details", "curve_summary", "figure", "unit_figure", "timing_s"}
META = {"seed": 7, "versions": {"numpy": np.__version__, "torch": "2.13.0"},
        "models": {"smollm2-135m": {"sha256": "ab" * 32, "source": "embedded GGUF", "device": "cuda:0"}},
        "corpus": {"name": "lee", "sha256": "cd" * 32}, "prompts": {"n": 64, "length": 10},
        "config": {"profile": "default", "comparable": True}, "command": "pytest claims/ --seed=7"}


def sigmoid_curves(n, centre, rng):
    """(n, S) KL that stays near 0 and rises like a sigmoid in log radius around `centre`."""
    centres = centre * np.exp(rng.normal(0, 0.3, (n, 1)))
    with np.errstate(divide="ignore"):
        z = (np.log(RADII[None, :]) - np.log(centres)) / 0.3
    return 3.0 / (1.0 + np.exp(-z))


def make_record(claim="C1", verdict="supported", layer=1, effect=1.4, seed=0, timing=0.5, model="smollm2-135m"):
    """A synthetic cell; `timing` sets both the cell time and a named cost (neither may reach the hash)."""
    rng = np.random.default_rng(seed)
    n = 64
    curves = [CurveSet("isotropic", RADII, sigmoid_curves(n, 1.5, rng)),
              CurveSet("cov_random_mixture", RADII, sigmoid_curves(n, 0.6, rng)),
              CurveSet("real_mixture", RADII, 0.5 * RADII[None, :] ** 2 * rng.lognormal(0, 0.3, (n, 1)))]
    return CellRecord(
        claim=claim, model=model, layer=layer, site=f"blocks.{layer}.hook_resid_pre", n=n,
        statistic={"name": "wilcoxon_W", "value": np.float64(1800.0)},
        effect={"name": "median_ratio", "value": effect, "ci_low": effect - 0.2, "ci_high": effect + 0.2,
                "ci_level": 0.95},
        p_value=np.float32(1e-5), p_adjusted=None, verdict=verdict, reason=f"median ratio {effect} (synthetic)",
        spec={"id": claim, "title": "Synthetic claim", "sesoi": 1.1, "alpha": 0.01, "alternative": "greater"},
        details={"kl_threshold_nats": 0.1, "censored": np.int64(3), "secondary": float("nan"),
                 "radii": RADII, "upper": float("inf")},
        timing_s=timing, curves=curves, costs_s={"optimisation": timing / 2},
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A finished run of three cells, shared by the tests that only read it (each figure takes ~0.3 s)."""
    run = RunReport(tmp_path_factory.mktemp("report") / "run", run_meta=META)
    for claim, verdict in (("C1", "supported"), ("C2", "negligible"), ("C10", "inconclusive")):
        run.add(make_record(claim, verdict))
    run.finalize(wall_time_s=65.0, extra_meta={"corpus": {"documents": 3}})
    return run


def test_results_json_has_every_field_and_round_trips(report):
    directory = report.directory
    data = load_results(directory / "results.json")
    assert data == json.loads((directory / "results.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["run"]["seed"] == 7 and data["run"]["wall_time_s"] == 65.0
    assert data["run"]["started"] and data["run"]["finished"]
    assert data["run"]["corpus"] == {"name": "lee", "sha256": "cd" * 32, "documents": 3}  # merged, not replaced
    assert [r["claim"] for r in data["records"]] == ["C1", "C2", "C10"]  # natural order
    for record in data["records"]:
        assert set(record) >= RECORD_FIELDS
        assert set(record["effect"]) == {"name", "value", "ci_low", "ci_high", "ci_level"}
        assert record["sesoi"] == 1.1 and record["alpha"] == 0.01
        summary = record["curve_summary"]
        assert set(summary) == {"isotropic", "cov_random_mixture", "real_mixture"}
        assert all(len(summary[k][q]) == len(RADII) for k in summary for q in ("radii", "median", "q25", "q75"))
        assert (directory / record["figure"]).is_file()
    assert load_results(directory) == data  # a report directory works too


def test_non_finite_numbers_are_written_as_null(report):
    text = (report.directory / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    details = load_results(report.directory)["records"][0]["details"]
    assert details["secondary"] is None and details["upper"] is None
    assert details["censored"] == 3 and len(details["radii"]) == len(RADII)
    assert _jsonable({"a": np.array([1.0, np.nan]), "b": (np.float32(2.5), np.bool_(True))}) == \
        {"a": [1.0, None], "b": [2.5, True]}


def test_results_json_is_written_as_each_record_arrives(tmp_path):
    run = RunReport(tmp_path / "run", run_meta=META)
    run.add(make_record("C1"))
    data = load_results(tmp_path / "run", allow_incomplete=True)  # no finalize: a crash now would lose nothing
    assert [r["claim"] for r in data["records"]] == ["C1"] and data["run"]["finished"] is None
    assert data["run"]["complete"] is False  # a run killed now is marked as such on disk
    with pytest.raises(ReportError, match="incomplete run"):
        load_results(tmp_path / "run")  # and refused for comparisons
    assert not [p for p in (tmp_path / "run").rglob("*.tmp")]  # temporary files were renamed away


def test_results_hash_ignores_timing_order_and_directory_but_not_values(tmp_path):
    def run(name, records):
        report = RunReport(tmp_path / name, run_meta=META)
        for record in records:
            report.add(record)
        return load_results(report.finalize(wall_time_s=1.0))["results_hash"]

    first = run("a", [make_record("C1", timing=0.1), make_record("C2", timing=0.2)])
    again = run("b", [make_record("C2", timing=9.0), make_record("C1", timing=3.0)])
    changed = run("c", [make_record("C1", effect=1.4000001), make_record("C2")])
    assert first == again
    assert first != changed
    data = load_results(tmp_path / "a")
    assert results_hash(data["records"]) == data["results_hash"]


def test_figure_is_a_png_of_reasonable_size(report):
    record = report.records()[0]
    assert record.figure == "figures/C1_smollm2-135m_L1.png"
    png = (report.directory / record.figure).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 20_000


def test_figure_names_are_sanitised_and_distinct(tmp_path):
    run = RunReport(tmp_path / "run", run_meta=META)
    run.add(make_record(model="org/model"))
    run.add(make_record(model="org-model"))
    run.add(make_record(model="/very/long/" + "x" * 300 + "/model"))
    names = [r.figure for r in run.records()]
    assert len(set(names)) == 3
    for name in names:
        path = run.directory / name
        assert path.is_file() and path.parent == run.directory / "figures" and len(path.name) < 120


def test_set_adjusted_updates_json_and_redraws(tmp_path):
    report = RunReport(tmp_path / "run", run_meta=META)
    report.add(make_record("C1"))
    before = (report.directory / "figures/C1_smollm2-135m_L1.png").read_bytes()
    report.set_adjusted(("C1", "smollm2-135m", 1), 0.03, "inconclusive", "p_adj 0.03 >= alpha 0.01")
    record = load_results(report.directory, allow_incomplete=True)["records"][0]  # mid-run
    assert (record["p_adjusted"], record["verdict"], record["reason"]) == (0.03, "inconclusive",
                                                                           "p_adj 0.03 >= alpha 0.01")
    assert (report.directory / record["figure"]).read_bytes() != before  # the title names the verdict
    with pytest.raises(KeyError, match="C9"):
        report.set_adjusted(("C9", "smollm2-135m", 1), 0.5, "refuted", "x")


def test_summary_md_has_provenance_and_every_verdict(report):
    summary = (report.directory / "summary.md").read_text()
    for text in ("seed** 7", "smollm2-135m", "ab" * 32, "device cuda:0", "lee", "cd" * 32, "torch 2.13.0", "65.0 s",
                 "| C1 |", "**supported**", "| C2 |", "**negligible**", "| C10 |", "**inconclusive**",
                 "(figures/C1_smollm2-135m_L1.png)", "median ratio 1.4 (synthetic)",
                 "**rule** fixed n: each cell judged once"):  # META's config predates the rule's key
        assert text in summary, text


def test_html_report_is_self_contained(report):
    page = (report.directory / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 + 1  # one per cell, and the forest figure
    assert "<script" not in page and 'src="http' not in page and "src='figures" not in page


def test_unwritable_directory_is_one_line_report_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("a regular file, so nothing can be created under it")  # blocks root too
    with pytest.raises(ReportError) as info:
        RunReport(blocker / "sub", run_meta=META)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"cannot write report directory {blocker / 'sub'}: ")
    assert message.endswith("pass --report-dir to a writable path")


def test_default_directory_is_a_timestamp_under_reports_with_latest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = RunReport(None, run_meta=META)
    second = RunReport(None, run_meta=META)  # the same second: a distinct directory
    assert not (tmp_path / "reports").exists()  # nothing created before the first record
    for run in (first, second):
        run.add(make_record())
        run.finalize(wall_time_s=1.0)  # reports/latest moves at the end of the run
        assert run.directory.parent == tmp_path / "reports"
        assert run.directory.name[:4].isdigit() and "T" in run.directory.name and ":" not in run.directory.name
    assert first.directory != second.directory
    latest = tmp_path / "reports" / "latest"
    if latest.is_symlink():
        assert latest.resolve() == second.directory
    else:
        assert latest.read_text().strip() == str(second.directory)


def test_report_dir_ending_in_json_writes_exactly_there(tmp_path):
    run = RunReport(tmp_path / "out" / "my-run.json", run_meta=META)
    run.add(make_record())
    run.finalize(wall_time_s=1.0)
    assert load_results(tmp_path / "out" / "my-run.json")["records"][0]["claim"] == "C1"
    assert (tmp_path / "out" / "figures" / "C1_smollm2-135m_L1.png").is_file()


def test_load_results_rejects_other_schemas(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"schema_version": 99, "run": {}, "records": [], "results_hash": ""}))
    with pytest.raises(ReportError, match="schema_version 99"):
        load_results(path)
    path.write_text("{not json")
    with pytest.raises(ReportError, match="not valid JSON"):
        load_results(path)
    with pytest.raises(ReportError, match="does not exist"):
        load_results(tmp_path / "missing.json")


def test_verdict_table_has_one_row_per_record(report):
    records = report.records()
    console = Console(file=open(os.devnull, "w"), width=120)
    table = render_verdict_table(records, console)
    assert table.row_count == len(records) == 3
    assert [c.header for c in table.columns] == ["claim", "model", "layer", "n", "effect [CI]", "p", "p_adj",
                                                 "censored a/b", "verdict"]
    verdicts = [cell.plain for cell in table.columns[-1]._cells]
    assert verdicts == ["supported", "negligible", "inconclusive"]
    styles = [str(cell.style) for cell in table.columns[-1]._cells]
    assert "green" in styles[0] and "red" in styles[1] and "yellow" in styles[2]


def test_verdict_table_prints_names_with_brackets_verbatim():
    console = Console(record=True, width=160, color_system=None)
    render_verdict_table([make_record(model="/tmp/[weird]/model")], console)
    assert "/tmp/[weird]/model" in console.export_text()


def test_curve_set_checks_shapes():
    with pytest.raises(Exception, match="must be"):
        CurveSet("isotropic", RADII, np.zeros((4, 5)))
    assert CurveSet("isotropic", RADII, np.zeros(len(RADII))).values.shape == (1, len(RADII))


def test_curve_summary_is_median_and_quartiles():
    values = np.arange(5.0)[:, None] * np.ones((1, 3))  # prompts 0..4 at 3 radii
    summary = CurveSet("isotropic", np.array([0.0, 1.0, 2.0]), values).summary()
    assert summary["median"].tolist() == [2.0, 2.0, 2.0]
    assert summary["q25"].tolist() == [1.0, 1.0, 1.0] and summary["q75"].tolist() == [3.0, 3.0, 3.0]
    assert math.isnan(CurveSet("x", np.array([0.0]), np.array([[np.nan]])).summary()["median"][0])


def test_forest_figure_covers_every_cell_and_is_linked(report):
    png = (report.directory / "figures" / "forest.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 20_000
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width > 1000 and 300 < height < 2000  # three cells: one short panel
    assert "(figures/forest.png)" in (report.directory / "summary.md").read_text()
    assert "alt='effect sizes of every cell'" in (report.directory / "report.html").read_text()


def test_forest_figure_mixes_effect_names_and_survives_missing_numbers(tmp_path):
    from mcis_claims.figures import plot_forest

    records = [make_record(f"C{i % 3 + 1}", ("supported", "negligible", "inconclusive")[i % 3], layer=i, effect=1 + i / 40,
                           model=("smollm2-135m", "gpt2")[i % 2]).to_dict() for i in range(40)]
    records[0]["effect"] = {"name": "mean_difference", "value": -0.1, "ci_low": -0.3, "ci_high": 0.1}  # linear panel
    records[1]["effect"].update(value=None, ci_low=None, ci_high=None)  # NaN in the run: drawn as text only
    records[2]["effect"].update(ci_low=None)
    records[3]["effect"].update(ci_low=-0.5)  # a non-positive ratio: that panel is drawn linear
    plot_forest(records, tmp_path / "forest.png")
    png = (tmp_path / "forest.png").read_bytes()
    height = int.from_bytes(png[20:24], "big")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and 1000 < height < 2500  # 40 rows stay readable, not huge


def test_summary_names_a_site_that_failed_parity():
    from mcis_claims.records import _parity_str

    line = _parity_str({"m|1": {"ok": True, "kl_max_abs_err": 5e-6, "resid_l2_max_rel_err": 1e-5},
                        "m|2": {"ok": False, "kl_max_abs_err": 0.3, "resid_l2_max_rel_err": 2e-5}})
    assert line == "1 of 2 sites ok (FAILED: m|2); max |dKL| 0.3 nats, max residual error 2e-05 of the radius or the change"


def test_the_report_header_says_how_the_cells_were_judged():
    """summary.md and report.html name the rule: the looks and where the cells stopped, or fixed n."""
    from mcis_claims.records import rule_line

    plan = {"stages": [32, 64, 128], "alpha_shares": [1 / 64, 7 / 64, 56 / 64]}

    def record(n, looked=True):
        return {"n": n, "details": {"decision": {"sequential": {"plan": plan, "n": n}} if looked else {}}}

    records = [record(32), record(32), record(128), record(16, looked=False)]
    assert rule_line({"sequential": True}, records) == (
        "sequential looks at 32, 64, 128 base prompts (1.6%, 10.9%, 87.5% of alpha); "
        "cells stopped at n = 32 (2), 128 (1); 1 judged once")
    assert rule_line({"sequential": False}, [record(128, looked=False)]).startswith("fixed n: ")
    assert "no cell had more than the first look's" in rule_line({"sequential": True}, [record(32, looked=False)])
