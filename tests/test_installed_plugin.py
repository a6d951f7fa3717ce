"""The plugin as an installed package: its entry point, the shipped catalogue, a user's own
claims, junitxml properties, --lf and the ini keys. Every run is a subprocess with no `-p`
(the pytest11 entry point loads the plugin) in a pytester directory outside this repository."""
import fnmatch
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[1]
SMALL = ["--n-prompts", "12", "--n-directions", "1"]

# Purpose-built claims with fixed effects (no sweeps): T1 holds everywhere but is inconclusive at
# layer 0 (a failed health check); T2 holds at layers 0 and 1 and is reversed at layer 2.
FIXED_CLAIMS = '''
"""T1, T2: fixed effects for the plugin's tests."""
import numpy as np

from mcis_claims import ClaimSpec, claim, stats


def _spec(claim_id):
    return ClaimSpec(id=claim_id, title=f"{claim_id}: A below B", statement="A is below B", source="tests",
                     null_hypothesis="A is not below B", statistic="sign test of log(A / B)",
                     effect="median_ratio", sesoi=0.9, alpha=0.01, kind="directional", alternative="less")


HOLDS, FLIPS = _spec("T1"), _spec("T2")


def _estimate(spec, factor, seed):
    rng = np.random.default_rng(seed)
    b = rng.uniform(1.0, 2.0, 40)
    a = b * factor * np.exp(rng.normal(0.0, 0.05, 40))
    return stats.paired_log_ratio(a, b, alternative="less", confidence_level=spec.ci_level, sesoi=spec.sesoi,
                                  n_resamples=99, random_state=seed)


@claim(HOLDS)
def test_t1_holds(cell, judge):
    judge(_estimate(HOLDS, 0.5, cell.layer), problem="thin data, on purpose" if cell.layer == 0 else None)


@claim(FLIPS)
def test_t2_reversed_at_layer_2(cell, judge):
    judge(_estimate(FLIPS, 2.0 if cell.layer == 2 else 0.5, cell.layer))
'''


@pytest.fixture
def fixed_claims(pytester, tiny_model_dir):
    """A project outside the repository: claims/test_fixed.py, the tiny model set by ini keys."""
    assert REPO not in pytester.path.parents
    (pytester.path / "claims").mkdir()
    (pytester.path / "claims" / "test_fixed.py").write_text(FIXED_CLAIMS)
    pytester.makeini(f"[pytest]\nmcis_models = {tiny_model_dir}\nmcis_corpus = pydoc\nmcis_n_prompts = 12\n")
    return pytester


def _records(report: Path) -> dict:
    return {(r["claim"], r["layer"]): r for r in json.loads((report / "results.json").read_text())["records"]}


def test_a_user_project_runs_its_claim_beside_the_catalogue(pytester, tiny_model_dir, tmp_path):
    """A claim written from the template, in a project of its own, with the installed catalogue."""
    assert REPO not in pytester.path.parents
    (pytester.path / "claims").mkdir()
    shutil.copy(REPO / "claims" / "claim_template.py", pytester.path / "claims" / "test_cx_mine.py")
    report = tmp_path / "report"
    result = pytester.runpytest_subprocess(
        "claims", "--pyargs", "mcis_claims.catalogue", "-k", "cx_template or test_c1_plateaus",
        "--models", str(tiny_model_dir), "--corpus", "pydoc", "--layers", "1", *SMALL, "--report-dir", str(report))
    assert result.ret in (0, 1), result.stdout.str()  # 1 only if a claim is refuted on this random model
    result.stdout.fnmatch_lines(["*mcis-claims: seed=0*", "*mcis-claims verdicts*", f"*report: {report}*"])
    assert set(_records(report)) == {("CX", 1), ("C1", 1)}
    assert not (pytester.path / "reports").exists()  # --report-dir was given: nothing else written


def test_junitxml_carries_each_cells_verdict_and_effect(fixed_claims, tmp_path):
    xml = tmp_path / "junit.xml"
    result = fixed_claims.runpytest_subprocess("claims", "--layers", "0,1,2", "--report-dir", str(tmp_path / "r"),
                                               f"--junitxml={xml}")
    assert result.ret == 1, result.stdout.str()  # T2 at layer 2 is reversed
    result.stdout.fnmatch_lines(["*family M=6*"])
    cases = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
             for case in ET.parse(xml).getroot().iter("testcase")}
    assert len(cases) == 6
    records = _records(tmp_path / "r")
    for name, props in cases.items():
        layer = int(name.split("blocks.")[1].split(".")[0])
        record = records[(props["mcis_claim"], layer)]
        assert props["mcis_verdict"] == record["verdict"]
        assert props["mcis_site"] == f"blocks.{layer}.hook_resid_pre" and props["mcis_family"] == "6"
        assert props["mcis_effect_name"] == "median_ratio"
        for key in ("value", "ci_low", "ci_high"):
            assert float(props["mcis_effect" if key == "value" else f"mcis_{key}"]) == pytest.approx(
                record["effect"][key])
        assert float(props["mcis_p_value"]) == pytest.approx(record["p_value"])
        assert float(props["mcis_p_adjusted"]) == pytest.approx(record["p_adjusted"])
        assert int(props["mcis_n"]) == record["n"] == 40
    verdicts = {(props["mcis_claim"], props["mcis_site"]): props["mcis_verdict"] for props in cases.values()}
    assert verdicts[("T1", "blocks.0.hook_resid_pre")] == "inconclusive"  # a pass on a dashboard, but labelled
    assert verdicts[("T2", "blocks.2.hook_resid_pre")] == "reversed"
    assert list(verdicts.values()).count("supported") == 4


