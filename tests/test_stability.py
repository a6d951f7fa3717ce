"""Seed stability: per-cell verdict agreement across seeds, from results.json files."""
import json

from mcis_claims.cli import main
from mcis_claims.stability import summarize, write_summary


def results(path, verdicts):
    records = [{"claim": c, "model": "m", "layer": 1, "verdict": v, "effect": {"value": e}, "p_value": 0.5}
               for c, v, e in verdicts]
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({"schema_version": 1, "run": {}, "records": records,
                                                   "results_hash": "x"}))
    return path / "results.json"


def test_cells_that_keep_and_lose_their_verdict(tmp_path):
    runs = {0: results(tmp_path / "s0", [("C1", "supported", 4.1), ("C2", "refuted", 0.98)]),
            1: results(tmp_path / "s1", [("C1", "supported", 3.9), ("C2", "inconclusive", 0.93)])}
    cells = summarize(runs)
    assert [(c.claim, c.kept) for c in cells] == [("C1", True), ("C2", False)]
    assert cells[1].verdicts == {0: "refuted", 1: "inconclusive"}
    text = write_summary(cells, tmp_path)
    assert "1 of 2 cells keep their verdict" in text
    assert json.loads((tmp_path / "stability.json").read_text())["kept"] == 1


def test_stability_needs_two_seeds(capsys):
    assert main(["stability", "--seeds", "0"]) == 2
    assert "at least two seeds" in capsys.readouterr().err


def test_resume_reuses_finished_seeds_without_running_them(tmp_path, monkeypatch):
    from mcis_claims import stability

    results(tmp_path / "seed-0", [("C1", "supported", 4.1)])
    results(tmp_path / "seed-1", [("C1", "refuted", 0.9)])
    monkeypatch.setattr(stability.subprocess, "Popen", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran")))
    found = stability.run_seeds([0, 1], [], tmp_path, resume=True)
    assert found == {0: tmp_path / "seed-0" / "results.json", 1: tmp_path / "seed-1" / "results.json"}
    assert not summarize(found)[0].kept
