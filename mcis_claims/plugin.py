"""The pytest plugin: options, the claim grid, verdicts, the report. No science here.

A claim test asks for the `cell` fixture (one model at one site) and the `judge`
fixture, and is marked with `@claim(SPEC)`. The plugin parametrizes such tests over
`--models` x `--layers`, gives every cell the shared workspace (models loaded once,
prompts sampled once, sweeps cached), and turns each judged estimate into a verdict
(`verdict.decide`): `supported` passes, `negligible` and `reversed` fail with the effect
size in the message, and `inconclusive` passes under its own status letter `I`.

The multiplicity family is fixed when the grid is collected, before `-k`/`-m` choose what
runs of it (or taken from the baseline), so running one cell alone judges it exactly as
the whole grid would. At the end of the run the terminal shows a table of verdicts and
the report directory.
"""
from __future__ import annotations

import io
import re
import time
from typing import TYPE_CHECKING

import pytest

# Light imports only: option errors must show before torch and transformers load (cell, models:
# imported where they are used).
from .config import EMBEDDED, PROFILES, RunConfig, make_config
from .errors import EXIT_INPUT_ERROR, McisError
from .reproduce import invocation_nodeid, reproduce_command
from .run_state import STATE, VERDICT, RunState, conclude, run_meta
from .ini_keys import add_ini_keys, apply_ini_keys
from .selection import list_claims, mark_claim_ids, select_claims
from .sites import select_layers, site_name

if TYPE_CHECKING:
    from .cell import ClaimCell, LayerGrid

def pytest_addoption(parser, pluginmanager):
    group = parser.getgroup("mcis-claims", "mcis-claims: falsifiable claims about transformer internals")
    if not pluginmanager.has_plugin("mcis-claims-parallel"):  # xdist, --shard, --resume: parallel.py
        from . import parallel

        pluginmanager.register(parallel, "mcis-claims-parallel")
    group.addoption("--models", default=None,
                    help=f"comma-separated models: {EMBEDDED} (default), a HF id, a directory, a .gguf, random:<name>")
    group.addoption("--layers", default=None, help="layers to perturb: 1,15,29 | all | every:3 | default (early, middle, late)")
    group.addoption("--n-prompts", type=int, default=None, help="base prompts per cell (the unit of analysis)")
    group.addoption("--n-fit", type=int, default=None, help="prompts for the Gaussian fit and the real-activation pool (>= 1000)")
    group.addoption("--n-directions", type=int, default=None, help="directions per kind per base prompt")
    group.addoption("--kl-threshold", type=float, default=None, help="KL (nats) that counts as 'the output changed' (default 0.1)")
    group.addoption("--seed", type=int, default=None, help="run seed; every number derives from it (default 0)")
    group.addoption("--corpus", default=None, help="lee (default), pydoc, a text file or folder, or hf:<dataset>[:split[:column]]")
    group.addoption("--prompt-length", type=int, default=None, help="tokens per prompt (default 10, as published)")
    group.addoption("--profile", default=None, choices=sorted(PROFILES), help="run size: smoke (not comparable), default (default), full")
    group.addoption("--claims", default=None, metavar="IDS",
                    help="run only these claims, by exact id: C1,C2b (case-insensitive; -m C1 does the same for one "
                         "id, while -k C1 is a substring match and also selects C10a, C12, ...)")
    group.addoption("--list-claims", action="store_true", default=False,
                    help="list the selected claims (id, statement, null hypothesis, statistic, SESOI, alpha) and exit")
    group.addoption("--sae", default=None, metavar="DIR",
                    help="a SAELens-format SAE (cfg.json + sae_weights.safetensors) for C10, or DIR1,DIR2 for "
                         "two L0s; default: the project's trained SAEs, cached")
    group.addoption("--sae-layers", default=None, metavar="LAYERS",
                    help="without --sae: the layers C10 runs at, training default SAEs there once (default 1)")
    group.addoption("--baseline", default=None, metavar="PATH",
                    help="judge each cell's verdict against recorded expectations; a changed verdict fails the run")
    group.addoption("--update-baseline", action="store_true", default=False,
                    help="write this run's verdicts to the --baseline file")
    group.addoption("--device", default=None,
                    help="where the models run: cpu (default), cuda, cuda:<index> or auto (CUDA when available)")
    group.addoption("--report-dir", default=None, help="where results.json, summary.md and figures go (default reports/<timestamp>)")
    group.addoption("--sequential", action="store_true", default=None,
                    help="the default: judge each cell at 32, 64, ... base prompts and stop once its verdict is "
                         "settled (alpha spent over the looks; see README, Sequential looks)")
    group.addoption("--fixed-n", dest="sequential", action="store_false", default=None,
                    help="judge each cell once, on all --n-prompts base prompts at the full alpha (the rule "
                         "before sequential looks became the default; ini: mcis_sequential = false)")
    group.addoption("--first-look", type=int, default=None, metavar="N",
                    help="base prompts at the first sequential look (default 32; then 2N, 4N, ... up to --n-prompts)")
    group.addoption("--family", type=int, default=None, metavar="M",
                    help="judge at a family of M cells instead of the collected grid's count (each record's "
                         "reproduce line sets it, so one cell rerun alone gets its verdict back)")
    add_ini_keys(parser, group)


