"""The pytest plugin end to end, through pytester, on a tiny model saved to disk."""
import fnmatch
import json
import shutil
from pathlib import Path

import pytest


CLAIMS = Path(__file__).resolve().parents[1] / "claims"
PLUGIN = ["-p", "mcis_claims.plugin", "-p", "no:cacheprovider"]  # no conftest in the pytester dir
SMALL = ["--corpus", "pydoc", "--n-prompts", "12", "--n-directions", "1", "--layers", "1"]


@pytest.fixture
def claims_dir(pytester):
    # a subprocess per run: the model stack (datasets, pyarrow) cannot be re-imported in-process
    for name in ("test_c1_plateaus.py", "test_c2_sensitive_directions.py"):
        shutil.copy(CLAIMS / name, pytester.path / name)
    return pytester


def test_claims_run_writes_every_record_field(claims_dir, tiny_model_dir, tmp_path):
    report = tmp_path / "report"
    result = claims_dir.runpytest_subprocess("--models", str(tiny_model_dir), *SMALL, "--report-dir", str(report),
                                  *PLUGIN)
    assert result.ret in (0, 1), result.stdout.str()  # 1 only if a claim is refuted on this random model
    result.stdout.fnmatch_lines(["*mcis-claims: seed=0 profile=default*", "*mcis-claims verdicts*",
                                 f"*report: {report}*"])
    data = json.loads((report / "results.json").read_text())
    records = {r["claim"]: r for r in data["records"]}
    assert set(records) == {"C1", "C2", "C2b"}
    assert set(records["C1"]["details"]["secondary_arms"]) >= {"other_real", "radius_relative_to_own_norm",
                                                                "clean_entropy_nats"}
    for record in records.values():
        for field in ("claim", "model", "layer", "n", "statistic", "effect", "p_value", "p_adjusted", "verdict"):
            assert field in record, field
        assert set(record["effect"]) >= {"name", "value", "ci_low", "ci_high"}
        assert record["verdict"] in ("supported", "negligible", "reversed", "inconclusive")
        assert record["layer"] == 1 and record["n"] <= 12
        assert (report / record["figure"]).stat().st_size > 5_000
    run = data["run"]
    assert run["seed"] == 0 and run["versions"]["torch"]
    assert run["corpus"]["sha256"] and run["prompts"]
    [(site, check)] = run["parity"].items()  # the one site of the grid, checked once for both claims
    assert site.endswith("|1") and check["ok"] and check["layer"] == 1
    summary = (report / "summary.md").read_text()
    assert summary.count("C1") >= 1 and "**parity**" in summary


