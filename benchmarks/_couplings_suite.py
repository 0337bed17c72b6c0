"""The couplings-and-kernels suite of ``benchmarks/kernel_approximation.py`` (``--suite couplings``).

For each kernel (RBF, Laplacian, Matérn nu = 3/2) and each coupling valid for it, at equal
output width ``D`` (FavorSampler's (cos, sin) map uses ``n_components = D / 2``):

* kernel error: ``||Z Z^T - K||_F / ||K||_F`` against the exact kernel (scikit-learn's
  ``rbf_kernel`` / ``laplacian_kernel`` / ``Matern``), median over seeds, with per-seed
  ratios to the orthogonal coupling (i.i.d. for the Laplacian kernel) and to
  ``RBFSampler`` (RBF only) and ``Nystroem`` with the same kernel, all in the same run;
* downstream accuracy of a linear model on the features: ``RidgeClassifier`` on digits
  (accuracy) and ``Ridge`` on diabetes (R^2), held-out split, against kernel ridge with
  the exact kernel;
* transform time (float32, medians of interleaved runs): the (cos, sin) map at d = 64
  and the structured map at d = 4096, D = 4096, each against ``RBFSampler``.

Data: digits (1797 x 64) and diabetes (442 x 10), both bundled with scikit-learn and
standardised, and standard normal data with d in {64, 512, 4096}. Bandwidth: the median
heuristic (``gamma = 1 / median ||x - y||^2``; Laplacian: ``1 / median ||x - y||_1``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _timing import Timing

KERNELS = ("rbf", "laplacian", "matern")
NU = 1.5
COUPLINGS = {
    "rbf": ("iid", "orthogonal", "structured", "qmc", "simplex", "simplex+"),
    "matern": ("iid", "orthogonal", "structured", "qmc", "simplex"),
    "laplacian": ("iid", "qmc"),
}
REFERENCE = {"rbf": "orthogonal", "matern": "orthogonal", "laplacian": "iid"}


def datasets(quick: bool) -> dict[str, np.ndarray]:
    """Name -> standardised data for the error table."""
    from sklearn.datasets import load_diabetes, load_digits
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(20261201)
    digits = StandardScaler().fit_transform(load_digits().data)
    diabetes = StandardScaler().fit_transform(load_diabetes().data)
    if quick:
        return {
            "digits": digits[:200],
            "diabetes": diabetes[:200],
            "random-16": rng.standard_normal((200, 16)),
        }
    out = {"digits": digits, "diabetes": diabetes}
    for d in (64, 512, 4096):
        out[f"random-{d}"] = rng.standard_normal((1000, d))
    return out


def bandwidth(kernel: str, x: np.ndarray) -> float:
    """Median heuristic on at most 1000 rows."""
    from scipy.spatial.distance import pdist

    sub = x[:1000]
    if kernel == "laplacian":
        return 1.0 / float(np.median(pdist(sub, "cityblock")))
    return 1.0 / float(np.median(pdist(sub, "sqeuclidean")))


def exact_kernel(kernel: str, x: np.ndarray, y: np.ndarray, gamma: float) -> np.ndarray:
    """scikit-learn's kernel with the same gamma convention as FavorSampler."""
    from sklearn.gaussian_process.kernels import Matern
    from sklearn.metrics.pairwise import laplacian_kernel, rbf_kernel

    if kernel == "rbf":
        return rbf_kernel(x, y, gamma=gamma)
    if kernel == "laplacian":
        return laplacian_kernel(x, y, gamma=gamma)
    return Matern(length_scale=1.0 / np.sqrt(2.0 * gamma), nu=NU)(x, y)


def favor_features(kernel: str, coupling: str, width: int, gamma: float, seed: int):
    from favor import FavorSampler

    extra = {"nu": NU} if kernel == "matern" else {}
    return FavorSampler(
        kernel,
        gamma=gamma,
        projection=coupling,
        n_components=width // 2,
        random_state=seed,
        **extra,
    )