def test_lf_reruns_only_the_refuted_cell_in_the_whole_family(fixed_claims, tmp_path):
    first = fixed_claims.runpytest_subprocess("claims", "--layers", "0,1,2", "--report-dir", str(tmp_path / "a"))
    assert first.ret == 1, first.stdout.str()
    first_record = _records(tmp_path / "a")[("T2", 2)]
    assert (fixed_claims.path / ".pytest_cache").is_dir()  # the cache provider is on

    rerun = fixed_claims.runpytest_subprocess("claims", "--layers", "0,1,2", "--report-dir", str(tmp_path / "b"),
                                              "--lf", "-v")
    assert rerun.ret == 1, rerun.stdout.str()
    rerun.stdout.fnmatch_lines(["*family M=6*1 cell(s) run*", "*run-last-failure: rerun previous 1 failure*",
                                "*test_t2_reversed_at_layer_2*blocks.2.hook_resid_pre* FAILED*"])
    rerun.assert_outcomes(failed=1, deselected=5)
    [(key, record)] = _records(tmp_path / "b").items()
    assert key == ("T2", 2) and record["details"]["decision"]["family"] == 6
    for field in ("verdict", "effect", "p_value", "p_adjusted"):  # judged exactly as in the whole grid
        assert record[field] == first_record[field], field


def test_ini_keys_work_like_their_options(fixed_claims, tiny_model_dir):
    by_option = fixed_claims.runpytest_subprocess("claims", "--collect-only", "-q", "--layers", "1")
    by_ini = fixed_claims.runpytest_subprocess("claims", "--collect-only", "-q", "-o", "mcis_layers=1")
    assert by_option.ret == by_ini.ret == 0, by_ini.stdout.str()
    collected = [line for line in by_ini.stdout.lines if "::" in line]
    assert len(collected) == 2 and all("blocks.1.hook_resid_pre" in line for line in collected)
    assert collected == [line for line in by_option.stdout.lines if "::" in line]
    # the command line wins over the ini
    both = fixed_claims.runpytest_subprocess("claims", "--collect-only", "-q", "-o", "mcis_layers=1", "--layers", "2")
    assert all("blocks.2.hook_resid_pre" in line for line in both.stdout.lines if "::" in line)
    assert "Unknown config option" not in by_ini.stdout.str() + by_ini.stderr.str()


@pytest.mark.parametrize(
    "option, ini, message",
    [
        (["--layers", "40"], "mcis_layers=40", "*layer 40*has blocks 0-2*"),
        (["--n-prompts", "3"], "mcis_n_prompts=3", "*--n-prompts 3*"),
        (None, "mcis_n_prompts=abc", "*argument --n-prompts: invalid int value: 'abc'*mcis_n_prompts*"),
        (None, "mcis_profile=huge", "*argument --profile: invalid choice: 'huge'*mcis_profile*"),
    ],
)
def test_a_bad_ini_value_fails_with_the_options_one_line(fixed_claims, option, ini, message):
    def error_lines(result):
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        output = result.stdout.str() + result.stderr.str()
        assert "Traceback" not in output
        return [line for line in output.splitlines() if line.startswith("ERROR")]

    [from_ini] = error_lines(fixed_claims.runpytest_subprocess("claims", "-o", ini))
    assert fnmatch.fnmatch(from_ini, message), from_ini
    if option is not None:
        assert error_lines(fixed_claims.runpytest_subprocess("claims", *option)) == [from_ini]


def test_the_plugin_is_inert_where_no_claim_is_collected(pytester):
    """Installed, it loads in every pytest run: a project with no claims sees no report, no model,
    no torch import, and its own `cell` or `grid` fixture is left alone."""
    pytester.makepyfile(test_other='''
        import sys

        import pytest


        @pytest.fixture
        def grid():
            return [[0, 1], [1, 0]]


        def test_own_grid_fixture(grid):
            assert grid[0][1] == 1


        def test_no_torch_was_imported():
            assert "torch" not in sys.modules
    ''')
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2)
    assert "mcis-claims verdicts" not in result.stdout.str()
    assert not (pytester.path / "reports").exists()
