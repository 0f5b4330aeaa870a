"""Safe serialisation (safetensors + JSON, never pickle) and run directories."""

from ._lock import RunLock as RunLock
from ._lock import RunLockedError as RunLockedError
from ._model_io import load as load
from ._model_io import save as save
from ._resources import ResourceError as ResourceError
from ._resources import check_memory as check_memory
from ._resources import machine_memory as machine_memory
from ._safe import FileFormatError as FileFormatError
from ._safe import atomic_write_bytes as atomic_write_bytes
from ._safe import atomic_write_json as atomic_write_json
from ._safe import atomic_write_text as atomic_write_text
from ._safe import read_json as read_json
from ._safe import read_safetensors as read_safetensors
from ._safe import write_safetensors as write_safetensors
