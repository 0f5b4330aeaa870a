"""The 20 rules of Yang et al. 2019 ("Task representations in neural networks trained to
perform many cognitive tasks", Nat. Neurosci.), jit-able, and their multitask mixture.

Shared layout (Yang's code, ``dt`` = 20 ms, ``n_ring`` = 32):

- Inputs (1 + 2 n_ring + 20 = 85): a fixation input (1 while the subject must fixate), two
  rings of ``n_ring`` units (modality 1 and 2) with preferred directions 2 pi k / n_ring, and
  a one-hot rule input (always on; index = the rule's position in `RULES`, so networks trained
  on single rules and on the multitask read the same channels). A stimulus at direction
  theta with strength s drives ring unit k by ``s * 0.8 * exp(-d_k^2 / 2)``, with d_k the
  circular distance between theta and unit k's preferred direction in units of pi/8.
  Gaussian noise of std ``input_noise`` (Yang: 0.01 * sqrt(2 / alpha) = 0.0316 for
  alpha = 0.2) on every input during the trial.
- Outputs (1 + n_ring = 33): a fixation output, 0.8 while fixating and 0.05 after, and a
  response ring at 0.05 plus ``0.8 * exp(-d_k^2 / 2)`` around the response direction during the
  response epoch (no bump on trials that must withhold the response).
- Loss weights (in ``mask``): 0 in the first 100 ms of the trial ("never check the first
  100 ms"), 1 until the response epoch, 0 in its first ``grace`` ms (100), 5 after; the
  fixation output's weights are doubled; 0 on padding (trials are padded to the longest
  possible trial of the rule).
- Stimuli follow Yang's ``task.py``: two-stimulus strengths are mean +- c with
  mean ~ U(0.8, 1.2) and the coherence c drawn from ``coherences`` (dm rules) or
  ``delay_coherences`` (delayed dm rules) with a random sign; in the multisensory rules each
  stimulus's total strength s is split into s (1 + d/2) in modality 1 and s (1 - d/2) in
  modality 2, |d| ~ U(0.2, 0.8) with a random sign, so that only the sum over modalities
  decides; the two dm stimuli are 90 to 270 degrees apart; a non-match test in dmsgo/dmsnogo
  lies 20 to 340 degrees from the sample; dmcgo/dmcnogo use Yang's 10 locations, category =
  which half of the ring.
- Accuracy per trial (Yang's ``get_perf``) at the trial's last step: if the trial needs a
  response, the fixation output must be <= 0.5 and the population-vector direction of the
  response ring within 0.2 pi of the target; else the fixation output must stay > 0.5.
"""

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._validate import nonnegative_number, positive_int, positive_number
from ._base import Trial, register
from ._common import (
    ScoredTask,
    check_float_tuple,
    circular_distance,
    float_tuple,
    max_steps,
    sample_steps,
)

RULES = (
    "fdgo", "reactgo", "delaygo", "fdanti", "reactanti", "delayanti",
    "dm1", "dm2", "contextdm1", "contextdm2", "multidm",
    "delaydm1", "delaydm2", "contextdelaydm1", "contextdelaydm2", "multidelaydm",
    "dmsgo", "dmsnogo", "dmcgo", "dmcnogo",
)

_DESCRIPTIONS = {
    "fdgo": "respond toward the stimulus when the fixation cue goes off",
    "reactgo": "respond toward the stimulus as soon as it appears",
    "delaygo": "remember the stimulus direction through a delay, respond at fixation offset",
    "fdanti": "respond opposite to the stimulus when the fixation cue goes off",
    "reactanti": "respond opposite to the stimulus as soon as it appears",
    "delayanti": "remember the stimulus, respond opposite at fixation offset",
    "dm1": "choose the stronger of two stimuli in modality 1",
    "dm2": "choose the stronger of two stimuli in modality 2",
    "contextdm1": "two modalities shown; choose the stronger stimulus in modality 1",
    "contextdm2": "two modalities shown; choose the stronger stimulus in modality 2",
    "multidm": "choose the stimulus stronger summed over both modalities",
    "delaydm1": "two stimuli in sequence (modality 1); choose the stronger after a delay",
    "delaydm2": "two stimuli in sequence (modality 2); choose the stronger after a delay",
    "contextdelaydm1": "sequential stimuli in both modalities; choose by modality 1",
    "contextdelaydm2": "sequential stimuli in both modalities; choose by modality 2",
    "multidelaydm": "sequential stimuli in both modalities; choose by the summed strength",
    "dmsgo": "delayed match to sample (direction): respond to the test if it matches",
    "dmsnogo": "delayed match to sample (direction): respond to the test if it does not match",
    "dmcgo": "delayed match to category: respond to the test if the category matches",
    "dmcnogo": "delayed match to category: respond to the test if the category differs",
}

