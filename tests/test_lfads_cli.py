"""`rnnlab lfads simulate | fit | evaluate` on a tiny trained run."""

import json

import numpy as np
import pytest

from rnnlab.cli import main
from rnnlab.io import read_safetensors
import rnnlab as rl
from rnnlab.lfads import metrics, read_hdf5

TINY = ["--gen-dim", "8", "--fac-dim", "3", "--ic-dim", "4", "--ic-enc-dim", "4",
        "--con-dim", "4", "--ci-enc-dim", "4", "--co-dim", "1"]


def test_simulate_fit_evaluate(tmp_path, capsys):
    run, data, fit = tmp_path / "run", tmp_path / "d.h5", tmp_path / "fit"
    assert main(["train", "integrator", "--out", str(run), "--hidden", "8", "--steps", "10",
                 "--eval-every", "10", "--no-progress"]) == 0
    assert main(["lfads", "simulate", str(run), "--out", str(data), "--neurons", "12",
                 "--trials", "40", "--heldout", "3", "--forward", "2"]) == 0
    d = read_hdf5(data)
    assert (d.n_neurons, d.n_heldout, d.n_forward, len(d.valid_inds)) == (9, 3, 2, 8)
    assert sorted(d.truth) == ["inputs", "rates", "states"]
    # an existing file is not replaced without --force; other suffixes are refused
    capsys.readouterr()
    assert main(["lfads", "simulate", str(run), "--out", str(tmp_path / "d.csv")]) == 2
    assert ".nwb" in capsys.readouterr().err
    assert main(["lfads", "simulate", str(run), "--out", str(data)]) == 2
    assert "--force" in capsys.readouterr().err

    assert main(["lfads", "fit", str(data), "--out", str(fit), "--epochs", "2",
                 "--batch-size", "16", "--no-progress", *TINY]) == 0
    assert (fit / "model.safetensors").is_file() and (fit / "data.h5").is_file()
    capsys.readouterr()
    assert main(["lfads", "fit", str(data), "--out", str(fit), *TINY]) == 2
    assert "--resume" in capsys.readouterr().err

    assert main(["lfads", "evaluate", str(fit), "--json", "--samples", "2"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == json.loads((fit / "evaluation.json").read_text())
    for name in ("lfads", "smoothing", "smoothing+pca"):
        for k in ("bits_per_spike", "co_bps", "rate_r2", "state_r2", "cycle_consistency"):
            assert np.isfinite(printed[name][k]), (name, k)
    assert np.isfinite(printed["lfads"]["fp_bps"]) and np.isfinite(printed["lfads"]["input_r2"])
    # the printed numbers are the metrics of the saved posterior
    tensors, _ = read_safetensors(fit / "posterior.safetensors", kind="lfads_posterior")
    assert np.array_equal(tensors["valid_inds"], d.valid_inds)
    assert printed["lfads"]["co_bps"] == pytest.approx(metrics.co_bps(tensors["rates"], d))
    assert printed["lfads"]["rate_r2"] == pytest.approx(
        metrics.rate_r2(d.truth_split("rates", "valid"), tensors["rates"]), rel=1e-5)

    assert main(["lfads", "evaluate", str(run)]) == 2
    assert "not an LFADS fit folder" in capsys.readouterr().err

    # figures: what they draw is the data and the posterior
    fig = rl.plot.lfads_rates(fit, trial=1)
    raster = [im for im in fig.axes[0].get_images() if im.get_gid() == "raster"][0]
    order = np.argsort(-tensors["rates"][1, :, :9].mean(0))
    assert np.array_equal(np.asarray(raster.get_array())[:9], d.valid[1][:, order].T)
    lines = [ln for ln in fig.axes[1].get_lines() if ln.get_gid() == "inferred"]
    assert np.allclose(lines[0].get_ydata(), tensors["rates"][1, :, order[0]] / d.bin_size)
    fig = rl.plot.lfads_inputs(fit)
    assert "R²" in fig.axes[0].get_title()
    rl.plot.lfads_factors(fit)
    assert main(["lfads", "report", str(fit)]) == 0
    page = (fit / "report.html").read_text()
    for div in ("fig-lfads-rates", "fig-lfads-factors", "fig-lfads-inputs"):
        assert f'id="{div}"' in page
    assert "connect-src 'none'" in page
    import matplotlib.pyplot as plt

    plt.close("all")


def test_bad_data_file_is_one_line(tmp_path, capsys):
    (tmp_path / "x.csv").write_text("1,2\n")
    assert main(["lfads", "fit", str(tmp_path / "x.csv"), "--out", str(tmp_path / "f")]) == 2
    assert ".h5" in capsys.readouterr().err
    assert main(["lfads", "fit", str(tmp_path / "none.h5"), "--out", str(tmp_path / "f")]) == 2
    assert "does not exist" in capsys.readouterr().err
