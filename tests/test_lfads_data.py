"""rl.lfads data: Dataset, lfads-torch's HDF5 layout, NWB, simulate_spikes."""

import h5py
import jax
import numpy as np
import pytest

import rnnlab as rl
from rnnlab.lfads import Dataset, read_hdf5, read_nwb, simulate_spikes, write_hdf5, write_nwb

FIELDS = ("train", "valid", "train_inds", "valid_inds", "ext_input_train", "ext_input_valid",
          "heldout_train", "heldout_valid")


def _dataset(seed=0, **kw):
    rng = np.random.default_rng(seed)
    x = rng.poisson(2.0, (12, 9, 6)).astype(np.int32)
    truth = {"rates": rng.random((12, 9, 6)).astype(np.float32),
             "states": rng.normal(size=(12, 9, 4)), "inputs": rng.normal(size=(12, 9, 1))}
    args = dict(heldout_neurons=2, n_forward=3, truth=truth,
                ext_input=rng.normal(size=(12, 9, 2)).astype(np.float32), bin_size=0.04)
    args.update(kw)
    return x, truth, Dataset.from_arrays(x, **args)


def _assert_same(a: Dataset, b: Dataset):
    for name in FIELDS:
        u, v = getattr(a, name), getattr(b, name)
        assert (u is None) == (v is None), name
        if u is not None:
            assert u.dtype == v.dtype and u.shape == v.shape and np.array_equal(u, v), name
    assert (a.n_forward, a.bin_size) == (b.n_forward, b.bin_size)
    assert sorted(a.truth or {}) == sorted(b.truth or {})
    for k in a.truth or {}:
        assert a.truth[k].dtype == b.truth[k].dtype and np.array_equal(a.truth[k], b.truth[k])


def test_from_arrays_splits_holds_out_and_keeps_truth():
    x, truth, d = _dataset(heldout_neurons=[1, 4])
    assert np.array_equal(np.sort(np.concatenate([d.train_inds, d.valid_inds])), np.arange(12))
    assert len(d.valid_inds) == round(0.2 * 12)
    order = [0, 2, 3, 5, 1, 4]  # held-in in order, then the held-out ones
    for split in ("train", "valid"):
        inds = d.inds(split)
        assert np.array_equal(d.recon_data(split), x[inds][:, :, order])
        assert np.array_equal(d.encod_data(split), x[inds][:, :6, [0, 2, 3, 5]])
        assert np.array_equal(d.truth_split("rates", split), truth["rates"][inds][:, :, order])
        assert np.array_equal(d.truth_split("states", split), truth["states"][inds])
    assert (d.n_neurons, d.n_heldout, d.n_recon, d.n_obs, d.ext_dim) == (4, 2, 6, 6, 2)
    # the same seed gives the same split, another seed another one
    assert np.array_equal(Dataset.from_arrays(x, seed=0).valid_inds, d.valid_inds)
    assert not np.array_equal(Dataset.from_arrays(x, seed=1).valid_inds, d.valid_inds)


@pytest.mark.parametrize("kwargs, match", [
    (dict(train=np.zeros((3, 4)), valid=np.zeros((2, 4, 5))), "train must be"),
    (dict(train=np.zeros((3, 4, 5)), valid=np.zeros((2, 4, 6))), "valid must have"),
    (dict(train=np.zeros((3, 4, 5)), valid=np.zeros((2, 4, 5)), n_forward=4), "n_forward"),
    (dict(train=np.zeros((3, 4, 5)), valid=np.zeros((2, 4, 5)), train_inds=[0, 1, 2],
          valid_inds=[2, 3]), "distinct"),
    (dict(train=np.zeros((3, 4, 5)), valid=np.zeros((2, 4, 5)),
          heldout_train=np.zeros((3, 4, 1))), "heldout_valid"),
    (dict(train=np.zeros((3, 4, 5)), valid=np.zeros((2, 4, 5)),
          truth={"rates": np.zeros((5, 3, 5))}), "truth\\['rates'\\]"),
    (dict(train=np.zeros((3, 4, 5)), valid=np.zeros((2, 4, 5)),
          ext_input_train=np.zeros((3, 5, 1)), ext_input_valid=np.zeros((2, 4, 1))),
     "ext_input_train"),
])
def test_bad_shapes_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Dataset(**kwargs)


