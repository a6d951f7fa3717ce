"""Runs split over processes and machines (parallel.py, shards.py), end to end on a tiny model.

One serial run of C1/C2/C2b at layers 1 and 2 is the reference; pytest-xdist (-n 2), two shards
merged, a resumed run and `mcis-claims submit` must give the same records, apart from timing.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import char_tokenizer, tiny_llama

CLAIMS = Path(__file__).resolve().parents[1] / "claims"
PLUGIN = ["-p", "mcis_claims.plugin", "-p", "no:cacheprovider"]
TIMING = ("timing_s", "costs_s")
REPORT_FILES = ("results.json", "summary.md", "report.html", "figures/forest.png")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("parallel")
    model = root / "tiny"
    tiny_llama(n_layers=3, d_model=32).save_pretrained(model)
    char_tokenizer(model)
    claims = root / "claims"
    claims.mkdir()
    for name in ("test_c1_plateaus.py", "test_c2_sensitive_directions.py"):
        shutil.copy(CLAIMS / name, claims / name)
    return root


def args_for(project):
    return ["claims", "--models", str(project / "tiny"), "--corpus", "pydoc", "--n-prompts", "12",
            "--n-directions", "1", "--layers", "1,2", *PLUGIN]


def pytest_run(project, *extra, timeout=600):
    result = subprocess.run([sys.executable, "-m", "pytest", *args_for(project), *extra], cwd=project,
                            capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr


def records(directory):
    data = json.loads((Path(directory) / "results.json").read_text())
    return [{k: v for k, v in r.items() if k not in TIMING} for r in data["records"]]


@pytest.fixture(scope="module")
def serial(project):
    code, out = pytest_run(project, "--report-dir", str(project / "serial"))
    assert code in (0, 1), out
    return project / "serial"


@pytest.mark.slow
def test_xdist_gives_the_serial_report(project, serial):
    report = project / "xdist"
    code, out = pytest_run(project, "-n", "2", "--report-dir", str(report))
    assert code in (0, 1), out
    assert "mcis-claims verdicts" in out and f"report: {report}" in out
    for name in REPORT_FILES:
        assert (report / name).is_file(), name
    assert records(report) == records(serial)  # same cells, family, p values, verdicts, figure paths
    data = json.loads((report / "results.json").read_text())
    assert data["run"]["complete"] and data["run"]["family"] == 6
    assert data["run"]["sites"] and data["run"]["parity"] and data["run"]["models"]  # the workers' provenance
    assert all((report / r["figure"]).is_file() for r in data["records"])
    assert "@mcis-" not in json.dumps(data)  # xdist's loadgroup suffix never reaches a record


@pytest.mark.slow
def test_shards_merge_into_the_serial_report(project, serial):
    for index in (1, 2):
        code, out = pytest_run(project, "--shard", f"{index}/2", "--report-dir", str(project / f"shard-{index}"))
        assert code in (0, 1), out
        shard = json.loads((project / f"shard-{index}" / "results.json").read_text())["run"]["shard"]
        assert shard["index"] == index and shard["count"] == 2 and shard["family"] == 6
        assert len(shard["cells"]) == 3 and len(shard["grid"]) == 6
    assert not set(json.loads((project / "shard-1/results.json").read_text())["run"]["shard"]["cells"]) & set(
        json.loads((project / "shard-2/results.json").read_text())["run"]["shard"]["cells"])
    merged = project / "merged"
    done = subprocess.run([sys.executable, "-m", "mcis_claims.cli", "merge", "shard-1", "shard-2", "--out",
                           str(merged)], cwd=project, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in REPORT_FILES:
        assert (merged / name).is_file(), name
    assert records(merged) == records(serial)
    data = json.loads((merged / "results.json").read_text())
    assert data["run"]["complete"] and data["run"]["family"] == 6 and len(data["run"]["merged_from"]) == 2


def _merge_error(project, *dirs):
    done = subprocess.run([sys.executable, "-m", "mcis_claims.cli", "merge", *map(str, dirs), "--out",
                           str(project / "refused")], cwd=project, capture_output=True, text=True)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.mark.slow
def test_merge_refuses_shards_of_other_runs_and_missing_ones(project):
    if not (project / "shard-2" / "results.json").exists():
        pytest.skip("needs the shards of test_shards_merge_into_the_serial_report")
    assert "shard 2/2 is missing" in _merge_error(project, project / "shard-1")
    assert "given twice" in _merge_error(project, project / "shard-1", project / "shard-1")
    for field, change in (("seed", lambda run: run.update(seed=1)),
                          ("versions", lambda run: run["versions"].update(torch="0.0")),
                          ("versions", lambda run: run["versions"].update(git_sha="0" * 40))):  # other code
        other = project / f"other-{field}"
        shutil.copytree(project / "shard-2", other, dirs_exist_ok=True)
        data = json.loads((other / "results.json").read_text())
        change(data["run"])
        (other / "results.json").write_text(json.dumps(data))
        assert f"{field} differs" in _merge_error(project, project / "shard-1", other)


def test_bad_shard_options_fail_with_one_line(pytester):
    for value, message in (("4/3", "I must be between 1 and N"), ("x", "expected I/N"), ("0/3", "between 1 and N")):
        result = pytester.runpytest_subprocess("--shard", value, *PLUGIN)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        errors = [line for line in (result.stdout.lines + result.stderr.lines) if "--shard" in line]
        assert len(errors) == 1 and message in errors[0], errors


@pytest.mark.slow
def test_resume_reuses_finished_cells_and_gives_the_full_report(project, serial):
    report = project / "resumed"
    code, out = pytest_run(project, "--report-dir", str(report), "-k", "c1")  # "interrupted": only C1 ran
    assert code in (0, 1), out
    names = sorted(p.name for p in (report / "cells").glob("*.json"))
    assert len(names) == 2 and all(n.startswith("C1_") for n in names), names
    # mark one finished cell: if it is reused, its record comes back as written
    cell = next((report / "cells").glob("*L1.json"))
    data = json.loads(cell.read_text())
    data["record"]["timing_s"] = 12345.0
    cell.write_text(json.dumps(data))
    code, out = pytest_run(project, "--report-dir", str(report), "--resume", str(report))
    assert code in (0, 1), out
    assert "--resume reused 2 finished cell(s)" in out
    assert records(report) == records(serial)
    final = json.loads((report / "results.json").read_text())
    assert final["run"]["complete"]
    assert [r["timing_s"] for r in final["records"] if r["claim"] == "C1" and r["layer"] == 1] == [12345.0]
    for name in REPORT_FILES:
        assert (report / name).is_file(), name


@pytest.mark.slow
def test_resume_runs_a_cell_again_when_its_key_differs(project):
    report = project / "resumed"
    if not (report / "cells").is_dir():
        pytest.skip("needs the report of test_resume_reuses_finished_cells_and_gives_the_full_report")
    code, out = pytest_run(project, "--report-dir", str(project / "reseeded"), "--resume", str(report),
                           "--seed", "1", "-k", "c1 and blocks.1")
    assert code in (0, 1), out
    assert "--resume reused 0 finished cell(s)" in out


def test_resume_without_cell_records_is_a_usage_error(pytester, tmp_path):
    result = pytester.runpytest_subprocess("--resume", str(tmp_path), *PLUGIN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "no cells/ folder" in result.stdout.str() + result.stderr.str()


@pytest.mark.slow
def test_submit_with_the_local_executor_merges_the_serial_report(project, serial):
    out = project / "submitted"
    done = subprocess.run([sys.executable, "-m", "mcis_claims.cli", "submit", "--shards", "2", "--cluster", "local",
                           "--timeout-min", "20", "--out", str(out), "--", *args_for(project)],
                          cwd=project, capture_output=True, text=True, timeout=900)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "merged report" in done.stdout
    assert records(out) == records(serial)
    for name in REPORT_FILES:
        assert (out / name).is_file(), name
    assert (out / "shard-1" / "results.json").is_file() and any((out / "submitit").iterdir())


@pytest.mark.slow
def test_log_samples_writes_parquet_that_load_results_reads(project):
    report = project / "samples-run"
    code, out = pytest_run(project, "--report-dir", str(report), "--log-samples", "-k", "c1 and blocks.1")
    assert code in (0, 1), out
    import mcis_claims

    records, samples = mcis_claims.load_results(report)
    assert list(records["claim"]) == ["C1"] and records.loc[0, "family"] == 6
    assert len(samples) == records.loc[0, "n"] == 12
    assert set(samples.columns) >= {"claim", "model", "layer", "unit", "d_low", "d_high", "d", "censored_a",
                                    "censored_b", "document", "prompt", "arm_a", "arm_b"}
    assert (samples["d_low"] <= samples["d_high"]).all()
    # d is made of the two arms: log(A / B) where both were observed
    both = ~(samples["censored_a"] | samples["censored_b"])
    assert np.allclose(samples.loc[both, "d"], np.log(samples.loc[both, "arm_a"] / samples.loc[both, "arm_b"]))
    assert samples["prompt"].str.len().gt(0).all()
    curves = [c for c in samples.columns if c.startswith("curve:")]
    assert curves and all(len(v) == len(samples.loc[0, "radii:" + c[6:]]) for c in curves
                          for v in samples[c] if v is not None)


def test_a_records_reproduce_line_reruns_that_cell_to_the_same_record(project, serial):
    import shlex

    [original] = [r for r in records(serial) if r["claim"] == "C2b" and r["layer"] == 2]
    line = original["details"]["reproduce"]
    assert "--n-prompts 12" in line and "--corpus pydoc" in line and "--family 6" in line, line
    report = project / "reproduced"
    result = subprocess.run([sys.executable, "-m", *shlex.split(line), *PLUGIN, "--report-dir", str(report)],
                            cwd=project, capture_output=True, text=True, timeout=600)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    assert records(report) == [original]  # the same numbers, p values, family and verdict
    command = json.loads((serial / "results.json").read_text())["run"]["command"]
    assert shlex.split(command)[1:4] == ["claims", "--models", str(project / "tiny")]  # quoted: splits back
