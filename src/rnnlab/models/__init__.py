"""Recurrent network models."""

from ._activations import ACTIVATIONS as ACTIVATIONS
from ._base import AbstractRNN as AbstractRNN
from ._base import model_class as model_class
from ._base import register_model as register_model
from ._ctrnn import CTRNN as CTRNN
from ._ctrnn import multi_area_mask as multi_area_mask
from ._esn import EchoStateNetwork as EchoStateNetwork
from ._function import FunctionModel as FunctionModel
from ._gru import GRU as GRU
from ._lstm import LSTM as LSTM
from ._network import AbstractMaskedNetwork as AbstractMaskedNetwork
from ._network import AbstractNetwork as AbstractNetwork
from ._vanilla import VanillaRNN as VanillaRNN
