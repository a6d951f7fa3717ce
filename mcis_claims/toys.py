"""Toy models for C11: superposition crossed with a thresholded task, trained on the CPU.

The seed's counter-argument (Lawrence Chan) is that plateaus follow from correct behaviour
plus linear read-offs, with or without superposition. A toy where both are switched on and
off by design tests it: superposition by the ratio of features to hidden dimensions, the
task by whether the target has thresholds.

Model (Elhage et al.'s TMS, tied weights):   h = W x,   y_hat = ReLU(W^T h + b)
    x in R^40: each feature active with probability 0.05, value U[0, 1] (sparse features)
    W: (m, 40) with m = 40 / superposition; superposition=4 -> m = 10, superposition=0.5 -> m = 80
    target: y = ReLU(x - theta); theta = 0 is the identity (x >= 0), theta > 0 a threshold
The hidden activation h is the site that C11 perturbs, as C1 perturbs the residual stream.

A toy is named like a model, `toy:superposition=4,theta=0.3,seed=2`, trained deterministically
from its name (same name, same weights), and cached under `assets.cache_dir()/toys/` as
safetensors with its training report in the file's metadata (never pickle). The seeds of one
design cell train together as one stacked model (Adam is elementwise, so each seed's update
is its own), which makes ten seeds cost about as much as one.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import InputError

N_FEATURES = 40
FEATURE_PROBABILITY = 0.05  # sparse features: about 2 of 40 active per input
LEARNED_BAR = 0.5  # a toy "learned the task" if its held-out fraction of variance explained is at least this
CACHE_VERSION = "v2"  # v2: weights sha256 in the metadata, written atomically


@dataclass(frozen=True)
class Training:
    """How every toy is trained; part of the cache key, so a change retrains."""

    steps: int = 2000
    batch: int = 512
    lr: float = 3e-3  # Adam, cosine decay to 0 (the brief's TMS settings, shortened to fit the run's budget)
    n_eval: int = 20000  # held-out inputs for the training report

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


TRAINING = Training()
_NAME = re.compile(r"^toy:superposition=([0-9.]+),theta=([0-9.]+),seed=(\d+)$")


@dataclass(frozen=True)
class ToySpec:
    """One toy: superposition ratio n/m, the task's threshold theta, the training seed."""

    superposition: float
    theta: float
    seed: int

    def __post_init__(self):
        if not (isinstance(self.superposition, (int, float)) and self.superposition > 0):
            raise InputError(f"superposition={self.superposition!r}: give n_features / n_hidden > 0, e.g. 4")
        hidden = N_FEATURES / self.superposition
        if abs(hidden - round(hidden)) > 1e-9 or round(hidden) < 1:
            raise InputError(f"superposition={self.superposition!r}: {N_FEATURES} / it must be a whole number "
                             "of hidden dimensions; try 0.5, 1, 2 or 4")
        if not (isinstance(self.theta, (int, float)) and 0 <= self.theta < 1):
            raise InputError(f"theta={self.theta!r}: the threshold must lie in [0, 1) (features are U[0, 1])")
        if not (isinstance(self.seed, (int, np.integer)) and self.seed >= 0):
            raise InputError(f"seed={self.seed!r}: give a non-negative integer")

    @property
    def n_hidden(self) -> int:
        return round(N_FEATURES / self.superposition)

    @property
    def name(self) -> str:
        return f"toy:superposition={self.superposition:g},theta={self.theta:g},seed={self.seed}"

    @classmethod
    def parse(cls, name: str) -> "ToySpec":
        """`toy:superposition=4,theta=0.3,seed=2` -> ToySpec(4.0, 0.3, 2)."""
        match = _NAME.match(name.strip())
        if match is None:
            raise InputError(f"{name!r} is not a toy name; write it like toy:superposition=4,theta=0.3,seed=2")
        return cls(float(match[1]), float(match[2]), int(match[3]))


@dataclass
class ToyModel:
    """A trained toy: W (m, n), b (n,), float32 on the CPU, and its training report."""

    spec: ToySpec
    W: torch.Tensor
    b: torch.Tensor
    report: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """(..., n) features -> (..., m) hidden activations, the site C11 perturbs."""
        return x @ self.W.T

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """(..., m) hidden -> (..., n) outputs ReLU(W^T h + b)."""
        return torch.relu(h @ self.W + self.b)

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.W.numpy().tobytes() + self.b.numpy().tobytes())
        return digest.hexdigest()[:16]

    def to_meta(self) -> dict:
        return {"name": self.name, "kind": "toy", "fingerprint": self.fingerprint(),
                "n_features": N_FEATURES, "n_hidden": self.spec.n_hidden, **self.report}


