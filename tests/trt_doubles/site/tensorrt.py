"""``import tensorrt`` -> the TensorRT 10 double (for CLI subprocess tests: PYTHONPATH=tests/trt_doubles/site:tests)."""

import sys

from trt_doubles import make_trt

sys.modules[__name__] = make_trt(10)
