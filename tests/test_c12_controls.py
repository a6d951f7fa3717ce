"""C12 compares a model with its controls; run on a control itself, it cannot be supported.

A random-init model against random-init copies of the same architecture has no training to
show: the claim must come out negligible (or at least not supported), which is how C12 fails.
"""
import json
import shutil
from pathlib import Path

from conftest import char_tokenizer, tiny_llama

CLAIMS = Path(__file__).resolve().parents[1] / "claims"
PLUGIN = ["-p", "mcis_claims.plugin", "-p", "no:cacheprovider"]


def test_c12_on_a_random_model_is_not_supported(pytester, tmp_path):
    model_dir = tmp_path / "tiny"
    tiny_llama(n_layers=3, d_model=32).save_pretrained(model_dir)
    char_tokenizer(model_dir)
    shutil.copy(CLAIMS / "test_c12_training_makes_regions.py", pytester.path)
    report = tmp_path / "report"
    result = pytester.runpytest_subprocess("--models", f"random:{model_dir}@7", "--corpus", "pydoc",
                                           "--n-prompts", "96", "--layers", "1", "--report-dir", str(report), *PLUGIN)
    assert result.ret in (0, 1), result.stdout.str()
    records = {r["claim"]: r for r in json.loads((report / "results.json").read_text())["records"]}
    assert set(records) == {"C12", "C12b"}
    c12 = records["C12"]
    assert c12["verdict"] != "supported", c12["reason"]
    assert len(c12["details"]["controls"]) == 5 and all(c.startswith("random:") for c in c12["details"]["controls"])
    assert c12["details"]["normed_residual_readout"]["n"] > 0 and "median_sharpness_normed_residual" in c12["details"]
    assert records["C12b"]["details"]["controls"][0].startswith("shuffled:")
