"""One BLAS thread for rnnlab's many small numpy linear-algebra calls.

Once JAX is imported, a multi-threaded OpenBLAS runs small problems hundreds of times slower
on a busy few-core machine (an SVD of 272 x 64 states: 0.58 s with OpenBLAS's 2 threads, 1.5
ms with one, measured on the 2-core development machine at load 5), and rnnlab's analysis is
made of thousands of such small solves, eigenproblems and decompositions. The analysis entry
points run with one BLAS thread; the user's setting is restored when they return.
"""

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from threadpoolctl import ThreadpoolController

_CONTROLLER: ThreadpoolController | None = None
F = TypeVar("F", bound=Callable[..., Any])


def one_blas_thread():
    """A context limiting BLAS/LAPACK to one thread. The library scan is done once per process
    (``threadpool_limits`` rescans the loaded libraries on every entry: 2 ms each)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


def single_blas_thread(fn: F) -> F:
    """Decorator: run ``fn`` with one BLAS thread (see the module's docstring)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with one_blas_thread():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
