"""The built-in tasks' names and one-line descriptions, for `rnnlab tasks` without importing
JAX (listing them from the registry costs seconds of imports). tests/test_cli_start.py checks
that this table equals the registry (`rnnlab.tasks.available()` and `describe`)."""

TASKS: dict[str, str] = {
    'angular_integrator': (
        'angular integrator: integrate angular velocity into a heading (ring attractor)'
    ),
    'binary_decision': 'binary decision: report the sign of the integral of a noisy input',
    'context_decision_making': (
        'context-dependent decision (Mante 2013): integrate motion or colour by cue'
    ),
    'delayed_discrimination': (
        'delayed discrimination (Romo): is the first vibration faster than the second?'
    ),
    'delayed_match_to_sample': (
        'delayed match to sample: was the test stimulus the same as the sample?'
    ),
    'flipflop': 'n-bit flip-flop memory: hold the sign of the last +-1 pulse on each channel',
    'go_no_go': 'Go/No-Go: respond on the cue only if the stimulus value exceeds 0.5',
    'integrator': 'integrator: report the running sum of a noisy input (line attractor)',
    'memory_anti_angle': (
        'memory anti-angle: hold an angle (3-channel code) and report the opposite'
    ),
    'memory_anti_number': 'memory anti-number: hold a scalar x and report 1 - x on a cue',
    'memory_number': 'memory number: hold a scalar through a delay and report it on a cue',
    'perceptual_decision_making': (
        'two-choice random-dots decision: integrate noisy evidence, report the choice'
    ),
    'sine_wave': 'sine-wave generator: a constant input level sets the output frequency',
    'yang19': 'Yang 2019 multitask: the 20 rules mixed, with one-hot rule inputs',
    'yang19.contextdelaydm1': (
        'Yang 2019 contextdelaydm1: sequential stimuli in both modalities; choose by '
        'modality 1'
    ),
    'yang19.contextdelaydm2': (
        'Yang 2019 contextdelaydm2: sequential stimuli in both modalities; choose by '
        'modality 2'
    ),
    'yang19.contextdm1': (
        'Yang 2019 contextdm1: two modalities shown; choose the stronger stimulus in '
        'modality 1'
    ),
    'yang19.contextdm2': (
        'Yang 2019 contextdm2: two modalities shown; choose the stronger stimulus in '
        'modality 2'
    ),
    'yang19.delayanti': (
        'Yang 2019 delayanti: remember the stimulus, respond opposite at fixation offset'
    ),
    'yang19.delaydm1': (
        'Yang 2019 delaydm1: two stimuli in sequence (modality 1); choose the stronger '
        'after a delay'
    ),
    'yang19.delaydm2': (
        'Yang 2019 delaydm2: two stimuli in sequence (modality 2); choose the stronger '
        'after a delay'
    ),
    'yang19.delaygo': (
        'Yang 2019 delaygo: remember the stimulus direction through a delay, respond at '
        'fixation offset'
    ),
    'yang19.dm1': 'Yang 2019 dm1: choose the stronger of two stimuli in modality 1',
    'yang19.dm2': 'Yang 2019 dm2: choose the stronger of two stimuli in modality 2',
    'yang19.dmcgo': (
        'Yang 2019 dmcgo: delayed match to category: respond to the test if the category '
        'matches'
    ),
    'yang19.dmcnogo': (
        'Yang 2019 dmcnogo: delayed match to category: respond to the test if the '
        'category differs'
    ),
    'yang19.dmsgo': (
        'Yang 2019 dmsgo: delayed match to sample (direction): respond to the test if it '
        'matches'
    ),
    'yang19.dmsnogo': (
        'Yang 2019 dmsnogo: delayed match to sample (direction): respond to the test if '
        'it does not match'
    ),
    'yang19.fdanti': (
        'Yang 2019 fdanti: respond opposite to the stimulus when the fixation cue goes '
        'off'
    ),
    'yang19.fdgo': 'Yang 2019 fdgo: respond toward the stimulus when the fixation cue goes off',
    'yang19.multidelaydm': (
        'Yang 2019 multidelaydm: sequential stimuli in both modalities; choose by the '
        'summed strength'
    ),
    'yang19.multidm': (
        'Yang 2019 multidm: choose the stimulus stronger summed over both modalities'
    ),
    'yang19.reactanti': (
        'Yang 2019 reactanti: respond opposite to the stimulus as soon as it appears'
    ),
    'yang19.reactgo': 'Yang 2019 reactgo: respond toward the stimulus as soon as it appears',
}