def sample_features(n: int, generator: torch.Generator, *, min_active: int = 0) -> torch.Tensor:
    """(n, 40) sparse inputs; with min_active=1, inputs with no active feature are redrawn
    (the zero input maps to h = 0 for every toy: one point repeated, not n bases)."""
    x = torch.rand(n, N_FEATURES, generator=generator) * (torch.rand(n, N_FEATURES, generator=generator)
                                                         < FEATURE_PROBABILITY)
    for _ in range(100):
        empty = (x > 0).sum(-1) < min_active
        if not empty.any():
            return x
        k = int(empty.sum())
        x[empty] = torch.rand(k, N_FEATURES, generator=generator) * (
            torch.rand(k, N_FEATURES, generator=generator) < FEATURE_PROBABILITY)
    raise InputError(f"min_active={min_active}: could not draw inputs with that many active features")


def target(x: torch.Tensor, theta: float) -> torch.Tensor:
    return torch.relu(x - theta)


def seed_of(spec: ToySpec, part: str) -> int:
    """A torch seed from the toy's name alone: same name, same weights, whatever else is trained."""
    text = f"{spec.name}|{part}|{CACHE_VERSION}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & (2**63 - 1)


@contextmanager
def one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def train_toys(specs, training: Training = TRAINING) -> list[ToyModel]:
    """Train toys of one shape (same superposition) together as a stack; each from its own seed.

    Every toy's initial weights and data stream come from its own generator, and Adam's update
    is elementwise, so a toy's weights do not depend on what else is in the stack (up to the
    float rounding of a batched matmul; tests check 1e-5).
    """
    specs = list(specs)
    if not specs:
        raise InputError("train_toys needs at least one ToySpec")
    shapes = {s.n_hidden for s in specs}
    if len(shapes) != 1:
        raise InputError(f"train_toys stacks toys of one hidden size; got {sorted(shapes)}: call it per size")
    m, n, S = specs[0].n_hidden, N_FEATURES, len(specs)
    started = time.perf_counter()
    gens = [torch.Generator().manual_seed(seed_of(s, "train")) for s in specs]
    # Xavier-normal init per toy, as in the TMS code
    W = torch.stack([torch.randn(m, n, generator=g) * math.sqrt(2 / (m + n)) for g in gens]).requires_grad_()
    b = torch.zeros(S, 1, n, requires_grad=True)
    theta = torch.tensor([s.theta for s in specs]).view(S, 1, 1)
    opt = torch.optim.Adam([W, b], lr=training.lr)
    with one_thread():  # tiny matrices: a second thread only adds contention on a shared machine
        for step in range(training.steps):
            for group in opt.param_groups:
                group["lr"] = training.lr * 0.5 * (1 + math.cos(math.pi * step / training.steps))
            x = torch.stack([sample_features(training.batch, g) for g in gens])  # (S, batch, n)
            y_hat = torch.relu(torch.bmm(torch.bmm(x, W.transpose(1, 2)), W) + b)
            # mean over batch and features per toy, summed over toys: each toy's gradient is its own
            loss = ((y_hat - torch.relu(x - theta)) ** 2).mean(dim=(1, 2))
            if step == 0:
                first_loss = loss.detach().clone()
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
    loss = loss.detach()
    seconds = time.perf_counter() - started
    toys = []
    for i, spec in enumerate(specs):
        toy = ToyModel(spec, W[i].detach().clone().contiguous(), b[i, 0].detach().clone().contiguous())
        toy.report = training_report(toy, training, final_train_loss=float(loss[i]),
                                     first_train_loss=float(first_loss[i]), seconds=seconds / S)
        toys.append(toy)
    return toys


