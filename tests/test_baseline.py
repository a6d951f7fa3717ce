"""Baselines: write, load, compare, provenance warnings, and `mcis-claims compare`. Synthetic records, no model."""
import json
import math

import pytest

from mcis_claims.baseline import (
    BASELINE_SCHEMA_VERSION, BaselineFile, Expectation, check_against_baseline, compare, load_baseline,
    meta_warnings, write_baseline,
)
from mcis_claims.cli import main
from mcis_claims.errors import InputError, McisError, ReportError
from mcis_claims.report import RunReport
from test_report import make_record  # tests/ is on sys.path (rootdir conftest, no __init__.py)

FINGERPRINT = "ab" * 32
META = {"seed": 0, "config": {"profile": "default", "n_prompts": 128, "report_dir": "/tmp/a", "seed": 0},
        "versions": {"torch": "2.13.0", "numpy": "2.1.0", "platform": "Linux-x", "git_sha": "abc"},
        "models": {"smollm2-135m": {"name": "smollm2-135m", "fingerprint_sha256": FINGERPRINT, "n_layers": 30}},
        "corpus": {"name": "lee", "sha256": "cd" * 32, "documents": 3},
        "prompts": {"smollm2-135m": {"windows": [[0, 1]] * 100}}}


def record(claim="C2", model="smollm2-135m", layer=1, verdict="refuted", value=0.977, low=0.905, high=1.05,
           name="median_ratio", n=128):
    """A results.json record (CellRecord.to_dict() form), with only the fields a baseline reads and a few more."""
    return {"claim": claim, "model": model, "layer": layer, "site": f"blocks.{layer}.hook_resid_pre", "n": n,
            "effect": {"name": name, "value": value, "ci_low": low, "ci_high": high, "ci_level": 0.95},
            "p_value": 0.2, "p_adjusted": 1.0, "verdict": verdict, "reason": "synthetic", "sesoi": 0.9}


RUN = [record("C1", layer=1, verdict="supported", value=1.4, low=1.2, high=1.6),
       record("C1", layer=15, verdict="inconclusive", value=1.05, low=0.95, high=1.2),
       record("C2", layer=1), record("C10", layer=1, verdict="supported", value=0.5, low=None, high=None)]


@pytest.fixture
def baseline_path(tmp_path):
    return write_baseline(tmp_path / "deep" / "er" / "baseline.json", RUN, META)


def test_write_load_round_trip(baseline_path):
    assert not list(baseline_path.parent.glob("*.tmp"))  # atomic: the temporary file was renamed away
    data = json.loads(baseline_path.read_text())
    assert data["schema_version"] == BASELINE_SCHEMA_VERSION
    assert [(e["claim"], e["layer"]) for e in data["expectations"]] == [("C1", 1), ("C1", 15), ("C2", 1), ("C10", 1)]
    loaded = load_baseline(baseline_path)
    assert isinstance(loaded, BaselineFile) and len(loaded.expectations) == 4
    assert loaded.expectations[("C2", "smollm2-135m", 1)] == Expectation(
        "C2", "smollm2-135m", 1, "refuted", "median_ratio", 0.977, 0.905, 1.05, 128)
    no_ci = loaded.expectations[("C10", "smollm2-135m", 1)]
    assert math.isnan(no_ci.ci_low) and math.isnan(no_ci.ci_high)  # null in JSON, NaN in memory
    meta = loaded.meta
    assert meta["seed"] == 0 and meta["config"]["profile"] == "default" and meta["created"]
    assert meta["models"]["smollm2-135m"]["fingerprint_sha256"] == FINGERPRINT
    assert "prompts" not in meta and "documents" not in meta["corpus"]  # provenance, not the run's bulk
    assert all(c.status == "same" for c in compare(RUN, loaded))


def test_a_report_directory_serves_as_a_baseline(tmp_path):
    run = RunReport(tmp_path / "run", run_meta=META)
    run.add(make_record("C1", "supported"))
    run.finalize(wall_time_s=1.0)
    loaded = load_baseline(tmp_path / "run")
    assert list(loaded.expectations) == [("C1", "smollm2-135m", 1)]
    assert loaded.meta["seed"] == 0
    # and CellRecords work as records, as the plugin holds them
    assert [c.status for c in compare(run.records(), loaded)] == ["same"]


