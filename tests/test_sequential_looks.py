"""Sequential looks in a claims run (looks.py; the default, --fixed-n turns them off): looks at
growing numbers of base prompts, stopping once settled.

Two things must hold. The plugin loop: a settled cell stops at its first look and records the
stage, an unsettled one runs to the last, each look judged at its share of alpha, a claim that
caps its own bases runs once, and the record's reproduce line gets the same record back. The
work behind it: a sweep (or C12's paths) grown from fewer base prompts is bitwise the sweep of
all of them at once, so looking early costs nothing at the last look.
"""
import json
import shlex
import subprocess
import sys

import numpy as np
import pytest
import torch

PLUGIN = ["-p", "mcis_claims.plugin", "-p", "no:cacheprovider"]

# Claims whose per-unit values are drawn for every base prompt and cut to the look (as a sweep's
# are), so the look at which each settles is known: a large effect, no effect, and one that caps
# its own bases.
CLAIM_FILE = '''
import numpy as np
from mcis_claims import ClaimSpec, claim

def spec(id):
    return ClaimSpec(id=id, title=id, statement="s", source="test", null_hypothesis="h0",
                     statistic="exact sign test", effect="median_ratio", sesoi=1.1, alpha=0.01,
                     kind="directional", alternative="greater")

SPEC_LARGE, SPEC_NONE, SPEC_CAPPED = spec("C90"), spec("C91"), spec("C92")

def ratios(cell, shift):
    draw = np.random.default_rng(cell.config.seed).normal(shift, 0.3, size=cell.config.n_prompts)
    return np.exp(draw[:cell.n])

@claim(SPEC_LARGE)
def test_large(cell, judge):
    judge(cell.paired_ratio(SPEC_LARGE, ratios(cell, 1.5), np.ones(cell.n)))

@claim(SPEC_NONE)
def test_none(cell, judge):
    judge(cell.paired_ratio(SPEC_NONE, ratios(cell, 0.05), np.ones(cell.n)))

@claim(SPEC_CAPPED, sequential=False)
def test_capped(cell, judge):
    judge(cell.paired_ratio(SPEC_CAPPED, ratios(cell, 1.5)[:16], np.ones(16), first=16))
'''


def run_claims(pytester, model_dir, report, *extra):
    pytester.makepyfile(test_seq_claims=CLAIM_FILE)
    result = pytester.runpytest_subprocess("--models", str(model_dir), "--corpus", "pydoc", "--n-prompts", "32",
                                           "--layers", "1", "--report-dir", str(report), *extra, *PLUGIN)
    assert result.ret == 0, result.stdout.str()
    return {r["claim"]: r for r in json.loads((report / "results.json").read_text())["records"]}