def training_report(toy: ToyModel, training: Training, *, final_train_loss: float, first_train_loss: float,
                    seconds: float) -> dict:
    """Held-out loss against the zero predictor, and how much superposition the toy actually uses."""
    generator = torch.Generator().manual_seed(seed_of(toy.spec, "eval"))
    with torch.no_grad():
        x = sample_features(training.n_eval, generator)
        y = target(x, toy.spec.theta)
        mse = float(((toy.readout(toy.hidden(x)) - y) ** 2).mean())
        zero = float((y ** 2).mean())
        norms = toy.W.norm(dim=0)  # (n,) how strongly each feature is embedded
        represented = norms > 0.5
        unit = toy.W / norms.clamp_min(1e-12)
        overlap = (unit.T @ toy.W) ** 2  # (n, n) squared projection of feature j on feature i's direction
        interference = float((overlap.sum(1) - overlap.diagonal())[represented].mean()) if represented.any() else 0.0
    fve = 1 - mse / zero
    return {
        "training": {**asdict(training), "optimizer": "Adam, cosine decay", "loss": "MSE",
                     "feature_probability": FEATURE_PROBABILITY},
        "first_train_loss": first_train_loss, "final_train_loss": final_train_loss,
        "heldout_mse": mse, "heldout_mse_zero_predictor": zero, "heldout_fve": fve,
        "learned": bool(fve >= LEARNED_BAR), "learned_bar": f"held-out FVE >= {LEARNED_BAR} (1 - MSE / MSE of 0)",
        "features_represented": int(represented.sum()), "features_per_dimension": float(represented.sum()) / toy.spec.n_hidden,
        "mean_interference": interference, "bias_median": float(toy.b.median()),
        "train_seconds": seconds,
    }


# ---------------------------------------------------------------- cache


def toy_path(spec: ToySpec, training: Training = TRAINING) -> Path:
    from .assets import cache_dir

    stem = f"superposition={spec.superposition:g},theta={spec.theta:g},seed={spec.seed}"
    return cache_dir() / "toys" / f"{stem}-{training.key()}-{CACHE_VERSION}.safetensors"


def save_toy(toy: ToyModel, path) -> Path:
    """Atomically (a unique temporary name, then a rename: `cache.atomic_write`), with the
    sha256 of the weights in the metadata, so a changed or half-written file is retrained."""
    from safetensors.torch import save

    from .cache import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"name": toy.name, "report": json.dumps(toy.report), "weights_sha256": _weights_sha256(toy.W, toy.b)}
    atomic_write(path, save({"W": toy.W.contiguous(), "b": toy.b.contiguous()}, metadata=metadata))
    return path