def test_flipped_verdict_is_changed_and_names_the_cell(baseline_path):
    run = [*RUN[:2], record("C2", layer=1, verdict="supported", value=0.81, low=0.75, high=0.88), RUN[3]]
    comparisons = compare(run, load_baseline(baseline_path))
    assert [c.status for c in comparisons] == ["same", "same", "changed", "same"]  # (claim, model, layer) order
    changed = comparisons[2]
    assert changed.key == ("C2", "smollm2-135m", 1)
    assert changed.message == ("C2 smollm2-135m layer 1: verdict refuted -> supported "
                               "(median_ratio 0.977 [0.905, 1.05] -> median_ratio 0.81 [0.75, 0.88])")
    report = check_against_baseline(run, META, baseline_path)
    assert report.failed and report.failures == [changed.message]
    assert any("--update-baseline" in line for line in report.lines)
    assert all("\n" not in line for line in report.lines)


def test_drift_when_the_effect_leaves_the_baseline_ci(baseline_path):
    run = [record("C1", layer=1, verdict="supported", value=1.9, low=1.7, high=2.1), *RUN[1:]]
    comparisons = compare(run, load_baseline(baseline_path))
    drift = [c for c in comparisons if c.status == "drift"]
    assert len(drift) == 1 and drift[0].key == ("C1", "smollm2-135m", 1)
    assert "above the baseline's CI [1.2, 1.6]" in drift[0].message
    report = check_against_baseline(run, META, baseline_path)
    assert not report.failed and report.warnings == [drift[0].message]
    inside = [record("C1", layer=1, verdict="supported", value=1.59, low=1.3, high=1.9), *RUN[1:]]
    assert all(c.status == "same" for c in compare(inside, load_baseline(baseline_path)))  # inside the CI


def test_new_and_missing_cells_never_fail(baseline_path):
    run = [*RUN[:3], record("C2", model="gpt2", layer=6, verdict="supported", value=0.7, low=0.6, high=0.8),
           record("C2", layer=29, verdict="inconclusive")]  # C10 is not run
    comparisons = compare(run, load_baseline(baseline_path))
    by_key = {c.key: c for c in comparisons}
    assert by_key[("C2", "gpt2", 6)].status == "new"
    assert "model gpt2 has no baseline: reported, not judged" in by_key[("C2", "gpt2", 6)].message
    assert by_key[("C2", "smollm2-135m", 29)].status == "new"
    assert "cell not in the baseline" in by_key[("C2", "smollm2-135m", 29)].message
    assert by_key[("C10", "smollm2-135m", 1)].status == "missing"
    assert "not in this run" in by_key[("C10", "smollm2-135m", 1)].message
    report = check_against_baseline(run, META, baseline_path)
    assert not report.failed and not report.warnings
    assert report.counts() == {"changed": 0, "drift": 0, "new": 2, "missing": 1, "same": 3}


def test_meta_warnings_on_changed_fingerprint_and_versions(baseline_path):
    baseline = load_baseline(baseline_path)
    assert meta_warnings(META, baseline) == []
    changed = {**META, "models": {"smollm2-135m": {"fingerprint_sha256": "ef" * 32}},
               "versions": {**META["versions"], "torch": "2.14.0", "platform": "Darwin", "git_sha": "def"},
               "config": {**META["config"], "profile": "smoke", "report_dir": "/tmp/b"}}
    warnings = meta_warnings(changed, baseline)
    assert len(warnings) == 3, warnings
    assert warnings[0].startswith("model smollm2-135m: fingerprint_sha256 efefefefefef… differs from the "
                                  "baseline's abababababab…")
    assert "config profile: smoke differs from the baseline's default" in warnings
    assert warnings[2] == "versions differ from the baseline's: torch 2.13.0 -> 2.14.0"  # platform, git_sha ignored
    report = check_against_baseline(RUN, changed, baseline_path)
    assert not report.failed and len(report.warnings) == 3


