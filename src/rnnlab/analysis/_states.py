"""Candidate states, PCA and linearisation."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._simulate import Trajectory
from ..models._base import AbstractRNN


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
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(noise_std, bool) or not np.isfinite(noise_std) or noise_std < 0:
        raise ValueError(f"noise_std must be a non-negative number, got {noise_std!r}")
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
    k_idx, k_noise = jax.random.split(key)
    pick = np.asarray(jax.random.randint(k_idx, (n,), 0, valid.size))
    out = jnp.asarray(flat[valid[pick]], jnp.float32)
    if noise_std > 0:
        out = out + noise_std * jax.random.normal(k_noise, out.shape, out.dtype)
    return out


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


class LinearSystem(eqx.Module):
    """The linearisation of a model around ``(x0, u0)``:
    ``F(x, u) ~ f0 + A (x - x0) + B (u - u0)``.

    ``A`` = dF/dx and ``B`` = dF/du of the model's vector field (float64); ``f0`` = F(x0, u0)
    (zero at a fixed point, small at a slow point). For continuous-time models `step` is the
    Euler step ``x + dt F`` the model itself takes (noise-free), for maps ``x + F``, so
    `simulate` can be compared with `rnnlab.simulate` step by step.
    """

    x0: np.ndarray
    u0: np.ndarray
    f0: np.ndarray
    A: np.ndarray
    B: np.ndarray
    is_continuous: bool = eqx.field(static=True)
    dt: float | None = eqx.field(static=True)

    @property
    def eigenvalues(self) -> np.ndarray:
        """Eigenvalues of A, sorted by real part, largest first."""
        w = np.linalg.eigvals(self.A)
        return w[np.lexsort((-w.imag, -w.real))]

    @property
    def map_eigenvalues(self) -> np.ndarray:
        """Eigenvalues of the step's Jacobian ``I + h A`` (h = dt for continuous-time models,
        1 for maps), sorted by real part, largest first: for maps these are the
        `FixedPoints.eigenvalues` (``eigenvalues`` here are those of A = dF/dx = mu - 1), for
        continuous-time models `FixedPoints.map_eigenvalues`."""
        h = self.dt if (self.is_continuous and self.dt is not None) else 1.0
        w = np.linalg.eigvals(np.eye(self.A.shape[0]) + h * self.A)
        return w[np.lexsort((-w.imag, -w.real))]

    def vector_field(self, x: ArrayLike, u: ArrayLike) -> np.ndarray:
        x, u = np.asarray(x, np.float64), np.asarray(u, np.float64)
        return self.f0 + (x - self.x0) @ self.A.T + (u - self.u0) @ self.B.T

    def step(self, x: ArrayLike, u: ArrayLike) -> np.ndarray:
        h = self.dt if (self.is_continuous and self.dt is not None) else 1.0
        return np.asarray(x, np.float64) + h * self.vector_field(x, u)

    def simulate(self, inputs: ArrayLike, initial_state: ArrayLike) -> np.ndarray:
        """States [T, N] after each step, for inputs [T, n_in] from ``initial_state`` [N]
        (the same convention as `rnnlab.simulate`)."""
        inputs = np.asarray(inputs, np.float64)
        x = np.asarray(initial_state, np.float64)
        if inputs.ndim != 2 or inputs.shape[1] != self.B.shape[1]:
            raise ValueError(f"inputs must have shape [T, {self.B.shape[1]}], got {inputs.shape}")
        if x.shape != self.x0.shape:
            raise ValueError(f"initial_state must have shape {self.x0.shape}, got {x.shape}")
        out = np.empty((inputs.shape[0], x.shape[0]))
        for t, u in enumerate(inputs):
            x = self.step(x, u)
            out[t] = x
        return out


@eqx.filter_jit
def _linear_terms(model, x, u):
    # One compiled call: op-by-op jacfwd of a gated model took seconds per point.
    return model.vector_field(x, u), model.jacobian(x, u), model.input_jacobian(x, u)


def linearize(model: AbstractRNN, point: ArrayLike, inputs: ArrayLike) -> LinearSystem:
    """The linear system of ``model`` around the state ``point`` [N] at input ``inputs`` [n_in],
    computed in float64 with the model's (analytic where available) Jacobians."""
    from ._fixed_points import _check_model, to_float64

    _check_model(model)
    x0 = np.asarray(point, np.float64)
    u0 = np.asarray(inputs, np.float64)
    if x0.shape != (model.state_size,):
        raise ValueError(f"point must have shape ({model.state_size},), got {x0.shape}")
    if u0.shape != (model.n_in,):
        raise ValueError(f"inputs must have shape ({model.n_in},), got {u0.shape}")
    if not np.all(np.isfinite(x0)):
        raise ValueError("point contains NaN or inf")
    if not np.all(np.isfinite(u0)):
        raise ValueError("inputs contains NaN or inf")
    with jax.enable_x64(True):
        m64 = to_float64(model)
        f0, a, b = (np.asarray(t) for t in _linear_terms(m64, jnp.asarray(x0), jnp.asarray(u0)))
    dt = getattr(model, "dt", None)
    return LinearSystem(x0, u0, f0, a, b, bool(model.is_continuous),
                        None if dt is None else float(dt))