def test_same_seed_gives_the_same_results_hash(claims_dir, tiny_model_dir, tmp_path):
    # C3 records how long its optimisation took: that must not reach the hash
    shutil.copy(CLAIMS / "test_c3_optimized_directions.py", claims_dir.path)
    hashes = []
    for run in ("a", "b"):
        claims_dir.runpytest_subprocess("--models", str(tiny_model_dir), *SMALL, "--report-dir", str(tmp_path / run),
                             *PLUGIN, "-k", "c1 or c3")
        data = json.loads((tmp_path / run / "results.json").read_text())
        assert {r["claim"] for r in data["records"]} == {"C1", "C3", "C3b"}
        hashes.append(data["results_hash"])
    assert hashes[0] == hashes[1]
    c3 = next(r for r in data["records"] if r["claim"] == "C3")
    assert set(c3["costs_s"]) == {"cell", "optimisation"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--models", "gpt2"], "*not available locally*huggingface-cli download gpt2*"),
        (["--models", "no such model!"], "*unknown model*"),
        (["--layers", "40"], "*layer 40*has blocks 0-2*"),
        (["--n-prompts", "3"], "*--n-prompts 3*"),
        (["--device", "tpu"], "*unknown device 'tpu'*"),
    ],
)
def test_bad_options_fail_with_one_line(claims_dir, tiny_model_dir, monkeypatch, args, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base = ["--models", str(tiny_model_dir), "--corpus", "pydoc"]
    result = claims_dir.runpytest_subprocess(*base, *args, *PLUGIN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output
    assert any(fnmatch.fnmatch(line, message) for line in output.splitlines()), output


def test_unwritable_report_dir_is_a_usage_error(claims_dir, tiny_model_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = claims_dir.runpytest_subprocess("--models", str(tiny_model_dir), *SMALL, "--report-dir", str(blocker / "sub"),
                                  *PLUGIN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "cannot write report directory" in result.stdout.str() + result.stderr.str()


def test_help_lists_the_option_group(claims_dir):
    result = claims_dir.runpytest_subprocess(*PLUGIN, "--help")
    result.stdout.fnmatch_lines(["*mcis-claims*", "*--models*", "*--layers*", "*--n-prompts*", "*--seed*",
                                 "*--report-dir*"])


def test_depth_claims_run_once_per_model_over_the_grid(pytester, tiny_model_dir, tmp_path):
    shutil.copy(CLAIMS / "test_c4_depth.py", pytester.path / "test_c4_depth.py")
    report = tmp_path / "depth"
    result = pytester.runpytest_subprocess("--models", str(tiny_model_dir), "--corpus", "pydoc", "--n-prompts", "12",
                                           "--n-directions", "1", "--layers", "0,2", "--report-dir", str(report),
                                           "-k", "c4b", "-v", *PLUGIN)
    assert result.ret in (0, 1), result.stdout.str()
    result.stdout.fnmatch_lines(["*test_c4b_base_gap*layers-0-2*"])
    (record,) = json.loads((report / "results.json").read_text())["records"]
    assert record["claim"] == "C4b" and record["layer"] == 2
    assert record["details"]["layers"] == [0, 2] and set(record["details"]["per_layer"]) == {"0", "2"}
    assert record["spec"]["kind"] == "equivalence"


def test_baseline_passes_unchanged_and_fails_naming_a_flipped_cell(claims_dir, tiny_model_dir, tmp_path):
    baseline = tmp_path / "baselines" / "tiny.json"
    args = ["--models", str(tiny_model_dir), *SMALL, "-k", "c1", *PLUGIN]
    first = claims_dir.runpytest_subprocess(*args, "--report-dir", str(tmp_path / "r1"),
                                            "--baseline", str(baseline), "--update-baseline")
    assert first.ret in (0, 1) and baseline.exists()
    same = claims_dir.runpytest_subprocess(*args, "--report-dir", str(tmp_path / "r2"), "--baseline", str(baseline))
    assert same.ret == pytest.ExitCode.OK, same.stdout.str()  # judged against the record, even if refuted
    same.stdout.fnmatch_lines(["*mcis-claims baseline*"])

    data = json.loads(baseline.read_text())
    (entry,) = data["expectations"]
    entry["verdict"] = "supported" if entry["verdict"] != "supported" else "negligible"
    flipped = tmp_path / "flipped.json"
    flipped.write_text(json.dumps(data))
    changed = claims_dir.runpytest_subprocess(*args, "--report-dir", str(tmp_path / "r3"), "--baseline", str(flipped))
    assert changed.ret == pytest.ExitCode.TESTS_FAILED
    changed.stdout.fnmatch_lines(["*verdict changed*", "*CHANGED*C1*layer 1*", "*FAILED: 1 verdict(s) changed*"])


def test_missing_baseline_file_is_a_usage_error(claims_dir, tiny_model_dir, tmp_path):
    result = claims_dir.runpytest_subprocess("--models", str(tiny_model_dir), *SMALL, *PLUGIN,
                                             "--baseline", str(tmp_path / "none.json"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--update-baseline" in result.stdout.str() + result.stderr.str()


def test_list_claims_prints_metadata_without_loading_a_model(claims_dir):
    result = claims_dir.runpytest_subprocess("--list-claims", "--models", "not-even-a-model!", *PLUGIN)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["*3 claims*", "*C1*Plateaus near*", "*C2*Sensitive*", "*C2b*Cov-random*"])
    assert "SESOI 0.9" in result.stdout.str() and "alpha 0.01" in result.stdout.str()


def test_claims_are_selected_by_exact_id(claims_dir, tiny_model_dir):
    base = ["--models", str(tiny_model_dir), "--layers", "1", "--collect-only", "-q", *PLUGIN]

    def collected(*args):
        result = claims_dir.runpytest_subprocess(*base, *args)
        return sorted(line.split("::")[1].split("[")[0] for line in result.stdout.lines if "::" in line)

    assert collected("--claims", "c2b") == ["test_c2b_cov_random_vs_isotropic"]
    assert collected("--claims", "C1,C2") == ["test_c1_plateaus", "test_c2_sensitive_directions"]
    assert collected("-m", "C2") == ["test_c2_sensitive_directions"]  # a marker per id: C2b is not C2
    assert len(collected("-k", "c2")) == 2  # while -k is a substring match
    bad = claims_dir.runpytest_subprocess(*base, "--claims", "C1,C99")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in bad.stderr.lines if "C99" in line]
    assert len(lines) == 1 and "the ids are C1, C2, C2b" in lines[0], bad.stderr.str()


def test_two_tests_claiming_one_id_is_a_usage_error(claims_dir, tiny_model_dir):
    shutil.copy(CLAIMS / "test_c1_plateaus.py", claims_dir.path / "test_c1_copy.py")
    result = claims_dir.runpytest_subprocess("--models", str(tiny_model_dir), "--layers", "1", "--collect-only",
                                             *PLUGIN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.stderr.lines if "claim id C1 is used by two tests" in line]
    assert len(lines) == 1 and "test_c1_copy.py::test_c1_plateaus" in lines[0], result.stderr.str()


def test_list_claims_honours_the_selection_and_sorts_by_number(claims_dir):
    shutil.copy(CLAIMS / "test_c12_training_makes_regions.py", claims_dir.path)
    shutil.copy(CLAIMS / "test_c4_depth.py", claims_dir.path)
    every = claims_dir.runpytest_subprocess("--list-claims", *PLUGIN).stdout.str()
    order = [every.index(f"│ {c} ") for c in ("C1", "C2", "C2b", "C4", "C12", "C12b")]
    assert order == sorted(order), every  # C4 before C12: by number, not as strings
    chosen = claims_dir.runpytest_subprocess("--list-claims", "-k", "c2", *PLUGIN).stdout.str()
    assert "2 claims" in chosen and "│ C1 " not in chosen and "│ C12 " not in chosen, chosen


def test_sae_claims_are_collected_only_where_an_sae_is(pytester, tiny_model_dir, tmp_path):
    shutil.copy(CLAIMS / "test_c10_sae_features.py", pytester.path / "test_c10_sae_features.py")
    base = ["--models", str(tiny_model_dir), "--layers", "0,1,2", "--collect-only", "-q", *PLUGIN]
    default = pytester.runpytest_subprocess(*base)
    assert default.ret == 0, default.stdout.str()
    ids = [line for line in default.stdout.lines if "::" in line]
    assert len(ids) == 2 and all("blocks.1.hook_resid_pre" in line for line in ids), ids
    chosen = pytester.runpytest_subprocess(*base, "--sae-layers", "0,2")
    ids = [line for line in chosen.stdout.lines if "::" in line]
    assert sorted(line.split("-blocks.")[1] for line in ids) == sorted(
        f"{layer}.hook_resid_pre]" for layer in (0, 0, 2, 2)), ids
    sae_dir = tmp_path / "sae"
    sae_dir.mkdir()
    (sae_dir / "cfg.json").write_text(json.dumps({"architecture": "standard", "hook_name": "blocks.2.hook_resid_pre"}))
    given = pytester.runpytest_subprocess(*base, "--sae", str(sae_dir))
    ids = [line for line in given.stdout.lines if "::" in line]
    assert len(ids) == 2 and all("blocks.2.hook_resid_pre" in line for line in ids), ids


def test_sae_claims_run_on_the_users_saes(pytester, tiny_model_dir, tmp_path):
    """C10a and C10b end to end with two SAEs given by --sae (no training): records with effects."""
    import torch

    from mcis_claims import sae as saes

    shutil.copy(CLAIMS / "test_c10_sae_features.py", pytester.path / "test_c10_sae_features.py")
    g = torch.Generator().manual_seed(0)
    paths = []
    for k in (3, 12):
        W_dec = saes.unit(torch.randn(64, 32, generator=g))
        sae = saes.SAE(W_dec.T.clone(), torch.zeros(64), W_dec, torch.zeros(32), architecture="topk", k=k)
        paths.append(str(saes.save_sae(sae, tmp_path / f"sae-k{k}", hook_name="blocks.1.hook_resid_pre")))
    report = tmp_path / "c10"
    result = pytester.runpytest_subprocess(*SMALL, "--models", str(tiny_model_dir), "--sae", ",".join(paths),
                                           "--report-dir", str(report), *PLUGIN)
    assert result.ret in (0, 1), result.stdout.str()
    records = {r["claim"]: r for r in json.loads((report / "results.json").read_text())["records"]}
    assert set(records) == {"C10a", "C10b"}
    for record in records.values():
        assert record["layer"] == 1 and record["n"] == 12
        # 12 bases cannot bound a median at 1 - 2 alpha/M: an end may be open (inf, written as null)
        low, high, value = (record["effect"][k] for k in ("ci_low", "ci_high", "value"))
        if value is None:  # every curve of both arms censored on this random model: nothing to judge
            assert record["verdict"] == "inconclusive"
        else:
            assert (low is None or low <= value) and (high is None or value <= high)
        assert record["verdict"] in ("supported", "negligible", "reversed", "inconclusive")
    assert records["C10a"]["details"]["sae_source"] == "--sae"
    l0 = records["C10b"]["details"]["l0_on_pool"]  # tags l0_<value>, from the lowest L0 to the highest
    assert list(l0.values()) == sorted(l0.values()) and min(l0.values()) < max(l0.values())


def test_k_selects_what_runs_not_the_family(claims_dir, tiny_model_dir, tmp_path):
    """-k chooses cells of the grid; the family (and so C1's interval, p_adj and verdict) stays the grid's."""
    records = {}
    for tag, extra in (("grid", []), ("alone", ["-k", "c1_plateaus"])):
        report = tmp_path / tag
        result = claims_dir.runpytest_subprocess("--models", str(tiny_model_dir), *SMALL, "--report-dir",
                                                 str(report), *PLUGIN, *extra)
        assert result.ret in (0, 1), result.stdout.str()
        result.stdout.fnmatch_lines(["*mcis-claims: family M=3 (claim cells collected, before -k/-m)*"])
        records[tag] = {r["claim"]: r for r in json.loads((report / "results.json").read_text())["records"]}
    assert set(records["alone"]) == {"C1"}
    grid, alone = records["grid"]["C1"], records["alone"]["C1"]
    assert grid["details"]["decision"]["family"] == alone["details"]["decision"]["family"] == 3  # C1, C2, C2b
    for key in ("p_adjusted", "verdict", "effect"):
        assert grid[key] == alone[key], key


def test_a_censored_arm_makes_the_cell_inconclusive_with_the_reason(pytester, tiny_model_dir, tmp_path):
    """A claim whose arm A is 60 % censored below arm B's crossings: pairs undetermined -> inconclusive."""
    pytester.makepyfile(test_cz_censored='''
        import numpy as np
        from mcis_claims import ClaimSpec, claim, stats

        SPEC = ClaimSpec(id="CZ", title="censored", statement="s", source="test", null_hypothesis="h0",
                         statistic="sign test", effect="median_ratio", sesoi=1.1)

        @claim(SPEC)
        def test_cz(cell, judge):
            n = 40
            b = np.full(n, 2.0)
            a = np.full(n, 3.0)
            censored_a = np.arange(n) < 24          # 60 %: lower bounds at 1.0, below b's 2.0
            a[censored_a] = 1.0
            judge(stats.paired_log_ratio(a, b, sesoi=SPEC.sesoi, censored_a=censored_a))
    ''')
    report = tmp_path / "report"
    result = pytester.runpytest_subprocess("--models", str(tiny_model_dir), *SMALL, "--report-dir", str(report),
                                           *PLUGIN)
    assert result.ret == 0, result.stdout.str()
    [record] = json.loads((report / "results.json").read_text())["records"]
    assert record["verdict"] == "inconclusive"
    assert "censoring leaves the side of the SESOI 1.1 open for 60% of units" in record["reason"]
    assert record["details"]["decision"]["censored_fraction"] == {"a": 0.6, "b": 0.0}
    result.stdout.fnmatch_lines(["*60%/0%*inconclusive*"])
