# %% [markdown]
# # 06 · scikit-learn pipelines: FavorSampler against RBFSampler and Nystroem
#
# **Claims illustrated:** U12 and V6 (see the claims table in `theory`): trigonometric
# features on orthogonal $\chi_d$-norm projections are unbiased for the Gaussian kernel and
# have the exact MSE of the pair-covariance quadrature (formulas §3.2-3.3), lower than i.i.d.
# random Fourier features (Yu et al. 2016); with (cos, sin) pairs they also beat
# `RBFSampler`'s $\cos(\omega^T x + b)$ at equal output width (Sutherland & Schneider
# 2015; formulas §6.6). In practice: `favor.FavorSampler` is a drop-in replacement for
# `sklearn.kernel_approximation.RBFSampler` in a pipeline, with a more accurate kernel
# approximation at the same width, and it works with `GridSearchCV` like any transformer.
# Data: the digits and breast-cancer datasets that ship with scikit-learn (no download).
# The notebook ends with the `theory` checks U12 and V6 and asserts the practical result
# (FavorSampler's kernel error below 0.8 times RBFSampler's at every width with
# `n_components >= n_features`, and a tuned pipeline above 95 % test accuracy on digits).

# %%
import os
import time

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.kernel_approximation import Nystroem, RBFSampler
from sklearn.linear_model import RidgeClassifier
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from favor import FavorSampler
from theory import run_claim

SMOKE = os.environ.get("FAVOR_SMOKE", "0") not in ("", "0")
FIGURES = os.environ.get("FAVOR_FIGURES")
WIDTHS = (128, 512) if SMOKE else (64, 128, 256, 512, 1024, 2048)  # output width D
N_SEEDS = 2 if SMOKE else 5  # random draws per width (kernel error)
N_FIT_SEEDS = 1 if SMOKE else 3  # random draws per width (accuracy and time)
GRID_GAMMA = (0.125, 0.5) if SMOKE else (1 / 32, 1 / 16, 0.125, 0.25, 0.5, 1.0)  # x 1/n_features
GRID_COMPONENTS = (64, 256) if SMOKE else (64, 128, 256, 512, 1024)  # FavorSampler n_components
CV_FOLDS = 2 if SMOKE else 3
DATASETS = ("digits",) if SMOKE else ("digits", "breast_cancer")  # section 3
TIME_REPEATS = 1 if SMOKE else 3
GAMMA_FACTOR = 0.25  # gamma = GAMMA_FACTOR / n_features outside the grid search
ALPHA = 0.1  # ridge penalty: keeps the classifier away from interpolation when D ~ n_samples


def finish(fig, name):
    """Save ``fig`` to $FAVOR_FIGURES (if set), then show it or, without a display, close it."""
    if FIGURES:
        os.makedirs(FIGURES, exist_ok=True)
        fig.savefig(os.path.join(FIGURES, f"06_{name}.png"), dpi=150, bbox_inches="tight")
    if matplotlib.get_backend().lower() == "agg":
        plt.close(fig)
    else:
        plt.show()