# Epoch durations (ms) per rule family, as duration specs (Yang et al. 2019, Methods).
_TIMING = {
    "fd": {"stim_on": ("uniform", 300.0, 700.0), "fix": ("uniform", 500.0, 1500.0),
           "resp": 500.0},
    "react": {"stim_on": ("uniform", 500.0, 2500.0), "resp": 500.0},
    "delay": {"stim_on": ("choice", 300.0, 500.0, 700.0),
              "stim_dur": ("choice", 200.0, 400.0, 600.0),
              "delay": ("choice", 200.0, 400.0, 800.0, 1600.0), "resp": 500.0},
    "dm": {"stim_on": ("choice", 200.0, 400.0, 600.0),
           "stim_dur": ("choice", 400.0, 800.0, 1600.0), "resp": 500.0},
    "delaydm": {"stim_on": ("choice", 200.0, 400.0, 600.0),
                "stim_dur": ("choice", 200.0, 400.0, 600.0),
                "delay1": ("choice", 200.0, 400.0, 800.0, 1600.0),
                "stim2_dur": ("choice", 200.0, 400.0, 600.0),
                "delay2": ("uniform", 100.0, 300.0), "resp": 500.0},
    "dms": {"stim_on": ("choice", 200.0, 400.0, 600.0), "stim_dur": 300.0,
            "delay": ("choice", 200.0, 400.0, 800.0, 1600.0), "resp": 500.0},
}


def _family(rule: str) -> str:
    if rule.startswith("fd"):
        return "fd"
    if rule.startswith("react"):
        return "react"
    if rule in ("delaygo", "delayanti"):
        return "delay"
    if rule in ("dm1", "dm2", "contextdm1", "contextdm2", "multidm"):
        return "dm"
    if "delaydm" in rule:
        return "delaydm"
    return "dms"


def _n_steps(rule: str, dt: float) -> int:
    t = _TIMING[_family(rule)]
    return sum(max_steps(spec, dt) for spec in t.values())


# ------------------------------------------------------------------------------ trial specs
#
# Each rule is a pure function (key, params) -> spec, a dict of scalars with the same
# structure for every rule (so a multitask can `lax.switch` between rules):
#   fix_off     step at which the fixation input goes off (= end when it never does)
#   resp_on     step at which the response epoch starts
#   end         trial length in steps
#   locs [2], strengths [2 stimuli, 2 modalities], ons [2], offs [2]  (the two stimuli)
#   respond     whether a response is required; target  the response direction
#   coherence   signed evidence for stimulus 1 (dm rules; 0 otherwise); match (dms/dmc)


def _steps(spec, key, dt):
    return sample_steps(spec, key, dt)


def _spec(fix_off, resp_on, end, locs, strengths, ons, offs, respond, target, coherence=0.0,
          match=-1, modality=-1):
    i32 = lambda x: jnp.asarray(x, jnp.int32)  # noqa: E731
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return {
        "fix_off": i32(fix_off), "resp_on": i32(resp_on), "end": i32(end),
        "locs": f32(jnp.stack(locs)), "strengths": f32(strengths),
        "ons": i32(jnp.stack([i32(o) for o in ons])),
        "offs": i32(jnp.stack([i32(o) for o in offs])),
        "respond": jnp.asarray(respond, bool), "target": f32(target % (2 * jnp.pi)),
        "coherence": f32(coherence), "match": i32(match), "modality": i32(modality),
    }


