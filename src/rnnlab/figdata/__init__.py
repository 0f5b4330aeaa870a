"""Figure data, apart from drawing: what the matplotlib figures (`rnnlab.plot`) and the plotly
report (`rnnlab.report`) show, computed once for both.

Projections of states onto principal components, the look of each stability class (colours,
markers, legend text; slow points their own class), trial conditions as colours and text,
the topology graph's layout, connectivity blocks, psychometric curves with their logistic fits.
Nothing here draws; importing this package imports no drawing library.
"""

from ._backends import VIZ_HINT as VIZ_HINT
from ._backends import require_matplotlib as require_matplotlib
from ._backends import require_plotly as require_plotly
from ._conditions import condition_colors as condition_colors
from ._conditions import describe_trial as describe_trial
from ._conditions import format_condition as format_condition
from ._conditions import primary_condition as primary_condition
from ._conditions import sample_trials as sample_trials
from ._layout import edge_weight as edge_weight
from ._layout import graph_layout as graph_layout
from ._layout import node_stability as node_stability
from ._projection import SEGMENT_FRACTION as SEGMENT_FRACTION
from ._projection import Projection as Projection
from ._projection import fit_projection as fit_projection
from ._projection import input_groups as input_groups
from ._projection import manifold_kind as manifold_kind
from ._projection import manifold_states as manifold_states
from ._projection import n_points as n_points
from ._projection import projected_extent as projected_extent
from ._projection import stability_labels as stability_labels
from ._projection import trajectory_states as trajectory_states
from ._projection import unstable_directions as unstable_directions
from ._projection import unstable_segments as unstable_segments
from ._psychometric import PsychometricCurves as PsychometricCurves
from ._psychometric import fit_logistic as fit_logistic
from ._psychometric import logistic as logistic
from ._psychometric import psychometric_curves as psychometric_curves
from ._styles import FIXED_POINT_KINDS as FIXED_POINT_KINDS
from ._styles import OTHER_STYLE as OTHER_STYLE
from ._styles import SLOW_POINT_LABEL as SLOW_POINT_LABEL
from ._styles import STABILITY_COLORS as STABILITY_COLORS
from ._styles import STABILITY_ORDER as STABILITY_ORDER
from ._styles import STABILITY_STYLES as STABILITY_STYLES
from ._styles import StabilityStyle as StabilityStyle
from ._styles import euler_boundary as euler_boundary
from ._styles import point_label as point_label
from ._styles import stability_kinds as stability_kinds
from ._styles import stability_legend_title as stability_legend_title
from ._styles import stability_style as stability_style
from ._styles import stability_view_text as stability_view_text
from ._weights import excitatory_count as excitatory_count
from ._weights import model_weights as model_weights
from ._weights import recurrent_blocks as recurrent_blocks
from ._weights import symmetric_limit as symmetric_limit
