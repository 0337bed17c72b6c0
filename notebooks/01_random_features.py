# %% [markdown]
# # 01 · Random features: kernels, feature maps and unbiasedness
#
# **Claims illustrated:** U1, U3, U5, U9 (see the claims table in `theory`): unbiasedness
# of the trigonometric, positive and hyperbolic feature maps for the softmax kernel (Performers Sec. 2.3 and Lemma 1; formulas §2.2-2.3),
# and the identity linking the softmax and Gaussian kernels (Performers Eq. 6; formulas §1.1).
# The notebook ends with the `theory` checks of unbiasedness (positive on i.i.d. and
# orthogonal projections, hyperbolic and trigonometric on i.i.d. ones).
#
# A kernel $k(x, y)$ is a similarity that is an inner product in some feature space. A
# *random feature map* $\varphi$ draws that feature space at random: with projection rows
# $\omega_1, \dots, \omega_m \sim \mathcal N(0, I_d)$, the dot product
# $\varphi(x)^T\varphi(y)$ is a random variable whose **expectation is exactly** $k(x, y)$.
# Averages over more projections (larger $m$) concentrate around it.

# %%
import os

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

import favor
from theory import run_claim

SMOKE = os.environ.get("FAVOR_SMOKE", "0") not in ("", "0")
FIGURES = os.environ.get("FAVOR_FIGURES")
N_DRAWS = 400 if SMOKE else 20_000  # independent projections per histogram
N_PAIRS = 12 if SMOKE else 40  # pairs in the "mean estimate vs exact" scatter
N_PAIR_DRAWS = 200 if SMOKE else 5_000  # projections per pair in that scatter
N_REPEATS = 3 if SMOKE else 25  # projections per m in the error-vs-m panel


def finish(fig, name):
    """Save ``fig`` to $FAVOR_FIGURES (if set), then show it or, without a display, close it."""
    if FIGURES:
        os.makedirs(FIGURES, exist_ok=True)
        fig.savefig(os.path.join(FIGURES, f"01_{name}.png"), dpi=150, bbox_inches="tight")
    if matplotlib.get_backend().lower() == "agg":
        plt.close(fig)
    else:
        plt.show()


# %% [markdown]
# ## 1. Two kernels and how they are related
#
# The **softmax kernel** $\mathrm{SM}(x, y) = e^{x^T y}$ is the unnormalised attention
# weight; the **Gaussian kernel** $K(x, y) = e^{-\lVert x - y\rVert^2/2}$ is the classic
# RBF kernel. They differ by deterministic factors:
#
# $$\mathrm{SM}(x, y) = e^{\lVert x\rVert^2/2}\, K(x, y)\, e^{\lVert y\rVert^2/2},$$
#
# so an unbiased estimator of one gives one of the other.

# %%
rng = np.random.default_rng(0)
d = 4
x = 0.5 * rng.standard_normal((1, d))
y = 0.5 * rng.standard_normal((1, d))
sm = favor.softmax_kernel(x, y)[0, 0]
gauss = favor.rbf_kernel(x, y, gamma=0.5)[0, 0]
print(f"SM(x, y)                                = {sm:.6f}")
print(
    f"exp(|x|^2/2) K(x, y) exp(|y|^2/2)      = {np.exp(x @ x.T / 2)[0, 0] * gauss * np.exp(y @ y.T / 2)[0, 0]:.6f}"
)

# %% [markdown]
# ## 2. Three feature maps for the softmax kernel
#
# With projection rows $\omega_i$ (the rows of `projection`, shape `(m, d)`):
#
# | map | width | $\varphi(x)$ |
# |---|---|---|
# | trigonometric | $2m$ | $m^{-1/2} e^{\lVert x\rVert^2/2} (\cos \omega_i^T x, \sin \omega_i^T x)_i$ |
# | positive (FAVOR+) | $m$ | $m^{-1/2} \exp(\omega_i^T x - \lVert x\rVert^2/2)_i$ |
# | hyperbolic | $2m$ | $(2m)^{-1/2} \exp(\pm\omega_i^T x - \lVert x\rVert^2/2)_i$ |
#
# All three are unbiased: $E[\varphi(x)^T\varphi(y)] = \mathrm{SM}(x, y)$. Trigonometric
# features can be negative; positive and hyperbolic ones never are, which is what makes
# them safe inside an attention normaliser.