def _go(rule, key, p):
    dt, t = p["dt"], _TIMING[_family(rule)]
    ks = jax.random.split(key, 6)
    loc = jax.random.uniform(ks[0], (), maxval=2 * jnp.pi)
    mod = jax.random.randint(ks[1], (), 0, 2)
    strengths = jnp.stack([jax.nn.one_hot(mod, 2), jnp.zeros(2)])
    resp = _steps(t["resp"], ks[2], dt)
    if rule.startswith("fd"):
        on = _steps(t["stim_on"], ks[3], dt)
        fix_off = on + _steps(t["fix"], ks[4], dt)
        end = fix_off + resp
        off, resp_on = end, fix_off
    elif rule.startswith("react"):
        on = _steps(t["stim_on"], ks[3], dt)
        end = on + resp
        off, fix_off, resp_on = end, end, on
    else:  # delay
        on = _steps(t["stim_on"], ks[3], dt)
        off = on + _steps(t["stim_dur"], ks[4], dt)
        fix_off = off + _steps(t["delay"], ks[5], dt)
        end = fix_off + resp
        resp_on = fix_off
    target = loc + (jnp.pi if rule.endswith("anti") else 0.0)
    return _spec(fix_off, resp_on, end, [loc, loc], strengths, [on, 0], [off, 0], True,
                 target, modality=mod)


def _two_locs(key):
    k1, k2, k3 = jax.random.split(key, 3)
    loc1 = jax.random.uniform(k1, (), maxval=2 * jnp.pi)
    dist = jax.random.uniform(k2, (), minval=0.5 * jnp.pi, maxval=1.5 * jnp.pi)
    sign = jnp.where(jax.random.bernoulli(k3), 1.0, -1.0)
    return loc1, (loc1 + sign * dist) % (2 * jnp.pi)


def _pair_strengths(key, cohs):
    """(s1, s2, signed coherence c) with s1 = mean + c, s2 = mean - c, mean ~ U(0.8, 1.2)
    and |c| drawn from ``cohs`` (Yang's ``contextdm_genstim``: the strengths differ by 2|c|)."""
    k1, k2, k3 = jax.random.split(key, 3)
    mean = jax.random.uniform(k1, (), minval=0.8, maxval=1.2)
    c = jnp.asarray(cohs)[jax.random.randint(k2, (), 0, len(cohs))]
    c = c * jnp.where(jax.random.bernoulli(k3), 1.0, -1.0)
    return mean + c, mean - c, c


def _split_modalities(key, s):
    """Yang's multisensory split of a total strength ``s`` into (modality 1, modality 2):
    s (1 + d/2) and s (1 - d/2) with |d| ~ U(0.2, 0.8) and a random sign, so each modality
    alone can favour the wrong stimulus and only their sum decides."""
    k1, k2 = jax.random.split(key)
    d = s * jax.random.uniform(k1, (), minval=0.2, maxval=0.8)
    d = d * jnp.where(jax.random.bernoulli(k2), 1.0, -1.0)
    return s + d / 2, s - d / 2


def _dm(rule, key, p):
    dt, fam = p["dt"], _family(rule)
    t = _TIMING[fam]
    ks = jax.random.split(key, 12)
    loc1, loc2 = _two_locs(ks[0])
    cohs = p["coherences"] if fam == "dm" else p["delay_coherences"]
    a1, a2, ca = _pair_strengths(ks[1], cohs)  # modality 1
    b1, b2, cb = _pair_strengths(ks[2], cohs)  # modality 2
    if rule in ("dm1", "delaydm1"):
        s = jnp.array([[a1, 0.0], [a2, 0.0]])
        choose1, coh = a1 > a2, ca
    elif rule in ("dm2", "delaydm2"):
        s = jnp.array([[0.0, b1], [0.0, b2]])
        choose1, coh = b1 > b2, cb
    elif rule in ("contextdm1", "contextdelaydm1"):
        s = jnp.array([[a1, b1], [a2, b2]])
        choose1, coh = a1 > a2, ca
    elif rule in ("contextdm2", "contextdelaydm2"):
        s = jnp.array([[a1, b1], [a2, b2]])
        choose1, coh = b1 > b2, cb
    else:  # multidm / multidelaydm: each stimulus's total strength split over the modalities
        s1m1, s1m2 = _split_modalities(ks[3], a1)
        s2m1, s2m2 = _split_modalities(ks[4], a2)
        s = jnp.array([[s1m1, s1m2], [s2m1, s2m2]])
        choose1, coh = a1 > a2, ca
    on = _steps(t["stim_on"], ks[6], dt)
    resp = _steps(t["resp"], ks[7], dt)
    if fam == "dm":
        fix_off = on + _steps(t["stim_dur"], ks[8], dt)
        ons, offs = [on, on], [fix_off, fix_off]
    else:
        off1 = on + _steps(t["stim_dur"], ks[8], dt)
        on2 = off1 + _steps(t["delay1"], ks[9], dt)
        off2 = on2 + _steps(t["stim2_dur"], ks[10], dt)
        fix_off = off2 + _steps(t["delay2"], ks[11], dt)
        ons, offs = [on, on2], [off1, off2]
    end = fix_off + resp
    target = jnp.where(choose1, loc1, loc2)
    return _spec(fix_off, fix_off, end, [loc1, loc2], s, ons, offs, True, target,
                 coherence=coh)


