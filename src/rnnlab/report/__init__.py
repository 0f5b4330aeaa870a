"""The interactive, self-contained HTML report of a run (plotly inlined; needs ``rnnlab[viz]``)."""

from ._report import write_report as write_report