def test_settled_cells_stop_early_and_unsettled_ones_run_to_the_last_look(pytester, tiny_model_dir, tmp_path):
    report = tmp_path / "seq"
    records = run_claims(pytester, tiny_model_dir, report, "--first-look", "8")  # looks are the default
    large, none, capped = records["C90"], records["C91"], records["C92"]
    shares = [1 / 64, 7 / 64, 56 / 64]  # (t_k^3 - t_(k-1)^3) at t = 1/4, 1/2, 1

    # 8 prompts cannot settle anything at 1/64 of alpha / M (the smallest sign-test p is 2^-8), so
    # the large effect stops at the second look
    seq = large["details"]["decision"]["sequential"]
    assert (large["verdict"], large["n"], seq["stage"], seq["n"], seq["stopped_early"]) == ("supported", 16, 1, 16, True)
    assert [look["verdict"] for look in seq["looks"]] == ["inconclusive", "supported"]
    assert large["reason"].endswith("sequential look 2 of 3 (n = 16, 10.9% of alpha)"), large["reason"]
    assert seq["plan"]["stages"] == [8, 16, 32] and np.allclose(seq["plan"]["alpha_shares"], shares)
    family = large["details"]["decision"]["family"]
    # the look's level: each end one-sided at its share of alpha / M
    assert np.isclose(large["effect"]["ci_level"], 1 - 2 * 0.01 * shares[1] / family)

    seq = none["details"]["decision"]["sequential"]
    assert (none["verdict"], none["n"], seq["stage"], seq["stopped_early"]) == ("inconclusive", 32, 2, False)
    assert [look["n"] for look in seq["looks"]] == [8, 16, 32]
    assert [look["verdict"] for look in seq["looks"]] == ["inconclusive"] * 3
    assert np.isclose(none["effect"]["ci_level"], 1 - 2 * 0.01 * shares[2] / family)

    assert "sequential" not in capped["details"]["decision"] and capped["n"] == 16  # judged once, full alpha
    assert np.isclose(capped["effect"]["ci_level"], 1 - 2 * 0.01 / family)

    line = large["details"]["reproduce"]
    assert "--fixed-n" not in line and "--first-look 8" in line, line
    rerun = tmp_path / "rerun"
    result = subprocess.run([sys.executable, "-m", *shlex.split(line), *PLUGIN, "--report-dir", str(rerun)],
                            cwd=pytester.path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    [again] = json.loads((rerun / "results.json").read_text())["records"]
    drop = ("timing_s", "costs_s")
    assert {k: v for k, v in again.items() if k not in drop} == {k: v for k, v in large.items() if k not in drop}


@pytest.mark.parametrize("rule", [("--fixed-n",), ("--first-look", "8", "--fixed-n"),
                                  ("-o", "mcis_sequential=false", "--first-look", "8")])
def test_fixed_n_judges_every_cell_once_on_all_prompts(pytester, tiny_model_dir, tmp_path, rule):
    records = run_claims(pytester, tiny_model_dir, tmp_path / "fixed", *rule)
    assert {r["n"] for c, r in records.items() if c != "C92"} == {32}
    assert all("sequential" not in r["details"]["decision"] for r in records.values())
    assert "--fixed-n" in records["C90"]["details"]["reproduce"]


def test_a_cell_no_larger_than_the_first_look_is_judged_once_at_full_alpha(pytester, tiny_model_dir, tmp_path):
    records = run_claims(pytester, tiny_model_dir, tmp_path / "one-look")  # 32 prompts, first look 32
    assert {r["n"] for c, r in records.items() if c != "C92"} == {32}
    assert all("sequential" not in r["details"]["decision"] for r in records.values())
    assert np.isclose(records["C91"]["effect"]["ci_level"], 1 - 2 * 0.01 / records["C91"]["details"]["decision"]["family"])
    assert "--fixed-n" not in records["C90"]["details"]["reproduce"]


def test_the_command_line_rule_wins_over_the_ini_key(pytester, tiny_model_dir, tmp_path):
    pytester.makeini("[pytest]\nmcis_sequential = true\n")
    records = run_claims(pytester, tiny_model_dir, tmp_path / "cli-wins", "--first-look", "8", "--fixed-n")
    assert all("sequential" not in r["details"]["decision"] for r in records.values())


def test_bad_first_look_is_a_one_line_usage_error(pytester, tiny_model_dir):
    result = pytester.runpytest_subprocess("--models", str(tiny_model_dir), "--first-look", "4",
                                           "--collect-only", *PLUGIN)
    assert result.ret == 4
    assert "--first-look 4: a look needs at least 8 base prompts" in result.stderr.str()


@pytest.mark.parametrize("threshold", [0.1, 50.0])  # 50 nats: no curve crosses, every base is extended
def test_a_sweep_grown_look_by_look_is_bitwise_the_sweep_of_all_prompts(tiny_model_dir, threshold):
    from mcis_claims import directions, interpolation
    from mcis_claims.cell import ClaimCell, Workspace
    from mcis_claims.config import make_config
    from mcis_claims.engine import chunk_start

    # 64 prompts, 2 directions x 21 radii: the engine forwards 23 prompts a chunk, so growing from
    # 32 prompts restarts inside a chunk (at 23)
    config = make_config(models=(str(tiny_model_dir),), corpus="pydoc", n_prompts=64, kl_threshold=threshold)
    assert chunk_start(32, 2 * len(config.radii)) == 23
    whole, grown = Workspace(config), Workspace(config)
    name = str(tiny_model_dir)
    all_at_once = ClaimCell(whole, name, 1)
    kind = directions.isotropic()
    cell = ClaimCell(grown, name, 1)
    for n in (16, 32, 64):
        cell.n_bases = n
        for base in ("real", "gaussian"):
            look, reference = cell.sweep_kind(kind, base=base), all_at_once.sweep_kind(kind, base=base)
            view = reference.first(n, threshold)
            assert np.array_equal(look.radii_rel, view.radii_rel) and look.kl.shape[0] == n
            for field in ("kl", "resid_l2", "final_l2", "mlp_flips", "top1_changed", "clean_margin"):
                assert torch.equal(getattr(look.result, field), getattr(view.result, field)), (n, base, field)
        paths = interpolation.real_to_real_paths(cell, [], steps=21).results["trained"]
        reference = interpolation.real_to_real_paths(all_at_once, [], steps=21).results["trained"]
        assert torch.equal(paths.kl, reference.kl[:n]) and torch.equal(paths.normed_final_l2,
                                                                        reference.normed_final_l2[:n])
    if threshold == 50.0:
        assert reference.kl.shape[0] == 64 and all_at_once.sweep_kind(kind).schedule_steps == len(config.radii)


def test_a_look_drops_extension_radii_that_none_of_its_bases_needs():
    from mcis_claims.cell import KindSweep
    from mcis_claims.engine import SweepResult

    radii = np.array([0.0, 1.0, 2.0, 4.0, 8.0])  # schedule of 3 radii, then 2 extension radii
    kl = torch.zeros(4, 1, 5)
    kl[:2, :, 2:] = 1.0  # bases 0 and 1 cross inside the schedule
    kl[2:, :, 4:] = 1.0  # bases 2 and 3 only in the extension
    result = SweepResult(layer=1, site="s", kl=kl, resid_l2=kl[..., None], final_l2=kl, top1_changed=kl > 0,
                         mlp_flips=None, clean_margin=torch.ones(4))
    swept = KindSweep(kind="k", kl=kl, radii_rel=radii, result=result, seconds=0.0, schedule_steps=3)
    early = swept.first(2, threshold=0.5)
    assert early.kl.shape == (2, 1, 3) and list(early.radii_rel) == [0.0, 1.0, 2.0] and early.schedule_steps is None
    assert early.result.resid_l2.shape == (2, 1, 3, 1) and early.result.clean_margin.shape == (2,)
    later = swept.first(3, threshold=0.5)
    assert later.kl.shape == (3, 1, 5) and later.schedule_steps == 3
    assert swept.first(4, threshold=0.5) is swept