_DMC_LOCS = np.array([0.1, 0.3, 0.5, 0.7, 0.9, 1.1, 1.3, 1.5, 1.7, 1.9]) * np.pi


def _dms(rule, key, p):
    dt, t = p["dt"], _TIMING["dms"]
    ks = jax.random.split(key, 9)
    match = jax.random.bernoulli(ks[0])
    if rule.startswith("dms"):
        # Yang's code: a non-match test lies 20 to 340 degrees from the sample
        loc1 = jax.random.uniform(ks[1], (), maxval=2 * jnp.pi)
        shift = jax.random.uniform(ks[2], (), minval=jnp.pi / 9, maxval=17 * jnp.pi / 9)
        loc2 = jnp.where(match, loc1, (loc1 + shift) % (2 * jnp.pi))
    else:  # category: the lower half of the ring [0, pi) vs the upper half
        locs = jnp.asarray(_DMC_LOCS)
        loc1 = locs[jax.random.randint(ks[1], (), 0, 10)]
        cat1 = (loc1 >= jnp.pi).astype(jnp.int32)
        cat2 = jnp.where(match, cat1, 1 - cat1)
        loc2 = locs[jax.random.randint(ks[2], (), 0, 5) + 5 * cat2]
    mods = jax.random.randint(ks[3], (2,), 0, 2)
    s = jax.nn.one_hot(mods, 2)
    on = _steps(t["stim_on"], ks[4], dt)
    off1 = on + _steps(t["stim_dur"], ks[5], dt)
    on2 = off1 + _steps(t["delay"], ks[6], dt)
    end = on2 + _steps(t["resp"], ks[7], dt)
    respond = ~match if rule.endswith("nogo") else match
    return _spec(end, on2, end, [loc1, loc2], s, [on, on2], [off1, end], respond, loc2,
                 match=match.astype(jnp.int32))


def rule_spec(rule: str, key: PRNGKeyArray, params: dict) -> dict:
    """The spec (timings, stimuli, response) of one trial of ``rule``; see the module."""
    fam = _family(rule)
    if fam in ("fd", "react", "delay"):
        return _go(rule, key, params)
    if fam in ("dm", "delaydm"):
        return _dm(rule, key, params)
    return _dms(rule, key, params)


# ------------------------------------------------------------------------------ rendering


# Yang's ``add_c_mask``: "never check the first 100 ms" (loss weight 0 there).
_UNCHECKED_MS = 100.0


def _bump(loc, n_ring):
    pref = jnp.arange(n_ring) * (2 * jnp.pi / n_ring)
    d = circular_distance(loc, pref) / (jnp.pi / 8)
    return 0.8 * jnp.exp(-(d**2) / 2)


