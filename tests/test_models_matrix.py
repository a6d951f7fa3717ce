"""The claims x models matrix that summary.md and report.html carry when a run has several models."""
from mcis_claims.report import render_models_matrix
from mcis_claims.report_html import _matrix, cell_anchor


def record(claim, model, layer, verdict, value):
    return {"claim": claim, "model": model, "layer": layer, "verdict": verdict,
            "effect": {"name": "median_ratio", "value": value, "ci_low": value * 0.9, "ci_high": value * 1.1}}


def test_one_row_per_claim_and_layer_one_column_per_model():
    records = [record("C1", "smollm2-135m", 1, "supported", 4.2), record("C1", "gemma3-270m", 1, "refuted", 1.0),
               record("C10a", "smollm2-135m", 1, "supported", 5.0), record("C2", "gemma3-270m", 1, "inconclusive", 0.9)]
    lines = render_models_matrix(records)
    assert lines[2] == "| claim | smollm2-135m | gemma3-270m |"
    assert lines[4] == "| C1 L1 | supported 4.2 [3.78, 4.62] | refuted 1 [0.9, 1.1] |"
    assert lines[5].startswith("| C2 L1 | — | inconclusive 0.9")  # natural order: C2 before C10a
    assert lines[6].startswith("| C10a L1 | supported 5 ")
    html = _matrix(records)  # report.html: claims x (model, layer), each cell a link to its article
    assert "<th colspan='1'>gemma3-270m</th>" in html
    assert f"<td class='refuted'><a href='#{cell_anchor(records[1])}'>refuted<br>1 [0.9, 1.1]</a></td>" in html
    assert html.index(">C2<") < html.index(">C10a<")


def test_a_one_model_run_has_no_matrix():
    records = [record("C1", "smollm2-135m", 1, "supported", 4.2)]
    assert render_models_matrix(records) == []


def test_a_claim_without_a_layer_is_labelled_by_its_id():
    records = [record("C11a", "toy:a", -1, "negligible", 1.0), record("C1", "smollm2-135m", 1, "supported", 2.0)]
    assert [line.split(" |")[0] for line in render_models_matrix(records)[4:6]] == ["| C1 L1", "| C11a"]
