#!/usr/bin/env bash
# Smoke test for a GPU box (docker + NVIDIA Container Toolkit): build the image, build INT8 and FP16
# engines of the embedded yolov5n with standard TensorRT inside it (plus the EfficientNMS end-to-end
# variant and a Triton model repository), then bench INT8 against FP16, and the NMS engine against
# the plain one, on the GPU, interleaved.
# Run from the repository root:   bash tools/gpu_smoke.sh        (IMAGE=..., OUT=... to override)
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${IMAGE:-qyolo-trt}"
OUT="${OUT:-engines/smoke}"
mkdir -p "$OUT"

docker build -t "$IMAGE" .
run() { docker run --rm --gpus all --user "$(id -u):$(id -g)" -v "$PWD:/work" -w /work "$IMAGE" "$@"; }

run build --backend tensorrt -o "$OUT/yolov5n_int8.engine" --triton-repo "$OUT/triton" --json > "$OUT/build_int8.json"
run build --backend tensorrt --precision fp16 -o "$OUT/yolov5n_fp16.engine" --json > "$OUT/build_fp16.json"
run build --backend tensorrt --nms -o "$OUT/yolov5n_int8_nms.engine" --json > "$OUT/build_int8_nms.json"
run bench "$OUT/yolov5n_fp16.engine" "$OUT/yolov5n_int8.engine" --backend trt --iters 500 --json > "$OUT/bench.json"
run bench "$OUT/yolov5n_fp16.engine" "$OUT/yolov5n_int8.engine" --backend trt --iters 500
# the end-to-end engine must deserialise in a fresh process (EfficientNMS_TRT registered by the runtime)
run bench "$OUT/yolov5n_int8.engine" "$OUT/yolov5n_int8_nms.engine" --backend trt --iters 200

ls -l "$OUT" "$OUT/triton"/*
echo "smoke OK: engines, sidecars, Triton repo and bench.json in $OUT"