def load(name):
    """A standardised train/test split of a dataset that ships with scikit-learn."""
    X, y = (load_digits if name == "digits" else load_breast_cancer)(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def samplers(width, gamma, seed):
    """The three approximations at equal output width ``width``."""
    return {
        "FavorSampler (orthogonal cos/sin)": FavorSampler(
            gamma=gamma, n_components=width // 2, random_state=seed
        ),
        "RBFSampler": RBFSampler(gamma=gamma, n_components=width, random_state=seed),
        "Nystroem": Nystroem(gamma=gamma, n_components=width, random_state=seed),
    }


COLOURS = {
    "FavorSampler (orthogonal cos/sin)": "tab:orange",
    "RBFSampler": "tab:blue",
    "Nystroem": "tab:green",
}

# %% [markdown]
# ## 1. The drop-in: a pipeline
#
# `FavorSampler(kernel="rbf")` approximates $k(x, y) = e^{-\gamma\lVert x - y\rVert^2}$ with
# the same `gamma` convention as `RBFSampler` and `SVC`. With the default
# `features="auto"` (trigonometric for the RBF kernel) it outputs `2 * n_components`
# features, so `n_components = D // 2` compares with `RBFSampler(n_components=D)`.

# %%
X_train, X_test, y_train, y_test = load("digits")
gamma = GAMMA_FACTOR / X_train.shape[1]
model = make_pipeline(
    FavorSampler(gamma=gamma, n_components=512, random_state=0), RidgeClassifier(alpha=ALPHA)
)
model.fit(X_train, y_train)
print(
    f"digits, FavorSampler(n_components=512) + RidgeClassifier: test accuracy {model.score(X_test, y_test):.3f}"
)
exact_svc = SVC(kernel="rbf", gamma=gamma, C=10.0).fit(X_train, y_train)
print(
    f"digits, exact RBF SVC (reference):                        test accuracy {exact_svc.score(X_test, y_test):.3f}"
)

# %% [markdown]
# ## 2. Kernel approximation error at equal width
#
# Relative Frobenius error $\lVert ZZ^T - K\rVert_F / \lVert K\rVert_F$ of the Gaussian
# kernel matrix on the digits test points (mean over random draws; bars: min-max). At
# every width FavorSampler's orthogonal (cos, sin) features have a clearly smaller error
# than RBFSampler's (right: the ratio), because (i) a (cos, sin) pair has lower variance than two random
# phases and (ii) orthogonal projections lower it further. Nystroem is data-dependent and
# can be better still when the spectrum decays fast, at a higher fitting cost.

# %%
K_test = rbf_kernel(X_test, gamma=gamma)
errors = {name: np.empty((len(WIDTHS), N_SEEDS)) for name in COLOURS}
for i, width in enumerate(WIDTHS):
    for seed in range(N_SEEDS):
        for name, sampler in samplers(width, gamma, seed).items():
            if name == "Nystroem" and width > X_train.shape[0]:
                errors[name][i, seed] = np.nan  # Nystroem needs D <= n_samples
                continue
            Z = sampler.fit(X_train).transform(X_test)
            errors[name][i, seed] = np.linalg.norm(Z @ Z.T - K_test) / np.linalg.norm(K_test)
fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
for name, err in errors.items():
    mean = err.mean(1)
    axes[0].errorbar(
        WIDTHS,
        mean,
        yerr=[mean - err.min(1), err.max(1) - mean],
        fmt="o-",
        ms=4,
        capsize=2,
        color=COLOURS[name],
        label=name,
    )
axes[0].set(
    xscale="log",
    yscale="log",
    xlabel="output width D",
    ylabel="relative Frobenius error",
    title="Gaussian kernel matrix, digits (test points)",
)
axes[0].legend(fontsize=8)
ratio = errors["FavorSampler (orthogonal cos/sin)"].mean(1) / errors["RBFSampler"].mean(1)
axes[1].plot(WIDTHS, ratio, "o-", color="tab:orange", ms=4)
axes[1].axhline(1.0, color="tab:blue", lw=1)
axes[1].set(
    xscale="log",
    ylim=(0, 1.1),
    xlabel="output width D",
    ylabel="error ratio",
    title="FavorSampler error / RBFSampler error",
)
fig.tight_layout()
finish(fig, "kernel_error")
print(
    "FavorSampler / RBFSampler error ratio by width:",
    dict(zip(WIDTHS, np.round(ratio, 3), strict=True)),
)

# %% [markdown]
# ## 3. Accuracy and time on two datasets
#
# Left: test accuracy of `sampler + RidgeClassifier` (mean over draws) against the output
# width; the dashed line is the exact RBF SVC. Random features approach the exact kernel
# machine as $D$ grows; on digits FavorSampler is at or above RBFSampler at almost every
# width (on breast cancer one test point is 0.7 %, so the curves differ by noise). Right: the time the sampler itself takes to fit and transform the
# training and test sets (the part that differs between the pipelines; best of three runs,
# which reduces, but does not remove, the effect of other processes on the timings). Nystroem's cost grows like
# $D^2$ and it needs $D \le n$; the random-feature samplers are one matrix product plus
# element-wise work, and FavorSampler's (cos, sin) pass is the cheaper one at large $D$.


# %%
def sampler_seconds(sampler, Xtr, Xte, repeats=TIME_REPEATS):
    """Best time of fit(Xtr) + transform(Xtr) + transform(Xte) over ``repeats`` runs."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        sampler.fit(Xtr)
        sampler.transform(Xtr)
        sampler.transform(Xte)
        best = min(best, time.perf_counter() - start)
    return best


fig, axes = plt.subplots(len(DATASETS), 2, figsize=(12, 4 * len(DATASETS)), squeeze=False)
for row, dataset in enumerate(DATASETS):
    Xtr, Xte, ytr, yte = load(dataset)
    g = GAMMA_FACTOR / Xtr.shape[1]
    reference = SVC(kernel="rbf", gamma=g, C=10.0).fit(Xtr, ytr).score(Xte, yte)
    for name in COLOURS:
        acc = np.full((len(WIDTHS), N_FIT_SEEDS), np.nan)
        seconds = np.full(len(WIDTHS), np.nan)
        for i, width in enumerate(WIDTHS):
            if name == "Nystroem" and width > Xtr.shape[0]:
                continue  # Nystroem needs D <= n_samples
            for seed in range(N_FIT_SEEDS):
                pipe = make_pipeline(samplers(width, g, seed)[name], RidgeClassifier(alpha=ALPHA))
                acc[i, seed] = pipe.fit(Xtr, ytr).score(Xte, yte)
            seconds[i] = sampler_seconds(samplers(width, g, 0)[name], Xtr, Xte)
        axes[row, 0].plot(WIDTHS, acc.mean(1), "o-", ms=4, color=COLOURS[name], label=name)
        axes[row, 1].plot(WIDTHS, seconds, "o-", ms=4, color=COLOURS[name], label=name)
    axes[row, 0].axhline(
        reference, color="k", ls="--", lw=1, label=f"exact RBF SVC ({reference:.3f})"
    )
    axes[row, 0].set(
        xscale="log",
        xlabel="output width D",
        ylabel="test accuracy",
        title=f"{dataset}: accuracy ({Xtr.shape[0]} train, {Xtr.shape[1]} features)",
    )
    axes[row, 1].set(
        xscale="log",
        yscale="log",
        xlabel="output width D",
        ylabel="seconds (sampler fit + transforms)",
        title=f"{dataset}: sampler time",
    )
    axes[row, 0].legend(fontsize=7)
    axes[row, 1].legend(fontsize=7)
fig.tight_layout()
finish(fig, "accuracy_time")

# %% [markdown]
# ## 4. Grid search over `gamma` and `n_components`
#
# FavorSampler is a regular scikit-learn estimator (`get_params`, `set_params`, cloning),
# so `GridSearchCV` tunes it inside a pipeline. Left: cross-validated accuracy on the
# digits training set for each (`gamma`, `n_components`); right: the same grid for
# RBFSampler at equal output width. The best FavorSampler pipeline is then scored on the
# held-out test set.

# %%
n_features = X_train.shape[1]
gammas = [factor / n_features for factor in GRID_GAMMA]
results = {}
for name, sampler, widths in (
    ("FavorSampler", FavorSampler(random_state=0), list(GRID_COMPONENTS)),
    ("RBFSampler", RBFSampler(random_state=0), [2 * c for c in GRID_COMPONENTS]),
):
    pipe = Pipeline([("features", sampler), ("classifier", RidgeClassifier(alpha=ALPHA))])
    search = GridSearchCV(
        pipe, {"features__gamma": gammas, "features__n_components": widths}, cv=CV_FOLDS, n_jobs=1
    )
    start = time.perf_counter()
    search.fit(X_train, y_train)
    elapsed = time.perf_counter() - start
    scores = search.cv_results_["mean_test_score"].reshape(len(gammas), len(widths))
    results[name] = (search, scores, elapsed)
    print(
        f"{name:>12}: best {search.best_params_}, CV accuracy {search.best_score_:.3f}, "
        f"test accuracy {search.score(X_test, y_test):.3f}, search time {elapsed:.1f} s"
    )

fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), layout="constrained")
vmin = min(scores.min() for _, scores, _ in results.values())
for ax, (name, (_, scores, _)) in zip(axes, results.items(), strict=True):
    image = ax.imshow(scores, vmin=vmin, vmax=1.0, cmap="viridis", aspect="auto")
    for (a, b), value in np.ndenumerate(scores):
        ax.text(
            b,
            a,
            f"{value:.3f}",
            ha="center",
            va="center",
            fontsize=7,
            color="w" if value < 0.95 else "k",
        )
    ax.set_xticks(range(len(GRID_COMPONENTS)), [str(2 * c) for c in GRID_COMPONENTS])
    ax.set_yticks(range(len(gammas)), [f"{f:.3g}/d" for f in GRID_GAMMA])
    ax.set(
        xlabel="output width D",
        ylabel="gamma",
        title=f"{name}: {CV_FOLDS}-fold CV accuracy (digits)",
    )
fig.colorbar(image, ax=axes, shrink=0.8)
finish(fig, "grid_search")

# %% [markdown]
# ## 5. The checks
#
# U12: orthogonal trigonometric features are unbiased for the Gaussian kernel; V6: their
# MSE is the exact orthogonal value. Then the practical claims of this notebook.

# %%
checks = [run_claim("U12"), run_claim("V6")]
for result in checks:
    print(result)
assert all(result.passed for result in checks)
full_block = np.array(WIDTHS) // 2 >= n_features  # n_components >= d: whole orthogonal blocks
best_test = results["FavorSampler"][0].score(X_test, y_test)
print(
    f"FavorSampler/RBFSampler kernel error ratio: max {ratio[full_block].max():.3f} for n_components >= d; "
    f"tuned FavorSampler pipeline test accuracy {best_test:.3f}"
)
assert np.all(ratio[full_block] < 0.8), ratio
assert best_test > 0.95, best_test