def render(spec: dict, rule_index, *, n_steps: int, n_ring: int, dt: float, grace: float,
           input_noise: float, noise: Array | None) -> Trial:
    """Turn a rule spec into a `Trial` of ``n_steps`` steps (Yang's input/output code)."""
    t = jnp.arange(n_steps)
    in_trial = t < spec["end"]
    fix_in = (t < spec["fix_off"]).astype(jnp.float32)
    rings = jnp.zeros((n_steps, 2, n_ring))
    for i in range(2):
        on = ((t >= spec["ons"][i]) & (t < spec["offs"][i])).astype(jnp.float32)
        rings = rings + on[:, None, None] * (
            spec["strengths"][i][:, None] * _bump(spec["locs"][i], n_ring)[None, :]
        )[None]
    rule_in = jnp.broadcast_to(jax.nn.one_hot(rule_index, len(RULES)), (n_steps, len(RULES)))
    inputs = jnp.concatenate([fix_in[:, None], rings.reshape(n_steps, 2 * n_ring), rule_in], 1)
    if noise is not None:
        inputs = inputs + input_noise * noise
    inputs = inputs * in_trial[:, None]

    responding = (t >= spec["resp_on"]) & spec["respond"]
    fix_out = jnp.where(responding, 0.05, 0.8)
    ring_out = 0.05 + responding[:, None] * _bump(spec["target"], n_ring)[None, :]
    targets = jnp.concatenate([fix_out[:, None], ring_out], axis=1)
    check_on = spec["resp_on"] + int(round(grace / dt))
    w = jnp.where(t < spec["resp_on"], 1.0, jnp.where(t < check_on, 0.0, 5.0)) * in_trial
    w = jnp.where(t < int(round(_UNCHECKED_MS / dt)), 0.0, w)
    mask = jnp.broadcast_to(w[:, None], targets.shape).at[:, 0].multiply(2.0)
    cond = {
        "rule": jnp.asarray(rule_index, jnp.int32),
        "target": spec["target"], "respond": spec["respond"].astype(jnp.int32),
        "stim1_loc": spec["locs"][0], "stim2_loc": spec["locs"][1],
        "coherence": spec["coherence"], "match": spec["match"], "modality": spec["modality"],
        "fix_off": spec["fix_off"], "response_start": spec["resp_on"],
        "trial_end": spec["end"],
    }
    return Trial(inputs.astype(jnp.float32), targets.astype(jnp.float32),
                 mask.astype(jnp.float32), cond)


def popvec(ring: Array) -> Array:
    """Population-vector direction [...] of ring activity [..., n_ring] (in [0, 2 pi))."""
    n = ring.shape[-1]
    pref = jnp.arange(n) * (2 * jnp.pi / n)
    return jnp.arctan2(ring @ jnp.sin(pref), ring @ jnp.cos(pref)) % (2 * jnp.pi)


def yang_performance(outputs: Array, trial: Trial) -> Array:
    """Yang's ``get_perf`` per trial at each trial's last step: outputs [..., T, 1 + n_ring]."""
    last = jnp.maximum(trial.conditions["trial_end"] - 1, 0)
    y = jnp.take_along_axis(outputs, last[..., None, None], axis=-2)[..., 0, :]
    fixating = y[..., 0] > 0.5
    close = circular_distance(popvec(y[..., 1:]), trial.conditions["target"]) < 0.2 * jnp.pi
    respond = trial.conditions["respond"] > 0
    ok = jnp.where(respond, (~fixating) & close, fixating)
    return ok.astype(jnp.float32)


# ------------------------------------------------------------------------------ tasks


class _Yang19Common(ScoredTask):
    n_ring: eqx.AbstractVar[int]
    dt: eqx.AbstractVar[float]
    input_noise: eqx.AbstractVar[float]
    grace: eqx.AbstractVar[float]
    coherences: eqx.AbstractVar[tuple]
    delay_coherences: eqx.AbstractVar[tuple]

    target_accuracy = 0.9

    def _check(self):
        positive_int("n_ring", self.n_ring)
        if self.n_ring < 4:
            raise ValueError(f"n_ring must be at least 4, got {self.n_ring}")
        positive_number("dt", self.dt)
        nonnegative_number("input_noise", self.input_noise)
        nonnegative_number("grace", self.grace)
        check_float_tuple("coherences", self.coherences, 0.0, 2.0)
        check_float_tuple("delay_coherences", self.delay_coherences, 0.0, 2.0)

    @property
    def n_in(self) -> int:
        return 1 + 2 * self.n_ring + len(RULES)

    @property
    def n_out(self) -> int:
        return 1 + self.n_ring

    def _params(self) -> dict:
        return {"dt": self.dt, "coherences": self.coherences,
                "delay_coherences": self.delay_coherences}

    def _render(self, spec, rule_index, key) -> Trial:
        noise = (jax.random.normal(key, (self.n_steps, self.n_in))
                 if self.input_noise > 0 else None)
        return render(spec, rule_index, n_steps=self.n_steps, n_ring=self.n_ring, dt=self.dt,
                      grace=self.grace, input_noise=self.input_noise, noise=noise)

    def trial_scores(self, outputs: Array, trial: Trial) -> Array:
        return yang_performance(outputs, trial)

    def _fixation_input(self, rule: str) -> np.ndarray:
        u = np.zeros(self.n_in)
        u[0] = 1.0
        u[1 + 2 * self.n_ring + RULES.index(rule)] = 1.0
        return u

    def fixed_point_inputs(self) -> dict[str, np.ndarray]:
        """For each rule the task draws, ``"fixation, <rule>"``: fixation on, both rings
        silent, the rule input on (the fixation epoch, and the delays of the delay rules)."""
        rules = getattr(self, "rules", None) or (self.rule,)
        return {f"fixation, {r}": self._fixation_input(r) for r in rules}


