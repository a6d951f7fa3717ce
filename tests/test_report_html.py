"""report.html, the run's main artefact: its header, matrix, sections and figures, and the page in a
real headless browser (Debian's chromium, driven by Playwright through its executable_path)."""
import re
import shutil

import numpy as np
import pytest

from mcis_claims import stats
from mcis_claims.report import RunReport
from mcis_claims.report_html import cell_anchor
from test_report import make_record

META = {"seed": 3, "versions": {"torch": "2.13.0"}, "family": 4,
        "models": {"smollm2-135m": {"fingerprint_sha256": "ab" * 32, "source": "embedded GGUF"}},
        "corpus": {"name": "lee", "sha256": "cd" * 32}, "command": "pytest claims/ -k 'c1_ or c4' --n-prompts 32",
        "config": {"models": ["smollm2-135m"], "profile": "smoke", "comparable": False, "n_prompts": 32}}


def with_sample(record, seed=0):
    """Attach per-unit values, as a claim's estimate does; a few arms censored."""
    rng = np.random.default_rng(seed)
    a, b = rng.lognormal(0.3, 0.4, 40), rng.lognormal(0.0, 0.4, 40)
    censored = np.zeros(40, dtype=bool)
    censored[:3] = True
    record.sample = stats.paired_log_ratio(a, b, censored_a=censored, sesoi=1.1).sample
    return record


@pytest.fixture(scope="module")
def page_dir(tmp_path_factory):
    run = RunReport(tmp_path_factory.mktemp("html") / "run", run_meta=META)
    for layer in (1, 15, 29):  # C1 at three layers: an effect-against-layer figure
        run.add(with_sample(make_record("C1", "supported", layer=layer, effect=1.2 + layer / 30), seed=layer))
    run.add(with_sample(make_record("C2", "inconclusive", layer=1, effect=1.05)))
    run.finalize(wall_time_s=12.0)
    return run.directory


def test_header_says_what_ran_and_labels_a_smoke_run(page_dir):
    page = (page_dir / "report.html").read_text()
    for text in ("smollm2-135m", "pytest claims/ -k &#x27;c1_ or c4&#x27; --n-prompts 32", "<dt>seed</dt><dd>3</dd>",
                 "smoke (not comparable)", "M = 4 claim cells", "SMOKE RUN", "NOT comparable"):
        assert text in page, text


def test_matrix_links_every_cell_to_its_article_with_titles_and_figures(page_dir):
    page = (page_dir / "report.html").read_text()
    links = set(re.findall(r"href='#([^']+)'", page))
    ids = set(re.findall(r"id='([^']+)'", page))
    assert links and links <= ids  # every link resolves
    assert {cell_anchor({"claim": "C1", "model": "smollm2-135m", "layer": layer}) for layer in (1, 15, 29)} <= links
    assert page.count("Synthetic claim") >= 2  # each claim section is titled
    assert "alt='C1: effect against layer'" in page and "alt='C2: effect against layer'" not in page
    assert page.count("per-unit values (the tested quantity)") == 4
    assert (page_dir / "figures/depth_C1.png").stat().st_size > 10_000
    assert (page_dir / "figures/C1_smollm2-135m_L1_units.png").stat().st_size > 10_000


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: apt-get install chromium (.ci/run does)")
def test_report_renders_in_a_real_browser(page_dir):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download: "
                                                                 "it drives Debian's chromium)")
    console_errors, failed = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        page.on("requestfailed", lambda r: failed.append(r.url))
        page.goto((page_dir / "report.html").as_uri(), wait_until="load")
        assert page.title().startswith("mcis-claims report")
        broken = page.evaluate("""() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))
                                        .map(i => i.alt)""")
        n_images = page.evaluate("document.images.length")
        dangling = page.evaluate("""() => [...document.querySelectorAll("a[href^='#']")]
                                         .map(a => a.getAttribute('href').slice(1))
                                         .filter(id => !document.getElementById(id))""")
        first = page.locator(f"a[href='#{cell_anchor({'claim': 'C1', 'model': 'smollm2-135m', 'layer': 15})}']")
        first.click()
        scrolled = page.evaluate("window.scrollY")
        page.screenshot(path=str(page_dir / "screenshot.png"), full_page=False)
        browser.close()
    assert not console_errors and not failed, (console_errors, failed)
    assert n_images == 4 * 2 + 2 and not broken, broken  # curves + units per cell, forest, C1's depth
    assert not dangling and scrolled > 0  # every link resolves; following one moves the page
    assert (page_dir / "screenshot.png").stat().st_size > 20_000
