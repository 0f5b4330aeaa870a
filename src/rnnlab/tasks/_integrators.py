"""Integration tasks: the integrator (line attractor), the angular integrator (ring
attractor), and the binary decision on the sign of integrated white noise."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._validate import nonnegative_number, positive_int, positive_number
from ._base import Trial, register
from ._common import (
    DecisionTask,
    ScoredTask,
    check_choice,
    check_duration,
    circular_distance,
    duration,
    max_steps,
    sample_steps,
    window,
    wrap_angle,
)


@register("integrator")
class Integrator(ScoredTask):
    """Integrator of white noise (computation-thru-dynamics integrator tutorial).

    One input: a constant bias b ~ U(-bias_max, bias_max), drawn per trial, plus Gaussian white
    noise of std ``noise_std`` at every step: ``u_t = b + noise_std * xi_t``. One output: the
    running sum ``y_t = sum_{s <= t} u_s``, in the loss at every step. 25 steps of 40 ms (1 s)
    by default. Known answer: a line attractor along which the sum is stored.

    Accuracy per trial: the fraction of steps with |y - target| < ``tolerance`` (0.2); ``r2``
    is the masked R^2 over all trials and steps.

    Conditions: ``bias``, ``final_sum``.
    """

    n_steps: int = 25
    bias_max: float = 0.1
    noise_std: float = 0.2
    dt: float = 40.0

    description = "integrator: report the running sum of a noisy input (line attractor)"
    target_accuracy = 0.9
    tolerance = 0.2

    def __check_init__(self):
        positive_int("n_steps", self.n_steps)
        nonnegative_number("bias_max", self.bias_max)
        nonnegative_number("noise_std", self.noise_std)
        positive_number("dt", self.dt)

    @property
    def n_in(self) -> int:
        return 1

    @property
    def n_out(self) -> int:
        return 1

    def trial_for(self, bias, noise: Array) -> Trial:
        """The trial with the given bias and noise samples ``noise`` [n_steps] (unit std)."""
        u = jnp.asarray(bias, jnp.float32) + self.noise_std * noise.astype(jnp.float32)
        y = jnp.cumsum(u)
        ones = jnp.ones((self.n_steps, 1), jnp.float32)
        return Trial(u[:, None], y[:, None], ones,
                     {"bias": jnp.asarray(bias, jnp.float32), "final_sum": y[-1]})

    def fixed_point_inputs(self) -> dict[str, np.ndarray]:
        """``"no input"``: 0, where the sum is held (it occurs in trials with bias_max = 0
        and noise_std = 0; elsewhere 0 is the centre of the input distribution)."""
        return {"no input": np.zeros(1)}

    def sample(self, key: PRNGKeyArray) -> Trial:
        k_b, k_n = jax.random.split(key)
        bias = jax.random.uniform(k_b, (), minval=-self.bias_max, maxval=self.bias_max)
        return self.trial_for(bias, jax.random.normal(k_n, (self.n_steps,)))


@register("angular_integrator")
class AngularIntegrator(ScoredTask):
    """Angular (head-direction) integrator (pyrnn's ring-attractor task).

    Inputs (3): the angular velocity omega_t (rad per step), scaled by ``velocity_gain``, and,
    during the first ``cue`` ms, the initial heading as (sin theta_0, cos theta_0). The heading
    is ``theta_t = theta_0 + sum_{s <= t} omega_s``; omega is a smooth random process (AR(1)
    with correlation time ``velocity_tau`` ms and stationary std ``velocity_std`` rad/step).
    Outputs: ``output="sincos"`` (default) -> (sin theta_t, cos theta_t); ``"phase"`` -> the
    wrapped heading in [-pi, pi). The loss mask is on after the cue. Known answer: a ring
    attractor.

    Defaults (Cueva & Wei's trial statistics, since 2026-12-07): 200 steps of 20 ms (4 s), a
    200 ms cue, velocity AR(1) with std 0.05 rad/step and correlation time 90 ms (coefficient
    0.8 per step, as theirs), entering with gain 5; half the trials hold the velocity at zero
    over a window of up to 2/3 of the trial (``still_probability``, ``still_max``), so that a
    heading must be held wherever it is. A trial travels a median 1.1 turns (10-90%: 0.6-1.4),
    its heading sweeping a median 0.37 turn and its net rotation having a std of 0.3 turn;
    the initial heading is uniform, so the network holds and moves a heading anywhere on the
    circle. Trained with `rnnlab train` (lr 1e-3, all 5000 steps, best kept), seeds 1 and 2
    of 0-2 learn a ring (accuracy 0.998-0.999; docs/known_answers.md). The previous
    defaults (velocity_std 0.1 rad/step, correlation time 200 ms, 100 ms cue, no holds: a
    median 2.5 turns travelled, three trials in five sweeping the whole circle) are
    ``velocity_std=0.1, velocity_tau=200, cue=100, still_probability=0``; networks trained on
    them integrate the unwrapped heading along an open helix instead of a ring (their net
    rotation is bounded, so a line several turns long serves). The velocity enters with gain
    5: at gain 1 a network sits on a plateau for thousands of steps. The earlier layout (2 s
    trials, unscaled velocity) is those previous defaults with ``n_steps=100,
    velocity_std=0.05, velocity_gain=1``.

    Holds (Cueva & Wei): with probability ``still_probability`` a trial's velocity is zero
    over a window of a uniform random length up to ``still_max`` of the trial, at a uniform
    random place. Trials without holds are the same as with ``still_probability=0``.

    Accuracy per trial: the fraction of masked steps whose decoded heading is within
    ``angle_tolerance`` rad of the truth (pi/8 by default).

    Conditions: ``initial_heading``, ``final_heading`` (wrapped), ``mean_velocity``.
    """

    n_steps: int = 200
    cue: float = 200.0
    velocity_std: float = 0.05
    velocity_tau: float = 90.0
    velocity_gain: float = 5.0
    output: str = "sincos"
    angle_tolerance: float = 0.3927
    input_noise: float = 0.0
    still_probability: float = 0.5
    still_max: float = 2 / 3
    dt: float = 20.0

    description = "angular integrator: integrate angular velocity into a heading (ring attractor)"
    target_accuracy = 0.9
    # Cueva & Wei's trials with holds (the defaults), 64 units, lr 1e-3: 0.95 is passed at
    # steps 1000-1350 with the slow points still scattered arcs; trained all 5000 steps
    # (best kept, 0.998-0.999 at steps 4700-4950) seeds 1 and 2 have a ring, seed 0 a loop
    # not closed (2026-12-07). Hence all the steps. The previous defaults: lr 1e-3 reached
    # 0.95 in 6100 steps (seed 0); on 250-step trials a user measured 0.96 -> 0.17 at 5e-3.
    recommended_learning_rate = 1e-3
    recommended_steps = 5000
    recommended_target_accuracy = 1.0

    def __check_init__(self):
        positive_int("n_steps", self.n_steps)
        nonnegative_number("cue", self.cue)
        nonnegative_number("velocity_std", self.velocity_std)
        positive_number("velocity_tau", self.velocity_tau)
        positive_number("velocity_gain", self.velocity_gain)
        check_choice("output", self.output, ("sincos", "phase"))
        positive_number("angle_tolerance", self.angle_tolerance)
        nonnegative_number("input_noise", self.input_noise)
        if isinstance(self.still_probability, bool) or not 0 <= self.still_probability <= 1:
            raise ValueError(f"still_probability must be in [0, 1], got "
                             f"{self.still_probability!r}")
        if isinstance(self.still_max, bool) or not 0 < self.still_max <= 1:
            raise ValueError(f"still_max must be in (0, 1], got {self.still_max!r}")
        positive_number("dt", self.dt)
        if round(self.cue / self.dt) >= self.n_steps:
            raise ValueError(f"cue ({self.cue} ms) must be shorter than the trial "
                             f"({self.n_steps} steps of {self.dt} ms)")

    @property
    def n_in(self) -> int:
        return 3

    @property
    def n_out(self) -> int:
        return 2 if self.output == "sincos" else 1

    def trial_for(self, theta0, omega: Array, noise: Array | None = None) -> Trial:
        """The trial with initial heading ``theta0`` and angular velocities ``omega`` [T]."""
        t = jnp.arange(self.n_steps)
        cue_on = t < round(self.cue / self.dt)
        theta = theta0 + jnp.cumsum(omega)
        cue = jnp.stack([jnp.sin(theta0) * cue_on, jnp.cos(theta0) * cue_on], axis=1)
        inputs = jnp.concatenate([self.velocity_gain * omega[:, None], cue], axis=1)
        if noise is not None:
            inputs = inputs + self.input_noise * noise
        if self.output == "sincos":
            targets = jnp.stack([jnp.sin(theta), jnp.cos(theta)], axis=1)
        else:
            targets = wrap_angle(theta)[:, None]
        mask = jnp.broadcast_to((~cue_on)[:, None], targets.shape)
        cond = {"initial_heading": wrap_angle(jnp.asarray(theta0)),
                "final_heading": wrap_angle(theta[-1]), "mean_velocity": jnp.mean(omega)}
        return Trial(inputs.astype(jnp.float32), targets.astype(jnp.float32),
                     mask.astype(jnp.float32), cond)

    def sample(self, key: PRNGKeyArray) -> Trial:
        k_th, k_w0, k_w, k_n = jax.random.split(key, 4)
        theta0 = jax.random.uniform(k_th, (), minval=-jnp.pi, maxval=jnp.pi)
        rho = jnp.exp(-self.dt / self.velocity_tau)
        xi = jax.random.normal(k_w, (self.n_steps,)) * self.velocity_std * jnp.sqrt(1 - rho**2)
        w0 = jax.random.normal(k_w0, ()) * self.velocity_std

        def ar1(w, e):
            w = rho * w + e
            return w, w

        _, omega = jax.lax.scan(ar1, w0, xi)
        if self.still_probability > 0:  # own keys: trials without holds are unchanged
            k_p, k_len, k_start = jax.random.split(jax.random.fold_in(key, 1), 3)
            length = jnp.floor(jax.random.uniform(k_len) * self.still_max * self.n_steps)
            start = jnp.floor(jax.random.uniform(k_start) * (self.n_steps - length + 1))
            t = jnp.arange(self.n_steps)
            hold = (jax.random.uniform(k_p) < self.still_probability) & (t >= start) \
                & (t < start + length)
            omega = jnp.where(hold, 0.0, omega)
        noise = jax.random.normal(k_n, (self.n_steps, 3)) if self.input_noise > 0 else None
        return self.trial_for(theta0, omega, noise)

    def fixed_point_inputs(self) -> dict[str, np.ndarray]:
        """``"zero angular velocity"``: omega = 0 with the cue off, where the heading is held."""
        return {"zero angular velocity": np.zeros(3)}

    def headings(self, outputs: Array) -> Array:
        """Decoded heading per step [..., T] from outputs [..., T, n_out]."""
        if self.output == "sincos":
            return jnp.arctan2(outputs[..., 0], outputs[..., 1])
        return outputs[..., 0]

    def trial_scores(self, outputs: Array, trial: Trial) -> Array:
        true = self.headings(trial.targets)
        hit = circular_distance(self.headings(outputs), true) < self.angle_tolerance
        m = trial.mask[..., 0]
        return jnp.sum(hit * m, axis=-1) / jnp.maximum(jnp.sum(m, axis=-1), 1.0)


@register("binary_decision")
class BinaryDecision(DecisionTask):
    """Binary decision on the sign of integrated white noise (computation-thru-dynamics GRU
    decision tutorial).

    One input, during the stimulus epoch (``stimulus`` ms, a duration spec): a bias
    b ~ U(-bias_max, bias_max) plus white noise of std ``noise_std`` per step; then a
    ``decision`` epoch with no input. One output: during the decision epoch it must be the
    sign (+1 or -1) of the integral sum(u) of the stimulus; the loss mask is on only there
    (trials are padded to the longest stimulus; padding is masked off).

    Choice 1 means "positive". Accuracy per trial: the sign of the mean output over the
    decision epoch is right. Psychometric curve: P(positive) against ``bias`` (use ``bins``).

    Conditions: ``bias``, ``integral``, ``choice`` (1 if the integral is positive, else 0),
    ``stimulus_steps``.
    """

    stimulus: float | tuple = eqx.field(default=500.0, converter=duration)
    decision: float = 200.0
    bias_max: float = 0.1
    noise_std: float = 0.3
    dt: float = 20.0

    description = "binary decision: report the sign of the integral of a noisy input"
    target_accuracy = 0.9
    psychometric_x = "bias"
    psychometric_by = None
    choice_names = ("negative", "positive")
    condition_labels = {"bias": "bias (per step)", "integral": "integral of the input"}

    def __check_init__(self):
        positive_number("dt", self.dt)
        check_duration("stimulus", self.stimulus)
        positive_number("decision", self.decision)
        nonnegative_number("bias_max", self.bias_max)
        nonnegative_number("noise_std", self.noise_std)
        if max_steps(self.stimulus, self.dt) < 1 or round(self.decision / self.dt) < 1:
            raise ValueError(f"stimulus and decision must each last at least one step of "
                             f"dt={self.dt} ms")

    @property
    def n_in(self) -> int:
        return 1

    @property
    def n_out(self) -> int:
        return 1

    @property
    def n_steps(self) -> int:
        return max_steps(self.stimulus, self.dt) + round(self.decision / self.dt)

    def trial_for(self, bias, noise: Array, stim_steps) -> Trial:
        """The trial with ``bias``, unit noise ``noise`` [n_steps] and a stimulus of
        ``stim_steps`` steps."""
        t = jnp.arange(self.n_steps)
        on = t < stim_steps
        u = jnp.where(on, bias + self.noise_std * noise, 0.0)
        integral = jnp.sum(u)
        sign = jnp.where(integral > 0, 1.0, -1.0)
        dec = window(t, stim_steps, stim_steps + round(self.decision / self.dt))
        targets = jnp.where(dec, sign, 0.0)[:, None]
        cond = {"bias": jnp.asarray(bias, jnp.float32), "integral": integral,
                "choice": (integral > 0).astype(jnp.int32),
                "stimulus_steps": jnp.asarray(stim_steps, jnp.int32)}
        return Trial(u[:, None].astype(jnp.float32), targets.astype(jnp.float32),
                     dec[:, None].astype(jnp.float32), cond)

    def sample(self, key: PRNGKeyArray) -> Trial:
        k_b, k_n, k_d = jax.random.split(key, 3)
        bias = jax.random.uniform(k_b, (), minval=-self.bias_max, maxval=self.bias_max)
        steps = sample_steps(self.stimulus, k_d, self.dt)
        return self.trial_for(bias, jax.random.normal(k_n, (self.n_steps,)), steps)

    def fixed_point_inputs(self) -> dict[str, np.ndarray]:
        """``"decision epoch (no input)"``: 0, where the choice is reported."""
        return {"decision epoch (no input)": np.zeros(1)}

    def choices(self, outputs: Array, trial: Trial) -> Array:
        m = trial.mask[..., 0]
        mean = jnp.sum(outputs[..., 0] * m, axis=-1) / jnp.maximum(jnp.sum(m, axis=-1), 1.0)
        return (mean > 0).astype(jnp.int32)