def pytest_configure(config):
    config.addinivalue_line("markers", "claim(spec): a scientific claim judged by the mcis-claims plugin")
    apply_ini_keys(config)
    opt = config.option
    models = None
    if getattr(opt, "models", None):
        models = tuple(m.strip() for m in opt.models.split(",") if m.strip())
    try:
        run = make_config(
            getattr(opt, "profile", None) or "default", models=models, layers=getattr(opt, "layers", None),
            n_prompts=getattr(opt, "n_prompts", None), n_fit=getattr(opt, "n_fit", None),
            n_directions=getattr(opt, "n_directions", None), kl_threshold=getattr(opt, "kl_threshold", None),
            seed=getattr(opt, "seed", None), corpus=getattr(opt, "corpus", None),
            prompt_length=getattr(opt, "prompt_length", None), report_dir=getattr(opt, "report_dir", None),
            sae=getattr(opt, "sae", None), sae_layers=getattr(opt, "sae_layers", None),
            device=getattr(opt, "device", None), sequential=getattr(opt, "sequential", None),
            first_look=getattr(opt, "first_look", None),
        )
        _early_layer_check(run)
    except McisError as exc:
        raise pytest.UsageError(str(exc)) from None
    baseline = getattr(opt, "baseline", None)
    if getattr(opt, "update_baseline", False) and not baseline:
        raise pytest.UsageError("--update-baseline needs --baseline PATH (the file to write)")
    if baseline and not getattr(opt, "update_baseline", False):
        from .baseline import load_baseline

        try:
            recorded = load_baseline(baseline)  # fail fast, before any model is loaded
        except McisError as exc:
            raise pytest.UsageError(str(exc)) from None
        expectations, family = recorded.expectations, int(recorded.meta.get("family") or 0)
    else:
        expectations, family = None, 0
    forced = getattr(opt, "family", None)
    if forced is not None:
        if forced < 1:
            raise pytest.UsageError(f"--family {forced}: the family is a number of claim cells, at least 1")
        if family and forced != family:
            raise pytest.UsageError(f"--family {forced} disagrees with the baseline's family M={family}; a run "
                                    f"judged against {baseline} uses the baseline's; drop --family")
        family = forced
    config.stash[STATE] = RunState(config=run, expectations=expectations,
                                   baseline_family=family)
    _keep_whole_grid_under_lf(config)