def test_from_arrays_rejects_bad_options():
    x = np.zeros((10, 5, 3))
    with pytest.raises(ValueError, match="valid_fraction"):
        Dataset.from_arrays(x, valid_fraction=1.0)
    with pytest.raises(ValueError, match="heldout_neurons"):
        Dataset.from_arrays(x, heldout_neurons=3)
    with pytest.raises(ValueError, match="heldout_neurons"):
        Dataset.from_arrays(x, heldout_neurons=[0, 0])
    with pytest.raises(ValueError, match="at least 2 trials"):
        Dataset.from_arrays(x[:1])


@pytest.mark.parametrize("kw", [{}, dict(heldout_neurons=None, n_forward=0, truth=None,
                                         ext_input=None, bin_size=None)])
@pytest.mark.parametrize("fmt", ["h5", "nwb"])
def test_round_trip_is_exact(tmp_path, fmt, kw):
    _, _, d = _dataset(**kw)
    write, read = (write_hdf5, read_hdf5) if fmt == "h5" else (write_nwb, read_nwb)
    path = write(tmp_path / f"data.{fmt}", d)
    _assert_same(d, read(path))
    assert [p.name for p in tmp_path.iterdir()] == [f"data.{fmt}"]  # no temporary left


def test_hdf5_has_lfads_torch_names_shapes_and_dtypes(tmp_path):
    _, truth, d = _dataset()
    write_hdf5(tmp_path / "d.h5", d)
    n_tr, n_va = len(d.train_inds), len(d.valid_inds)
    expected = {
        "train_encod_data": ((n_tr, 6, 4), np.int32), "valid_encod_data": ((n_va, 6, 4), np.int32),
        "train_recon_data": ((n_tr, 9, 6), np.int32), "valid_recon_data": ((n_va, 9, 6), np.int32),
        "train_inds": ((n_tr,), np.int64), "valid_inds": ((n_va,), np.int64),
        "train_ext_input": ((n_tr, 9, 2), np.float32),
        "valid_ext_input": ((n_va, 9, 2), np.float32),
        "train_truth": ((n_tr, 9, 6), np.float32), "valid_truth": ((n_va, 9, 6), np.float32),
        "conversion_factor": ((), np.float64), "bin_size": ((), np.float64),
        "train_truth_states": ((n_tr, 9, 4), np.float64),
        "valid_truth_states": ((n_va, 9, 4), np.float64),
        "train_truth_inputs": ((n_tr, 9, 1), np.float64),
        "valid_truth_inputs": ((n_va, 9, 1), np.float64),
    }
    with h5py.File(tmp_path / "d.h5", "r") as f:
        got = {k: (v.shape, v.dtype) for k, v in f.items()}
        data = {k: v[()] for k, v in f.items()}
    assert got == {k: (s, np.dtype(t)) for k, (s, t) in expected.items()}
    # what lfads-torch's attach_tensors takes from the file: the encoder input, the
    # reconstruction target (held-in then held-out neurons, forward bins at the end) and the
    # truth divided by the conversion factor
    for split, inds in (("train", d.train_inds), ("valid", d.valid_inds)):
        assert np.array_equal(data[f"{split}_recon_data"][:, :6, :4], data[f"{split}_encod_data"])
        assert np.array_equal(data[f"{split}_truth"] / data["conversion_factor"],
                              truth["rates"][inds][:, :, [0, 1, 2, 3, 4, 5]])


