"""The interactive, self-contained HTML report of a run (plotly inlined; needs ``rnnlab[viz]``)."""

from ._lfads import write_lfads_report as write_lfads_report
from ._report import write_report as write_report