def _weights_sha256(W: torch.Tensor, b: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for tensor in (W, b):
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def load_toy(path) -> ToyModel:
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            W, b = f.get_tensor("W"), f.get_tensor("b")
        spec = ToySpec.parse(meta["name"])
        report = json.loads(meta["report"])
    except Exception as exc:  # any corruption: one line, and the caller retrains
        raise InputError(f"{path}: not a readable toy file ({type(exc).__name__}); delete it to retrain") from None
    if W.shape != (spec.n_hidden, N_FEATURES) or b.shape != (N_FEATURES,):
        raise InputError(f"{path}: W {tuple(W.shape)} / b {tuple(b.shape)} do not fit {spec.name}; delete it")
    if meta.get("weights_sha256") != _weights_sha256(W, b):
        raise InputError(f"{path}: weights do not match the sha256 recorded when the file was written; "
                         "delete it to retrain")
    return ToyModel(spec, W, b, report)


def load_or_train(specs, training: Training = TRAINING, *, cache: bool = True) -> list[ToyModel]:
    """Toys in the order of `specs`, from the cache where present; the rest trained per hidden size."""
    specs = list(specs)
    found: dict[ToySpec, ToyModel] = {}
    if cache:
        for spec in specs:
            path = toy_path(spec, training)
            if path.exists():
                try:
                    found[spec] = load_toy(path)
                    found[spec].report = {**found[spec].report, "cached": True}
                except InputError:
                    path.unlink(missing_ok=True)
    missing = [s for s in dict.fromkeys(specs) if s not in found]
    for size in sorted({s.n_hidden for s in missing}):
        for toy in train_toys([s for s in missing if s.n_hidden == size], training):
            toy.report = {**toy.report, "cached": False}
            found[toy.spec] = toy
            if cache:
                save_toy(toy, toy_path(toy.spec, training))
    return [found[s] for s in specs]


# ---------------------------------------------------------------- C1's plateau read-out on a toy


@dataclass(frozen=True)
class Plateau:
    """C1 on one toy: radius where ||delta y_hat|| first passes the threshold, real vs Gaussian bases."""

    name: str
    radius_real: np.ndarray  # (n_bases,) median over the K directions, units of median ||h||
    radius_gaussian: np.ndarray
    censored_real: np.ndarray  # (n_bases,) fraction of the K directions that never crossed
    censored_gaussian: np.ndarray
    radii: np.ndarray  # (S,)
    curve_real: np.ndarray  # (S,) median over bases and directions of ||delta y_hat|| / threshold
    curve_gaussian: np.ndarray
    threshold: float

    @property
    def index(self) -> float:
        """The plateau index: median over bases of log(r_real / r_gaussian)."""
        return float(np.median(np.log(self.radius_real / self.radius_gaussian)))

    @property
    def ratio(self) -> float:
        return math.exp(self.index)


def default_toy_radii(steps: int = 40, smallest: float = 0.005, largest: float = 4.0) -> np.ndarray:
    """0 plus a geometric schedule in units of the toy's median ||h||, as C1's schedule."""
    return np.concatenate([[0.0], np.geomspace(smallest, largest, steps)])


def plateau(toy: ToyModel, *, n_bases: int = 256, n_fit: int = 4096, n_directions: int = 2,
            threshold_rel: float = 0.1, radii=None, seed: int = 0) -> Plateau:
    """C1's comparison on a toy, with every number seeded from `seed` and the toy's name.

    Real bases: h = W x for inputs with at least one active feature. Gaussian bases: draws from
    N(mu, Sigma) fitted to 4096 such h. Directions: cov-random unit(g1 - g2), the same for both
    arms of a base. Threshold: `threshold_rel` x the median clean output norm on real inputs.
    """
    from .activations import nearest_positive_definite
    from .readouts import radius_at_threshold

    if n_bases < 8 or n_fit < 2 * toy.spec.n_hidden:
        raise InputError(f"n_bases={n_bases}, n_fit={n_fit}: need >= 8 bases and >= 2 x {toy.spec.n_hidden} fit points")
    radii = default_toy_radii() if radii is None else np.asarray(radii, dtype=np.float64)
    g = torch.Generator().manual_seed(seed_of(toy.spec, f"plateau|{seed}"))
    with torch.no_grad():
        fit = toy.hidden(sample_features(n_fit, g, min_active=1)).double()
        mean = fit.mean(0)
        cov, _ = nearest_positive_definite(torch.cov(fit.T))
        factor = torch.linalg.cholesky(cov)
        m = toy.spec.n_hidden

        def gaussian(*shape):
            return mean + torch.randn(*shape, m, generator=g, dtype=torch.float64) @ factor.T

        scale = float(fit.norm(dim=-1).median())
        threshold = threshold_rel * float(toy.readout(fit.float()).norm(dim=-1).median())
        real = toy.hidden(sample_features(n_bases, g, min_active=1)).double()
        gauss = gaussian(n_bases)
        u = gaussian(n_bases, n_directions) - gaussian(n_bases, n_directions)
        u = u / u.norm(dim=-1, keepdim=True)
        r = torch.as_tensor(radii * scale, dtype=torch.float32)
        u = u.float()
        curves = {}
        for arm, base in (("real", real.float()), ("gaussian", gauss.float())):
            points = base[:, None, None, :] + r[None, None, :, None] * u[:, :, None, :]  # (n, K, S, m)
            change = (toy.readout(points) - toy.readout(base)[:, None, None, :]).norm(dim=-1)
            curves[arm] = change.numpy()  # (n, K, S)
    crossing = {arm: radius_at_threshold(c, radii, threshold) for arm, c in curves.items()}
    return Plateau(
        name=toy.name,
        radius_real=np.median(crossing["real"].radius, axis=1),
        radius_gaussian=np.median(crossing["gaussian"].radius, axis=1),
        censored_real=crossing["real"].censored.mean(axis=1),
        censored_gaussian=crossing["gaussian"].censored.mean(axis=1),
        radii=radii,
        curve_real=np.median(curves["real"].reshape(-1, len(radii)), axis=0) / threshold,
        curve_gaussian=np.median(curves["gaussian"].reshape(-1, len(radii)), axis=0) / threshold,
        threshold=threshold,
    )


# ---------------------------------------------------------------- C11's design: superposition x task, seeds as units


@dataclass
class ToyDesign:
    """Every toy of a factorial design with its plateau read-out; the unit of analysis is the toy."""

    superposition: tuple[float, ...]
    theta: tuple[float, ...]
    seeds: tuple[int, ...]
    toys: dict  # ToySpec -> ToyModel
    plateaus: dict  # ToySpec -> Plateau
    seconds: dict  # "train_or_load", "measure"

    @property
    def name(self) -> str:
        sup = ",".join(f"{s:g}" for s in self.superposition)
        theta = ",".join(f"{t:g}" for t in self.theta)
        return f"toy:superposition={{{sup}}},theta={{{theta}}},seeds={self.seeds[0]}-{self.seeds[-1]}"

    def ratio(self, superposition: float, theta: float, seed: int) -> float:
        return self.plateaus[ToySpec(superposition, theta, seed)].ratio

    def pairs(self, factor: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Plateau ratios at the factor's second level (a) and first (b), one pair per unit.

        A unit is (the other factor's level, seed): two toys trained independently, so the
        units are independent and each toy serves in exactly one unit of each effect.
        """
        if factor not in ("theta", "superposition"):
            raise InputError(f"factor={factor!r}: choose 'theta' or 'superposition'")
        levels = self.theta if factor == "theta" else self.superposition
        other = self.superposition if factor == "theta" else self.theta
        if len(levels) != 2:
            raise InputError(f"{factor} has levels {levels}: the effect compares exactly two")
        a, b, units = [], [], []
        for level in other:
            for seed in self.seeds:
                pick = (lambda x: (level, x, seed)) if factor == "theta" else (lambda x: (x, level, seed))
                a.append(self.ratio(*pick(levels[1])))
                b.append(self.ratio(*pick(levels[0])))
                units.append(f"{'superposition' if factor == 'theta' else 'theta'}={level:g},seed={seed}")
        return np.array(a), np.array(b), units

    def cell_ratios(self) -> dict:
        """{"superposition=4,theta=0.3": [plateau ratio per seed]} for the record and the figure."""
        return {f"superposition={s:g},theta={t:g}": [self.ratio(s, t, seed) for seed in self.seeds]
                for s in self.superposition for t in self.theta}

    def problem(self, limit: float = 0.2) -> str | None:
        """Health checks: toys that did not learn their task, or plateau read-outs mostly censored."""
        failed = [spec.name for spec, toy in self.toys.items() if not toy.report.get("learned")]
        if failed:
            return (f"{len(failed)} of {len(self.toys)} toys did not learn their task "
                    f"({self.toys[next(iter(self.toys))].report['learned_bar']}), e.g. {failed[0]}")
        worst = max(max(float(p.censored_real.mean()), float(p.censored_gaussian.mean()))
                    for p in self.plateaus.values())
        if worst > limit:
            return f"up to {worst:.0%} of a toy's plateau curves never reached the threshold; extend the radii"
        return None

    def details(self) -> dict:
        some = next(iter(self.plateaus.values()))
        return {
            "layers": "does not apply: C11 perturbs each toy's hidden layer h = W x; --layers and --models are ignored",
            "design": {"superposition": list(self.superposition), "theta": list(self.theta), "seeds": list(self.seeds),
                       "n_features": N_FEATURES, "feature_probability": FEATURE_PROBABILITY},
            "plateau_index": "per toy: median over 256 real bases of log(r_real / r_gaussian), cov-random "
                             "directions; r = radius (units of median ||h||) where ||delta y_hat|| first "
                             "exceeds 0.1 x the median clean ||y_hat||",
            "plateau_ratio_by_cell": {k: [round(v, 4) for v in vals] for k, vals in self.cell_ratios().items()},
            "median_plateau_ratio_by_cell": {k: float(np.median(v)) for k, v in self.cell_ratios().items()},
            "censored_fraction_max": max(max(float(p.censored_real.mean()), float(p.censored_gaussian.mean()))
                                         for p in self.plateaus.values()),
            "radii_rel": [float(some.radii[1]), float(some.radii[-1]), len(some.radii)],
            "toys": {spec.name: {k: toy.report[k] for k in ("heldout_fve", "learned", "final_train_loss",
                                                             "features_represented", "mean_interference",
                                                             "bias_median")}
                     for spec, toy in self.toys.items()},
            "learned_bar": f"held-out FVE >= {LEARNED_BAR}",
        }  # no timings or cache flags here: the record is hashed (report.results_hash); they go to costs_s

    def plot(self, record, path) -> None:
        """Plateau ratio by design cell, one point per seed, median as a bar; verdict in the title."""
        plot_design(self, record, path)


def measure_design(superposition, theta, seeds, *, training: Training = TRAINING, run_seed: int = 0,
                   cache: bool = True) -> ToyDesign:
    specs = [ToySpec(float(s), float(t), int(seed)) for s in superposition for t in theta for seed in seeds]
    started = time.perf_counter()
    models = load_or_train(specs, training, cache=cache)
    trained = time.perf_counter()
    with one_thread():
        plateaus = {toy.spec: plateau(toy, seed=run_seed) for toy in models}
    return ToyDesign(tuple(map(float, superposition)), tuple(map(float, theta)), tuple(map(int, seeds)),
                     {toy.spec: toy for toy in models}, plateaus,
                     {"train_or_load": trained - started, "measure": time.perf_counter() - trained})


class ToyBench:
    """What the `toys` fixture gives a C11 test: the run's config, cached designs, and the
    model name / layer / site that `judge` records (the design's name; layer -1: none)."""

    layer = -1
    site = "toy hidden layer h = W x (--layers does not apply)"

    def __init__(self, workspace):
        self.workspace = workspace
        self.model_name = "toy"

    @property
    def config(self):
        return self.workspace.config

    def design(self, *, superposition, theta, n_seeds: int) -> ToyDesign:
        """The design's toys, trained once per run (and cached on disk); seeds follow the run seed
        (run seed 0: seeds 0..n-1; run seed s: s*1000 ..), so a stability run trains new toys."""
        if not (isinstance(n_seeds, int) and n_seeds >= 1):
            raise InputError(f"n_seeds={n_seeds!r}: give a positive integer")
        seeds = tuple(range(self.config.seed * 1000, self.config.seed * 1000 + n_seeds))
        key = ("toy_design", tuple(superposition), tuple(theta), seeds)
        design = self.workspace.cached(key, lambda: measure_design(superposition, theta, seeds,
                                                                   run_seed=self.config.seed))
        for spec, toy in design.toys.items():
            self.workspace.toys[spec.name] = toy.to_meta()
        self.model_name = design.name
        return design


def plot_design(design: ToyDesign, record, path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .figures import PLOT_COLOR, _info_box

    fig = Figure(figsize=(10, 5.4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.085, 0.16, 0.57, 0.69))
    cells = design.cell_ratios()
    rng = np.random.default_rng(0)  # horizontal jitter only
    for i, (label, ratios) in enumerate(cells.items()):
        color = "#1f77b4" if float(label.split(",")[0].split("=")[1]) <= 1 else "#d62728"  # none / superposition
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(ratios)), ratios, s=22, color=color, alpha=0.8, zorder=3)
        ax.hlines(np.median(ratios), i - 0.3, i + 0.3, color="black", linewidth=2, zorder=4)
    ax.axhline(1.0, color="#444444", linestyle=":", linewidth=1.2)
    ax.set_xticks(range(len(cells)), [label.replace(",", "\n") for label in cells], fontsize=9)
    ax.set_ylabel("plateau ratio r_real / r_gaussian (per toy; bar: median)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    verdict = record.verdict
    ax.set_title(f"{record.claim} {len(design.toys)} toys — {verdict}", loc="left", fontsize=12, fontweight="bold")
    if record.spec.get("title"):
        fig.text(0.085, 0.925, record.spec["title"], fontsize=10, color="#555555")
    ax.text(1.02, 0.0, _info_box(record), transform=ax.transAxes, va="bottom", ha="left", fontsize=8.5,
            family="monospace", linespacing=1.35,
            bbox=dict(boxstyle="round,pad=0.5", facecolor="#f6f8fa",
                      edgecolor=PLOT_COLOR.get(verdict, "#888888"), linewidth=1.5))
    _save(fig, path)


def _save(fig, path) -> None:
    from .figures import save_png

    save_png(fig, path)