def nystroem_features(kernel: str, x_fit: np.ndarray, width: int, gamma: float, seed: int):
    """scikit-learn's Nystroem for RBF and Laplacian; for Matérn the same algorithm.

    scikit-learn's Nystroem accepts a Python callable kernel only per pair of rows (far
    too slow here), so for Matérn it is restated: ``width`` random landmarks, features
    ``K(x, L) U S^{-1/2} V^T`` from the SVD of ``K(L, L)`` (as ``Nystroem.fit`` does).
    """
    from sklearn.kernel_approximation import Nystroem

    width = min(width, x_fit.shape[0])  # at width = n every point is a landmark (exact)
    if kernel != "matern":
        return Nystroem(kernel=kernel, gamma=gamma, n_components=width, random_state=seed).fit(
            x_fit
        )

    class _MaternNystroem:
        def fit(self, x):
            rng = np.random.default_rng(seed)
            self.landmarks = x[rng.permutation(x.shape[0])[:width]]
            u, s, vt = np.linalg.svd(exact_kernel(kernel, self.landmarks, self.landmarks, gamma))
            self.normalization = (u / np.sqrt(np.maximum(s, 1e-12))) @ vt
            return self

        def transform(self, x):
            return exact_kernel(kernel, x, self.landmarks, gamma) @ self.normalization.T

    return _MaternNystroem().fit(x_fit)


def _error(z: np.ndarray, exact: np.ndarray) -> float:
    z = z.astype(np.float64)
    return float(np.linalg.norm(z @ z.T - exact) / np.linalg.norm(exact))


def error_table(
    quick: bool, seeds: int, width: int, names: list[str] | None = None, log: Path | None = None
) -> list[dict]:
    """Kernel error per (data, kernel, method), per-seed ratios within the run.

    ``names`` selects datasets; ``log`` receives one JSON line per record as it is made.
    """
    from sklearn.kernel_approximation import RBFSampler

    records = []
    for name, x in datasets(quick).items():
        if names is not None and name not in names:
            continue
        for kernel in KERNELS:
            gamma = bandwidth(kernel, x)
            exact = exact_kernel(kernel, x, x, gamma)
            methods: dict[str, Callable[[int], np.ndarray]] = {
                c: (
                    lambda s, c=c, k=kernel, g=gamma, x=x: (
                        favor_features(k, c, width, g, s).fit(x).transform(x)
                    )
                )
                for c in COUPLINGS[kernel]
            }
            if kernel == "rbf":
                methods["rbfsampler"] = lambda s, g=gamma, x=x: (
                    RBFSampler(gamma=g, n_components=width, random_state=s).fit(x).transform(x)
                )
            methods["nystroem"] = lambda s, k=kernel, g=gamma, x=x: nystroem_features(
                k, x, width, g, s
            ).transform(x)
            errors = {m: [_error(f(s), exact) for s in range(seeds)] for m, f in methods.items()}
            ref = np.array(errors[REFERENCE[kernel]])
            for m, errs in errors.items():
                rec = {
                    "data": name,
                    "n": int(x.shape[0]),
                    "d": int(x.shape[1]),
                    "kernel": kernel,
                    "gamma": gamma,
                    "width": width,
                    "method": m,
                    "errors": errs,
                    "error_median": float(np.median(errs)),
                    "ratio_to_reference": float(np.median(np.array(errs) / ref)),
                }
                if "rbfsampler" in errors:
                    rec["ratio_to_rbfsampler"] = float(
                        np.median(np.array(errs) / np.array(errors["rbfsampler"]))
                    )
                records.append(rec)
                if log is not None:
                    with log.open("a") as handle:
                        handle.write(json.dumps(rec) + "\n")
            print(f"done errors {name} {kernel}", flush=True)
    return records


