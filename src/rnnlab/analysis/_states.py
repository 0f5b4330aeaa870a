"""Candidate states and PCA (linearisation: `_linear`)."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._blas import single_blas_thread
from .._compile import QUICK_COMPILE
from .._simulate import Trajectory
from .._validate import nonnegative_number, positive_int


def sample_states(
    trajectory: Trajectory | ArrayLike,
    n: int,
    *,
    key: PRNGKeyArray,
    noise_std: float = 0.0,
    mask: ArrayLike | None = None,
) -> Float[Array, "n state"]:
    """Draw ``n`` candidate states from simulated trajectories, as FixedPointFinder does.

    Trial and time indices are drawn uniformly with replacement among the valid (trial, time)
    pairs, then i.i.d. Gaussian noise of std ``noise_std`` is added to each sampled state.

    Args:
        trajectory: a `Trajectory` (its ``states`` are used) or an array [..., T, state]
            (any leading axes are pooled).
        n: number of candidates.
        key: PRNG key.
        noise_std: std of the added noise (state units). Default 0.
        mask: optional boolean [..., T] (the leading shape of the states) marking valid states.

    Returns: [n, state] float32.
    """
    states = trajectory.states if isinstance(trajectory, Trajectory) else trajectory
    states = np.asarray(states)
    if states.ndim < 2:
        raise ValueError(
            f"trajectory must hold states of shape [..., T, state], got shape {states.shape}"
        )
    n = positive_int("n", n)
    noise_std = nonnegative_number("noise_std", noise_std)
    if states.size == 0:
        raise ValueError(f"trajectory holds no states (shape {states.shape})")
    flat = states.reshape(-1, states.shape[-1])
    if mask is None:
        valid = np.arange(flat.shape[0])
    else:
        m = np.asarray(mask, dtype=bool)
        if m.shape != states.shape[:-1]:
            raise ValueError(
                f"mask must have shape {states.shape[:-1]} (the states' leading shape), "
                f"got {m.shape}"
            )
        valid = np.nonzero(m.reshape(-1))[0]
        if valid.size == 0:
            raise ValueError("mask marks no state as valid")
    if not np.all(np.isfinite(flat[valid])):
        # a diverged run: candidates must be finite states of the dynamics
        raise ValueError(
            "trajectory contains NaN or inf states (did the simulation diverge?); pass a mask "
            "marking only finite states as valid"
        )
    pick, k_noise = _draw_indices(key, n, valid.size)
    out = jax.device_put(np.asarray(flat[valid[np.asarray(pick)]], np.float32))
    if noise_std > 0:
        out = out + noise_std * jax.random.normal(k_noise, out.shape, out.dtype)
    return out


@functools.partial(jax.jit, static_argnums=1, compiler_options=QUICK_COMPILE)
def _draw_indices(key, n: int, size):
    """``jax.random.randint(k_idx, (n,), 0, size)`` and ``k_noise`` for ``k_idx, k_noise =
    jax.random.split(key)``, as one program: dispatched one by one, the split, its unstacking
    and the draw were four programs (0.5 s to compile, a cold `rnnlab analyze`'s tenth). Integer
    arithmetic only, so compiled without LLVM's passes (quick) it gives the same bits."""
    k_idx, k_noise = jax.random.split(key)
    return jax.random.randint(k_idx, (n,), 0, size), k_noise


class PCA(eqx.Module):
    """Principal components of pooled states (float64, numpy SVD).

    Fields: ``mean`` [N], ``components`` [n_components, N] (orthonormal rows),
    ``explained_variance`` [n_components], ``explained_variance_ratio`` [n_components],
    ``total_variance``.
    """

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    total_variance: float = eqx.field(static=True)

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    @property
    def cumulative_explained_variance(self) -> np.ndarray:
        return np.cumsum(self.explained_variance_ratio)

    def transform(self, x: ArrayLike) -> np.ndarray:
        """Coordinates of states [..., N] in the components: ``(x - mean) @ components.T``."""
        x = np.asarray(x)
        self._check(x, "x")
        return (x - self.mean) @ self.components.T

    def transform_vectors(self, v: ArrayLike) -> np.ndarray:
        """Coordinates of directions [..., N] (eigenvectors, velocities; may be complex): no
        centring, ``v @ components.T``."""
        v = np.asarray(v)
        self._check(v, "v")
        return v @ self.components.T

    def inverse_transform(self, z: ArrayLike) -> np.ndarray:
        """States [..., N] from coordinates [..., n_components]."""
        z = np.asarray(z)
        if z.shape[-1] != self.n_components:
            raise ValueError(
                f"z must end in n_components={self.n_components}, got shape {z.shape}"
            )
        return z @ self.components + self.mean

    def _check(self, x, name):
        if x.shape[-1] != self.mean.shape[0]:
            raise ValueError(
                f"{name} must end in the state size {self.mean.shape[0]}, got shape {x.shape}"
            )


@single_blas_thread
def pca(states: Trajectory | ArrayLike, n_components: int | None = None) -> PCA:
    """Fit PCA on states [..., N] pooled over all leading axes (trials x time).

    Args:
        states: a `Trajectory` (its ``states``) or any array [..., N].
        n_components: how many components to keep (default: all, up to min(samples, N)).
    """
    x = states.states if isinstance(states, Trajectory) else states
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"states must have shape [..., N] with samples, got {x.shape}")
    x = x.reshape(-1, x.shape[-1])
    if x.shape[0] < 2:
        raise ValueError("states must hold at least two samples")
    if not np.all(np.isfinite(x)):
        raise ValueError("states contains NaN or inf")
    limit = min(x.shape)
    if n_components is None:
        n_components = limit
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or not (
        1 <= n_components <= limit
    ):
        raise ValueError(f"n_components must be an integer in [1, {limit}], got {n_components!r}")
    mean = x.mean(axis=0)
    _, sv, vt = np.linalg.svd(x - mean, full_matrices=False)
    var = sv**2 / (x.shape[0] - 1)
    total = float(var.sum())
    comps = vt[:n_components]
    # Deterministic signs: the largest-magnitude loading of each component is positive.
    signs = np.sign(comps[np.arange(n_components), np.argmax(np.abs(comps), axis=1)])
    comps = comps * signs[:, None]
    return PCA(
        mean=mean,
        components=comps,
        explained_variance=var[:n_components],
        explained_variance_ratio=var[:n_components] / max(total, 1e-300),
        total_variance=total,
    )
