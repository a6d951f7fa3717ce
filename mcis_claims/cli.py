"""`mcis-claims` command line: set-up chores, and comparing two runs, that do not belong in a test run."""
from __future__ import annotations

import argparse
import sys

from .errors import McisError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mcis-claims", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download and verify the embedded model and corpus, convert the model once")
    fetch.add_argument("--no-convert", action="store_true", help="only download and verify the files")
    fetch.add_argument("--models", default=None,
                       help="comma-separated embedded models (default: smollm2-135m; also gemma3-270m)")
    comp = sub.add_parser("compare", help="compare two or more runs cell by cell; exit 1 if any verdict changed",
                          description="Compare the verdicts and effects of runs, cell by cell. Each RUN is a report "
                                      "directory, its results.json or a baseline file; the first is the reference, "
                                      "each other run is judged against it as --baseline would. Exits 1 if any "
                                      "verdict changed, 0 otherwise.")
    comp.add_argument("runs", metavar="RUN", nargs="+", help="the reference first, then the runs to judge against it")
    comp.add_argument("--only-common", action="store_true",
                      help="only the cells every run has (a run of two cells against a full baseline: two rows)")
    comp.add_argument("--format", default="table", choices=["table", "md", "json"],
                      help="table (rich, default), md (Markdown) or json (machine-readable)")
    stab = sub.add_parser("stability", help="rerun the claim grid over k seeds; count cells that keep their verdict",
                          description="Run `pytest claims/ --seed S` for each seed and report, per (claim, model, "
                                      "layer), whether the verdict is the same for every seed. Arguments after -- "
                                      "go to pytest, e.g. -- --layers 1 --models smollm2-135m.")
    stab.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    stab.add_argument("--out", default="reports/stability", help="folder for the per-seed reports and the summary")
    stab.add_argument("--claims", default="claims", help="the claims folder")
    stab.add_argument("--resume", action="store_true",
                      help="reuse the seeds whose OUT/seed-S/results.json exists instead of running them again")
    stab.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then options for pytest")
    tsae = sub.add_parser("train-sae", help="train and cache the default SAEs of claim C10; print their quality",
                          description="Train (or reuse from the cache) the default TopK SAEs that claim C10 uses "
                                      "at blocks.LAYER.hook_resid_pre, one per L0, and print the training time, "
                                      "L0, fraction of variance explained, dead fraction and downstream KL.")
    tsae.add_argument("--model", default=None, help="model name (default: the embedded smollm2-135m)")
    tsae.add_argument("--layer", type=int, default=1, help="layer whose resid_pre the SAEs read (default 1)")
    tsae.add_argument("--l0", default=None, help="comma-separated k values (default: the C10 L0s, 8,16,64)")
    merge = sub.add_parser("merge", help="combine the shard reports of one run (pytest --shard I/N) into one report",
                           description="Combine shard reports (pytest ... --shard I/N) into one report: results.json, "
                                       "summary.md, report.html and figures, at the whole grid's family M. Refuses "
                                       "shards of different runs (seed, config, versions, grid) and a missing or "
                                       "duplicate shard.")
    merge.add_argument("shards", metavar="DIR", nargs="+", help="shard report directories (or their results.json)")
    merge.add_argument("--out", default="reports/merged", help="where the merged report goes (default reports/merged)")
    subm = sub.add_parser("submit", help="run the claim grid as N shards through submitit (Slurm or local), then merge",
                          description="Launch `pytest ARGS --shard I/N` for I = 1..N as submitit jobs (Slurm when "
                                      "`srun` exists, else local processes), wait for them and merge their reports. "
                                      "Arguments after -- go to pytest, e.g. -- claims/ --layers 1,15,29.")
    subm.add_argument("--shards", type=int, required=True, help="number of shards N")
    subm.add_argument("--out", default="reports/submit", help="report folder: shard-I/, submitit/ logs, merged report")
    subm.add_argument("--cluster", default=None, choices=["slurm", "local", "debug"],
                      help="submitit executor (default: slurm if srun exists, else local)")
    subm.add_argument("--partition", default=None, help="Slurm partition (slurm_partition)")
    subm.add_argument("--gpus", type=int, default=None, help="GPUs per node (gpus_per_node)")
    subm.add_argument("--cpus", type=int, default=None, help="CPUs per task (cpus_per_task)")
    subm.add_argument("--mem-gb", type=float, default=None, help="memory per node in GB (mem_gb)")
    subm.add_argument("--timeout-min", type=int, default=60, help="job time limit in minutes (default 60)")
    subm.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                      help="any other slurm_<KEY> parameter of submitit, e.g. --slurm account=myproj (repeatable)")
    subm.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then options for pytest")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            return _fetch(convert=not args.no_convert, models=args.models)
        if args.command == "compare":
            return _compare(args.runs, only_common=args.only_common, fmt=args.format)
        if args.command == "stability":
            return _stability(args)
        if args.command == "train-sae":
            return _train_sae(args)
        if args.command == "merge":
            from .shards import merge

            print(f"merged {len(args.shards)} shard(s): {merge(args.shards, args.out)}")
            return 0
        if args.command == "submit":
            return _submit(args)
    except McisError as exc:
        print(f"mcis-claims: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)  # stability passes on its seed run's code (4, 6, ...)
    return 0


def _fetch(convert: bool, models: str | None = None) -> int:
    from . import assets
    from .errors import InputError
    from .models import EMBEDDED, EMBEDDED_MODELS, canonical_name, load_model

    names = [canonical_name(m) for m in (models or EMBEDDED).split(",") if m.strip()]
    unknown = [m for m in names if m not in EMBEDDED_MODELS]
    if unknown:
        raise InputError(f"fetch --models {models}: {', '.join(unknown)} is not embedded; "
                         f"choose from {', '.join(EMBEDDED_MODELS)}")
    for asset in [EMBEDDED_MODELS[m] for m in names] + [assets.LEE_CORPUS]:
        path = assets.fetch(asset)
        print(f"{asset.name}: {path} (sha256 {asset.sha256[:12]}… verified)")
    if convert:
        for name in names:
            model = load_model(name)
            print(f"{name}: {model.n_layers} layers, d_model {model.d_model}, loaded in {model.load_seconds:.1f} s")
    return 0


def _submit(args) -> int:
    from .errors import InputError
    from .shards import submit

    extra = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
    slurm = {}
    for item in args.slurm:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--slurm {item}: expected KEY=VALUE, e.g. --slurm account=myproj")
        slurm[key.strip()] = value
    directory, codes = submit(args.shards, extra, args.out, cluster=args.cluster, partition=args.partition,
                              gpus=args.gpus, timeout_min=args.timeout_min, cpus=args.cpus, mem_gb=args.mem_gb,
                              slurm_args=slurm)
    print(f"merged report: {directory} (shard exit codes {', '.join(map(str, codes))})")
    return max(codes, default=0)  # 1 if any shard refuted a claim, as pytest would


def _stability(args) -> int:
    from pathlib import Path

    from .errors import InputError
    from .stability import run_seeds, summarize, write_summary

    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--seeds {args.seeds}: expected comma-separated integers, e.g. 0,1,2") from None
    if len(seeds) < 2:
        raise InputError(f"--seeds {args.seeds}: stability needs at least two seeds")
    extra = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cells = summarize(run_seeds(seeds, extra, out, claims_dir=args.claims, resume=args.resume))
    print(write_summary(cells, out))
    print(f"written: {out / 'stability.md'}, {out / 'stability.json'}")
    return 0


def _compare(paths: list[str], *, only_common: bool, fmt: str) -> int:
    """Like `pytest-benchmark compare`: the runs' cells side by side; 1 if a verdict changed."""
    from .compare_runs import compare_runs, render_json, render_markdown, render_rich

    runs, rows = compare_runs(paths, only_common=only_common)
    if fmt == "json":
        print(render_json(paths, runs, rows))
    elif fmt == "md":
        print(render_markdown(paths, rows), end="")
    else:
        from rich.console import Console

        console = Console()
        if not console.is_terminal:  # a log or a pipe: wide enough that nothing folds
            console = Console(width=160)
        render_rich(paths, runs, rows, console)
    return 1 if any(r.status == "changed" for r in rows) else 0


def _train_sae(args) -> int:
    import os
    import time

    import torch

    from .errors import InputError
    from .models import EMBEDDED, load_model
    from .sae import WEIGHTS_FILENAME
    from .sae_training import DEFAULT_L0S, default_sae, default_sae_dir, training_report

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))  # a shared 2-core box: stay polite
    try:
        l0s = [int(k) for k in args.l0.split(",")] if args.l0 else list(DEFAULT_L0S)
    except ValueError:
        raise InputError(f"--l0 {args.l0}: expected comma-separated integers, e.g. 16,64") from None
    model = load_model(args.model or EMBEDDED)
    for k in l0s:
        path = default_sae_dir(model, args.layer, k)
        cached = (path / WEIGHTS_FILENAME).is_file()
        started = time.perf_counter()
        sae = default_sae(model, args.layer, l0_target=k)
        report = training_report(sae) or {}
        took = time.perf_counter() - started
        print(f"{model.name} blocks.{args.layer}.hook_resid_pre k={k}: "
              f"{'cached' if cached else f'trained in {took:.0f} s'} -> {path}")
        if report:
            print(f"  train {report['train_seconds']:.0f} s (+ harvest {report['harvest_seconds']:.0f} s, shared) on "
                  f"{report['tokens_seen']:,} activations ({report['n_train']:,} distinct); "
                  f"L0 {report['l0']:.1f}, FVE {report['fve']:.3f}, dead {report['dead_fraction']:.1%}, "
                  f"KL(recon at last position) mean {report['kl_recon_mean']:.3g} / median "
                  f"{report['kl_recon_median']:.3g} nats (random point at the same error: "
                  f"{report['kl_random_same_error_mean']:.3g}) over {report['n_kl_prompts']} held-out prompts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
