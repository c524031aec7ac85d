"""The one exception type the CLI turns into a one-line message and exit code 2."""


class QyoloError(Exception):
    """A user-facing error: bad input, missing optional dependency, unsupported model."""

    exit_code = 2


class DependencyError(QyoloError):
    """An optional dependency (TensorRT, CUDA driver, OpenVINO, Ultralytics) is missing or unusable."""