def downstream_table(quick: bool, width: int) -> list[dict]:
    """Held-out accuracy (digits) and R^2 (diabetes) of a ridge model on the features."""
    from sklearn.datasets import load_diabetes, load_digits
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.linear_model import Ridge, RidgeClassifier
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    tasks = {
        "digits": (load_digits(return_X_y=True), True),
        "diabetes": (load_diabetes(return_X_y=True), False),
    }
    records = []
    for name, ((x, y), classify) in tasks.items():
        if quick:
            x, y = x[:300], y[:300]
        x = StandardScaler().fit_transform(x)
        xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.33, random_state=0)
        for kernel in KERNELS:
            gamma = bandwidth(kernel, xtr)
            if classify:
                ktr = exact_kernel(kernel, xtr, xtr, gamma)
                kte = exact_kernel(kernel, xte, xtr, gamma)
                onehot = np.eye(int(y.max()) + 1)[ytr] * 2 - 1
                dual = np.linalg.solve(ktr + 1e-3 * np.eye(len(ktr)), onehot)
                exact_score = float(np.mean(np.argmax(kte @ dual, axis=1) == yte))
            else:
                model = KernelRidge(alpha=1e-1, kernel="precomputed")
                model.fit(exact_kernel(kernel, xtr, xtr, gamma), ytr)
                exact_score = float(model.score(exact_kernel(kernel, xte, xtr, gamma), yte))
            for c in COUPLINGS[kernel]:
                sampler = favor_features(kernel, c, width, gamma, 0).fit(xtr)
                linear = RidgeClassifier(alpha=1e-3) if classify else Ridge(alpha=1e-1)
                score = float(
                    linear.fit(sampler.transform(xtr), ytr).score(sampler.transform(xte), yte)
                )
                records.append(
                    {
                        "data": name,
                        "kernel": kernel,
                        "method": c,
                        "width": width,
                        "metric": "accuracy" if classify else "R^2",
                        "score": score,
                        "exact_kernel_score": exact_score,
                    }
                )
    return records


def timing_table(quick: bool, repeats: int, time_interleaved) -> list[dict]:
    """float32 transform times against RBFSampler at equal width (interleaved medians)."""
    from sklearn.kernel_approximation import RBFSampler

    from favor import FavorSampler

    rng = np.random.default_rng(7)
    cases = [(64, 1024, "orthogonal", 20000), (4096, 4096, "structured", 1000)]
    if quick:
        cases = [(16, 64, "orthogonal", 200), (64, 64, "structured", 100)]
    records = []
    for d, width, coupling, n in cases:
        x = rng.standard_normal((n, d)).astype(np.float32)
        gamma = 1.0 / (2 * d)
        ours = FavorSampler(
            gamma=gamma, projection=coupling, n_components=width // 2, random_state=0
        ).fit(x)
        theirs = RBFSampler(gamma=gamma, n_components=width, random_state=0).fit(x)
        start = time.perf_counter()
        times = time_interleaved(
            {
                "favor": lambda ours=ours, x=x: ours.transform(x),
                "rbfsampler": lambda theirs=theirs, x=x: theirs.transform(x),
            },
            repeats,
        )
        records.append(
            {
                "d": d,
                "width": width,
                "n": n,
                "coupling": coupling,
                "dtype": "float32",
                "favor": times["favor"].as_dict(),
                "rbfsampler": times["rbfsampler"].as_dict(),
                "ratio": times["favor"].median / times["rbfsampler"].median,
                "elapsed_s": time.perf_counter() - start,
            }
        )
        print(f"done timing d={d} D={width} {coupling}", flush=True)
    return records


def markdown(errors: list[dict], downstream: list[dict], timings: list[dict]) -> str:
    """Three Markdown tables."""
    lines = [
        "| data | kernel | method | error median | / reference coupling | / RBFSampler |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in errors:
        rbf = f"{r['ratio_to_rbfsampler']:.3f}" if "ratio_to_rbfsampler" in r else ""
        lines.append(
            f"| {r['data']} (d={r['d']}) | {r['kernel']} | {r['method']} | {r['error_median']:.4f} "
            f"| {r['ratio_to_reference']:.3f} | {rbf} |"
        )
    lines += [
        "",
        "| data | kernel | method | score | exact-kernel score |",
        "|---|---|---|---:|---:|",
    ]
    for r in downstream:
        lines.append(
            f"| {r['data']} ({r['metric']}) | {r['kernel']} | {r['method']} | {r['score']:.4f} "
            f"| {r['exact_kernel_score']:.4f} |"
        )
    lines += [
        "",
        "| d | D | n | coupling | favor transform | RBFSampler transform | ratio |",
        "|---:|---:|---:|---|---|---|---:|",
    ]
    for r in timings:
        lines.append(
            f"| {r['d']} | {r['width']} | {r['n']} | {r['coupling']} "
            f"| {Timing(r['favor']['times']).describe()} | {Timing(r['rbfsampler']['times']).describe()} "
            f"| {r['ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"
