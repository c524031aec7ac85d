"""The embedded default model and calibration images, shipped as package data (``qyolo_trt/assets/``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import QyoloError

DEFAULT_ENGINES = Path("engines")

# quantization choices and defaults, named once (import-light: the CLI reads them without numpy / onnx)
METHODS = ("uh", "minmax", "percentile", "entropy", "mse")  # calibration methods (registry order of qyolo_trt.calib.methods)
DEFAULT_METHOD = "uh"
DEFAULT_PERCENTILE = 99.99  # calibrate --method percentile
MODES = ("symmetric", "shifted", "asymmetric")  # Q/DQ forms; asymmetric (zero points) is for CPU runtimes only
TENSORRT_MODES = ("symmetric", "shifted")  # the forms TensorRT runs
DEFAULT_MODE = "shifted"  # the quantize pipeline at 8 bits: `quantize`, `build`, QuantizeConfig
BASE_MODE = "symmetric"  # the plain TensorRT form: the rewrite alone (qdq.quantize), `sensitivity`, low-bit simulations
TARGETS = ("tensorrt", "openvino", "ort")  # quantize --target: the runtime the Q/DQ placement is made for (qdq.rules.profiles)
DEFAULT_TARGET = "tensorrt"  # `build` is always tensorrt
INT8_MAX = 127  # symmetric int8 grid [-127, 127] (TensorRT's)
DEFAULT_BITS = 8
BITS_RANGE = (2, 8)  # --bits: low-bit simulation widths
WEIGHT_CLIPS = ("minmax", "mse")  # per-channel weight clip
DEFAULT_WEIGHT_CLIP = "minmax"
KEEP_FLOAT = ("head", "first-conv")  # structural parts that can stay float
DEFAULT_KEEP_FLOAT = ("head",)
LOWBIT_KEEP_FLOAT = ("head", "first-conv")  # below 8 bits the first conv too (W4A4 + reconstruction, README defaults)
FLOAT_DTYPES = ("fp32", "fp16")  # --float-dtype / --io-dtype
BIAS_IMAGES = 16  # images bias correction measures on, by default (build, compare, quantize --bias-num-images)
SENSITIVITY_IMAGES = 8  # images sensitivity (and the float fallback's ranking) measures on, by default
SENSITIVITY_METRICS = ("mse", "cosine")  # mse: noise / signal energy of the head outputs; cosine: 1 - cosine similarity
# `build` (GPU engines): its quantize recipe and engine precision
BUILD_BIAS_CORRECTION = True
BUILD_RECONSTRUCT = False  # learned rounding: off until it wins on both real models and two splits (README accuracy)
# INT8 engines: non-INT8 parts in fp32. fp16 (--float-dtype fp16) lost 10.5 / 4.6 dB head SQNR on fall_yolov8s (two splits,
# tools/defaults_study.py): the shifted form's folded biases (c * sum W, up to ~90) keep only 11 bits in fp16; and it saved
# only 7% of the engine's activation traffic (TensorRT-RTX's per-channel INT8 convs write FP32 either way)
BUILD_FLOAT_DTYPE = "fp32"
ENGINE_PRECISIONS = ("int8", "fp16", "fp32")
DEFAULT_PRECISION = "int8"

# evaluation post-processing (eval, compare, build's quality line, the README's tables): yolov5's val settings
EVAL_CONF = 0.001
EVAL_IOU = 0.6
EVAL_MAX_DET = 300


def _asset(name: str) -> Path:
    # setuptools installs package data as plain files (wheel and editable installs alike)
    return Path(str(resources.files("qyolo_trt") / "assets" / name))


def default_model() -> Path:
    """Path of the embedded yolov5n.onnx; an error if this install lacks its package data."""
    path = _asset("yolov5n.onnx")
    if not path.is_file():
        raise QyoloError(f"embedded default model not found at {path} (broken install?); pass a MODEL argument")
    return path


def default_calib() -> Path:
    """Folder of the embedded calibration images; an error if this install lacks its package data."""
    path = _asset("calib_data")
    if not path.is_dir():
        raise QyoloError(f"embedded calibration images not found at {path} (broken install?); pass --calib/--images")
    return path

# reconstruction PTQ (qyolo_trt.torchq.reconstruct: AdaRound + BRECQ-style blocks + QDrop), sized for a 2-core CPU
RECONSTRUCT_ITERS = 200  # optimisation steps per block
RECONSTRUCT_IMAGES = 32  # calibration images reconstruction optimises on, by default (quantize, build)
RECONSTRUCT_BATCH = 4  # images per step
RECONSTRUCT_CROP = 0.5  # side of the random spatial crop of a block's inputs, as a fraction of their size (1: no crop)
RECONSTRUCT_DROP_PROB = 0.5  # QDrop: probability that an activation value skips its quantization during optimisation
RECONSTRUCT_LR = 0.1  # Adam step of the AdaRound variables (the papers use 1e-3 for 10-20k steps; we take ~200)
RECONSTRUCT_BIAS_LR = 1e-3  # Adam step of the float bias refit
RECONSTRUCT_LEARN_SCALES = False  # also learn activation step sizes (LSQ) block by block
RECONSTRUCT_SCALE_LR = 1e-3  # Adam step of a learned activation scale, relative to its value

# quantization-aware fine-tuning (qyolo_trt.torchq.qat: distillation from FP32, LSQ activations, STE weights), sized so
# that yolov5n on 64 images finishes in minutes on a 2-core CPU
QAT_EPOCHS = 3  # passes over the images
QAT_BATCH = 4  # images per step
QAT_CROP = 0.5  # side of the random crop of each batch (on the stride-32 grid), as a fraction of the image (1: no crop)
QAT_LR = 1e-3  # Adam step of the latent weights, in grid steps (weights are learned as W / scale); 5e-3 overfit (README QAT)
QAT_SCALE_LR = 0.0  # Adam step of the activation step sizes (LSQ), relative to their initial value; 1e-4 lost on the tuning split
QAT_BIAS_LR = 0.0  # Adam step of the quantized convs' float bias; 1e-4 lost on the tuning split (README QAT)
QAT_EMA_DECAY = 0.99  # per-step decay of the weight EMA (warmed up as (1 + n) / (10 + n))
QAT_QC = False  # the QC phase refits step sizes and biases: a no-op at the default rates above, so off
QAT_QC_EPOCHS = 1  # correction phase after QAT (weights frozen; step sizes and biases refit), in passes over the images
QAT_KEEP_BEST = True  # export the start's or an epoch's parameters, whichever has the lowest whole-image loss (README QAT)
QAT_RECONSTRUCT = True  # qat starts from the reconstructed model (quantize --reconstruct), not plain UH
