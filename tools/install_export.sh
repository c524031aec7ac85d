#!/usr/bin/env bash
# Install the `export` extra (qyolo-trt export of Ultralytics .pt/.yaml). Run from the repository root.
#
# 1. CPU torch (pinned; 190 MB) and Ultralytics' real runtime deps come from the `export` extra.
# 2. Ultralytics itself is installed without its dependency list, which would pull a multi-GB CUDA torch,
#    a CUDA torchvision and opencv-python (clashing with opencv-python-headless).
# 3. `import ultralytics` reads importlib.metadata.version("torchvision") and, on the paths we use (build from
#    a model YAML, load a .pt, export ONNX), never imports torchvision itself. torchvision 0.28.0 is the release
#    built for torch 2.13.0; PyPI only has its CUDA build, whose native ops cannot load beside CPU torch (so
#    `import torchvision` fails with "operator torchvision::nms does not exist"), so it is installed without
#    dependencies, for its version metadata. Ultralytics' predict/val (torchvision NMS) are not used here.
set -euo pipefail
pip install -e ".[export]"
pip install --no-deps "ultralytics==8.4.190" "torchvision==0.28.0"
YOLO_OFFLINE=1 YOLO_VERBOSE=False python -c "import ultralytics, torch; print('ultralytics', ultralytics.__version__, 'torch', torch.__version__)"
