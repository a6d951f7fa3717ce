"""Every bad input ends in one line and its own exit code; an interrupted run says so (issue 13).

Each case runs `pytest` on real claim files through pytester, on a tiny Llama saved to disk.
Exit codes: 4 (pytest's usage error) for an option that is wrong on its face, found before
any model loads; EXIT_INPUT_ERROR (6) for a bad input found while the run works (a corpus,
an SAE file); 2 for an interrupt. Never 1: that is a refuted claim.
"""
import fnmatch
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from mcis_claims import assets
from mcis_claims import sae as saes
from mcis_claims.errors import EXIT_INPUT_ERROR

CLAIMS = Path(__file__).resolve().parents[1] / "claims"
PLUGIN = ["-p", "mcis_claims.plugin", "-p", "no:cacheprovider"]
SMALL = ["--corpus", "pydoc", "--n-prompts", "12", "--n-directions", "1", "--layers", "1"]
# claim files by name (not -k: pytester's folder is named after the test, and -k matches folders too)
C1, C2, C10 = "test_c1_plateaus.py", "test_c2_sensitive_directions.py", "test_c10_sae_features.py"
D_MODEL = 32
# where `mcis-claims fetch` put the embedded GGUF; read now, since pytester moves HOME
EMBEDDED_GGUF = assets.cache_dir() / "assets" / assets.SMOLLM2_GGUF.sha256[:16] / assets.SMOLLM2_GGUF.filename


