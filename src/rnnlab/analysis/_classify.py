"""Stability of fixed points from their eigenvalues: integer codes, labels derived from them."""

import enum
from typing import Any

import numpy as np


class Stability(enum.IntEnum):
    """Stability codes (stored as int8 on `FixedPoints`; the label is the member's name).

    ``stable``: every mode decays; ``saddle``: some but not all modes grow; ``unstable``: every
    mode grows; ``marginal``: none grows, some are marginal; ``slow``: the point is no root (a
    slow point), whatever its eigenvalues say.
    """

    stable = 0
    saddle = 1
    unstable = 2
    marginal = 3
    slow = 4


STABILITY_LABELS = tuple(s.name for s in Stability)
# The labels a root can have (a point that is not a root is "slow").
ROOT_LABELS = STABILITY_LABELS[:4]
_LABEL_ARRAY = np.asarray(STABILITY_LABELS, dtype=object)


def labels_of(codes) -> tuple[str, ...]:
    """Stability labels of integer codes (see `Stability`)."""
    codes = np.asarray(codes, dtype=np.int64).reshape(-1)
    return tuple(_LABEL_ARRAY[codes].tolist())


def codes_of(labels) -> np.ndarray:
    """int8 codes of stability labels; an unknown label is a ValueError naming it."""
    try:
        return np.asarray([Stability[str(s)] for s in labels], dtype=np.int8)
    except KeyError as e:
        raise ValueError(
            f"unknown stability label {e.args[0]!r} (expected one of {STABILITY_LABELS})"
        ) from None


def classify_codes(
    eigenvalues: np.ndarray, is_continuous: bool, marginal_tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """Unstable-mode counts [K] (int64) and stability codes [K] (int8, `Stability`) from
    eigenvalues [K, N] (see `classify`)."""
    eigenvalues = np.asarray(eigenvalues)
    growth = eigenvalues.real if is_continuous else np.abs(eigenvalues) - 1.0
    n_unstable = np.sum(growth > marginal_tol, axis=-1).astype(np.int64)
    n_marginal = np.sum(np.abs(growth) <= marginal_tol, axis=-1)
    n = eigenvalues.shape[-1]
    codes = np.where(
        n_unstable == n, Stability.unstable,
        np.where(n_unstable > 0, Stability.saddle,
                 np.where(n_marginal > 0, Stability.marginal, Stability.stable)),
    ).astype(np.int8)
    return n_unstable, codes.reshape(n_unstable.shape)


def classify(
    eigenvalues: np.ndarray, is_continuous: bool, marginal_tol: float
) -> tuple[np.ndarray, list[str]]:
    """Unstable-mode counts and stability labels from eigenvalues [K, N].

    Continuous time: a mode is unstable when Re(lambda) > marginal_tol, marginal when
    |Re(lambda)| <= marginal_tol. Maps: unstable when |mu| > 1 + marginal_tol, marginal when
    ||mu| - 1| <= marginal_tol. Labels: ``stable`` (every mode decays), ``saddle`` (some but not
    all modes unstable), ``unstable`` (all unstable), ``marginal`` (none unstable, some marginal).
    """
    n_unstable, codes = classify_codes(eigenvalues, is_continuous, marginal_tol)
    return n_unstable, list(labels_of(codes))


def stability_views(
    eigenvalues: np.ndarray,
    converged: np.ndarray,
    *,
    is_continuous: bool,
    dt: float | None,
    marginal_tol: float,
) -> dict[str, Any]:
    """The stability of the system that runs and of the ODE, from eigenvalues [K, N].

    The system that runs is the Euler map ``x -> x + dt F(x)`` for a continuous-time model
    with a ``dt`` (multipliers ``mu = 1 + dt lambda``, marginal band ``dt * marginal_tol`` on
    ``|mu| - 1``), the ODE itself for a continuous-time model without ``dt``, and the map for
    discrete-time models. Points that are not converged get the code ``slow`` (their
    eigenvalues describe no equilibrium); their unstable-mode counts are kept.

    Returns a dict with ``n_unstable`` [K], ``stability_codes`` [K] (int8, `Stability`),
    ``ode_n_unstable``, ``ode_stability_codes``, ``views_differ`` [K] (roots whose ODE label or
    unstable count differs from the simulated system's) and, derived from the codes, the labels
    ``stability`` and ``ode_stability`` (tuples of K strings).
    """
    lam = np.asarray(eigenvalues)
    conv = np.asarray(converged, bool).reshape(-1)
    if is_continuous:
        ode_nu, ode_code = classify_codes(lam, True, marginal_tol)
        if dt is not None:
            nu, code = classify_codes(1.0 + dt * lam, False, dt * marginal_tol)
        else:
            nu, code = ode_nu, ode_code
    else:
        nu, code = classify_codes(lam, False, marginal_tol)
        ode_nu, ode_code = nu, code
    differ = conv & ((ode_nu != nu) | (ode_code != code))
    slow = np.int8(Stability.slow)
    code = np.where(conv, code, slow).astype(np.int8)
    ode_code = np.where(conv, ode_code, slow).astype(np.int8)
    return {
        "n_unstable": np.asarray(nu, np.int64).reshape(conv.shape),
        "stability_codes": code,
        "ode_n_unstable": np.asarray(ode_nu, np.int64).reshape(conv.shape),
        "ode_stability_codes": ode_code,
        "views_differ": np.asarray(differ, bool).reshape(conv.shape),
        "stability": labels_of(code),
        "ode_stability": labels_of(ode_code),
    }


def stability_view_name(is_continuous: bool, dt: float | None) -> str:
    """``"Euler map, dt=10 ms"`` (continuous time with ``dt``), ``"ODE"`` or ``"map"``."""
    if not is_continuous:
        return "map"
    if dt is None:
        return "ODE"
    return f"Euler map, dt={float(dt):g} ms"