def _keep_whole_grid_under_lf(config) -> None:
    """`--lf` reruns the failed cells, judged in the multiplicity family of the whole grid.

    pytest's --lf filters while collecting (its "lfplugin-collwrapper" drops a file's passed items
    and skips files with no failure), before `pytest_collection_modifyitems`, where the family is
    counted: the rerun cell would be judged in a family of 1. When a last-failed test lives in a
    claim file, that filter is removed: every file is collected and the family counted, and --lf
    still deselects all but the failed tests afterwards (its pytest_collection_modifyitems wrapper
    finishes after our count). Other projects' --lf is left as it is."""
    manager = config.pluginmanager
    if not config.getoption("lf", False) or getattr(config, "cache", None) is None:
        return
    if not manager.has_plugin("lfplugin-collwrapper"):
        return
    files = {str(nodeid).split("::", 1)[0] for nodeid in config.cache.get("cache/lastfailed", {})}
    for name in files:
        try:
            text = (config.rootpath / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if re.search(r"^@(\w+\.)*claim\(", text, flags=re.MULTILINE):
            manager.unregister(name="lfplugin-collwrapper")
            return


def _early_layer_check(run: RunConfig) -> None:
    """--layers against each model's depth from a config.json on disk, before torch is imported.

    A typo like `--layers 45` then fails in a second or two instead of after collection. Only
    what a json read can settle is checked here (a local model folder, an embedded model's
    cached conversion, or their random:/shuffled: controls); everything else is checked again,
    for every model, when the grid is collected.
    """
    import json
    from pathlib import Path

    from .assets import cache_dir

    if run.layers is None:
        return
    for name in run.models:
        base = name.split(":", 1)[1].rsplit("@", 1)[0] if name.startswith(("random:", "shuffled:")) else name
        candidates = [Path(base).expanduser() / "config.json"]
        if base and "/" not in base and not base.startswith((".", "~")):  # a name, not a path
            candidates += sorted((cache_dir() / "models").glob(f"{base}-*/config.json"))
        for path in candidates:
            try:
                config = json.loads(path.read_text(encoding="utf-8"))
                n_layers = int(config.get("num_hidden_layers") or config.get("n_layer"))
            except (OSError, ValueError, TypeError, AttributeError):
                continue
            select_layers(run.layers, n_layers, name)  # a SiteError names the model and its blocks
            break


def pytest_report_header(config):
    run = config.stash[STATE].config
    note = "" if run.comparable else "  (smoke profile: numbers are NOT comparable)"
    return f"mcis-claims: seed={run.seed} profile={run.profile} models={','.join(run.models)}{note}"


def claim(spec, *, layers=None, sequential=True):
    """Mark a test function as the claim `spec` (a `ClaimSpec`); layers="earliest" runs it only at
    the grid's earliest layer (C13 perturbs early and reads the residual stream late);
    sequential=False: the claim picks its own subset of the bases, so it is judged once at fixed n."""
    if layers not in (None, "earliest"):
        raise ValueError(f"claim({spec.id}, layers={layers!r}): use None (every layer) or 'earliest'")
    kwargs = {**({"layers": layers} if layers else {}), **({} if sequential else {"sequential": False})}
    return pytest.mark.claim(spec, **kwargs)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """A claim on one cell's bases runs look after look (looks.py) until it is settled (not under --fixed-n)."""
    state = pyfuncitem.config.stash.get(STATE, None)
    from .looks import run_looks, runs_sequentially

    if state is None or not runs_sequentially(pyfuncitem, state.config):
        return None
    run_looks(pyfuncitem, first=state.config.first_look)
    return True


def pytest_generate_tests(metafunc):
    wants_cell, wants_grid = "cell" in metafunc.fixturenames, "grid" in metafunc.fixturenames
    if not (wants_cell or wants_grid) or metafunc.config.getoption("list_claims", False):
        return
    state = metafunc.config.stash[STATE]
    marker = metafunc.definition.get_closest_marker("claim")
    if marker is None:  # only claims: a project's own `cell` or `grid` fixture is not ours to parametrize
        return
    spec = marker.args[0] if marker.args else None
    cells, grids = [], []
    for name in state.config.models:
        try:
            from .models import describe

            info = describe(name)
            layers = select_layers(state.config.layers, info.n_layers, info.name)
            if info.max_positions is not None and state.config.prompt_length > info.max_positions:
                from .errors import InputError

                raise InputError(f"--prompt-length {state.config.prompt_length}: {info.name} takes at most "
                                 f"{info.max_positions} positions; use --prompt-length {info.max_positions} or less")
        except McisError as exc:
            state.usage_error = str(exc)  # raised once collection ends, as one line, not per module
            return
        cell_layers = layers
        if spec is not None and spec.needs_sae:
            try:
                cell_layers = sae_cell_layers(state.config, layers, info.n_layers, info.name,
                                              explicit=metafunc.config.getoption("sae_layers") is not None)
            except McisError as exc:
                state.usage_error = str(exc)
                return
            if not cell_layers:  # the default --sae-layers is not in this grid: say so, do not vanish
                cells.append(pytest.param(None, id=f"{info.name}-no-sae-layer", marks=pytest.mark.skip(
                    reason=f"{spec.id} runs where an SAE is: --sae-layers {state.config.sae_layers} (the default) is "
                           f"not among --layers {','.join(map(str, layers))}; add --sae-layers "
                           f"{layers[0]} (trains SAEs there once) or pass --sae DIR")))
        if marker is not None and marker.kwargs.get("layers") == "earliest":
            cell_layers = cell_layers[:1]
        cells += [pytest.param((info.name, layer), id=f"{info.name}-{site_name(layer)}") for layer in cell_layers]
        depth_layers = select_layers(state.config.layers, info.n_layers, info.name, depth=True)
        grids.append(pytest.param((info.name, tuple(depth_layers)),
                                  id=f"{info.name}-layers-{'-'.join(map(str, depth_layers))}"))
    if wants_cell:
        metafunc.parametrize("cell", cells, indirect=True)
    else:  # a claim about depth: one test per model, over all the layers of the grid
        metafunc.parametrize("grid", grids, indirect=True)


def sae_cell_layers(config, layers: list[int], n_layers: int, model: str, *, explicit: bool) -> list[int]:
    """The grid's layers where SAE claims run; one line where the SAEs asked for cannot run on this grid.

    Every --sae SAE is used at every C10 cell, so they must read one layer, and that layer must
    be in --layers (no silent "empty parameter set"). Without --sae, an explicit --sae-layers
    that misses the grid is an error too; the default one leaves a skipped cell with the reason.
    """
    from .errors import InputError

    if config.sae:
        from .sae import read_hook_layer

        paths = [p.strip() for p in config.sae.split(",") if p.strip()]
        named = {path: layer for path in paths if (layer := read_hook_layer(path)) is not None}
        if len(set(named.values())) > 1:
            listed = ", ".join(f"{path} reads layer {layer}" for path, layer in named.items())
            raise InputError(f"--sae {config.sae}: {listed}; C10 compares SAEs at one site, so pass SAEs "
                             f"trained at one layer")
        if not named:  # no SAE names its hook: it may serve any layer of the grid
            return list(layers)
        at = next(iter(named.values()))
        if at not in layers:
            path = next(iter(named))
            raise InputError(f"--sae {path} reads blocks.{at}.hook_resid_pre (layer {at}), but --layers "
                             f"{config.layers or 'default'} selects {','.join(map(str, layers))} for {model}; "
                             f"add it: --layers {','.join(map(str, sorted({*layers, at})))}")
        return [at]
    wanted = select_layers(config.sae_layers, n_layers, model)
    chosen = [layer for layer in layers if layer in wanted]
    if not chosen and explicit:
        raise InputError(f"--sae-layers {config.sae_layers} selects {','.join(map(str, wanted))}, none of them "
                         f"among --layers {','.join(map(str, layers))} for {model}; add them to --layers")
    return chosen


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    """Runs before -k/-m deselection: the family is every claim cell of the collected grid."""
    state = config.stash[STATE]
    if state.usage_error:
        raise pytest.UsageError(state.usage_error)
    collected = sum(1 for item in items if item.get_closest_marker("claim"))
    # a baseline's grid wins: a run judged against it uses the level its verdicts were recorded at
    state.family = state.baseline_family or collected
    mark_claim_ids(config, items)
    select_claims(config, items)


def pytest_collection_finish(session):
    """The grid is known once -k/-m deselection is done: size the family, open the report."""
    config = session.config
    state = config.stash[STATE]
    if config.getoption("list_claims", False):  # after -k/-m/--claims: list what is selected, run nothing
        list_claims(config, session.items)
        session.items[:] = []
        return
    cells = [item for item in session.items if item.get_closest_marker("claim")]
    state.n_cells = len(cells)
    state.cell_ids = [item.nodeid for item in cells]
    if not cells or config.option.collectonly:
        return
    plan_sites(state.workspace, cells)
    from .report import RunReport

    try:
        state.report = RunReport(state.config.report_dir, run_meta=run_meta(state, config))
    except McisError as exc:
        raise pytest.UsageError(str(exc)) from None


def plan_sites(workspace, cells) -> None:
    """Tell the workspace every layer each model's selected cells will fit, so it fits them in one forward."""
    from .parallel import cell_param

    for item in cells:
        kind, value = cell_param(item)
        if kind is not None:
            workspace.plan_layers(value[0], [value[1]] if kind == "cell" else value[1])


def pytest_report_collectionfinish(config, start_path, items):
    state = config.stash.get(STATE, None)
    if state is None or not state.family or config.getoption("list_claims", False):
        return None
    source = ("--family" if config.getoption("family", None) else "the baseline's grid" if state.baseline_family
              else "claim cells collected, before -k/-m")
    running = sum(1 for item in items if item.get_closest_marker("claim"))
    return (f"mcis-claims: family M={state.family} ({source}); each verdict's interval at 1 - 2 alpha/M, "
            f"sign-test p_adj = min(1, M p); {running} cell(s) run")


def _cell_param(request):
    if not hasattr(request, "param"):  # the grid parametrizes @claim tests only
        pytest.fail(f"{request.node.nodeid} uses the `{request.fixturename}` fixture but has no @claim(SPEC) "
                    f"marker; mark it: @claim(SPEC) (from mcis_claims import claim)", pytrace=False)
    return request.param


@pytest.fixture
def cell(request) -> ClaimCell:
    state = request.config.stash[STATE]
    name, layer = _cell_param(request)
    state.workspace.check_parity(name, layer)
    from .cell import ClaimCell

    return ClaimCell(state.workspace, name, layer)


@pytest.fixture
def grid(request) -> LayerGrid:
    state = request.config.stash[STATE]
    name, layers = _cell_param(request)
    for layer in layers:
        state.workspace.check_parity(name, layer)
    from .cell import ClaimCell, LayerGrid

    return LayerGrid([ClaimCell(state.workspace, name, layer) for layer in layers])


@pytest.fixture
def toys(request):
    """C11's bench: trains (or loads) toy models and stands in for the cell when `judge` records."""
    from .toys import ToyBench

    return ToyBench(request.config.stash[STATE].workspace)


@pytest.fixture
def judge(request):
    """judge(estimate, curves=[...], details={...}) -> Decision; fails the test if refuted.

    A depth claim (fixture `grid`) is recorded at the grid's latest layer.
    """
    state = request.config.stash[STATE]
    if "toys" in request.fixturenames:  # C11: a design of toy models, not a model x layer cell
        cell = request.getfixturevalue("toys")
    else:
        cell = request.getfixturevalue("cell") if "cell" in request.fixturenames else request.getfixturevalue("grid").late
    marker = request.node.get_closest_marker("claim")
    if marker is None or not marker.args:
        raise pytest.UsageError(f"{request.node.nodeid} uses `judge` but has no @claim(SPEC) marker")
    spec = marker.args[0]
    started = time.perf_counter()

    def _judge(estimate, *, curves=(), details=None, problem=None, refuted_because=None,
               curve_ylabel="KL(clean || perturbed) [nats]", curve_xlabel=None, curve_yscale=None,
               reference_lines=None, costs=None, plot=None):
        """`problem`: a failed health check (inconclusive); `refuted_because`: a stated precondition of
        the claim is false, as (verdict, reason) with verdict "negligible" or "reversed" (a bare reason
        means negligible)."""
        from .looks import NextLook
        from .records import cell_record
        from .verdict import decide, override

        looks = _judge.looks  # a sequential look: its share of alpha (looks.py)
        decision = decide(looks.spec(spec) if looks else spec, estimate, family=state.family or 1, problem=problem)
        if refuted_because is not None and problem is None:  # a stated precondition of the claim is false
            verdict, reason = (refuted_because if isinstance(refuted_because, tuple)
                               else ("negligible", refuted_because))
            decision = override(decision, verdict, reason)
        if looks and not looks.note(decision, problem):
            raise NextLook
        decision = looks.described(decision) if looks else decision
        record = cell_record(
            spec, estimate, decision, cell, details=details,
            reproduce=reproduce_command(invocation_nodeid(request.node), state.config, decision.family),
            timing_s=time.perf_counter() - started, curves=curves, curve_ylabel=curve_ylabel,
            curve_xlabel=curve_xlabel, curve_yscale=curve_yscale, reference_lines=reference_lines, costs=costs,
            plot=plot, sequential=looks.to_dict() if looks else None)
        conclude(request.node, state, record)
        return decision

    _judge.looks = None
    _judge.family = state.family or 1  # the multiplicity family, for claims that read a level themselves
    return _judge


def pytest_sessionstart(session):
    """Progress goes to pytest's terminal, with capture suspended while a bar is shown (progress.py);
    not when the terminal is not a tty, and not under -q -q."""
    from . import progress

    config = session.config
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.getplugin("capturemanager")
    if reporter is None or not reporter.isatty or config.get_verbosity() <= -2 or _is_xdist_worker(config):
        progress.bind(None)
        return
    progress.bind(reporter._tw, around=capture.global_and_fixture_disabled if capture is not None else None)


def _is_xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_unconfigure(config):
    from . import progress

    progress.bind(None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    state = item.config.stash.get(STATE, None)
    if call.excinfo is not None and call.excinfo.errisinstance(McisError):
        report.longrepr = f"{call.excinfo.typename}: {call.excinfo.value}"
        from .parity import ParityError

        if (state is not None and state.input_error is None and item.get_closest_marker("claim")
                and not call.excinfo.errisinstance(ParityError)):
            # A bad input (corpus, SAE, model file) fails every later cell the same way: stop the run
            # here and exit EXIT_INPUT_ERROR, never 1 (a refuted claim). A parity mismatch is a
            # site's own failure, not the user's input: the other sites still run.
            state.input_error = report.longrepr
            item.session.shouldstop = f"mcis-claims input error (exit {EXIT_INPUT_ERROR}): {state.input_error}"
    if (state is not None and report.failed and report.when in ("setup", "call") and call.excinfo is not None
            and item.get_closest_marker("claim")):
        lines = str(call.excinfo.value).strip().splitlines()
        state.cell_errors.setdefault(item.nodeid, f"{call.excinfo.typename}: {lines[0] if lines else ''}"[:300])
    if report.when == "call":
        verdict = item.stash.get(VERDICT, None)
        if verdict is not None:  # the status letter's source; "<verdict>:new" with --baseline and no record
            report.user_properties.append(("mcis_status", verdict))


def pytest_report_teststatus(report, config):
    if report.when != "call" or not report.passed:
        return None
    verdict = dict(report.user_properties).get("mcis_status")
    if verdict is None:
        return None
    verdict, _, new = verdict.partition(":")
    suffix = " (no baseline)" if new else ""
    if verdict == "inconclusive":
        return "inconclusive", "I", "INCONCLUSIVE" + suffix
    if verdict in ("negligible", "reversed", "refuted"):  # a pass only when the baseline expected it
        word = verdict.upper()
        return verdict, verdict[0].upper(), f"{word} (as in baseline)" if not new else word + suffix
    return "passed", ".", "SUPPORTED" + suffix


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Marks a test whose protocol ended (a skip too); an interrupt leaves it unmarked: it never finished."""
    result = yield
    state = item.config.stash.get(STATE, None)
    if state is not None:
        state.finished.add(item.nodeid)
    return result


def _not_judged(state: RunState) -> list[dict]:
    """The grid's cells with no verdict, each with why: its error, or that the run stopped before it."""
    out = []
    for nodeid in state.cell_ids:
        if nodeid in state.judged:
            continue
        if nodeid in state.cell_errors:
            out.append({"cell": nodeid, "why": state.cell_errors[nodeid]})
        elif nodeid not in state.finished:
            out.append({"cell": nodeid, "why": "not run: the run stopped first"})
    return out  # a cell that finished without error or verdict was skipped on purpose (with its reason)


def pytest_sessionfinish(session, exitstatus):
    """Verdicts are final: write the report, then judge the run against the baseline, if any.

    A run stopped by an input error exits EXIT_INPUT_ERROR; a run that did not judge every cell
    writes `"complete": false` with the cells it did not judge, and is not compared with a baseline."""
    config = session.config
    state = config.stash.get(STATE, None)
    if state is None or hasattr(config, "workerinput"):
        return
    if state.input_error is not None:
        session.exitstatus = EXIT_INPUT_ERROR
    if state.report is None or not state.records:
        return
    provenance = state.workspace.provenance()
    not_judged = _not_judged(state)
    stopped = (f"input error: {state.input_error}" if state.input_error
               else "interrupted" if exitstatus == pytest.ExitCode.INTERRUPTED
               else str(session.shouldfail or session.shouldstop) if (session.shouldfail or session.shouldstop)
               else None)
    state.directory = state.report.finalize(wall_time_s=time.time() - state.started, extra_meta=provenance,
                                            not_judged=not_judged, stopped=stopped)
    path = config.getoption("baseline")
    if not path:
        return
    if not_judged or stopped:
        state.baseline_error = (f"this run is incomplete ({len(not_judged)} cell(s) not judged"
                                f"{'; ' + stopped if stopped else ''}): not compared with {path}"
                                f"{' nor written to it' if config.getoption('update_baseline') else ''}")
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    from .baseline import check_against_baseline

    try:
        state.baseline = check_against_baseline([r.to_dict() for r in state.report.records()],
                                                {**run_meta(state, config), **provenance}, path,
                                                update=config.getoption("update_baseline"))
    except McisError as exc:
        state.baseline_error = str(exc)
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        return
    if state.baseline.failures and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    state = config.stash.get(STATE, None)
    if state is not None and state.input_error is not None:
        terminalreporter.write_line(f"mcis-claims: input error (exit {EXIT_INPUT_ERROR}): {state.input_error}",
                                    red=True, bold=True)
    if state is None or state.directory is None:
        return
    from rich.console import Console

    from .report import render_verdict_table

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=terminalreporter.hasmarkup,
                      width=max(100, terminalreporter._tw.fullwidth))
    console.print(render_verdict_table(state.records))
    terminalreporter.section("mcis-claims verdicts")
    terminalreporter.write(buffer.getvalue())
    incomplete = state.report is not None and state.report.incomplete
    terminalreporter.write_line(f"report: {state.directory}  (open {state.directory / 'report.html'})"
                                + (" (INCOMPLETE: complete: false)" if incomplete else ""),
                                red=incomplete)
    if state.baseline_error:
        terminalreporter.write_line(f"mcis-claims baseline: {state.baseline_error}", red=True)
    elif state.baseline is not None:
        terminalreporter.section("mcis-claims baseline")
        for line in state.baseline.lines:
            terminalreporter.write_line(line, red=line.startswith("CHANGED"), yellow=line.startswith("warning:"))
        if state.baseline.failures:
            terminalreporter.write_line(
                f"FAILED: {len(state.baseline.failures)} verdict(s) changed against {config.getoption('baseline')}",
                red=True, bold=True)
