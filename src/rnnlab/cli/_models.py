"""`--model vanilla|gru|lstm` builders for `rnnlab train` (and any command that builds models)."""

from ._app import CLIError
from ._common import register_model_builder


def _discrete_builder(cls_name: str):
    def build(n_in, n_hidden, n_out, *, key, dt, dale=False, autapses=True, **opts):
        from .. import models

        if dale:
            raise CLIError(
                f"--dale is only available for --model ctrnn (a {cls_name} has no E/I types)"
            )
        cls = getattr(models, cls_name)
        return cls(n_in, n_hidden, n_out, key=key, dt=dt, autapses=autapses, **opts)

    build.__name__ = f"build_{cls_name.lower()}"
    return build


register_model_builder("vanilla", _discrete_builder("VanillaRNN"))
register_model_builder("gru", _discrete_builder("GRU"))
register_model_builder("lstm", _discrete_builder("LSTM"))
