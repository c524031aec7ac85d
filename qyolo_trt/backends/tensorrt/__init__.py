"""TensorRT backends: standard TensorRT 10/11 (GPU) and TensorRT-RTX (ahead-of-time, no GPU needed to build).

``adapter`` is the one place that knows the version differences; ``builder`` builds engines,
``report`` parses what the builder says about them, ``sidecar`` writes/checks ``NAME.engine.json``,
``runtime`` + ``runner`` run engines with cuda-python. Heavy modules are imported on first use.
"""
