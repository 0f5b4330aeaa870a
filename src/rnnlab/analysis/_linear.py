"""Linearisation of a model around states: the one definition used by `linearize` and by the
fixed-point finder (vector field, Jacobians and readout at many points, float64), and the
eigen-decomposition of the Jacobians."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike

from ..models._base import AbstractRNN
from . import _solvers


def check_model(model) -> None:
    if not isinstance(model, AbstractRNN):
        raise TypeError(
            f"model must be an rnnlab model (AbstractRNN), got {type(model).__name__}"
        )


def to_float64(model: AbstractRNN) -> AbstractRNN:
    """``model`` with every floating-point array leaf cast to float64.

    Call it inside ``jax.enable_x64(True)``; outside that context JAX would silently keep float32.
    """
    # Cast on the host and transfer (an eager astype, and jnp.asarray of a numpy array, compile
    # one small program per leaf shape; device_put compiles none).
    return jax.tree.map(
        lambda a: jax.device_put(np.asarray(a, np.float64)) if eqx.is_inexact_array(a) else a,
        model,
    )


def map_scale(model: AbstractRNN) -> float:
    """``dt`` for continuous-time models (F scaled to the Euler-map residual), 1 for maps."""
    if model.is_continuous:
        dt = getattr(model, "dt", None)
        return float(dt) if dt is not None else 1.0
    return 1.0


def model_dt(model: AbstractRNN) -> float | None:
    """The Euler step of a continuous-time model (None for maps and models without one)."""
    dt = getattr(model, "dt", None) if model.is_continuous else None
    return None if dt is None else float(dt)


# Rows per compiled call: short batches are padded, so one compilation serves any number of
# points (and `linearize` of one point reuses the finder's program).
LINEAR_BLOCK = 16


@eqx.filter_jit
def _linear_terms(model, xs, us):
    # One compiled call: op-by-op jacfwd of a gated model took seconds per point.
    def one(x, u):
        return (model.vector_field(x, u), model.jacobian(x, u), model.input_jacobian(x, u),
                model.readout(x))

    return jax.vmap(one)(xs, us)


def linear_terms(
    model: AbstractRNN, states: ArrayLike, inputs: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """F [K, N], dF/dx [K, N, N], dF/du [K, N, n_in] and the readout [K, n_out] of ``model`` at
    the rows of ``states`` [K, N] and ``inputs`` [K, n_in], in float64 (numpy) with the model's
    (analytic where available) Jacobians. The caller's global x64 setting is untouched."""
    states = np.asarray(states, np.float64).reshape(-1, model.state_size)
    inputs = np.asarray(inputs, np.float64).reshape(-1, model.n_in)
    k = states.shape[0]
    if k == 0:
        n = model.state_size
        return (np.zeros((0, n)), np.zeros((0, n, n)), np.zeros((0, n, model.n_in)),
                np.zeros((0, model.n_out)))
    with jax.enable_x64(True):
        m64 = to_float64(model)
        parts = []
        for start in range(0, k, LINEAR_BLOCK):
            xb = states[start:start + LINEAR_BLOCK]
            ub = inputs[start:start + LINEAR_BLOCK]
            m = xb.shape[0]
            pad = np.zeros(LINEAR_BLOCK - m, int)
            outs = _linear_terms(m64, jax.device_put(np.concatenate([xb, xb[pad]])),
                                 jax.device_put(np.concatenate([ub, ub[pad]])))
            parts.append([np.asarray(a)[:m] for a in outs])
    f, jac, jin, out = (np.concatenate(p) for p in zip(*parts))
    return f, jac, jin, out


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


def linearize(model: AbstractRNN, point: ArrayLike, inputs: ArrayLike) -> LinearSystem:
    """The linear system of ``model`` around the state ``point`` [N] at input ``inputs`` [n_in],
    computed in float64 with the model's (analytic where available) Jacobians (the same
    computation `find_fixed_points` uses for its points)."""
    check_model(model)
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
    f0, a, b, _ = linear_terms(model, x0[None], u0[None])
    dt = getattr(model, "dt", None)
    return LinearSystem(x0, u0, f0[0], a[0], b[0], bool(model.is_continuous),
                        None if dt is None else float(dt))


def eigendecompose(jacobians: np.ndarray):
    """Eigenvalues sorted by real part (largest first), right eigenvectors (columns) and left
    eigenvectors (rows of the inverse of the right ones, so ``L @ R = I``), complex128."""
    k, n = jacobians.shape[0], jacobians.shape[-1]
    vals = np.zeros((k, n), np.complex128)
    right = np.zeros((k, n, n), np.complex128)
    left = np.zeros((k, n, n), np.complex128)
    # One BLAS thread per problem: OpenBLAS threading makes many small eigenproblems 10x
    # slower on a busy few-core machine (measured); independent problems run in parallel
    # threads instead (LAPACK releases the GIL).

    def run(rows):
        for i in rows:
            vals[i], right[i], left[i] = _eig_one(jacobians[i])

    with _solvers.one_blas_thread():
        _solvers.parallel_rows(run, k)
    return vals, right, left


def _eig_one(jac):
    w, r = np.linalg.eig(jac)
    order = np.lexsort((-w.imag, -w.real))
    w, r = w[order], r[:, order]
    try:
        lft = np.linalg.inv(r)
    except np.linalg.LinAlgError:  # defective matrix: best effort
        lft = np.linalg.pinv(r)
    return w, r, lft