def test_reads_a_file_prepared_for_lfads_torch(tmp_path):
    # a file as NLB/lfads-torch scripts write it: no inds, truth in spikes/s with a factor
    rng = np.random.default_rng(1)
    recon = rng.poisson(1.0, (7, 10, 5)).astype(np.float64)
    valid = rng.poisson(1.0, (3, 10, 5)).astype(np.float64)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["train_encod_data"], f["train_recon_data"] = recon[:, :8, :4], recon
        f["valid_encod_data"], f["valid_recon_data"] = valid[:, :8, :4], valid
        f["train_truth"], f["valid_truth"] = recon * 50.0, valid * 50.0
        f["conversion_factor"] = 50.0
    d = read_hdf5(tmp_path / "x.h5")
    assert (d.n_neurons, d.n_heldout, d.n_forward) == (4, 1, 2)
    assert np.array_equal(d.valid_inds, np.arange(7, 10))
    assert np.allclose(d.truth_split("rates", "valid"), valid)
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["train_encod_data"] = recon
    with pytest.raises(rl.io.FileFormatError, match="valid_encod_data"):
        read_hdf5(tmp_path / "bad.h5")


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    _, _, d = _dataset()
    path = write_hdf5(tmp_path / "d.h5", d)
    before = path.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_hdf5(path, d)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["d.h5"]


def test_simulate_spikes_counts_are_poisson_with_the_stated_rates():
    task = rl.tasks.make("integrator")
    model = rl.CTRNN(1, 16, 1, key=jax.random.PRNGKey(0), dt=task.dt)
    d = simulate_spikes(model, task, key=jax.random.PRNGKey(1), n_neurons=40, max_rate=50.0,
                        n_trials=200)
    counts = np.concatenate([d.train, d.valid]).astype(np.float64)
    inds = np.concatenate([d.train_inds, d.valid_inds])
    rates = d.truth["rates"][inds].astype(np.float64)
    assert d.bin_size == pytest.approx(0.04) and d.train.dtype == np.int32
    # every neuron spans [0, max_rate * bin_size] expected counts
    assert np.allclose(d.truth["rates"].max(axis=(0, 1)), 50.0 * 0.04, rtol=1e-6)
    assert np.allclose(d.truth["rates"].min(axis=(0, 1)), 0.0, atol=1e-6)
    # ... as an affine function of the network's states (a linear map with offset explains
    # them exactly)
    states = d.truth["states"].reshape(-1, 16).astype(np.float64)
    flat = d.truth["rates"].reshape(-1, 40).astype(np.float64)
    x = np.c_[states, np.ones(len(states))]
    coef, *_ = np.linalg.lstsq(x, flat, rcond=None)
    assert np.abs(x @ coef - flat).max() < 1e-4
    # Poisson: E[n - r] = 0, Var[n - r] = r, so E[(n - r)^2 - r] = 0 with variance 2r^2 + r.
    # 200 x 25 x 40 = 200k draws; the key is fixed, so the z-scores are fixed numbers; 5
    # standard deviations is a bound a correct sampler would miss once in 10^6 seeds
    z_mean = (counts - rates).sum() / np.sqrt(rates.sum())
    z_var = ((counts - rates) ** 2 - rates).sum() / np.sqrt((2 * rates**2 + rates).sum())
    assert abs(z_mean) < 5 and abs(z_var) < 5
    # a wrong rate scale is caught by the same statistics (the test can fail)
    assert abs((counts - 1.1 * rates).sum() / np.sqrt(rates.sum())) > 5
    # the truth is the network's own trajectory on the recorded inputs
    traj = rl.simulate(model, d.truth["inputs"])
    assert np.allclose(d.truth["states"], np.asarray(traj.states), atol=1e-5)


def test_simulate_spikes_checks_its_arguments():
    task = rl.tasks.make("integrator")
    model = rl.CTRNN(1, 8, 1, key=jax.random.PRNGKey(0), dt=task.dt)
    with pytest.raises(ValueError, match="n_neurons"):
        simulate_spikes(model, task, key=jax.random.PRNGKey(0), n_neurons=0)
    with pytest.raises(ValueError, match="task is required"):
        simulate_spikes(model, key=jax.random.PRNGKey(0), n_neurons=3)
    with pytest.raises(TypeError, match="key"):
        simulate_spikes(model, task, key=3, n_neurons=3)