@pytest.fixture
def claims(pytester, monkeypatch, tmp_path):
    """pytester with C1, C2 and C10 copied in; a private, empty cache (nothing trained leaks out)."""
    for name in (C1, C2, C10):
        shutil.copy(CLAIMS / name, pytester.path / name)
    monkeypatch.setenv("MCIS_CLAIMS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return pytester


def run(pytester, *args):
    return pytester.runpytest_subprocess(*args, *PLUGIN)


def the_line(result, pattern: str) -> str:
    """The one line matching `pattern`; no traceback anywhere in the output."""
    output = result.stdout.str() + "\n" + result.stderr.str()
    assert "Traceback" not in output, output
    matches = [line for line in output.splitlines() if fnmatch.fnmatch(line, pattern)]
    assert matches, f"no line matches {pattern!r}:\n{output}"
    return matches[0]


def make_sae(path, *, d_in=D_MODEL, hook="blocks.1.hook_resid_pre", k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    W_dec = saes.unit(torch.randn(64, d_in, generator=g))
    sae = saes.SAE(W_dec.T.clone(), torch.zeros(64), W_dec, torch.zeros(d_in), architecture="topk", k=k)
    return saes.save_sae(sae, path, hook_name=hook)


# ---------------------------------------------------------------- option errors: exit 4, before any model loads


@pytest.mark.parametrize("args, pattern", [
    (["--kl-threshold", "nan"], "*--kl-threshold nan: must be a finite positive number of nats*"),
    (["--kl-threshold", "inf"], "*--kl-threshold inf: must be a finite positive number of nats*"),
    (["--kl-threshold", "0"], "*--kl-threshold 0.0: must be a finite positive number of nats*"),
    (["--layers", ""], "*--layers '': empty; give a value or leave the option out*"),
    (["--layers", " , "], "*--layers ' , ': empty*"),
    (["--sae-layers", ""], "*--sae-layers '': empty*"),
    (["--corpus", "/no/such/corpus.txt"], "*--corpus /no/such/corpus.txt: no such file or folder*"),
    (["--n-fit", "10"], "*--n-fit 10: the Gaussian fit needs at least 1000 prompts*"),
    (["--prompt-length", "100"], "*--prompt-length 100: * takes at most 64 positions; use --prompt-length 64*"),
    (["--sae-layers", "2"], "*--sae-layers 2 selects 2, none of them among --layers 1 *; add them to --layers*"),
])
def test_option_errors_are_one_usage_line_and_leave_no_report(claims, tiny_model_dir, args, pattern):
    result = run(claims, "--models", str(tiny_model_dir), *SMALL, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    the_line(result, pattern)
    assert not (claims.path / "reports").exists()  # no empty report folder, no moved reports/latest


def test_option_checks_load_no_torch():
    """What makes an option error fast: the plugin and RunConfig import neither torch nor transformers,
    so a wrong value fails in about a second, before any model (or claim file) loads."""
    import subprocess

    code = ("import sys, mcis_claims.plugin, mcis_claims.config as c; "
            "c.make_config(kl_threshold=0.5, layers='1'); "
            "print(sorted(m for m in ('torch', 'transformers', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_light_config_defaults_agree_with_the_modules_that_own_them():
    from mcis_claims import activations, config, models, prompts

    assert config.EMBEDDED == models.EMBEDDED
    assert (config.DEFAULT_CORPUS, config.DEFAULT_LENGTH) == (prompts.DEFAULT_CORPUS, prompts.DEFAULT_LENGTH)
    assert config.MIN_FIT_PROMPTS == activations.MIN_FIT_PROMPTS


def test_an_sae_at_a_layer_outside_the_grid_names_both(claims, tiny_model_dir, tmp_path):
    make_sae(tmp_path / "sae-at-2", hook="blocks.2.hook_resid_pre")
    result = run(claims, "--models", str(tiny_model_dir), *SMALL, "--sae", str(tmp_path / "sae-at-2"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    the_line(result, "*--sae */sae-at-2 reads blocks.2.hook_resid_pre (layer 2), but --layers 1 selects 1 *"
                     "add it: --layers 1,2*")


def test_saes_of_two_layers_are_refused(claims, tiny_model_dir, tmp_path):
    a, b = make_sae(tmp_path / "a", hook="blocks.1.hook_resid_pre"), make_sae(tmp_path / "b", hook="blocks.2.hook_resid_pre")
    result = run(claims, "--models", str(tiny_model_dir), *SMALL, "--layers", "1,2", "--sae", f"{a},{b}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    the_line(result, "*reads layer 1, */b reads layer 2; C10 compares SAEs at one site*")


def test_a_truncated_gguf_is_one_line_naming_the_file(claims, tmp_path, monkeypatch):
    if not EMBEDDED_GGUF.is_file():
        pytest.skip(f"needs the embedded GGUF ({EMBEDDED_GGUF}); run `mcis-claims fetch`")
    cut = tmp_path / "cut.gguf"
    with open(EMBEDDED_GGUF, "rb") as src:
        cut.write_bytes(src.read(1 << 20))  # the first 1 MB: the header survives, the tensor table does not
    result = run(claims, "--models", str(cut), *SMALL)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    line = the_line(result, f"*cannot read GGUF {cut}: *; is the file complete?*")
    assert len(result.stdout.lines) + len(result.stderr.lines) < 15, line  # not 11 collection tracebacks


# ---------------------------------------------------------------- found during the run: exit 6, the run stops


def test_an_empty_corpus_stops_the_run_with_the_input_error_code(claims, tiny_model_dir, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    report = tmp_path / "report"
    result = run(claims, "--models", str(tiny_model_dir), *SMALL, "--corpus", str(empty), "--report-dir", str(report),
                 C1, C2)
    assert result.ret == EXIT_INPUT_ERROR
    the_line(result, f"mcis-claims: input error (exit {EXIT_INPUT_ERROR}): CorpusError: corpus '{empty}' has no text*")
    result.assert_outcomes(errors=1)  # stopped at the first cell: C2 never ran
    assert not report.exists()  # no cell was judged: no report folder


def test_a_small_corpus_names_n_fit_in_its_hint(claims, tiny_model_dir, tmp_path):
    small = tmp_path / "small.txt"
    small.write_text("The quick brown fox jumps over the lazy dog. " * 60)  # ~270 ten-character windows
    result = run(claims, "--models", str(tiny_model_dir), *SMALL, "--corpus", str(small), C1)
    assert result.ret == EXIT_INPUT_ERROR
    the_line(result, "*1012 requested (--n-prompts 12 + --n-fit 1000). Pass a larger --corpus or a shorter "
                     "--prompt-length, or lower --n-prompts / --n-fit*")


@pytest.mark.parametrize("case, pattern", [
    ("tampered", "ModelLoadError: SAE */bad-sae/sae_weights.safetensors: sha256 * is not the * that cfg.json "
                 "records; the weights changed after they were written*"),
    ("nan", "*SAE */bad-sae: W_enc contains NaN or inf*"),
    ("missing", "*SAE */bad-sae/sae_weights.safetensors: missing tensor W_dec*"),
    ("d_in", f"*--sae */bad-sae: d_in=16 but * has d_model={D_MODEL}; pass an SAE trained on *"),
])
def test_bad_sae_files_stop_the_run_with_the_input_error_code(claims, tiny_model_dir, tmp_path, case, pattern):
    from safetensors.torch import load_file, save_file

    path = make_sae(tmp_path / "bad-sae", d_in=16 if case == "d_in" else D_MODEL)
    if case != "d_in":
        tensors = load_file(path / saes.WEIGHTS_FILENAME)
        if case == "missing":
            del tensors["W_dec"]
        else:
            tensors["W_enc"][0, 0] = float("nan")
        save_file(tensors, path / saes.WEIGHTS_FILENAME)
    if case in ("nan", "missing"):  # as a hand-made SAE: no recorded hash, so the content checks speak
        cfg = json.loads((path / saes.CFG_FILENAME).read_text())
        del cfg["mcis_claims"]["weights_sha256"]
        (path / saes.CFG_FILENAME).write_text(json.dumps(cfg))
    result = run(claims, "--models", str(tiny_model_dir), *SMALL, "--sae", str(path), C10, "-k", "c10a_synthetic")
    assert result.ret == EXIT_INPUT_ERROR
    the_line(result, f"mcis-claims: input error (exit {EXIT_INPUT_ERROR}): *{pattern.lstrip('*')}")


def test_an_input_error_after_judged_cells_leaves_an_incomplete_report(claims, tiny_model_dir, tmp_path):
    path = make_sae(tmp_path / "bad-sae", d_in=16)
    report = tmp_path / "report"
    result = run(claims, "--models", str(tiny_model_dir), *SMALL, "--sae", str(path), "--report-dir", str(report),
                 C1, C10)  # C1 first, judged; then C10a meets the bad SAE
    assert result.ret == EXIT_INPUT_ERROR
    data = json.loads((report / "results.json").read_text())
    assert [r["claim"] for r in data["records"]] == ["C1"]
    assert data["run"]["complete"] is False and data["run"]["stopped"].startswith("input error: InputError: --sae ")
    why = {c["cell"].split("::")[1].split("[")[0]: c["why"] for c in data["run"]["not_judged"]}
    assert why["test_c10a_synthetic_activations"].startswith("InputError: --sae ")
    assert why["test_c10b_decoder_directions_by_l0"] == "not run: the run stopped first"


def test_stability_stops_on_the_input_error_with_its_code(claims, tiny_model_dir, tmp_path, monkeypatch, capfd):
    from mcis_claims.cli import main

    empty = tmp_path / "empty.txt"
    empty.write_text("")
    monkeypatch.chdir(claims.path)
    code = main(["stability", "--seeds", "0,1", "--claims", str(claims.path / C1), "--out", str(tmp_path / "stab"),
                 "--", *PLUGIN, "--models", str(tiny_model_dir), *SMALL, "--corpus", str(empty)])
    out, err = capfd.readouterr()
    assert code == EXIT_INPUT_ERROR, out + err
    assert f"mcis-claims: seed 0: the claim run exited {EXIT_INPUT_ERROR}: mcis-claims: input error" in err
    assert f"CorpusError: corpus '{empty}' has no text" in err
    assert "--seed 1" not in out  # stopped at the first seed, not "results file ... does not exist"


# ---------------------------------------------------------------- no silent substitutions


def test_one_sae_serves_c10a_only_and_trains_nothing(claims, tiny_model_dir, tmp_path):
    path = make_sae(tmp_path / "only-sae")
    report = tmp_path / "report"
    result = run(claims, "--models", str(tiny_model_dir), *SMALL, "--sae", str(path), C10, "-rs",
                 "--report-dir", str(report))
    assert result.ret in (0, 1), result.stdout.str()  # 1 only if C10a is refuted on this random model
    the_line(result, "SKIPPED*C10b compares SAEs of two L0s and --sae names one (*only-sae); "
                     "pass --sae LOW_L0_DIR,HIGH_L0_DIR to run it")
    assert not (tmp_path / "cache" / "sae").exists()  # no default SAE was trained
    data = json.loads((report / "results.json").read_text())
    assert [r["claim"] for r in data["records"]] == ["C10a"]
    assert data["run"]["complete"] is True  # a deliberate skip is not an incomplete run


def test_the_default_sae_layer_outside_the_grid_is_a_skip_with_the_option(claims, tiny_model_dir):
    result = run(claims, "--models", str(tiny_model_dir), *SMALL, "--layers", "2", C10, "-rs")
    the_line(result, "SKIPPED*C10a runs where an SAE is: --sae-layers 1 (the default) is not among --layers 2; "
                     "add --sae-layers 2*")
    assert "empty parameter set" not in result.stdout.str()


# ---------------------------------------------------------------- interrupted runs are marked, and refused


INTERRUPT_C2 = """
def pytest_runtest_call(item):
    if "test_c2" in item.nodeid:
        raise KeyboardInterrupt
"""


def test_an_interrupted_run_says_complete_false_and_is_refused_as_a_baseline(claims, tiny_model_dir, tmp_path):
    from mcis_claims.cli import main

    claims.makeconftest(INTERRUPT_C2)
    result = run(claims, "--models", str(tiny_model_dir), *SMALL, C1, C2)  # default reports/<time>
    assert result.ret == pytest.ExitCode.INTERRUPTED
    reports = claims.path / "reports"
    [report] = [p for p in reports.iterdir() if p.name != "latest"]
    assert (reports / "latest").resolve() == report.resolve()  # moved at the end, to the run that wrote
    data = json.loads((report / "results.json").read_text())
    assert data["run"]["complete"] is False and data["run"]["stopped"] == "interrupted"
    assert [r["claim"] for r in data["records"]] == ["C1"]
    missing = data["run"]["not_judged"]  # the C2 file's two cells: C2 and C2b
    assert len(missing) == 2, missing
    assert all("test_c2" in m["cell"] and m["why"] == "not run: the run stopped first" for m in missing)
    assert "**INCOMPLETE**" in (report / "summary.md").read_text()
    assert "INCOMPLETE (complete: false)" in (report / "report.html").read_text()
    the_line(result, f"report: {report}* (INCOMPLETE: complete: false)")

    assert main(["compare", str(report), str(report)]) == 2  # one line on stderr, checked below
    baseline = run(claims, "--models", str(tiny_model_dir), *SMALL, C1, "--baseline", str(report))
    assert baseline.ret == pytest.ExitCode.USAGE_ERROR
    the_line(baseline, "*results.json is an incomplete run (interrupted; \"complete\": false); re-run it to the end*")

    written = tmp_path / "baseline.json"
    update = run(claims, "--models", str(tiny_model_dir), *SMALL, C1, C2, "--baseline", str(written),
                 "--update-baseline")
    assert update.ret == pytest.ExitCode.INTERRUPTED and not written.exists()
    the_line(update, f"mcis-claims baseline: this run is incomplete (2 cell(s) not judged; interrupted): "
                     f"not compared with {written} nor written to it")


def test_compare_refuses_an_incomplete_report_in_one_line(tmp_path, capsys):
    from mcis_claims.cli import main

    path = tmp_path / "results.json"
    path.write_text(json.dumps({"schema_version": 1, "results_hash": "x", "records": [],
                                "run": {"complete": False, "stopped": "interrupted", "not_judged": []}}))
    assert main(["compare", str(path), str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"mcis-claims: {path} is an incomplete run (interrupted; \"complete\": false); "
                   "re-run it to the end before comparing or reusing it")


def test_layers_past_the_model_fail_before_torch_is_imported(tmp_path):
    """--layers is checked against a config.json on disk at configure time, before collection imports torch."""
    import json
    import subprocess
    import sys

    model = tmp_path / "three-layers"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"num_hidden_layers": 3, "model_type": "llama"}))
    code = ("import sys\n"
            "from mcis_claims.config import make_config\n"
            "from mcis_claims.plugin import _early_layer_check\n"
            "from mcis_claims.errors import McisError\n"
            f"run = make_config(models=({str(model)!r},), layers='45')\n"
            "try:\n    _early_layer_check(run)\nexcept McisError as exc:\n    print('ERROR', exc)\n"
            "print('torch imported:', 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f"ERROR layer 45: {model} has blocks 0-2" in out
    assert "torch imported: False" in out
