"""`FunctionModel`: any dynamical system given as JAX functions, under the model contract."""

import inspect
import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._validate import positive_int, positive_number
from ._base import AbstractRNN

_SAVE_HINT = (
    "a FunctionModel holds your own Python functions, which rnnlab never serialises (a "
    "function can only be stored by pickling code). Save the parameters your functions use "
    "(for example with safetensors.numpy.save_file) and rebuild the FunctionModel from your "
    "code, or express the network as a built-in model (rnnlab.CTRNN.from_weights, GRU, ...) "
    "to save it"
)


def _accepts_key(fn: Callable) -> bool:
    """Whether ``fn`` takes a keyword argument ``key`` (then it receives the noise key)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins, some C callables
        return False
    return "key" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class FunctionModel(AbstractRNN):
    r"""A dynamical system given as your own JAX functions, usable wherever an rnnlab model is.

    Give exactly one of

    - ``step(h, u) -> h'``: a discrete-time map (a network stepped in time); the fixed points
      are those of the map, its stability that of the map (``|mu| < 1``), and the vector field
      is ``step(h, u) - h``;
    - ``vector_field(x, u) -> dx/dt``: a continuous-time system; with ``dt`` it is simulated
      by Euler steps ``x + dt * F(x, u)`` and, as for `CTRNN`, the stability that counts is
      that of this Euler map (``|1 + dt lambda| < 1``), with the ODE's (``Re lambda < 0``)
      reported beside it; without ``dt`` it can be analysed (ODE stability), not simulated.

    (BrainPy's ``SlowPointFinder(f_cell, f_type=...)``: ``f_type="discrete"`` is ``step=``,
    ``"continuous"`` is ``vector_field=``.) ``find_fixed_points``, ``linearize``,
    ``topology``, ``attractor_manifolds``, ``sample_states``, ``rnnlab.simulate`` and the
    figures work on it unchanged.

    States may be any pytree of arrays (several variables per unit, as BrainPy users write
    them). Everything rnnlab computes sees the state flattened to one vector of length
    ``state_size`` (``jax.flatten_util.ravel_pytree`` order: leaves in tree order, each
    row-major); `unflatten` turns analysis results (``FixedPoints.states``, trajectories) back
    into your structure, with any leading axes, and `flatten` goes the other way.

    Your functions take one unbatched state and one input vector [n_in]; rnnlab batches them
    with ``jax.vmap``. Arrays they close over stay as they are; to have the analysis run in
    float64 on your parameters, pass a callable pytree (an ``equinox.Module``, a bound method
    of one, or ``jax.tree_util.Partial``): its array leaves become leaves of the model.
    A function that takes a keyword argument ``key`` receives the noise key of a simulation
    (None when noise-free); other functions are deterministic and a key is not used.

    Args:
        step: ``step(h, u) -> h'`` (or ``step(h, u, *, key)``), a discrete map.
        vector_field: ``vector_field(x, u) -> dx/dt`` (or with ``key``), a continuous system.
        state_size: the length of a flat state (an int), or a pytree of arrays (or
            ``jax.ShapeDtypeStruct``) with the structure and shapes of your state.
        n_in: the length of an input vector (use 1 for an autonomous system and ignore it).
        readout: ``readout(h) -> y`` [n_out]; default: the flattened state itself.
        jacobian: optional analytic Jacobian of what you gave, ``d step / dh`` or
            ``d vector_field / dx``, as a [state_size, state_size] matrix over the flattened
            state; default ``jax.jacfwd``.
        dt: the Euler step of a ``vector_field`` system (in your time unit; stability
            labels call it ms). Not used with ``step``.
        initial_state: where trials start: a flat vector [state_size] or a pytree like the
            state; default zeros.
    """

    step_fn: Callable | None
    vector_field_fn: Callable | None
    readout_fn: Callable | None
    jacobian_fn: Callable | None
    h0: Float[Array, " state"]

    n_in: int = eqx.field(static=True)
    n_hidden: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    dt: float | None = eqx.field(static=True)
    continuous: bool = eqx.field(static=True)
    state_def: Any = eqx.field(static=True)  # the state's treedef (None for a flat vector)
    state_shapes: tuple = eqx.field(static=True)  # the shapes of its leaves
    keyed: bool = eqx.field(static=True)  # whether step / vector_field take ``key``

    def __init__(
        self,
        *,
        step: Callable | None = None,
        vector_field: Callable | None = None,
        state_size: Any,
        n_in: int,
        readout: Callable | None = None,
        jacobian: Callable | None = None,
        dt: float | None = None,
        initial_state: Any = None,
    ):
        if (step is None) == (vector_field is None):
            raise ValueError(
                "give exactly one of step=(h, u) -> h' (a discrete map) or "
                "vector_field=(x, u) -> dx/dt (a continuous-time system)"
                + ("; both were given" if step is not None else "")
            )
        for name, fn in (("step", step), ("vector_field", vector_field), ("readout", readout),
                         ("jacobian", jacobian)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be a callable, got {type(fn).__name__}")
        self.n_in = positive_int("n_in", n_in)
        self.continuous = vector_field is not None
        if step is not None and dt is not None:
            raise ValueError(
                "dt is the Euler step of a vector_field system; a step= map has its own time "
                "step, so leave dt out"
            )
        self.dt = positive_number("dt", dt, allow_none=True)

        # the state's structure
        if isinstance(state_size, (int, np.integer)) and not isinstance(state_size, bool):
            size = positive_int("state_size", state_size)
            self.state_def, self.state_shapes = None, ((size,),)
        else:
            leaves, treedef = jax.tree_util.tree_flatten(state_size)
            if not leaves or not all(hasattr(x, "shape") for x in leaves):
                raise TypeError(
                    "state_size must be an int (a flat state) or a pytree of arrays or "
                    "jax.ShapeDtypeStruct giving your state's structure, got "
                    f"{type(state_size).__name__}"
                )
            self.state_def = treedef
            self.state_shapes = tuple(tuple(int(d) for d in x.shape) for x in leaves)
            size = sum(math.prod(s) for s in self.state_shapes)
            if size == 0:
                raise ValueError("state_size describes an empty state (no entries)")
        self.n_hidden = size

        self.step_fn, self.vector_field_fn = step, vector_field
        self.readout_fn, self.jacobian_fn = readout, jacobian
        self.keyed = _accepts_key(step if step is not None else vector_field)

        if initial_state is None:
            h0 = jnp.zeros((size,), jnp.float32)
        else:
            h0 = self._flatten_checked("initial_state", initial_state)
        self.h0 = h0

        # check the functions once on the initial state (shapes only: nothing is computed)
        u0 = jax.ShapeDtypeStruct((self.n_in,), jnp.float32)
        x0 = jax.ShapeDtypeStruct((size,), jnp.float32)
        name = "step" if step is not None else "vector_field"
        try:
            out = jax.eval_shape(lambda x, u: self._dynamics(x, u, None), x0, u0)
        except Exception as e:
            raise ValueError(
                f"{name} failed on a state shaped like state_size and an input of shape "
                f"({self.n_in},): {type(e).__name__}: {e}"
            ) from None
        if out.shape != (size,):
            raise ValueError(
                f"{name} returned a state of {out.shape} entries when flattened; it must "
                f"return a state like its input ({size} entries)"
            )
        if readout is None:
            self.n_out = size
        else:
            try:
                y = jax.eval_shape(lambda x: self._readout(x), x0)
            except Exception as e:
                raise ValueError(
                    f"readout failed on a state shaped like state_size: "
                    f"{type(e).__name__}: {e}"
                ) from None
            if len(y.shape) != 1:
                raise ValueError(f"readout must return a vector [n_out], got shape {y.shape}")
            self.n_out = int(y.shape[0])
        if jacobian is not None:
            try:
                j = jax.eval_shape(lambda x, u: self._user_jacobian(x, u), x0, u0)
            except Exception as e:
                raise ValueError(
                    f"jacobian failed on a state shaped like state_size: "
                    f"{type(e).__name__}: {e}"
                ) from None
            if j.shape != (size, size):
                raise ValueError(
                    f"jacobian must return a [{size}, {size}] matrix (over the flattened "
                    f"state), got shape {j.shape}"
                )

    # ------------------------------------------------------------------ state structure

    @property
    def is_continuous(self) -> bool:  # type: ignore[override]
        """True for a ``vector_field`` system, False for a ``step`` map."""
        return self.continuous

    def _flatten_checked(self, name: str, value: Any) -> Array:
        if self.state_def is None or isinstance(value, (np.ndarray, jax.Array)) and (
            np.shape(value) == (self.n_hidden,)
        ):
            arr = jnp.asarray(value, dtype=jnp.float32)
            if arr.shape != (self.n_hidden,):
                raise ValueError(
                    f"{name} must have shape ({self.n_hidden},), got {arr.shape}"
                )
            return arr
        leaves, treedef = jax.tree_util.tree_flatten(value)
        shapes = tuple(tuple(np.shape(x)) for x in leaves)
        if treedef != self.state_def or shapes != self.state_shapes:
            raise ValueError(
                f"{name} must have the state's structure {self.state_def} with leaf shapes "
                f"{list(self.state_shapes)}, got {treedef} with {list(shapes)}"
            )
        return self.flatten(value).astype(jnp.float32)

    def flatten(self, state: Any) -> Array:
        """A state pytree (leaves with any common leading axes) -> flat [..., state_size]."""
        if self.state_def is None:
            return jnp.asarray(state)
        leaves = jax.tree_util.tree_leaves(state)
        lead = jnp.shape(leaves[0])[: jnp.ndim(leaves[0]) - len(self.state_shapes[0])]
        parts = [jnp.reshape(x, lead + (-1,)) for x in leaves]
        dtype = jnp.result_type(*parts)
        return jnp.concatenate([p.astype(dtype) for p in parts], axis=-1)

    def unflatten(self, flat: Float[ArrayLike, "... state"]) -> Any:
        """Flat states [..., state_size] -> your state's pytree, each leaf [..., *shape].

        For example ``model.unflatten(fixed_points.states)`` or
        ``model.unflatten(trajectory.states)``. A flat state model returns the array.
        """
        flat = jnp.asarray(flat)
        if flat.shape[-1:] != (self.n_hidden,):
            raise ValueError(
                f"flat states must have a last axis of {self.n_hidden} (state_size), got "
                f"shape {flat.shape}"
            )
        if self.state_def is None:
            return flat
        lead = flat.shape[:-1]
        sizes = [math.prod(s) for s in self.state_shapes]
        cuts = np.cumsum(sizes)[:-1].tolist()
        parts = jnp.split(flat, cuts, axis=-1)
        leaves = [p.reshape(lead + s) for p, s in zip(parts, self.state_shapes)]
        return jax.tree_util.tree_unflatten(self.state_def, leaves)

    # ------------------------------------------------------------------ user functions

    def _dynamics(self, x: Array, u: Array, key: PRNGKeyArray | None) -> Array:
        fn = self.step_fn if self.step_fn is not None else self.vector_field_fn
        state = self.unflatten(x)
        out = fn(state, u, key=key) if self.keyed else fn(state, u)
        if self.state_def is not None:
            got = jax.tree_util.tree_structure(out)
            shapes = tuple(tuple(jnp.shape(a)) for a in jax.tree_util.tree_leaves(out))
            if got != self.state_def or shapes != self.state_shapes:
                raise ValueError(
                    f"it returned a state of structure {got} with leaf shapes {list(shapes)}; "
                    f"it must return one like its input, {self.state_def} with "
                    f"{list(self.state_shapes)}"
                )
        return self.flatten(out).astype(x.dtype)

    def _readout(self, x: Array) -> Array:
        if self.readout_fn is None:
            return x
        return jnp.asarray(self.readout_fn(self.unflatten(x)))

    def _user_jacobian(self, x: Array, u: Array) -> Array:
        return jnp.asarray(self.jacobian_fn(self.unflatten(x), u)).astype(x.dtype)

    # ------------------------------------------------------------------ the model contract

    def step(
        self,
        state: Float[ArrayLike, " state"],
        input: Float[ArrayLike, " n_in"],
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, " state"]:
        """One time step: the map, or one Euler step ``x + dt * F(x, u)`` (needs ``dt``)."""
        state, input = jnp.asarray(state), jnp.asarray(input)
        if not self.continuous:
            return self._dynamics(state, input, key)
        if self.dt is None:
            raise ValueError(
                "this FunctionModel has a vector_field but no dt, so it cannot be stepped "
                "or simulated; give dt=... (the Euler step) when building it"
            )
        return state + self.dt * self._dynamics(state, input, key)

    def vector_field(
        self, state: Float[ArrayLike, " state"], input: Float[ArrayLike, " n_in"]
    ) -> Float[Array, " state"]:
        """dx/dt for a ``vector_field`` system; ``step(h, u) - h`` for a map."""
        state, input = jnp.asarray(state), jnp.asarray(input)
        f = self._dynamics(state, input, None)
        return f if self.continuous else f - state

    def jacobian(
        self, state: Float[ArrayLike, " state"], input: Float[ArrayLike, " n_in"]
    ) -> Float[Array, "state state"]:
        """dF/dx of `vector_field` [state, state]: the user's ``jacobian`` (minus the identity
        for a map) when given, else ``jax.jacfwd``."""
        state, input = jnp.asarray(state), jnp.asarray(input)
        if self.jacobian_fn is None:
            return jax.jacfwd(self.vector_field, argnums=0)(state, input)
        j = self._user_jacobian(state, input)
        return j if self.continuous else j - jnp.eye(self.n_hidden, dtype=j.dtype)

    def readout(self, state: Float[ArrayLike, " state"]) -> Float[Array, " n_out"]:
        return self._readout(jnp.asarray(state))

    def rates(self, state: Float[ArrayLike, "*batch state"]) -> Float[Array, "*batch state"]:
        """The flattened state itself (a FunctionModel has no separate rates)."""
        return jnp.asarray(state)

    def initial_state(self) -> Float[Array, " state"]:
        return self.h0

    def config(self) -> dict[str, Any]:
        raise ValueError(f"this model cannot be saved: {_SAVE_HINT}")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "FunctionModel":
        raise ValueError(f"a FunctionModel cannot be rebuilt from a file: {_SAVE_HINT}")
