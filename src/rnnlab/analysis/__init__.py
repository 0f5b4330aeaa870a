"""Reverse engineering: fixed and slow points, linearisation, topology, attractor manifolds, PCA."""

from ._fixed_points import FixedPoints as FixedPoints
from ._fixed_points import STABILITY_LABELS as STABILITY_LABELS
from ._fixed_points import classify as classify
from ._fixed_points import find_fixed_points as find_fixed_points
from ._fixed_points import stability_views as stability_views
from ._fixed_points import tolerance_sweep as tolerance_sweep
from ._slow import SlowPointTolerance as SlowPointTolerance
from ._slow import slow_point_tolerance as slow_point_tolerance
from ._states import PCA as PCA
from ._states import LinearSystem as LinearSystem
from ._states import linearize as linearize
from ._states import pca as pca
from ._states import sample_states as sample_states
from ._structure import AttractorManifold as AttractorManifold
from ._structure import attractor_manifolds as attractor_manifolds
from ._structure import topology as topology