_YANG_NOISE = round(0.01 * math.sqrt(2 / 0.2), 4)
_DM_COHS = (0.04, 0.08, 0.16, 0.32)
_DELAY_DM_COHS = (0.08, 0.16, 0.32)


class Yang19Rule(_Yang19Common):
    """One rule of Yang et al. 2019 (registered as ``yang19.<rule>``); the layout, loss
    weights and scoring are in the module docstring of ``rnnlab.tasks._yang19``.

    Parameters: ``n_ring`` (32), ``dt`` (20 ms), ``input_noise`` (0.0316), ``grace``
    (100 ms with loss weight 0 at the start of the response), ``coherences`` (the dm rules'
    coherences c: stimulus strengths are mean +- c with mean ~ U(0.8, 1.2), so they differ by
    2c; default 0.04, 0.08, 0.16, 0.32, between Yang's code's default 0.01 ... 0.08 and its
    ``easy_task`` 0.1 ... 0.8; pass ``coherences=(0.01, 0.02, 0.04, 0.08)`` for Yang's),
    ``delay_coherences`` (the same for the delayed dm rules; default Yang's 0.08, 0.16,
    0.32).

    Conditions: ``rule``, ``target`` (response direction), ``respond`` (1 if a response is
    required), ``stim1_loc``, ``stim2_loc``, ``coherence`` (signed, dm rules), ``match``
    (dms/dmc rules, else -1), ``modality`` (go rules, else -1), ``fix_off``,
    ``response_start``, ``trial_end``.
    """

    rule: ClassVar[str]
    n_ring: int = 32
    dt: float = 20.0
    input_noise: float = _YANG_NOISE
    grace: float = 100.0
    coherences: tuple[float, ...] = eqx.field(default=_DM_COHS, converter=float_tuple)
    delay_coherences: tuple[float, ...] = eqx.field(default=_DELAY_DM_COHS,
                                                    converter=float_tuple)

    def __check_init__(self):
        self._check()

    @property
    def n_steps(self) -> int:
        return _n_steps(self.rule, self.dt)

    def sample(self, key: PRNGKeyArray) -> Trial:
        k_spec, k_noise = jax.random.split(key)
        spec = rule_spec(self.rule, k_spec, self._params())
        return self._render(spec, RULES.index(self.rule), k_noise)


# Training settings `rnnlab train yang19.<rule>` uses (AbstractTask.recommended_training),
# measured with benchmarks/task_training.py (docs/tasks.md). Tanh networks stall on the
# delayed dm rules at the "average of both stimuli" output (delaydm1: accuracy 0.31 after
# 3000 steps with 64 units at lr 1e-2; 0.25 to 0.40 after 600 steps with 64, 128 or 256 units
# at lr 1e-3 or 3e-3; softplus no better), while 64 relu units at lr 3e-3 leave that plateau
# within a few hundred steps (0.68 at step 600).
_DELAY_DM = {"recommended_activation": "relu", "recommended_learning_rate": 3e-3,
             "recommended_steps": 8000}
# dmsnogo: after 600 steps a 64-unit tanh network is at chance on go and no-go trials alike
# (0.49), a relu one responds at the right place on go trials but not yet withholds on
# matches (0.45, loss falling faster); the relu network learns to withhold late (0.52 at
# step 2450, 0.9 at 4450): the non-match test can be as close as 20 degrees to the sample,
# which makes match detection a fine discrimination.
_DMS = {"recommended_activation": "relu", "recommended_learning_rate": 3e-3,
        "recommended_steps": 8000}
_RECOMMENDED = {
    "delaydm1": _DELAY_DM, "delaydm2": _DELAY_DM, "contextdelaydm1": _DELAY_DM,
    "contextdelaydm2": _DELAY_DM, "multidelaydm": _DELAY_DM,
    "dmsgo": _DMS, "dmsnogo": _DMS,
}


