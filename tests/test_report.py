"""rnnlab report / rnnlab plot: one self-contained HTML file; static figures on disk."""

import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("plotly")

import rnnlab as rl  # noqa: E402
from _plot_fixtures import STABILITY_COUNTS, flipflop_network, make_run_dir  # noqa: E402
from rnnlab.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def report(run_dir):
    path = rl.report.write_report(run_dir, analyze=False)
    return path, path.read_text(encoding="utf-8")


class _Resources(HTMLParser):
    """Collects every tag and every attribute that could load something."""

    def __init__(self):
        super().__init__()
        self.tags, self.links, self.scripts_with_src = [], [], []
        self.csp = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        for key in ("src", "href", "data", "action", "poster", "srcset"):
            if a.get(key):
                self.links.append((tag, key, a[key]))
        if tag == "meta" and a.get("http-equiv", "").lower() == "content-security-policy":
            self.csp = a.get("content")


def _arr(v):
    """A plotly data array: a JSON list, or a typed array {"dtype", "bdata" (base64)}."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.array([np.nan if x is None else x for x in v], float)


def _plotly_figures(page):
    """{div id: (data, layout)} parsed from the Plotly.newPlot calls in the page."""
    out = {}
    body = page[page.index("<body>"):]
    dec = json.JSONDecoder()
    for m in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', body):
        data, end = dec.raw_decode(body, m.end())
        start = end + len(body[end:]) - len(body[end:].lstrip().lstrip(",").lstrip())
        layout, _ = dec.raw_decode(body, start)
        out[m.group(1)] = (data, layout)
    return out


def test_report_is_one_self_contained_file(run_dir, report):
    path, page = report
    assert path == run_dir / "report.html"
    assert page.startswith("<!DOCTYPE html>")
    p = _Resources()
    p.feed(page)
    # nothing to load: no src/href except in-page anchors, no <link>, <iframe>, <img src=http>
    assert all(v.startswith("#") for _, _, v in p.links), p.links
    assert "link" not in p.tags and "iframe" not in p.tags
    # plotly.js inlined (once), and a policy that forbids network requests
    assert page.count("<script") >= 2 and "plotly" in page.lower()
    assert len(re.findall(r"/\*\*\s*\n?\s*\*\s*plotly\.js v", page)) <= 1
    assert p.csp is not None and "default-src 'none'" in p.csp and "connect-src 'none'" in p.csp
    # outside the inlined library, no URL at all (the library's own source has URL strings
    # for map tiles it never fetches here; the policy above blocks them anyway)
    lib_start = page.index('<script type="text/javascript">') + 31
    lib_end = page.index("</script>", lib_start)
    own = page[:lib_start] + page[lib_end:]
    assert not re.search(r"https?://", own.replace("http://www.w3.org/", "")), re.findall(
        r"https?://[^\s\"'<>]+", own)[:5]
    assert "@import" not in own and "url(" not in own


def test_report_sections_and_state_space_content(report):
    _, page = report
    for section in ("summary", "training", "trials", "state-space", "spectra",
                    "connectivity", "topology"):
        assert f'id="{section}"' in page
    figs = _plotly_figures(page)
    data, layout = figs["fig-state-space"]
    assert {t["type"] for t in data} >= {"scatter3d"}
    fp_traces = {t["name"].split(" fixed points")[0]: t for t in data
                 if "fixed points" in t.get("name", "")}
    assert {k: len(_arr(t["x"])) for k, t in fp_traces.items()} == {
        k: n for k, n in STABILITY_COUNTS.items()}
    assert fp_traces["stable"]["marker"]["symbol"] == "circle"
    assert fp_traces["saddle"]["marker"]["symbol"] == "circle-open"
    assert fp_traces["unstable"]["marker"]["symbol"] == "x"
    assert fp_traces["stable"]["marker"]["color"] == rl.plot.STABILITY_COLORS["stable"]
    # hover text: stability, speed, eigenvalues, readout
    hover = fp_traces["stable"]["hovertext"][0]
    for word in ("stability: stable", "speed |F|", "eigenvalues", "readout"):
        assert word in hover
    # trajectories: one legend entry (toggle) per condition group, all 64 trials drawn
    cond = [t for t in data if t.get("name", "").startswith("final_bits")]
    assert len(cond) >= 2 and len({t["legendgroup"] for t in cond}) == len(cond)
    n_lines = sum(int(np.sum(np.isnan(_arr(t["x"])))) for t in cond)
    assert n_lines == 64  # one gap-separated polyline per trial
    assert layout["scene"]["xaxis"]["title"]["text"].startswith("PC1")
    # eigen-spectra with the continuous-time boundary
    sdata, slayout = figs["fig-spectra"]
    assert any(s.get("x0") == 0 and s.get("x1") == 0 for s in slayout.get("shapes", []))
    n_eigs = sum(len(_arr(t["x"])) for t in sdata if t.get("mode") == "markers")
    assert n_eigs == 27 * 3
    # sample trials: one grey band per run of mask-0 steps, per trial and output channel
    import jax

    from rnnlab.figdata import sample_trials

    task, _ = flipflop_network()
    few = sample_trials(task, key=jax.random.PRNGKey(1), n_trials=3)
    off = np.asarray(few.mask) == 0  # [3, T, 3]
    runs = int(np.sum(off[:, 1:] & ~off[:, :-1]) + np.sum(off[:, 0]))
    _, trlayout = figs["fig-trials"]
    assert len(trlayout["shapes"]) == runs > 0
    # topology graph (rl.analysis.topology run by the report): 27 nodes by stability
    tdata, tlayout = figs["fig-topology"]
    nodes = {t["name"]: len(_arr(t["x"])) for t in tdata}
    assert nodes == STABILITY_COUNTS
    assert len(tlayout["annotations"]) >= 12 * 2 + 6 * 4  # arrows saddle -> corner


def test_report_without_analysis_says_why_and_still_shows_the_run(tmp_path):
    run = make_run_dir(tmp_path / "run", with_fixed_points=False, steps=20)
    path = rl.report.write_report(run, out=tmp_path / "r.html", analyze=False)
    page = path.read_text()
    assert 'id="state-space"' in page and 'id="spectra"' not in page
    assert "no fixed points" in page


def test_cli_report_and_plot(run_dir, tmp_path, capsys):
    out_html = tmp_path / "rep.html"
    assert main(["report", str(run_dir), "--out", str(out_html), "--no-analyze",
                 "--n-trials", "16"]) == 0
    assert out_html.is_file() and "wrote" in capsys.readouterr().out
    figs = tmp_path / "figs"
    assert main(["plot", str(run_dir), "--out", str(figs), "--no-analyze",
                 "--n-trials", "16"]) == 0
    names = {p.name for p in figs.iterdir()}
    for stem in ("training", "trials", "state_space", "state_space_3d", "eigenspectra",
                 "connectivity"):
        assert f"{stem}.png" in names and f"{stem}.svg" in names
    assert (figs / "state_space.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (figs / "eigenspectra.svg").read_text()[:2000]


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a run directory" in err and "Traceback" not in err
    assert main(["plot", str(tmp_path / "missing")]) == 2
    assert main(["plot", str(tmp_path), "--n-trials", "0"]) == 2


def test_report_runs_the_analysis_when_it_is_missing(tmp_path):
    run = make_run_dir(tmp_path / "run", with_fixed_points=False, steps=20)
    assert main(["report", str(run), "--n-trials", "16"]) == 0
    # `rnnlab analyze` ran first and wrote RUN/analysis/; the report shows its fixed points
    assert (run / "analysis" / "fixed_points.safetensors").is_file()
    fp = rl.analysis.FixedPoints.load(run / "analysis" / "fixed_points.safetensors")
    assert fp.stability.count("stable") == STABILITY_COUNTS["stable"]
    page = (run / "report.html").read_text()
    data, _ = _plotly_figures(page)["fig-state-space"]
    stable = [t for t in data if t.get("name", "").startswith("stable fixed points")]
    assert len(_arr(stable[0]["x"])) == STABILITY_COUNTS["stable"]
    assert 'id="topology"' in page


def test_missing_plotly_names_the_extra(run_dir, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "plotly", None)
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    with pytest.raises(ImportError, match=r"rnnlab\[viz\]"):
        rl.report.write_report(run_dir, analyze=False)
    assert main(["report", str(run_dir), "--no-analyze"]) == 2
    assert "rnnlab[viz]" in capsys.readouterr().err


def test_state_space_figure_names_each_inputs_points():
    """Points of two constant inputs are two legend groups named by their input; each trace
    holds only its input's points (hover text names the input)."""
    from rnnlab.analysis import find_fixed_points
    from rnnlab.report._figures import state_space_figure

    model = rl.CTRNN.from_weights([[1.0, 0.0], [0.0, 0.5]], np.eye(2), np.eye(2),
                                  activation="linear", dt=10.0, tau=100.0)
    cand = np.stack([np.linspace(-2, 2, 12), np.full(12, 0.3)], 1)
    parts = [find_fixed_points(model, np.array([0.0, c]), cand) for c in (0.0, 0.05)]
    fp = rl.FixedPoints.concatenate(parts)
    traj = np.random.default_rng(0).normal(size=(2, 10, 2))
    fig = state_space_figure(traj, np.array([0, 1]), "context", fp, n_components=2,
                             inputs=[("low", [0.0, 0.0]), ("high", [0.0, 0.05])],
                             value_names={0: "motion context", 1: "colour context"})
    names = [t.name for t in fig.data]
    assert "motion context" in names and "colour context" in names
    for gname, c in (("low", 0.0), ("high", 0.05)):
        traces = [t for t in fig.data if t.name.startswith(f"{gname}: ")]
        assert traces
        n = sum(len(t.x) for t in traces if t.mode == "markers")
        assert n == int(np.sum(np.isclose(np.asarray(fp.inputs)[:, 1], c)))
        assert all(f"<b>{gname}</b>" in h for t in traces for h in t.hovertext)