def test_update_baseline_writes_this_run_and_does_not_fail(tmp_path, baseline_path):
    run = [record("C2", layer=1, verdict="supported", value=0.81, low=0.75, high=0.88)]
    report = check_against_baseline(run, META, baseline_path, update=True)
    assert not report.failed and report.written == baseline_path
    assert [c.status for c in report.comparisons].count("changed") == 1  # still shown
    assert list(load_baseline(baseline_path).expectations) == [("C2", "smollm2-135m", 1)]
    fresh = check_against_baseline(run, META, tmp_path / "new" / "b.json", update=True)
    assert fresh.comparisons == [] and (tmp_path / "new" / "b.json").is_file()
    (tmp_path / "corrupt.json").write_text("{oops")
    replaced = check_against_baseline(run, META, tmp_path / "corrupt.json", update=True)
    assert "previous baseline not compared" in replaced.lines[0] and load_baseline(tmp_path / "corrupt.json")


def test_bad_files_give_one_line_errors(tmp_path):
    cases = {"missing.json": (None, ReportError, "does not exist; create it with --update-baseline"),
             "bad.json": ("{not json", ReportError, "is not valid JSON"),
             "list.json": ("[1, 2]", InputError, "top level is a list"),
             "schema.json": (json.dumps({"schema_version": 99, "expectations": []}), InputError, "schema_version 99"),
             "entry.json": (json.dumps({"schema_version": 1, "expectations": [{"claim": "C1"}]}), InputError,
                            "entry 0 is malformed"),
             "twice.json": (json.dumps({"schema_version": 1, "expectations": [
                 {"claim": "C1", "model": "m", "layer": 1, "verdict": "supported"}] * 2}), InputError,
                 "entry 1 repeats C1 m layer 1")}
    for name, (text, error, match) in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(error, match=match) as info:
            load_baseline(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)
        assert isinstance(info.value, McisError)
    with pytest.raises(ReportError, match="does not exist"):
        check_against_baseline(RUN, META, tmp_path / "missing.json")  # without --update-baseline: an error
    with pytest.raises(InputError, match="record 0"):
        compare([{"claim": "C1"}], load_baseline(write_baseline(tmp_path / "ok.json", RUN, META)))


