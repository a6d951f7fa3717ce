"""`mcis-claims` command line: set-up chores that do not belong in a test run."""
from __future__ import annotations

import argparse
import sys

from .errors import McisError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mcis-claims", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download and verify the embedded model and corpus, convert the model once")
    fetch.add_argument("--no-convert", action="store_true", help="only download and verify the files")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            return _fetch(convert=not args.no_convert)
    except McisError as exc:
        print(f"mcis-claims: {exc}", file=sys.stderr)
        return 2
    return 0


def _fetch(convert: bool) -> int:
    from . import assets

    for asset in (assets.SMOLLM2_GGUF, assets.LEE_CORPUS):
        path = assets.fetch(asset)
        print(f"{asset.name}: {path} (sha256 {asset.sha256[:12]}… verified)")
    if convert:
        from .models import EMBEDDED, load_model

        model = load_model(EMBEDDED)
        print(f"{EMBEDDED}: {model.n_layers} layers, d_model {model.d_model}, loaded in {model.load_seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
