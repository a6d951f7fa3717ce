"""Running a claim file's own functions outside a claims run: load the file by path, and judge with
the project's one decision rule, as the plugin's `judge` does (family M, a failed health check,
a false precondition). Nothing here loads a language model."""
import importlib.util
from pathlib import Path

from mcis_claims.verdict import decide, override

CLAIMS = Path(__file__).resolve().parents[1] / "claims"


def load_claim(stem: str):
    """The module of claims/<stem>.py (claim files are not a package: they are collected by path)."""
    spec = importlib.util.spec_from_file_location(f"_claim_{stem}", CLAIMS / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Judge:
    """Stands in for the plugin's `judge`: decide(), then a stated refutation; the record's pieces kept."""

    def __init__(self, spec, family: int = 1):
        self.spec, self.family = spec, family

    def __call__(self, estimate, *, problem=None, refuted_because=None, **record):
        self.estimate, self.record = estimate, record
        self.decision = decide(self.spec, estimate, family=self.family, problem=problem)
        if refuted_because is not None and problem is None:
            self.decision = override(self.decision, *refuted_because)
        return self.decision

    @property
    def details(self) -> dict:
        return self.record.get("details") or {}