# %%
m = 8
projection = favor.sampling.iid_projection(m, d, rng=1)
for name in ("trigonometric", "positive", "hyperbolic"):
    fx = favor.random_features(x, projection, features=name)
    fy = favor.random_features(y, projection, features=name)
    print(f"{name:>13}: features {fx.shape}, estimate {(fx @ fy.T)[0, 0]:.4f} (exact {sm:.4f})")

# %% [markdown]
# ## 3. Unbiasedness, seen
#
# One draw of the projection gives one estimate. Drawing many independent projections,
# the histogram of estimates is centred on the exact kernel value (dashed line; the dotted
# line is the sample mean) for every map, and the running mean over draws converges to
# it. Note the horizontal scales: for this pair, whose kernel value is small, the
# trigonometric estimator spreads on both sides of zero with a standard deviation about
# 20 times that of the positive one, and the hyperbolic pair is tighter still.

# %%
maps = ("trigonometric", "positive", "hyperbolic")
colours = {"trigonometric": "tab:blue", "positive": "tab:orange", "hyperbolic": "tab:green"}
# A pair whose kernel value is small (x and y point in opposite directions): where the
# three maps differ most.
x_far = np.array([[0.9, 0.3, -0.2, 0.4]])
y_far = -0.9 * x_far + np.array([[0.0, 0.2, 0.1, -0.1]])
sm_far = favor.softmax_kernel(x_far, y_far)[0, 0]
draw_rng = np.random.default_rng(2)
estimates = {name: np.empty(N_DRAWS) for name in maps}
for t in range(N_DRAWS):
    w = favor.sampling.iid_projection(m, d, rng=draw_rng)
    for name in maps:
        fx = favor.random_features(x_far, w, features=name)
        fy = favor.random_features(y_far, w, features=name)
        estimates[name][t] = (fx @ fy.T)[0, 0]

fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
for ax, name in zip(axes[:3], maps, strict=True):
    est = estimates[name]
    lo, hi = np.quantile(est, [0.002, 0.998])
    ax.hist(est, bins=np.linspace(lo, hi, 50), color=colours[name], alpha=0.75)
    ax.axvline(sm_far, color="k", ls="--", lw=1.5, label=f"exact SM = {sm_far:.3f}")
    ax.axvline(est.mean(), color="r", ls=":", lw=1.5, label=f"mean = {est.mean():.3f}")
    ax.set(xlabel=r"estimate $\varphi(x)^T\varphi(y)$", title=f"{name} (sd {est.std():.3f})")
    ax.legend(fontsize=7, loc="upper right")
axes[0].set_ylabel(f"count of {N_DRAWS} draws (m = {m})")
draws = np.arange(1, N_DRAWS + 1)
for name in maps:
    running = np.cumsum(estimates[name]) / draws
    axes[3].plot(draws, running / sm_far, color=colours[name], label=name)
axes[3].axhline(1.0, color="k", ls="--", label="exact")
axes[3].set(
    xscale="log",
    ylim=(0.5, 1.5),
    xlabel="number of draws averaged",
    ylabel="running mean / SM(x, y)",
    title="Running means converge",
)
axes[3].legend(fontsize=7)
fig.tight_layout()
finish(fig, "unbiasedness_one_pair")

# %% [markdown]
# Across many pairs: the mean of the estimates over independent draws lies on the
# diagonal for every map (a biased map would bend away from it). The error bars are two
# standard errors of the mean.

# %%
pair_rng = np.random.default_rng(3)
xs = 0.6 * pair_rng.standard_normal((N_PAIRS, d))
ys = 0.6 * pair_rng.standard_normal((N_PAIRS, d))
exact = np.exp(np.einsum("ij,ij->i", xs, ys))
mean_est = {name: np.empty(N_PAIRS) for name in maps}
se_est = {name: np.empty(N_PAIRS) for name in maps}
for name in maps:
    per_pair = np.empty((N_PAIR_DRAWS, N_PAIRS))
    for t in range(N_PAIR_DRAWS):
        w = favor.sampling.iid_projection(m, d, rng=pair_rng)
        fx = favor.random_features(xs, w, features=name)
        fy = favor.random_features(ys, w, features=name)
        per_pair[t] = np.einsum("ij,ij->i", fx, fy)
    mean_est[name] = per_pair.mean(0)
    se_est[name] = per_pair.std(0, ddof=1) / np.sqrt(N_PAIR_DRAWS)

