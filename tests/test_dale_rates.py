"""Dale's law means what it says: units act on each other through non-negative rates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl
from rnnlab.models._activations import (
    ACTIVATIONS,
    DALE_DEFAULT_ACTIVATION,
    NONNEGATIVE_ACTIVATIONS,
    can_be_negative,
)


def test_activation_ranges_agree_with_the_functions():
    """The declared range of every named activation against its values on a wide grid."""
    x = jnp.concatenate([jnp.linspace(-30.0, 30.0, 6001), jnp.asarray([-1e4, 1e4])])
    for name, fn in ACTIVATIONS.items():
        negative = bool(jnp.any(fn(x) < 0))
        assert can_be_negative(name) == negative, name
        assert (name in NONNEGATIVE_ACTIVATIONS) == (not negative), name
    assert set(NONNEGATIVE_ACTIVATIONS) == {"relu", "softplus", "sigmoid", "retanh"}
    # a callable is probed
    assert can_be_negative(lambda z: z**3)
    assert not can_be_negative(lambda z: z**2)


@pytest.mark.parametrize("form", ["potential", "rate"])
@pytest.mark.parametrize("activation", [None, *NONNEGATIVE_ACTIVATIONS])
def test_dale_rates_are_nonnegative_on_random_inputs(form, activation):
    """Every allowed Dale activation: the rates of every unit at every step of trials driven
    by large random inputs are >= 0 (noise off: in the rate form noise can cross zero)."""
    kw = {} if activation is None else {"activation": activation}
    model = rl.CTRNN(3, 24, 2, key=jax.random.PRNGKey(0), dale=True, form=form, **kw)
    assert model.activation_name == (activation or DALE_DEFAULT_ACTIVATION)
    inputs = 5.0 * jax.random.normal(jax.random.PRNGKey(1), (8, 60, 3))
    states = model.unroll_batch(inputs, model.initial_state())
    rates = np.asarray(model.rates_all(states))
    assert rates.shape == (8, 60, 24)
    assert np.all(rates >= 0)
    assert np.any(rates > 0)  # not trivially zero
    # the input drive really takes pre-activations below zero (so the check can fail)
    if form == "potential":
        assert np.any(np.asarray(states) < 0)


def test_default_activation_without_dale_is_unchanged():
    assert rl.CTRNN(1, 4, 1, key=jax.random.PRNGKey(0)).activation_name == "tanh"


@pytest.mark.parametrize("activation", ["tanh", "linear", "leaky_relu"])
def test_dale_with_a_negative_activation_is_refused_by_name(activation):
    with pytest.raises(ValueError, match=rf"activation='{activation}'.*dale=True"):
        rl.CTRNN(1, 10, 1, key=jax.random.PRNGKey(0), dale=True, activation=activation)
    with pytest.raises(ValueError, match="allow_negative_rates=True"):
        rl.CTRNN(1, 10, 1, key=jax.random.PRNGKey(0), dale=True, activation=activation)


def test_dale_with_a_negative_callable_is_refused():
    def cube(z):
        return z**3

    with pytest.raises(ValueError, match="activation='cube'"):
        rl.CTRNN(1, 10, 1, key=jax.random.PRNGKey(0), dale=True, activation=cube)
    m = rl.CTRNN(1, 10, 1, key=jax.random.PRNGKey(0), dale=True, activation=jnp.square)
    assert m.dale


def test_opt_in_keeps_a_negative_activation_and_round_trips(tmp_path):
    m = rl.CTRNN(2, 10, 1, key=jax.random.PRNGKey(0), dale=True, activation="tanh",
                 allow_negative_rates=True)
    assert m.activation_name == "tanh" and m.allow_negative_rates
    rl.save(tmp_path / "m.safetensors", m)
    m2 = rl.load(tmp_path / "m.safetensors")
    assert m2.activation_name == "tanh" and m2.allow_negative_rates
    x = jax.random.normal(jax.random.PRNGKey(3), (20, 2))
    np.testing.assert_array_equal(np.asarray(m.unroll(x, m.initial_state())),
                                  np.asarray(m2.unroll(x, m2.initial_state())))
    # the rates do go negative: what the opt-in allows
    assert np.any(np.asarray(m.rates_all(m.unroll(3 * x, m.initial_state()))) < 0)


def test_config_of_an_older_dale_tanh_file_still_loads():
    """Files written before the rule (dale=True with tanh, no allow_negative_rates key)."""
    m = rl.CTRNN(2, 10, 1, key=jax.random.PRNGKey(0), dale=True, activation="tanh",
                 allow_negative_rates=True)
    cfg = m.config()
    del cfg["allow_negative_rates"]
    m2 = rl.CTRNN.from_config(cfg)
    assert m2.activation_name == "tanh" and m2.dale
    # a Dale model that obeys the rule writes no opt-in key (configs unchanged)
    assert "allow_negative_rates" not in rl.CTRNN(2, 10, 1, key=jax.random.PRNGKey(0),
                                                  dale=True).config()


def test_rate_form_refuses_a_negative_initial_state():
    h0 = -np.ones(10)
    with pytest.raises(ValueError, match="initial_state"):
        rl.CTRNN(1, 10, 1, key=jax.random.PRNGKey(0), dale=True, form="rate",
                 initial_state=h0)
    m = rl.CTRNN(1, 10, 1, key=jax.random.PRNGKey(0), dale=True, form="potential",
                 initial_state=h0)  # potential form: rates are relu(h0) >= 0 anyway
    assert np.all(np.asarray(m.rates(m.initial_state())) >= 0)


def test_cli_dale_picks_a_nonnegative_activation(tmp_path):
    import json

    from rnnlab.cli import main

    out = tmp_path / "run"
    rc = main(["train", "flipflop", "--dale", "--steps", "4", "--hidden", "12",
               "--batch-size", "4", "--eval-every", "2", "--out", str(out), "--no-progress",
               "-p", "n_steps=20"])
    assert rc == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["config"]["activation"] == DALE_DEFAULT_ACTIVATION
    assert cfg["model"]["config"]["dale"] is True
    assert cfg["cli"]["options"]["activation"] == DALE_DEFAULT_ACTIVATION
    rc = main(["train", "flipflop", "--dale", "--activation", "tanh", "--steps", "2",
               "--out", str(tmp_path / "r2"), "--no-progress", "-p", "n_steps=20"])
    assert rc == 2
    rc = main(["train", "flipflop", "--dale", "--activation", "tanh", "--allow-negative-rates",
               "--steps", "2", "--hidden", "8", "--batch-size", "4", "--eval-every", "2",
               "--out", str(tmp_path / "r3"), "--no-progress", "-p", "n_steps=20"])
    assert rc == 0
