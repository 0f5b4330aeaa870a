"""The 20 rules of Yang et al. 2019 and the multitask: hand-computed input/output code, loss
weights, Yang's performance measure, rule logic over many sampled trials, jit/vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlab import tasks as T
from rnnlab.tasks._yang19 import RULES, _spec, render, yang_performance

KEY = jax.random.PRNGKey(0)


def _bump(loc, n):
    pref = 2 * np.pi * np.arange(n) / n
    d = np.abs((loc - pref + np.pi) % (2 * np.pi) - np.pi) / (np.pi / 8)
    return 0.8 * np.exp(-(d**2) / 2)


def _fdgo_trial(respond=True):
    spec = _spec(fix_off=10, resp_on=10, end=18, locs=[jnp.pi / 2, jnp.pi / 2],
                 strengths=jnp.array([[1.0, 0.0], [0.0, 0.0]]), ons=[3, 0], offs=[18, 0],
                 respond=respond, target=jnp.pi / 2)
    return render(spec, 0, n_steps=20, n_ring=8, dt=20.0, grace=100.0, input_noise=0.0,
                  noise=None)


def test_render_hand_computed_fdgo():
    tr = _fdgo_trial()
    x, y, m = np.asarray(tr.inputs), np.asarray(tr.targets), np.asarray(tr.mask)
    assert x.shape == (20, 1 + 16 + 20) and y.shape == (20, 9)
    np.testing.assert_array_equal(x[:, 0], np.r_[np.ones(10), np.zeros(10)])
    bump = _bump(np.pi / 2, 8)
    assert bump[2] == pytest.approx(0.8) and bump[1] == pytest.approx(0.8 * np.exp(-2))
    np.testing.assert_allclose(x[3:18, 1:9], np.tile(bump, (15, 1)), atol=1e-6)
    assert np.all(x[:3, 1:17] == 0) and np.all(x[:, 9:17] == 0)  # modality 2 silent
    np.testing.assert_array_equal(x[:, 17], np.r_[np.ones(18), np.zeros(2)])  # rule 0
    assert np.all(x[:, 18:] == 0)
    np.testing.assert_allclose(y[:, 0], np.r_[np.full(10, 0.8), np.full(10, 0.05)], atol=1e-7)
    np.testing.assert_allclose(y[:10, 1:], 0.05, atol=1e-7)
    np.testing.assert_allclose(y[10:, 1:], np.tile(0.05 + bump, (10, 1)), atol=1e-6)
    # loss weights: 0 for the first 100 ms, 1 until the response, 0 for the 100 ms grace
    # period, 5 after, fixation output doubled, 0 on padding
    # (Yang's add_c_mask: the first 100 ms are never checked)
    w = np.r_[np.zeros(5), np.ones(5), np.zeros(5), np.full(3, 5.0), np.zeros(2)]
    np.testing.assert_array_equal(m[:, 1], w)
    np.testing.assert_array_equal(m[:, 0], 2 * w)


def test_yang_performance_rules():
    tr = jax.tree.map(lambda a: a[None], _fdgo_trial())
    assert float(yang_performance(tr.targets, tr)[0]) == 1.0
    still_fixating = tr.targets.at[0, 17, 0].set(0.9)
    assert float(yang_performance(still_fixating, tr)[0]) == 0.0
    off = tr.targets.at[0, 17, 1:].set(jnp.asarray(0.05 + _bump(np.pi / 2 + 0.3 * np.pi, 8)))
    assert float(yang_performance(off, tr)[0]) == 0.0  # 0.3 pi > 0.2 pi away
    near = tr.targets.at[0, 17, 1:].set(jnp.asarray(0.05 + _bump(np.pi / 2 + 0.1 * np.pi, 8)))
    assert float(yang_performance(near, tr)[0]) == 1.0
    nogo = jax.tree.map(lambda a: a[None], _fdgo_trial(respond=False))
    np.testing.assert_allclose(np.asarray(nogo.targets[0, :, 0]), 0.8)
    assert float(yang_performance(nogo.targets, nogo)[0]) == 1.0
    assert float(yang_performance(nogo.targets.at[0, 17, 0].set(0.1), nogo)[0]) == 0.0


def test_all_rules_registered_with_yang_sizes():
    for rule in RULES:
        task = T.make(f"yang19.{rule}")
        assert task.rule == rule
        assert (task.n_in, task.n_out) == (85, 33)
        assert T.registered_name(task) == f"yang19.{rule}"
    assert len(RULES) == 20
    assert T.make("yang19.delaydm1").n_steps == (600 + 600 + 1600 + 600 + 300 + 500) // 20
    assert T.make("yang19").n_steps == max(T.make(f"yang19.{r}").n_steps for r in RULES)


def test_single_rule_sampling_jit_vmap_reproducible():
    task = T.make("yang19.contextdm1")
    run = jax.jit(lambda k: task.sample_batch(k, 4))
    a, b = run(KEY), run(KEY)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert a.inputs.shape == (4, task.n_steps, 85) and a.inputs.dtype == jnp.float32
    assert np.all(np.asarray(a.inputs[:, :, 65 + RULES.index("contextdm1")])[
        np.arange(task.n_steps)[None] < np.asarray(a.conditions["trial_end"])[:, None]] != 0)


@pytest.fixture(scope="module")
def mixed():
    task = T.Yang19Multitask(input_noise=0.0)

    @jax.jit
    def run(k):
        tr = task.sample_batch(k, 1000)
        return tr, task.trial_scores(tr.targets, tr), task.evaluate(tr.targets, tr)

    tr, scores, ev = run(KEY)
    conds = {k: np.asarray(v) for k, v in tr.conditions.items()}
    return task, tr, np.asarray(scores), {k: float(v) for k, v in ev.items()}, conds


def test_multitask_rule_logic(mixed):
    task, tr, scores, ev, c = mixed
    rule = c["rule"]
    assert set(np.unique(rule)) == set(range(20))
    assert np.all(scores == 1.0) and ev["accuracy"] == 1.0
    assert all(ev[f"accuracy/{r}"] == 1.0 for r in RULES)
    # the response always lasts 500 ms = 25 steps; trials fit in the padded length
    np.testing.assert_array_equal(c["trial_end"] - c["response_start"], 25)
    assert c["trial_end"].max() <= task.n_steps
    name = np.array(RULES)[rule]

    def circ(a, b):
        return np.abs((a - b + np.pi) % (2 * np.pi) - np.pi)

    # fixation input lasts the whole trial in the reaction-time and match tasks
    fix_all = np.isin(name, ["reactgo", "reactanti", "dmsgo", "dmsnogo", "dmcgo", "dmcnogo"])
    np.testing.assert_array_equal(c["fix_off"][fix_all], c["trial_end"][fix_all])
    np.testing.assert_array_equal(c["fix_off"][~fix_all], c["response_start"][~fix_all])
    go = np.isin(name, ["fdgo", "reactgo", "delaygo"])
    anti = np.isin(name, ["fdanti", "reactanti", "delayanti"])
    assert np.all(circ(c["target"][go], c["stim1_loc"][go]) < 1e-5)
    assert np.all(circ(c["target"][anti], c["stim1_loc"][anti] + np.pi) < 1e-5)
    dm = np.isin(name, RULES[6:16])  # dm1 ... multidelaydm
    to1 = c["coherence"][dm] > 0
    assert np.all(circ(c["target"][dm][to1], c["stim1_loc"][dm][to1]) < 1e-5)
    assert np.all(circ(c["target"][dm][~to1], c["stim2_loc"][dm][~to1]) < 1e-5)
    # the two dm stimuli are 90 to 270 degrees apart
    d = circ(c["stim1_loc"][dm], c["stim2_loc"][dm])
    assert d.min() >= 0.5 * np.pi - 1e-5
    # match tasks: go / no-go logic and what "match" means
    for r, want in (("dmsgo", 1), ("dmsnogo", 0), ("dmcgo", 1), ("dmcnogo", 0)):
        sel = name == r
        np.testing.assert_array_equal(c["respond"][sel], c["match"][sel] == want)
    dms = np.isin(name, ["dmsgo", "dmsnogo"])
    same = circ(c["stim1_loc"][dms], c["stim2_loc"][dms]) < 1e-5
    np.testing.assert_array_equal(same, c["match"][dms] == 1)
    dmc = np.isin(name, ["dmcgo", "dmcnogo"])
    cat = (c["stim1_loc"][dmc] >= np.pi) == (c["stim2_loc"][dmc] >= np.pi)
    np.testing.assert_array_equal(cat, c["match"][dmc] == 1)
    assert np.all(c["respond"][~np.isin(name, ["dmsgo", "dmsnogo", "dmcgo", "dmcnogo"])] == 1)


def test_multitask_inputs_follow_rule_and_modality(mixed):
    task, tr, _, _, c = mixed
    x = np.asarray(tr.inputs)
    t = np.arange(task.n_steps)
    for i in range(0, 1000, 37):
        live = t < c["trial_end"][i]
        rule_block = x[i, :, 65:]
        np.testing.assert_array_equal(rule_block[live].argmax(1), c["rule"][i])
        np.testing.assert_array_equal(rule_block[live].sum(1), 1.0)
        assert np.all(x[i, ~live] == 0)
        r = RULES[c["rule"][i]]
        if r in ("dm1", "delaydm1"):
            assert np.all(x[i, :, 33:65] == 0) and x[i, :, 1:33].max() > 0.5
        if r in ("dm2", "delaydm2"):
            assert np.all(x[i, :, 1:33] == 0) and x[i, :, 33:65].max() > 0.5


def test_multitask_subset_and_bad_parameters():
    sub = T.Yang19Multitask(rules=("fdgo", "dm1"), rule_probabilities=(1.0, 0.0))
    tr = jax.jit(lambda k: sub.sample_batch(k, 16))(KEY)
    np.testing.assert_array_equal(np.asarray(tr.conditions["rule"]), RULES.index("fdgo"))
    assert sub.n_steps == max(T.make("yang19.fdgo").n_steps, T.make("yang19.dm1").n_steps)
    with pytest.raises(ValueError, match="rules"):
        T.Yang19Multitask(rules=("fdgo", "nonsense"))
    with pytest.raises(ValueError, match="rule_probabilities"):
        T.Yang19Multitask(rules=("fdgo", "dm1"), rule_probabilities=(1.0,))
    with pytest.raises(ValueError, match="n_ring"):
        T.make("yang19.fdgo", n_ring=2)
    with pytest.raises(ValueError, match="coherences"):
        T.make("yang19.dm1", coherences=(-0.5,))
    with pytest.raises(ValueError, match="input_noise"):
        T.make("yang19.dm1", input_noise=-1.0)


# ------------------------------------------------------------------ Yang's code, rule by rule
#
# The stimulus strengths, epoch lengths and match distances below are those of Yang's
# task.py (gyyang/multitask): strengths mean +- c with mean ~ U(0.8, 1.2) (contextdm_genstim),
# delayed dm epochs stim1 on {200, 400, 600} ms, stim1 and stim2 {200, 400, 600} ms, delay1
# {200, 400, 800, 1600} ms, delay2 U(100, 300) ms; multisensory stimuli split s (1 +- d/2)
# with |d| ~ U(0.2, 0.8); a non-match test 20 to 340 degrees from the sample.


def _sample(name, n=300, **kw):
    task = T.make(name, input_noise=0.0, **kw)
    tr = jax.jit(lambda k: task.sample_batch(k, n))(jax.random.PRNGKey(3))
    return task, np.asarray(tr.inputs), np.asarray(tr.targets), np.asarray(tr.mask), {
        k: np.asarray(v) for k, v in tr.conditions.items()}


def _strength(ring, loc):
    """The strength s of a noise-free ring input s * bump(loc): read at the unit nearest loc."""
    n = ring.shape[-1]
    k = int(np.round(loc / (2 * np.pi / n))) % n
    return ring[k] / _bump(loc, n)[k]


def _epochs(active):
    """(on, off) steps of each run of True in a boolean [T] vector."""
    d = np.diff(np.r_[0, active.astype(int), 0])
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


@pytest.mark.parametrize("rule", ["delaydm1", "delaydm2"])
def test_delaydm_epochs_strengths_and_target_follow_yang(rule):
    task, x, y, m, c = _sample(f"yang19.{rule}")
    mod = 0 if rule == "delaydm1" else 1
    ring = x[:, :, 1 + 32 * mod: 33 + 32 * mod]
    assert np.all(x[:, :, 1 + 32 * (1 - mod): 33 + 32 * (1 - mod)] == 0)
    assert task.n_steps == (600 + 600 + 1600 + 600 + 300 + 500) // 20
    diffs, delay2 = set(), []
    for i in range(len(x)):
        (on1, off1), (on2, off2) = _epochs(ring[i].max(1) > 1e-3)
        assert on1 in (10, 20, 30) and off1 - on1 in (10, 20, 30)
        assert on2 - off1 in (10, 20, 40, 80) and off2 - on2 in (10, 20, 30)
        fix_off = c["fix_off"][i]
        delay2.append(fix_off - off2)
        np.testing.assert_array_equal(x[i, :fix_off, 0], 1.0)
        assert np.all(x[i, fix_off:, 0] == 0)
        assert c["trial_end"][i] - fix_off == 25 and c["response_start"][i] == fix_off
        s1 = _strength(ring[i, on1], c["stim1_loc"][i])
        s2 = _strength(ring[i, on2], c["stim2_loc"][i])
        # the input during each stimulus is exactly s * bump(loc)
        np.testing.assert_allclose(ring[i, on1:off1], np.tile(s1 * _bump(c["stim1_loc"][i], 32),
                                                              (off1 - on1, 1)), atol=1e-5)
        np.testing.assert_allclose(ring[i, on2:off2], np.tile(s2 * _bump(c["stim2_loc"][i], 32),
                                                              (off2 - on2, 1)), atol=1e-5)
        assert 0.8 - 0.32 - 1e-4 <= min(s1, s2) and max(s1, s2) <= 1.2 + 0.32 + 1e-4
        assert s1 - s2 == pytest.approx(2 * c["coherence"][i], abs=1e-4)
        diffs.add(round(abs(s1 - s2), 2))
        want = c["stim1_loc"][i] if s1 > s2 else c["stim2_loc"][i]
        np.testing.assert_allclose(y[i, fix_off:c["trial_end"][i], 1:],
                                   np.tile(0.05 + _bump(want, 32), (25, 1)), atol=1e-5)
    assert diffs == {0.16, 0.32, 0.64}  # Yang's coherences 0.08, 0.16, 0.32, doubled
    assert min(delay2) == 5 and max(delay2) == 15 and len(set(delay2)) == 11


@pytest.mark.parametrize("rule,attend", [("contextdelaydm1", 0), ("contextdelaydm2", 1),
                                         ("multidelaydm", None), ("multidm", None),
                                         ("contextdm1", 0), ("contextdm2", 1)])
def test_two_modality_dm_rules_choose_by_the_attended_or_summed_strength(rule, attend):
    task, x, y, m, c = _sample(f"yang19.{rule}")
    conflicts = 0
    for i in range(len(x)):
        act = np.abs(x[i, :, 1:65]).max(1) > 1e-3
        ep = _epochs(act)
        on1, on2 = (ep[0][0], ep[0][0]) if "delay" not in rule else (ep[0][0], ep[1][0])
        s = np.array([[_strength(x[i, on, 1 + 32 * k: 33 + 32 * k], c[f"stim{j + 1}_loc"][i])
                       if "delay" in rule else np.nan for k in range(2)]
                      for j, on in enumerate((on1, on2))])
        if "delay" not in rule:  # both stimuli at once: solve the 2 x 2 bump mixture per ring
            b = np.stack([_bump(c["stim1_loc"][i], 32), _bump(c["stim2_loc"][i], 32)], 1)
            for k in range(2):
                s[:, k] = np.linalg.lstsq(b, x[i, on1, 1 + 32 * k: 33 + 32 * k], rcond=None)[0]
        if attend is None:
            first = s[0].sum() > s[1].sum()
            conflicts += (s[0, 0] > s[1, 0]) != first or (s[0, 1] > s[1, 1]) != first
            # each stimulus's modality strengths are s (1 + d/2), s (1 - d/2), |d| in [.2, .8]
            for j in range(2):
                tot = s[j].sum() / 2
                assert 0.2 - 1e-3 <= abs(s[j, 0] - s[j, 1]) / tot <= 0.8 + 1e-3
        else:
            first = s[0, attend] > s[1, attend]
            conflicts += (s[0, 1 - attend] > s[1, 1 - attend]) != first
        want = c["stim1_loc"][i] if first else c["stim2_loc"][i]
        assert abs((c["target"][i] - want + np.pi) % (2 * np.pi) - np.pi) < 1e-5
    # the unattended (or a single) modality points the other way on a good share of trials
    assert conflicts > 0.15 * len(x)


@pytest.mark.parametrize("rule", ["dmsgo", "dmsnogo"])
def test_dms_nonmatch_distance_and_response_follow_yang(rule):
    task, x, y, m, c = _sample(f"yang19.{rule}", n=2000)
    d = np.abs((c["stim1_loc"] - c["stim2_loc"] + np.pi) % (2 * np.pi) - np.pi)
    match = c["match"] == 1
    assert np.all(d[match] < 1e-5)
    assert d[~match].min() >= np.pi / 9 - 1e-5 and d[~match].min() < np.pi / 9 + 0.05
    assert np.mean(d[~match] < np.pi / 2) == pytest.approx(7 / 16, abs=0.08)  # U(20, 340) deg
    respond = ~match if rule == "dmsnogo" else match
    np.testing.assert_array_equal(c["respond"] == 1, respond)
    for i in range(40):
        end, r0 = c["trial_end"][i], c["response_start"][i]
        np.testing.assert_array_equal(x[i, :end, 0], 1.0)  # fixation input never goes off
        ring = 0.05 + (_bump(c["stim2_loc"][i], 32) if respond[i] else np.zeros(32))
        np.testing.assert_allclose(y[i, r0:end, 1:], np.tile(ring, (end - r0, 1)), atol=1e-5)
        np.testing.assert_allclose(y[i, r0:end, 0], 0.05 if respond[i] else 0.8, atol=1e-6)
        np.testing.assert_array_equal(m[i, :5], 0.0)
        np.testing.assert_array_equal(m[i, 5:r0, 1], 1.0)
        np.testing.assert_array_equal(m[i, r0 + 5:end, 1], 5.0)