fig, ax = plt.subplots(figsize=(5.5, 5))
lim = (0.8 * exact.min(), 1.2 * exact.max())
ax.plot(lim, lim, color="k", lw=1, label="mean = exact")
for k, name in enumerate(maps):
    shift = 1 + 0.01 * (k - 1)  # small horizontal offsets keep the three maps visible
    ax.errorbar(
        exact * shift,
        mean_est[name],
        yerr=2 * se_est[name],
        fmt="o",
        ms=3.5,
        color=colours[name],
        label=name,
        capsize=2,
    )
ax.set(
    xscale="log",
    yscale="log",
    xlim=lim,
    ylim=lim,
    xlabel="exact SM(x, y)",
    ylabel=f"mean of {N_PAIR_DRAWS} estimates (m = {m})",
    title="Unbiased for every pair",
)
for axis in (ax.xaxis, ax.yaxis):
    axis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
ax.legend(fontsize=8)
fig.tight_layout()
finish(fig, "unbiasedness_many_pairs")

# %% [markdown]
# ## 4. More projections, better kernel matrices
#
# The point of random features: one $n \times r$ feature matrix $\Phi$ gives the whole
# $n \times n$ kernel matrix as $\Phi\Phi^T$. The relative error of that matrix shrinks
# like $m^{-1/2}$ (right panel: median over independent projections, with the
# $m^{-1/2}$ slope for reference). On these points, with kernel values of order one and the
# diagonal $x = y$ where the trigonometric estimate is exact, the trigonometric map is the
# most accurate: which map wins depends on the kernel value, the subject of notebook 02.

# %%
points = 0.5 * np.random.default_rng(4).standard_normal((30, d))
gram = favor.softmax_kernel(points, points)
sizes = (4, 64, 1024)
fig, axes = plt.subplots(1, len(sizes) + 2, figsize=(3.3 * (len(sizes) + 2), 3.3))
vmin, vmax = gram.min(), gram.max()
axes[0].imshow(gram, vmin=vmin, vmax=vmax, cmap="viridis")
axes[0].set_title("exact SM matrix")
for ax, size in zip(axes[1:-1], sizes, strict=True):
    w = favor.sampling.orthogonal_projection(size, d, rng=5)
    phi = favor.features.positive_features(points, w)
    approx = phi @ phi.T
    rel = np.linalg.norm(approx - gram) / np.linalg.norm(gram)
    ax.imshow(approx, vmin=vmin, vmax=vmax, cmap="viridis")
    ax.set_title(f"positive, m = {size}\nrel. error {rel:.3f}")
for ax in axes[:-1]:
    ax.set_xticks([])
    ax.set_yticks([])
grid_m = 2 ** np.arange(2, 12)
err_rng = np.random.default_rng(6)
for name in maps:
    errors = np.empty((N_REPEATS, grid_m.size))
    for r in range(N_REPEATS):
        for k, size in enumerate(grid_m):
            w = favor.sampling.orthogonal_projection(int(size), d, rng=err_rng)
            phi = favor.random_features(points, w, features=name)
            errors[r, k] = np.linalg.norm(phi @ phi.T - gram) / np.linalg.norm(gram)
    axes[-1].plot(grid_m, np.median(errors, 0), "o-", ms=3, color=colours[name], label=name)
axes[-1].plot(grid_m, 2.0 * grid_m**-0.5, "k--", lw=1, label=r"$\propto m^{-1/2}$")
axes[-1].set(
    xscale="log",
    yscale="log",
    xlabel="m (projections)",
    ylabel="relative Frobenius error",
    title="Error of the kernel matrix",
)
axes[-1].legend(fontsize=7)
fig.tight_layout()
finish(fig, "kernel_matrices")

# %% [markdown]
# ## 5. The check
#
# `theory` turns "the mean lies on the diagonal" into a decision with a declared false
# alarm rate: the mean over independent projections must match the exact kernel within
# a simultaneous interval at level $1 - 10^{-6}$. `run_claim` runs a claim of the table
# with its fixed seed and default ("quick") sizes, as `python -m theory` does.

# %%
results = [run_claim(claim_id) for claim_id in ("U1", "U3", "U5", "U9")]
for result in results:
    print(result)
assert all(result.passed for result in results)
