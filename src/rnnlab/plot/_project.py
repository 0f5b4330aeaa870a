"""Kept for `plot/_run.py` only (it imports `Projection` from here until it reads runs through
`rnnlab.runs`): the state-space geometry lives in `rnnlab.figdata`."""

from ..figdata import Projection as Projection  # noqa: F401
