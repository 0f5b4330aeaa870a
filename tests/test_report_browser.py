"""The report in a real browser: headless Chromium opens it offline and draws the 3-D view.

Needs Debian's ``chromium`` (``apt-get install -y chromium``; `.ci/run` installs it); skipped
when no Chromium is on PATH. Set RNNLAB_SCREENSHOT_DIR to keep the screenshots.
"""

import io
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("plotly")

import _headless_browser as hb  # noqa: E402
import rnnlab as rl  # noqa: E402
from _plot_fixtures import make_run_dir  # noqa: E402

pytestmark = pytest.mark.skipif(
    hb.find_chromium() is None, reason="chromium is not installed (apt-get install -y chromium)"
)

TOGGLE_FIRST_LEGEND_ENTRY = """
(async () => {
  const gd = document.getElementById('fig-state-space');
  const before = gd.data[0].visible;
  const item = gd.querySelector('.legend .traces .legendtoggle');
  const r = item.getBoundingClientRect();
  const opts = {bubbles: true, clientX: r.x + r.width / 2, clientY: r.y + r.height / 2,
                button: 0};
  item.dispatchEvent(new MouseEvent('mousedown', opts));
  item.dispatchEvent(new MouseEvent('mouseup', opts));
  item.dispatchEvent(new MouseEvent('click', opts));
  await new Promise(res => setTimeout(res, 1200));
  return [String(before), String(gd.data[0].visible), gd.data[0].name];
})()
"""

SCENE_INFO = """
(() => {
  const gd = document.getElementById('fig-state-space');
  const canvases = gd.querySelectorAll('.gl-container canvas');
  const fp = gd.data.filter(t => (t.name || '').includes('fixed points'));
  return [canvases.length, gd._fullLayout.scene !== undefined, fp.length,
          fp.length ? fp[0].hovertext[0] : ''];
})()
"""


@pytest.fixture(scope="module")
def report_path(tmp_path_factory):
    run = make_run_dir(tmp_path_factory.mktemp("browser_run"), steps=20)
    return rl.report.write_report(run, analyze=False, n_trials=32)


def _png(data):
    import matplotlib.image as mpimg

    return mpimg.imread(io.BytesIO(data), format="png")[..., :3]


def _keep(name, data):
    folder = os.environ.get("RNNLAB_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_bytes(data)


def test_report_in_headless_chromium(report_path):
    res = hb.render(report_path, scripts=[SCENE_INFO, TOGGLE_FIRST_LEGEND_ENTRY],
                    screenshot_selector="#fig-state-space", settle=5.0)
    _keep("report_state_space.png", res["screenshot"])
    assert res["console_errors"] == []
    # offline: the page asked for nothing but itself (and inline data: images)
    own = "file://" + os.path.abspath(report_path)
    foreign = [u for u in res["requests"] if u != own and not u.startswith("data:")]
    assert foreign == []
    n_canvas, has_scene, n_fp_traces, hover = res["results"][0]
    assert has_scene and n_canvas >= 1 and n_fp_traces == 3
    assert "stability: " in hover and "eigenvalues" in hover and "readout" in hover
    # clicking a condition in the legend hides its trajectories
    before, after, name = res["results"][1]
    assert name.startswith("final_bits") and before in ("true", "undefined")
    assert after == "legendonly"
    # the 3-D view is drawn: the screenshot of it is far from blank and has the trajectory
    # colours in it (not just the grey/white page)
    img = _png(res["screenshot"])
    assert img.std() > 0.05
    sat = img.max(axis=-1) - img.min(axis=-1)
    assert np.mean(sat > 0.25) > 0.005


def test_report_top_of_page_renders(report_path):
    res = hb.render(report_path, settle=3.0)
    _keep("report_top.png", res["screenshot"])
    assert res["console_errors"] == []
    img = _png(res["screenshot"])
    assert img.std() > 0.05