def _rule_class(rule: str):
    name = "Yang19_" + rule
    cls = type(name, (Yang19Rule,), {
        **_RECOMMENDED.get(rule, {}),
        "rule": rule,
        "description": f"Yang 2019 {rule}: {_DESCRIPTIONS[rule]}",
        "__doc__": f"Yang et al. 2019 rule {rule!r}: {_DESCRIPTIONS[rule]}.\n\n"
                   + (Yang19Rule.__doc__ or ""),
        "__module__": __name__,
    })
    return register(f"yang19.{rule}")(cls)


YANG19_RULE_TASKS = {rule: _rule_class(rule) for rule in RULES}


def _rules_tuple(values):
    if isinstance(values, str):
        return (values,)
    try:
        return tuple(values)
    except TypeError:
        return values


@register("yang19")
class Yang19Multitask(_Yang19Common):
    """The Yang et al. 2019 multitask: each trial is one of ``rules`` (default all 20, drawn
    with ``rule_probabilities``, default uniform) with its one-hot rule input; trials are
    padded to the longest rule. Layout, loss weights and scoring: see `Yang19Rule` and the
    module docstring. ``evaluate`` also reports ``accuracy/<rule>`` per rule.
    """

    rules: tuple[str, ...] = eqx.field(default=RULES, converter=_rules_tuple)
    rule_probabilities: tuple[float, ...] | None = eqx.field(
        default=None, converter=lambda v: None if v is None else float_tuple(v))
    n_ring: int = 32
    dt: float = 20.0
    input_noise: float = _YANG_NOISE
    grace: float = 100.0
    coherences: tuple[float, ...] = eqx.field(default=_DM_COHS, converter=float_tuple)
    delay_coherences: tuple[float, ...] = eqx.field(default=_DELAY_DM_COHS,
                                                    converter=float_tuple)

    description = "Yang 2019 multitask: the 20 rules mixed, with one-hot rule inputs"
    target_accuracy = 0.9
    # Yang et al.'s network and optimiser (256 relu-type units, Adam 1e-3, batch 64), trained
    # for long: 40000 steps (2.6 million trials) take hours on a 2-core CPU.
    recommended_hidden = 256
    recommended_activation = "relu"
    recommended_learning_rate = 1e-3
    recommended_steps = 40000

    def __check_init__(self):
        self._check()
        rules = self.rules
        if not isinstance(rules, tuple) or not rules or any(r not in RULES for r in rules):
            raise ValueError(f"rules must be a non-empty list of rule names from {list(RULES)},"
                             f" got {rules!r}")
        if len(set(rules)) != len(rules):
            raise ValueError(f"rules must not repeat a rule, got {rules!r}")
        p = self.rule_probabilities
        if p is not None:
            check_float_tuple("rule_probabilities", p, 0.0, math.inf)
            if len(p) != len(rules) or sum(p) <= 0:
                raise ValueError(
                    f"rule_probabilities must have one non-negative weight per rule "
                    f"({len(rules)}) with a positive sum, got {p!r}")

    @property
    def n_steps(self) -> int:
        return max(_n_steps(r, self.dt) for r in self.rules)

    def sample(self, key: PRNGKeyArray) -> Trial:
        k_rule, k_spec, k_noise = jax.random.split(key, 3)
        n = len(self.rules)
        if self.rule_probabilities is None:
            which = jax.random.randint(k_rule, (), 0, n)
        else:
            logits = jnp.log(jnp.asarray(self.rule_probabilities))
            which = jax.random.categorical(k_rule, logits)
        params = self._params()
        branches = [lambda k, r=r: rule_spec(r, k, params) for r in self.rules]
        spec = jax.lax.switch(which, branches, k_spec)
        global_index = jnp.asarray([RULES.index(r) for r in self.rules])[which]
        return self._render(spec, global_index, k_noise)

    def evaluate(self, outputs: Array, trial: Trial) -> dict[str, Array]:
        out = super().evaluate(outputs, trial)
        scores = self.trial_scores(outputs, trial)
        rule = trial.conditions["rule"]
        for r in self.rules:
            sel = (rule == RULES.index(r)).astype(jnp.float32)
            out[f"accuracy/{r}"] = jnp.sum(scores * sel) / jnp.maximum(jnp.sum(sel), 1.0)
        return out
