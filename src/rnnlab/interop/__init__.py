"""Networks in and out of rnnlab: weight files (safetensors, .npz, MATLAB .mat) in the seeds'
namings, PyTorch modules and Flax parameters. Pickle is never read.

Layer 2: imports `rnnlab.models`, `rnnlab.io` and `rnnlab._validate` only.
"""

# --- files (issue 15, part 1) ---
from ._files import FORMATS as FORMATS
from ._files import PickleRefused as PickleRefused
from ._files import from_file as from_file
from ._files import read_arrays as read_arrays

# --- PyTorch and export (issue 15, part 2) ---
from ._export import export as export
from ._torch import from_torch as from_torch
from ._torch import to_torch as to_torch
