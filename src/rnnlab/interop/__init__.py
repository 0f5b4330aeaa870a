"""Networks in and out of rnnlab: weight files (safetensors, .npz, MATLAB .mat) in the seeds'
namings, PyTorch modules and Flax parameters. Pickle is never read.

Layer 2: imports `rnnlab.models`, `rnnlab.io` and `rnnlab._validate` only.
"""

# --- files (issue 15, part 1) ---

# --- PyTorch and export (issue 15, part 2) ---
