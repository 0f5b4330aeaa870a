"""Decision tasks: context-dependent decision making (Mante et al. 2013), delayed
discrimination (Romo et al. 1999), Go/No-Go."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._validate import nonnegative_number, positive_number
from ._base import Trial, register
from ._common import (
    DecisionTask,
    check_duration,
    check_float_tuple,
    duration,
    float_tuple,
    max_steps,
    min_steps,
    sample_steps,
    to_steps,
    window,
)

# 0 and +-2^-k, k = 0..6 (trainRNNbrain's CDDM grid)
_CDDM_COHERENCES = tuple(sorted({0.0} | {s * 2.0**-k for k in range(7) for s in (1.0, -1.0)}))


def _mean_over(outputs: Array, on: Array) -> Array:
    """Mean of outputs [..., T, n] over steps where ``on`` [..., T] -> [..., n]."""
    w = on.astype(outputs.dtype)[..., None]
    return jnp.sum(outputs * w, axis=-2) / jnp.maximum(jnp.sum(w, axis=-2), 1.0)


# the Mante lab's network's coherences (mean of the signed input per 1 ms step of std 1)
_MANTE_COHERENCES = (-0.15, -0.036, -0.009, 0.009, 0.036, 0.15)

_CDDM_EPOCHS = ("fixation", "stimulus", "delay", "response")
_CDDM_TARGETS = ("response", "stimulus_end", "integral")


@register("context_decision_making")
class ContextDecisionMaking(DecisionTask):
    """Context-dependent decision making (Mante et al. 2013), by default as the Mante lab's
    published network is trained; NeuroGym's epochs and trainRNNbrain's inputs as options.

    Default (the Mante lab's network: ``ManteLab/Iton_notebooks_public``, ``utils_ex9``, whose
    trial data hold its inputs and targets; the 2013 paper's Methods text was not checked):
    inputs (4) are the context cues (motion, colour), on throughout the trial, and one signed
    channel per modality whose mean is its coherence (``stimulus_coding="signed"``) during
    the 750 ms ``stimulus`` after a 750 ms ``fixation`` (context only), with white noise of
    std ``input_noise`` = 0.2236 per 20 ms step on every input (the lab's std 1 per 1 ms
    step: the same variance per ms). ``c_m`` and ``c_c`` are drawn independently from
    ``coherences`` = +-0.009, 0.036, 0.15 (the lab's), mostly near threshold: perfect
    integration of the relevant channel chooses the coherence's sign in about 0.81 of trials.
    Outputs (2): (right, left). The target (``target="integral"``) is the relevant evidence as
    the network receives it, integrated with gain ``integral_gain`` = 0.02 /ms and absorbed at
    +-1 (the lab's drift-diffusion to bound): right - left follows it at every step, so the
    network must integrate the relevant input and hold the integral. The trial ends with the
    stimulus (``delay`` and ``response`` are not used); the choice is read from the last
    ``target_window`` ms. Differences from the lab's network: 20 ms steps instead of 1 ms,
    unit time constant 100 ms (`rnnlab train --tau`) instead of 10, two outputs instead of
    one signed output, fixation 750 ms instead of 650, noise also on
    the context cues, Adam instead of Hessian-free, and no learned initial state per context.
    Trained this way (100 units as the lab's, 10000 steps), networks hold one line attractor
    per context (``docs/known_answers.md``); with a target at the stimulus' end only they stay
    leaky.

    NeuroGym's epochs (the previous default): ``stimulus_coding="pair", target="response",
    input_noise=0.1`` and ``coherences`` 0 and +-2^-k, k = 0..6 (trainRNNbrain's CDDM grid).
    Inputs (6): context cues; motion right/left ``(1 + c_m) / 2``, ``(1 - c_m) / 2`` and
    colour right/left ``(1 + c_c) / 2``, ``(1 - c_c) / 2`` during the stimulus. Epochs (ms,
    duration specs drawn per trial): ``fixation`` 750 (context only), ``stimulus`` 750,
    ``delay`` ``("truncexp", 300, 83, 1200)`` (context only: exponential of mean 300 ms
    truncated to [83, 1200], as NeuroGym's Mante task), ``response`` 500. The variable delay
    means the integrated evidence must be held for an unpredictable time after the stimulus
    ends. Trials are padded to the longest layout, padding masked off. Targets: 0 before the
    response; during the response the output of the side given by the sign of the
    *relevant* coherence is 1, the other 0 (both 0 when it is 0). Mask: the fixation, delay
    and response epochs (not the stimulus, where the network integrates). Trained so, networks
    integrate with a leak of 0.3-1.4 s or become bistable switches, not lines.

    ``stimulus_until_end=True`` (with ``target="response"``) keeps the stimulus on through the
    delay and the response (trainRNNbrain's CDDM); ``fixation=1000, stimulus=1000, delay=0,
    response=1000, stimulus_until_end=True`` with the pair coding is this task's earliest
    default, step for step (with ``dt=10`` trainRNNbrain's 300-step layout).

    Evidence gaps (not in Mante et al.'s task; an option of this library): with probability
    ``gap_probability`` (default 0: no gap) the stimulus is interrupted for ``gap`` ms (a
    duration spec, default ``("uniform", 200, 1000)``) after a uniformly drawn number of its
    steps (at least one before and one after), then resumes with the same coherences; the
    trial is that much longer (the stimulus keeps its duration of evidence). The gap's inputs
    are exactly those of the epochs without a stimulus (context cue, and the input noise that
    every epoch has), and the gap is unmasked like the rest of the stimulus epoch, so the
    choice depends on evidence before and after a period without any. It is meant to favour a
    network that holds a graded partial integral (a line attractor) over a leaky integrator
    or an early commitment; but with the coherences constant through a trial a leak keeps the
    sign, and trained networks stay leaky (``docs/known_answers.md``). The gap is drawn from its own keys: trials with
    ``gap_probability=0`` are bit for bit those of the task without the option, and the
    trials' length is unchanged. With the gap on, the conditions also hold ``gap_start``
    (stimulus steps before the gap) and ``gap_steps`` (0 in trials without a gap).

    Options of the protocol:

    - ``stimulus_coding``: ``"signed"`` (one channel per modality, mean = coherence, 0 at
      coherence 0; 4 inputs) or ``"pair"`` (two channels ``(1 +- c) / 2``; 6 inputs).
    - ``target``: ``"integral"`` (right - left follows the bounded integral I of the relevant
      evidence as the network receives it: the signed channel, or right minus left channel
      of the pair, noise included, 0 outside the stimulus, times ``integral_gain`` (1/ms) x
      ``dt`` per step, absorbed at +-1; right = max(I, 0), left = max(-I, 0); mask on at every
      step of the trial); ``"stimulus_end"`` (the choice (1, 0) or (0, 1), (0, 0) at relevant
      coherence 0, is the target on the last ``target_window`` ms of the stimulus only, the
      mask on there only); ``"response"`` (NeuroGym's epochs above). With ``"integral"`` and
      ``"stimulus_end"`` the trial ends with the stimulus, the choice is read from its last
      ``target_window`` ms (``response_start``, ``trial_end`` mark that window) and
      ``delay_steps`` is 0.

    Choice 1 = right. Accuracy: sign of (right - left) averaged over the response epoch equals
    the sign of the relevant coherence; trials with relevant coherence 0 do not count. With
    ``target="integral"`` the correct choice is the target's own, the sign of the bounded
    integral at the stimulus' end (the ideal observer's choice given the noisy evidence, which
    agrees with the coherence's sign in about 0.81 of the default trials), and every trial
    counts; a network that follows its target scores 1.
    Psychometric: P(right) against ``motion_coherence`` per ``context`` (pass
    ``x="colour_coherence"`` for the other axis).

    Conditions: ``context`` (0 motion, 1 colour), ``motion_coherence``, ``colour_coherence``,
    ``relevant_coherence``, ``choice`` (1 right, 0 left; for coherence 0 the sign is arbitrary;
    with ``target="integral"`` the integral's sign), ``delay_steps``, ``response_start``,
    ``trial_end``.
    """

    fixation: float | tuple = eqx.field(default=750.0, converter=duration)
    stimulus: float | tuple = eqx.field(default=750.0, converter=duration)
    delay: float | tuple = eqx.field(default=("truncexp", 300.0, 83.0, 1200.0),
                                     converter=duration)
    response: float | tuple = eqx.field(default=500.0, converter=duration)
    coherences: tuple[float, ...] = eqx.field(default=_MANTE_COHERENCES, converter=float_tuple)
    input_noise: float = 0.2236
    stimulus_until_end: bool = False
    dt: float = 20.0
    gap_probability: float = 0.0
    gap: float | tuple = eqx.field(default=("uniform", 200.0, 1000.0), converter=duration)
    stimulus_coding: str = "signed"
    target: str = "integral"
    target_window: float = 20.0
    integral_gain: float = 0.02

    description = "context-dependent decision (Mante 2013): integrate motion or colour by cue"
    # Accuracy of the default protocol: agreement with the target's choice (the sign of the
    # bounded integral), 0.97-0.98 for the networks of seeds 0-2 (2048 fresh trials). The
    # coherences are near threshold: that choice (perfect integration of the relevant channel
    # over the 38 stimulus steps) has the coherence's sign in 0.81 of trials (0.60, 0.84, 1.0
    # at |c| = 0.009, 0.036, 0.15), and so do the networks' choices (0.80-0.81).
    target_accuracy = 0.9
    # With NeuroGym's variable delay a 64-unit tanh network does not learn at Adam 1e-2 (best
    # 0.67 in 3000 steps, seed 0); at 3e-3 it reaches 0.93 by step 1000. The default protocol
    # trains at 3e-3 too.
    recommended_learning_rate = 3e-3
    # Train all the steps and keep the best: after 3000 steps on the default protocol the
    # networks still integrate with a leak (slowest mode 440-620 ms, seed 0); after 10000 the
    # lab's 100 units hold a line per context on the best model of seeds 0 and 1 of 0-4 and
    # on the final model of seeds 0, 1, 2, 4; 64 units on half the models of seeds 0-2
    # (docs/known_answers.md).
    # (On NeuroGym's epochs the network stopped at the first evaluation past 0.925 is half
    # trained; all 3000 steps give 0.95-0.96, leaky.)
    recommended_hidden = 100
    recommended_steps = 10000
    recommended_target_accuracy = 1.0
    psychometric_x = "motion_coherence"
    psychometric_by = "context"
    choice_names = ("left", "right")
    condition_labels = {"motion_coherence": "motion coherence (+ = right)",
                        "colour_coherence": "colour coherence (+ = right)",
                        "relevant_coherence": "relevant coherence (+ = right)"}
    group_names = {0: "motion context", 1: "colour context"}

    def __check_init__(self):
        positive_number("dt", self.dt)
        for name in _CDDM_EPOCHS:
            check_duration(name, getattr(self, name))
        check_float_tuple("coherences", self.coherences, -1.0, 1.0)
        nonnegative_number("input_noise", self.input_noise)
        if not isinstance(self.stimulus_until_end, (bool, np.bool_)):
            raise TypeError(f"stimulus_until_end must be True or False, got "
                            f"{self.stimulus_until_end!r}")
        if min_steps(self.stimulus, self.dt) < 1:
            raise ValueError(f"stimulus must always last at least one step of dt={self.dt} ms, "
                             f"got {self.stimulus!r}")
        if max_steps(self.response, self.dt) < 1:
            raise ValueError(f"response must last at least one step of dt={self.dt} ms")
        p = self.gap_probability
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"gap_probability must be a number in [0, 1], got {p!r}")
        check_duration("gap", self.gap)
        if self.stimulus_coding not in ("pair", "signed"):
            raise ValueError(f"stimulus_coding must be 'pair' (two channels (1 +- c) / 2 per "
                             f"modality) or 'signed' (one channel of mean c per modality), got "
                             f"{self.stimulus_coding!r}")
        if self.target not in _CDDM_TARGETS:
            raise ValueError(f"target must be one of {_CDDM_TARGETS}, got {self.target!r}")
        positive_number("target_window", self.target_window)
        positive_number("integral_gain", self.integral_gain)
        if self.target != "response":
            if self.stimulus_until_end:
                raise ValueError(f"stimulus_until_end=True needs target='response' (the trial "
                                 f"ends with the stimulus for target={self.target!r})")
            if to_steps(self.target_window, self.dt) < 1:
                raise ValueError(f"target_window must last at least one step of dt={self.dt} "
                                 f"ms, got {self.target_window!r}")
            if to_steps(self.target_window, self.dt) > min_steps(self.stimulus, self.dt):
                raise ValueError(f"target_window ({self.target_window} ms) must not be longer "
                                 f"than the shortest stimulus ({self.stimulus!r})")
        if p > 0 and min_steps(self.stimulus, self.dt) < 2:
            raise ValueError(f"with gap_probability > 0 the stimulus must always last at least "
                             f"two steps of dt={self.dt} ms (evidence before and after the "
                             f"gap), got stimulus={self.stimulus!r}")

    @property
    def _has_gap(self) -> bool:
        return self.gap_probability > 0

    @property
    def _signed(self) -> bool:
        return self.stimulus_coding == "signed"

    @property
    def n_in(self) -> int:
        return 4 if self._signed else 6

    @property
    def n_out(self) -> int:
        return 2

    @property
    def n_steps(self) -> int:
        gap = max_steps(self.gap, self.dt) if self._has_gap else 0
        epochs = _CDDM_EPOCHS if self.target == "response" else ("fixation", "stimulus")
        return sum(max_steps(getattr(self, n), self.dt) for n in epochs) + gap

    def trial_for(self, context, motion, colour, fix_steps, stim_steps, resp_steps,
                  noise: Array | None = None, delay_steps=0, gap_start=0, gap_steps=0) -> Trial:
        """The trial with the given context (0/1), coherences and epoch lengths (steps).

        ``stim_steps`` counts the steps with evidence; a gap of ``gap_steps`` steps after the
        first ``gap_start`` of them (inputs as without a stimulus) lengthens the stimulus epoch
        (the trial must still fit ``n_steps``, which leaves room for a gap only when
        ``gap_probability > 0``).
        """
        t = jnp.arange(self.n_steps)
        s_on = fix_steps
        d_on = fix_steps + stim_steps + gap_steps
        if self.target != "response":  # the trial ends with the stimulus
            delay_steps = 0
            end = d_on
            r_on = end - to_steps(self.target_window, self.dt)
        else:
            r_on = d_on + delay_steps
            end = r_on + resp_steps
        in_trial = t < end
        stim = window(t, s_on, end if self.stimulus_until_end else d_on)
        stim = stim & ~window(t, s_on + gap_start, s_on + gap_start + gap_steps)
        ctx = jax.nn.one_hot(context, 2)
        motion = jnp.asarray(motion, jnp.float32)
        colour = jnp.asarray(colour, jnp.float32)
        if self._signed:
            levels = jnp.stack([motion, colour])
        else:
            levels = jnp.stack([(1 + motion) / 2, (1 - motion) / 2, (1 + colour) / 2,
                                (1 - colour) / 2])
        inputs = jnp.concatenate([
            jnp.where(in_trial[:, None], ctx[None, :], 0.0),
            jnp.where(stim[:, None], levels[None, :], 0.0),
        ], axis=1)
        if noise is not None:
            inputs = inputs + jnp.where(in_trial[:, None], self.input_noise * noise, 0.0)
        relevant = jnp.where(context == 0, motion, colour)
        side = jnp.stack([relevant > 0, relevant < 0]).astype(jnp.float32)  # (right, left)
        resp = window(t, r_on, end)  # (not "response": the stimulus' last target_window)
        if self.target == "integral":
            bounded = self._bounded_integral(inputs, context, stim)
            targets = jnp.stack([jnp.maximum(bounded, 0.0), jnp.maximum(-bounded, 0.0)], axis=1)
            targets = jnp.where(in_trial[:, None], targets, 0.0)
            m = in_trial
        else:
            targets = jnp.where(resp[:, None], side[None, :], 0.0)
            m = resp if self.target == "stimulus_end" else (t < s_on) | window(t, d_on, end)
        mask = jnp.broadcast_to(m[:, None], targets.shape)
        if self.target == "integral":  # the target's own choice: the sign of I at the end
            choice = targets[end - 1, 0] > targets[end - 1, 1]
        else:
            choice = relevant > 0
        cond = {
            "context": jnp.asarray(context, jnp.int32), "motion_coherence": motion,
            "colour_coherence": colour, "relevant_coherence": relevant,
            "choice": choice.astype(jnp.int32),
            "delay_steps": jnp.asarray(delay_steps, jnp.int32),
            "response_start": jnp.asarray(r_on, jnp.int32),
            "trial_end": jnp.asarray(end, jnp.int32),
        }
        if self._has_gap:
            cond["gap_start"] = jnp.asarray(gap_start, jnp.int32)
            cond["gap_steps"] = jnp.asarray(gap_steps, jnp.int32)
        return Trial(inputs.astype(jnp.float32), targets.astype(jnp.float32),
                     mask.astype(jnp.float32), cond)

    def _bounded_integral(self, inputs: Array, context, stim: Array) -> Array:
        """The relevant evidence as the network receives it (noise included, 0 outside the
        stimulus), integrated (``integral_gain`` /ms x ``dt`` per step) and absorbed at +-1:
        [T]."""
        if self._signed:
            channels = inputs[:, 2:4]
        else:
            channels = jnp.stack([inputs[:, 2] - inputs[:, 3], inputs[:, 4] - inputs[:, 5]], 1)
        evidence = jnp.where(stim, jnp.where(context == 0, channels[:, 0], channels[:, 1]), 0.0)
        total = jnp.cumsum(evidence) * (self.integral_gain * self.dt)
        hit = jnp.abs(total) >= 1.0
        first = jnp.argmax(hit)  # the first step at the bound (0 when never: then unused)
        after = hit.any() & (jnp.arange(total.shape[0]) >= first)
        return jnp.where(after, jnp.sign(total[first]), total)

    def sample(self, key: PRNGKeyArray) -> Trial:
        ks = jax.random.split(key, 7)
        cohs = jnp.asarray(self.coherences)
        context = jax.random.randint(ks[0], (), 0, 2)
        motion = cohs[jax.random.randint(ks[1], (), 0, len(self.coherences))]
        colour = cohs[jax.random.randint(ks[2], (), 0, len(self.coherences))]
        steps = [sample_steps(getattr(self, n), k, self.dt)
                 for n, k in zip(("fixation", "stimulus", "response"), ks[3:6])]
        # the delay's key is folded from the stimulus' so that delay=0 draws every other
        # quantity exactly as before the delay existed
        delay = sample_steps(self.delay, jax.random.fold_in(ks[4], 1), self.dt)
        noise = (jax.random.normal(ks[6], (self.n_steps, self.n_in)) if self.input_noise > 0
                 else None)
        gap_start = gap_steps = 0
        if self._has_gap:  # own keys: every other quantity is drawn as without the gap
            k_p, k_d, k_s = jax.random.split(jax.random.fold_in(key, 2), 3)
            drawn = sample_steps(self.gap, k_d, self.dt)
            gap_steps = jnp.where(jax.random.uniform(k_p) < self.gap_probability, drawn, 0)
            # 1 .. stim_steps - 1 steps of evidence before the gap
            gap_start = jax.random.randint(k_s, (), 1, jnp.maximum(steps[1], 2))
        return self.trial_for(context, motion, colour, *steps, noise=noise, delay_steps=delay,
                              gap_start=gap_start, gap_steps=gap_steps)

    def fixed_point_inputs(self) -> dict[str, np.ndarray]:
        """Each context cue with both modalities at zero coherence (0.5 on every stimulus
        channel; 0 with ``stimulus_coding="signed"``): ``"motion context coh=0"``,
        ``"colour context coh=0"`` (Mante et al. 2013 analyse the dynamics per context at
        this input)."""
        if self._signed:  # coherence 0: the signed channels' mean is 0
            return {"motion context coh=0": np.array([1.0, 0.0, 0.0, 0.0]),
                    "colour context coh=0": np.array([0.0, 1.0, 0.0, 0.0])}
        return {"motion context coh=0": np.array([1.0, 0.0, 0.5, 0.5, 0.5, 0.5]),
                "colour context coh=0": np.array([0.0, 1.0, 0.5, 0.5, 0.5, 0.5])}

    def choices(self, outputs: Array, trial: Trial) -> Array:
        t = jnp.arange(outputs.shape[-2])
        start = trial.conditions["response_start"][..., None]
        end = trial.conditions["trial_end"][..., None]
        mean = _mean_over(outputs, (t >= start) & (t < end))
        return (mean[..., 0] > mean[..., 1]).astype(jnp.int32)

    def trial_weights(self, trial: Trial) -> Array:
        if self.target == "integral":  # every trial has the choice of its bounded integral
            return jnp.ones_like(trial.conditions["relevant_coherence"])
        return (trial.conditions["relevant_coherence"] != 0).astype(jnp.float32)


_ROMO_PAIRS = ((18.0, 10.0), (22.0, 14.0), (26.0, 18.0), (30.0, 22.0), (34.0, 26.0))


def _pairs(values):
    try:
        return tuple((float(a), float(b)) for a, b in values)
    except (TypeError, ValueError):
        return values


@register("delayed_discrimination")
class DelayedDiscrimination(DecisionTask):
    """Delayed discrimination of two vibration frequencies (Romo et al. 1999; PsychRNN).

    A fore period, stimulus 1 (frequency f1), a delay, stimulus 2 (f2), then a decision: is
    f1 > f2? Inputs (2): ``0.4 + 0.8 (f - 10) / 24`` and the inverted ``0.4 + 0.8 (34 - f) / 24``
    during each stimulus, with Gaussian noise of std ``input_noise`` at every step. Outputs (2):
    (f1 > f2, f1 < f2), one-hot with high 1.0 and low 0.2 during the decision epoch (PsychRNN's
    code); the mask is on only in the decision epoch. The pair is drawn from
    ``frequency_pairs`` (Hz) and its order at random. Epoch durations are duration specs (ms);
    PsychRNN draws each uniformly in [0, T/8] or [0, T/4] of T; the defaults keep its
    proportions for T = 2 s with a floor so no epoch is empty.

    Choice 0 = "f1 > f2", 1 = "f1 < f2". Accuracy: the larger mean output over the decision
    epoch. Psychometric: P(f1 > f2) against ``f1 - f2`` (Hz), rising.

    Conditions: ``f1``, ``f2``, ``difference`` (f1 - f2), ``choice``, ``decision_start``,
    ``trial_end``.
    """

    fore: float | tuple = eqx.field(default=("uniform", 0.0, 250.0), converter=duration)
    stimulus_1: float | tuple = eqx.field(default=("uniform", 100.0, 500.0), converter=duration)
    delay: float | tuple = eqx.field(default=("uniform", 100.0, 500.0), converter=duration)
    stimulus_2: float | tuple = eqx.field(default=("uniform", 100.0, 500.0), converter=duration)
    decision: float | tuple = eqx.field(default=("uniform", 100.0, 250.0), converter=duration)
    frequency_pairs: tuple = eqx.field(default=_ROMO_PAIRS, converter=_pairs)
    input_noise: float = 0.1
    dt: float = 20.0

    description = "delayed discrimination (Romo): is the first vibration faster than the second?"
    target_accuracy = 0.9
    psychometric_x = "difference"
    psychometric_by = None
    psychometric_choice = 0
    choice_names = ("f1 > f2", "f1 < f2")
    condition_labels = {"difference": "f1 - f2 (Hz)", "f1": "f1 (Hz)", "f2": "f2 (Hz)"}
    _epochs = ("fore", "stimulus_1", "delay", "stimulus_2", "decision")

    def __check_init__(self):
        positive_number("dt", self.dt)
        for name in self._epochs:
            check_duration(name, getattr(self, name))
        for name in ("stimulus_1", "stimulus_2", "decision"):
            if max_steps(getattr(self, name), self.dt) < 1:
                raise ValueError(f"{name} must be able to last at least one step of "
                                 f"dt={self.dt} ms")
        fp = self.frequency_pairs
        if not (isinstance(fp, tuple) and fp and all(
                isinstance(p, tuple) and len(p) == 2 and p[0] != p[1] for p in fp)):
            raise ValueError("frequency_pairs must be a non-empty list of (f1, f2) pairs of "
                             f"different frequencies in Hz, got {fp!r}")
        nonnegative_number("input_noise", self.input_noise)

    @property
    def n_in(self) -> int:
        return 2

    @property
    def n_out(self) -> int:
        return 2

    @property
    def n_steps(self) -> int:
        return sum(max_steps(getattr(self, n), self.dt) for n in self._epochs)

    @staticmethod
    def encode(f):
        """The two input levels coding frequency ``f`` (Hz)."""
        return jnp.stack([0.4 + 0.8 * (f - 10.0) / 24.0, 0.4 + 0.8 * (34.0 - f) / 24.0], -1)

    def trial_for(self, f1, f2, steps, noise: Array | None = None) -> Trial:
        """The trial with frequencies ``f1``, ``f2`` and epoch lengths ``steps`` (5 ints)."""
        t = jnp.arange(self.n_steps)
        b = [0]
        for s in steps:
            b.append(b[-1] + s)
        s1, s2, dec = window(t, b[1], b[2]), window(t, b[3], b[4]), window(t, b[4], b[5])
        f1 = jnp.asarray(f1, jnp.float32)
        f2 = jnp.asarray(f2, jnp.float32)
        inputs = (jnp.where(s1[:, None], self.encode(f1)[None], 0.0)
                  + jnp.where(s2[:, None], self.encode(f2)[None], 0.0))
        if noise is not None:
            inputs = inputs + jnp.where((t < b[5])[:, None], self.input_noise * noise, 0.0)
        choice = (f1 < f2).astype(jnp.int32)
        code = jnp.where(jax.nn.one_hot(choice, 2) > 0, 1.0, 0.2)
        targets = jnp.where(dec[:, None], code[None], 0.0)
        mask = jnp.broadcast_to(dec[:, None], targets.shape)
        cond = {"f1": f1, "f2": f2, "difference": f1 - f2, "choice": choice,
                "decision_start": jnp.asarray(b[4], jnp.int32),
                "trial_end": jnp.asarray(b[5], jnp.int32)}
        return Trial(inputs.astype(jnp.float32), targets.astype(jnp.float32),
                     mask.astype(jnp.float32), cond)

    def sample(self, key: PRNGKeyArray) -> Trial:
        ks = jax.random.split(key, 8)
        pairs = jnp.asarray(self.frequency_pairs)
        pair = pairs[jax.random.randint(ks[0], (), 0, len(self.frequency_pairs))]
        swap = jax.random.bernoulli(ks[1])
        f1 = jnp.where(swap, pair[1], pair[0])
        f2 = jnp.where(swap, pair[0], pair[1])
        steps = [sample_steps(getattr(self, n), k, self.dt)
                 for n, k in zip(self._epochs, ks[2:7])]
        noise = jax.random.normal(ks[7], (self.n_steps, 2)) if self.input_noise > 0 else None
        return self.trial_for(f1, f2, steps, noise)

    def fixed_point_inputs(self) -> dict[str, np.ndarray]:
        """``"delay"``: no stimulus (0 on both channels), where f1 is held."""
        return {"delay": np.zeros(2)}

    def choices(self, outputs: Array, trial: Trial) -> Array:
        mean = _mean_over(outputs, trial.mask[..., 0] > 0)
        return (mean[..., 1] > mean[..., 0]).astype(jnp.int32)


@register("go_no_go")
class GoNoGo(DecisionTask):
    """Go/No-Go (trainRNNbrain's GoNoGo).

    Inputs (3): a stimulus value v ~ U(0, 1) during the stimulus epoch, a go cue during the
    response epoch, and a constant 1. Output (1): during the response epoch, 1 if v > 0.5
    ("go") and 0 otherwise ("no-go"); 0 before. Epochs (ms, duration specs): ``fixation``,
    ``stimulus``, ``delay``, ``response``; the loss mask covers the whole trial (padding off).
    Gaussian noise of std ``input_noise`` on every input.

    Choice 1 = go. Accuracy: the mean output over the response epoch is above 0.5 exactly for
    go trials. Psychometric: P(go) against ``value`` (use ``bins``).

    Conditions: ``value``, ``choice`` (1 go), ``response_start``, ``trial_end``.
    """

    fixation: float | tuple = eqx.field(default=("uniform", 50.0, 150.0), converter=duration)
    stimulus: float | tuple = eqx.field(default=200.0, converter=duration)
    delay: float | tuple = eqx.field(default=("uniform", 100.0, 300.0), converter=duration)
    response: float | tuple = eqx.field(default=200.0, converter=duration)
    input_noise: float = 0.05
    dt: float = 10.0

    description = "Go/No-Go: respond on the cue only if the stimulus value exceeds 0.5"
    target_accuracy = 0.9
    psychometric_x = "value"
    psychometric_by = None
    choice_names = ("no-go", "go")
    condition_labels = {"value": "stimulus value (go above 0.5)"}
    _epochs = ("fixation", "stimulus", "delay", "response")

    def __check_init__(self):
        positive_number("dt", self.dt)
        for name in self._epochs:
            check_duration(name, getattr(self, name))
        for name in ("stimulus", "response"):
            if max_steps(getattr(self, name), self.dt) < 1:
                raise ValueError(f"{name} must last at least one step of dt={self.dt} ms")
        nonnegative_number("input_noise", self.input_noise)

    @property
    def n_in(self) -> int:
        return 3

    @property
    def n_out(self) -> int:
        return 1

    @property
    def n_steps(self) -> int:
        return sum(max_steps(getattr(self, n), self.dt) for n in self._epochs)

    def trial_for(self, value, steps, noise: Array | None = None) -> Trial:
        """The trial with stimulus ``value`` and epoch lengths ``steps`` (4 ints)."""
        t = jnp.arange(self.n_steps)
        b = [0]
        for s in steps:
            b.append(b[-1] + s)
        stim, resp = window(t, b[1], b[2]), window(t, b[3], b[4])
        in_trial = t < b[4]
        value = jnp.asarray(value, jnp.float32)
        inputs = jnp.stack([jnp.where(stim, value, 0.0), resp.astype(jnp.float32),
                            in_trial.astype(jnp.float32)], axis=1)
        if noise is not None:
            inputs = inputs + jnp.where(in_trial[:, None], self.input_noise * noise, 0.0)
        go = value > 0.5
        targets = jnp.where(resp & go, 1.0, 0.0)[:, None]
        cond = {"value": value, "choice": go.astype(jnp.int32),
                "response_start": jnp.asarray(b[3], jnp.int32),
                "trial_end": jnp.asarray(b[4], jnp.int32)}
        return Trial(inputs.astype(jnp.float32), targets.astype(jnp.float32),
                     in_trial[:, None].astype(jnp.float32), cond)

    def sample(self, key: PRNGKeyArray) -> Trial:
        ks = jax.random.split(key, 6)
        value = jax.random.uniform(ks[0], ())
        steps = [sample_steps(getattr(self, n), k, self.dt)
                 for n, k in zip(self._epochs, ks[1:5])]
        noise = jax.random.normal(ks[5], (self.n_steps, 3)) if self.input_noise > 0 else None
        return self.trial_for(value, steps, noise)

    def fixed_point_inputs(self) -> dict[str, np.ndarray]:
        """``"delay"``: no stimulus, no go cue, the constant channel at 1."""
        return {"delay": np.array([0.0, 0.0, 1.0])}

    def choices(self, outputs: Array, trial: Trial) -> Array:
        t = jnp.arange(outputs.shape[-2])
        on = (t >= trial.conditions["response_start"][..., None]) & (
            t < trial.conditions["trial_end"][..., None])
        return (_mean_over(outputs, on)[..., 0] > 0.5).astype(jnp.int32)