def test_cli_compare_exit_codes(tmp_path, baseline_path, capsys):
    same = write_baseline(tmp_path / "same.json", RUN, META)
    assert main(["compare", str(baseline_path), str(same)]) == 0
    out = capsys.readouterr().out
    assert "C10" in out and "same" in out and "changed" in out  # the caption counts every status

    flipped = tmp_path / "results.json"  # a results.json as NEW
    run = [*RUN[:2], record("C2", layer=1, verdict="supported", value=0.81, low=0.75, high=0.88), RUN[3]]
    flipped.write_text(json.dumps({"schema_version": 1, "run": {"seed": 0}, "records": run, "results_hash": "x"}))
    assert main(["compare", str(baseline_path), str(flipped)]) == 1
    out = capsys.readouterr().out
    assert "CHANGED C2 smollm2-135m layer 1: verdict refuted -> supported" in " ".join(out.split())

    drifted = write_baseline(tmp_path / "drift.json",
                             [record("C1", layer=1, verdict="supported", value=1.9, low=1.7, high=2.1)], META)
    assert main(["compare", str(baseline_path), str(drifted)]) == 0  # drift and missing warn, never fail
    assert "drift" in capsys.readouterr().out

    assert main(["compare", str(baseline_path), str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mcis-claims: run") and "does not exist" in err and err.count("\n") == 1
    assert "--update-baseline" not in err  # the run is not a baseline to create
    assert main(["compare", str(baseline_path), str(tmp_path / "latest")]) == 2
    assert "reports/latest points at the last run made without --report-dir" in capsys.readouterr().err


def test_cli_compare_only_common_formats_and_several_runs(tmp_path, baseline_path, capsys):
    two_cells = write_baseline(tmp_path / "two.json", RUN[:2], META)
    assert main(["compare", str(baseline_path), str(two_cells), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) == len(RUN) and sum(r["status"] == "missing" for r in rows) == len(RUN) - 2
    assert main(["compare", str(baseline_path), str(two_cells), "--only-common", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in data["rows"]] == ["same", "same"] and data["counts"]["same"] == 2

    flipped = write_baseline(tmp_path / "flipped.json",
                             [*RUN[:2], record("C2", layer=1, verdict="supported", value=0.81, low=0.75, high=0.88),
                              RUN[3]], META)
    assert main(["compare", str(baseline_path), str(two_cells), str(flipped), "--format", "md"]) == 1
    table = capsys.readouterr().out
    header = table.splitlines()[0]
    assert header.count("`") == 6  # a column per run: the reference and two runs
    [row] = [line for line in table.splitlines() if line.startswith("| C2 | smollm2-135m | 1 |")]
    assert row.endswith("| **changed** |") and "| — |" in row  # missing in one run, changed in the other


@pytest.mark.parametrize("now", ["negligible", "reversed"])
def test_an_old_refuted_matches_either_new_word_with_a_warning(baseline_path, now):
    """Baselines written before the four-word rule still load: `refuted` was negligible-or-reversed."""
    run = [*RUN[:2], record("C2", layer=1, verdict=now), RUN[3]]
    comparisons = compare(run, load_baseline(baseline_path))
    [legacy] = [c for c in comparisons if c.key == ("C2", "smollm2-135m", 1)]
    assert legacy.status == "drift" and "re-record the baseline" in legacy.message
    report = check_against_baseline(run, META, baseline_path)
    assert not report.failed
    flipped = [*RUN[:2], record("C2", layer=1, verdict="inconclusive"), RUN[3]]
    assert check_against_baseline(flipped, META, baseline_path).failed  # refuted -> inconclusive is a change


def with_sae(rec, sha):
    return {**rec, "details": {"sae_weights_sha256": sha}}


def test_a_changed_sae_weights_hash_warns_and_never_passes_silently(tmp_path):
    c10a = record("C10a", verdict="supported", value=1.3, low=1.15, high=1.5)
    c10b = record("C10b", verdict="negligible", value=1.0, low=0.95, high=1.05)
    base = [with_sae(c10a, "aa" * 32), with_sae(c10b, {"l0_8": "bb" * 32, "l0_64": "cc" * 32})]
    path = write_baseline(tmp_path / "baseline.json", base, META)
    loaded = load_baseline(path)
    assert loaded.expectations[("C10b", "smollm2-135m", 1)].sae_weights_sha256 == f"l0_64:{'cc' * 32},l0_8:{'bb' * 32}"
    same = check_against_baseline(base, META, path)
    assert not same.warnings and same.counts()["same"] == 2  # the same SAEs: nothing to say
    run = [with_sae(c10a, "dd" * 32), with_sae(c10b, {"l0_8": "bb" * 32, "l0_64": "ee" * 32})]
    report = check_against_baseline(run, META, path)
    assert not report.failed and report.counts()["same"] == 2  # same verdicts and effects, yet it warns
    assert report.warnings == [
        "provenance: C10a smollm2-135m layer 1: SAE weights sha256 dddddddddddd… differ from the baseline's "
        "aaaaaaaaaaaa…; the SAE was trained or chosen differently, so its numbers may move",
        "provenance: C10b smollm2-135m layer 1: SAE weights sha256 l0_64:eeeeeeeeeeee…,l0_8:bbbbbbbbbbbb… differ "
        "from the baseline's l0_64:cccccccccccc…,l0_8:bbbbbbbbbbbb…; the SAE was trained or chosen differently, "
        "so its numbers may move"]
    assert any(line.startswith("warning: provenance: C10a") for line in report.lines)
    # a baseline recorded before SAE hashes were kept compares as before, without a warning
    old = write_baseline(tmp_path / "old.json", [c10a, c10b], META)
    assert not check_against_baseline(run, META, old).warnings
