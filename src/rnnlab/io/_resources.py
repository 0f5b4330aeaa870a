"""Memory estimates checked before allocating what a user (or a file) asks for.

A size that would not fit is refused with the estimate and the machine's memory in the
message, before anything is allocated or written.
"""

import os

# Refuse when the estimate exceeds this share of the memory available now.
SHARE = 0.8


class ResourceError(ValueError):
    """What was asked for would not fit in this machine's memory."""


def machine_memory() -> tuple[int, int]:
    """(available, total) bytes of memory: /proc/meminfo's MemAvailable and MemTotal, else
    ``os.sysconf`` (available = total there)."""
    try:
        info = {}
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0]) * 1024
        total = info["MemTotal"]
        return info.get("MemAvailable", total), total
    except (OSError, KeyError, ValueError, IndexError):
        pass
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return total, total
    except (ValueError, OSError, AttributeError):  # pragma: no cover - no way to tell
        return 1 << 62, 1 << 62


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**27 else f"{n / 2**20:.0f} MiB"


def check_memory(estimate: float, what: str, hint: str = "") -> None:
    """`ResourceError` when ``estimate`` bytes exceed `SHARE` of the available memory; the
    message names ``what`` asked for it and gives the estimate and the machine's memory."""
    available, total = machine_memory()
    limit = min(available, total) * SHARE
    if estimate > limit:
        raise ResourceError(
            f"{what} needs about {_gib(estimate)} of memory, more than this machine can give "
            f"({_gib(available)} available of {_gib(total)}){'; ' + hint if hint else ''}")


def training_bytes(n_in: int, n_hidden: int, n_out: int, n_steps: int, batch_size: int,
                   gates: int = 1) -> float:
    """Bytes a training run needs, roughly: the weights with their gradients, Adam moments and
    copies (~8 sets of G n_hidden (n_hidden + n_in) + n_out n_hidden float32), and per batch the
    trials (inputs, targets, mask) and the states kept for backpropagation through time (~4
    float32 per unit per step per trial)."""
    params = gates * n_hidden * (n_hidden + n_in + 2) + n_out * (n_hidden + 1)
    per_trial = n_steps * (2 * n_in + 3 * n_out + 4 * gates * n_hidden)
    return 4.0 * (8 * params + 2 * batch_size * per_trial)


def analysis_bytes(n_hidden: int, n_initial: int, n_inputs: int = 1) -> float:
    """Bytes a fixed-point search needs, roughly: per candidate its state and optimiser
    moments, and for the points kept their Jacobians and eigenvectors (float64, N x N)."""
    per_candidate = 8.0 * n_hidden * 12
    per_point = 8.0 * n_hidden * n_hidden * 6
    return n_inputs * (n_initial * per_candidate + min(n_initial, 4096) * per_point)
