# qyolo-trt on NVIDIA's TensorRT container (TensorRT + CUDA + cuDNN + TensorRT Python bindings).
# 25.01-py3: TensorRT 10.8.0.43, CUDA 12.8, Python 3.12, Ubuntu 24.04 (NVIDIA driver >= 570; data-centre
# GPUs also run it on older drivers with CUDA forward compatibility). Engines must be built by the
# TensorRT that serves them: pick the tag of your Triton / DeepStream release, e.g.
#   docker build --build-arg TRT_TAG=25.10-py3 -t qyolo-trt .
ARG TRT_TAG=25.01-py3
FROM nvcr.io/nvidia/tensorrt:${TRT_TAG}

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    YOLO_OFFLINE=1 \
    YOLO_CONFIG_DIR=/tmp/Ultralytics

WORKDIR /opt/qyolo-trt

# 1) dependencies only (cached until pyproject.toml or the export installer changes): an empty
#    package and README stand in for the source, so editing code does not reinstall torch/TensorRT wheels.
#    The constraints keep the container's own TensorRT bindings and a cuda-python of its CUDA major;
#    tools/install_export.sh calls `python`, which some NGC images only have as python3.
COPY pyproject.toml ./
COPY tools/install_export.sh tools/install_export.sh
RUN command -v python >/dev/null || ln -s "$(command -v python3)" /usr/local/bin/python \
    && mkdir qyolo_trt && touch qyolo_trt/__init__.py README.md \
    && python3 -c "import tensorrt as t; print(f'tensorrt=={t.__version__}')" > /tmp/constraints.txt \
    && { [ -z "${CUDA_VERSION:-}" ] || echo "cuda-python==${CUDA_VERSION%%.*}.*" >> /tmp/constraints.txt; } \
    && PIP_CONSTRAINT=/tmp/constraints.txt pip install --no-cache-dir -e ".[trt]" \
    && PIP_CONSTRAINT=/tmp/constraints.txt bash tools/install_export.sh

# 2) the source with its package data (embedded default model and calibration images; editable install: picked up as is)
COPY qyolo_trt/ qyolo_trt/

# 3) check the install, then run as an unprivileged user; engines are written under the mounted working directory
RUN python3 -c "import qyolo_trt.cli, qyolo_trt.defaults as d; d.default_model(); d.default_calib()" \
    && groupadd --gid 10001 qyolo \
    && useradd --create-home --uid 10001 --gid 10001 --shell /bin/bash qyolo
USER 10001:10001
WORKDIR /work
ENTRYPOINT ["qyolo-trt"]
CMD ["--help"]
