"""``make_trt(10)`` / ``make_trt(11)``: fake ``tensorrt`` modules with each version's API subset.

Build: the ONNX "parser" reads the model with ``onnx``; the "builder" turns every non-Q/DQ node into one layer
whose activation inputs are Int8 when fed by a Q->DQ pair and INT8 is enabled (TRT 10: ``BuilderFlag.INT8``;
TRT 11: always, strong typing), Half under ``BuilderFlag.FP16`` or for FP16 graph tensors, else Float. Like the
real ones: a Q/DQ network without INT8 in TRT 10 and a dynamic input without a profile fail to build; a plan
from another version does not deserialise; nothing deserialises without a GPU.
"""

from __future__ import annotations

import base64
import ctypes
import enum
import json
import os
import types
import weakref
from typing import Any

import numpy as np
import onnx

_ELEM = {onnx.TensorProto.FLOAT: "FLOAT", onnx.TensorProto.FLOAT16: "HALF", onnx.TensorProto.INT8: "INT8",
         onnx.TensorProto.INT32: "INT32", onnx.TensorProto.INT64: "INT64", onnx.TensorProto.BOOL: "BOOL"}
_NP = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_}
_FORMAT = {"Float": "Row major linear FP32", "Half": "Channel major FP16 format where channel % 8 == 0",
           "Int8": "Thirty-two wide channel vectorized row major Int8 format"}
_LAYER_TYPES = {"Conv": "CaskConvolution", "MaxPool": "CaskPooling", "Concat": "NoOp", "Resize": "Resize"}
_BUILDER_FLAGS_10 = ["FP16", "INT8", "DEBUG", "GPU_FALLBACK", "REFIT", "DISABLE_TIMING_CACHE", "TF32", "SPARSE_WEIGHTS",
                     "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS", "DIRECT_IO", "FP8", "BF16"]
_BUILDER_FLAGS_11 = ["DEBUG", "GPU_FALLBACK", "REFIT", "DISABLE_TIMING_CACHE", "TF32", "SPARSE_WEIGHTS", "VERSION_COMPATIBLE",
                     "EDITABLE_TIMING_CACHE"]


def make_trt(major: int, *, cudart: Any = None, version: str | None = None) -> types.ModuleType:
    """A fake ``tensorrt`` module of ``major`` 10 or 11; ``cudart`` (a FakeCudart) decides whether a GPU exists."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version or f"{major}.{'13.3.9' if major == 10 else '1.0.7'}"
    trt.stats = {"builders": 0, "runtimes": 0, "builds": [], "plugins": False}  # what the tests inspect

    def init_libnvinfer_plugins(logger: Any, namespace: str) -> bool:
        """Register the bundled plugins (EfficientNMS_TRT, ...); until then plugin nodes neither parse nor load.
        Like the real library, the plugin registry keeps only a raw pointer to ``logger`` (here: a weak reference)."""
        trt.stats["plugins"] = True
        trt.stats["plugin_logger"] = weakref.ref(logger)
        return True

    class _Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    Severity = _Severity

    class ILogger:
        Severity = _Severity

        def __init__(self) -> None:
            pass

        def log(self, severity: Severity, msg: str) -> None:
            raise NotImplementedError

    DataType = enum.Enum("DataType", list(_NP))
    BuilderFlag = enum.IntEnum("BuilderFlag", _BUILDER_FLAGS_10 if major == 10 else _BUILDER_FLAGS_11, start=0)
    NetworkDefinitionCreationFlag = enum.IntEnum(
        "NetworkDefinitionCreationFlag", ["EXPLICIT_BATCH", "STRONGLY_TYPED"] if major == 10 else ["STRONGLY_TYPED"], start=0
    )
    ProfilingVerbosity = enum.IntEnum("ProfilingVerbosity", ["LAYER_NAMES_ONLY", "NONE", "DETAILED"], start=0)
    LayerInformationFormat = enum.IntEnum("LayerInformationFormat", ["ONELINE", "JSON"], start=0)
    TensorIOMode = enum.IntEnum("TensorIOMode", ["NONE", "INPUT", "OUTPUT"], start=0)

    def nptype(dtype: Any) -> type:
        return _NP[dtype.name]

    class ITensor:
        __slots__ = ("name", "shape", "dtype") + (("dynamic_range",) if major == 10 else ())

        def __init__(self, name: str, shape: tuple[int, ...], dtype: Any) -> None:
            self.name, self.shape, self.dtype = name, shape, dtype

    if major == 10:
        ITensor.set_dynamic_range = lambda self, lo, hi: setattr(self, "dynamic_range", (lo, hi)) or True

    class INetworkDefinition:
        __slots__ = ("flags", "inputs", "outputs", "model", "types", "shapes")

        def __init__(self, flags: int) -> None:
            self.flags, self.inputs, self.outputs, self.model, self.types, self.shapes = flags, [], [], None, {}, {}

        num_inputs = property(lambda self: len(self.inputs))
        num_outputs = property(lambda self: len(self.outputs))

        def get_input(self, i: int) -> ITensor:
            return self.inputs[i]

        def get_output(self, i: int) -> ITensor:
            return self.outputs[i]

    def _dims(vi: onnx.ValueInfoProto) -> tuple[int, ...]:
        """-1 for a dynamic dimension, as the inspector shows it without an execution context."""
        return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim)

    def _tensor(vi: onnx.ValueInfoProto) -> ITensor:
        return ITensor(vi.name, _dims(vi), DataType[_ELEM[vi.type.tensor_type.elem_type]])

    class OnnxParser:
        __slots__ = ("network", "logger", "errors")

        def __init__(self, network: INetworkDefinition, logger: ILogger) -> None:
            self.network, self.logger, self.errors = network, logger, []

        num_errors = property(lambda self: len(self.errors))

        def get_error(self, i: int) -> str:
            return self.errors[i]

        def parse(self, model: bytes, path: str | None = None) -> bool:
            if path is not None and not os.path.isfile(path):  # the real parser takes the model's file path, not a folder
                self.errors.append(f"ModelImporter: {path} is not an ONNX model file (external weights are resolved beside it)")
                return False
            try:
                m = onnx.load_from_string(bytes(model))
            except Exception as exc:  # noqa: BLE001
                self.errors.append(f"ModelImporter: failed to parse ONNX model ({type(exc).__name__})")
                return False
            for n in m.graph.node:
                if n.op_type.endswith("_TRT") and not trt.stats["plugins"]:
                    self.errors.append(f"While parsing node {n.name} [{n.op_type}]: Plugin not found, are the plugin name, "
                                       "version, and namespace correct?")
                    return False
                if n.op_type == "DequantizeLinear" and n.input[0] in {i.name for i in m.graph.initializer if i.data_type == onnx.TensorProto.INT32}:
                    self.errors.append(f"Invalid Node - {n.name}: input has type Int32 but must have type Int8")
                    return False
            inits = {i.name for i in m.graph.initializer}
            net = self.network
            net.inputs = [_tensor(i) for i in m.graph.input if i.name not in inits]
            net.outputs = [_tensor(o) for o in m.graph.output]
            net.model = m
            inferred = onnx.shape_inference.infer_shapes(m)
            for vi in [*inferred.graph.value_info, *m.graph.input, *m.graph.output]:
                net.types[vi.name] = vi.type.tensor_type.elem_type
                net.shapes[vi.name] = list(_dims(vi))
            for i in m.graph.initializer:
                net.types[i.name] = i.data_type
            return True

    class IOptimizationProfile:
        __slots__ = ("shapes",)

        def __init__(self) -> None:
            self.shapes = {}

        def set_shape(self, name: str, lo: tuple, opt: tuple, hi: tuple) -> None:
            if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
                raise ValueError("min <= opt <= max violated")
            self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))

    class IHostMemory:
        __slots__ = ("_data",)

        def __init__(self, data: bytes) -> None:
            self._data = data

        nbytes = property(lambda self: len(self._data))

        def __bytes__(self) -> bytes:
            return self._data

    class ITimingCache:
        __slots__ = ("entries",)

        def __init__(self, data: bytes) -> None:
            self.entries = set(json.loads(data)) if data else set()

        @classmethod
        def parse(cls, data: bytes) -> ITimingCache | None:
            """What ``create_timing_cache`` returns: None (not an exception) for bytes that are not a timing cache."""
            try:
                return cls(data)
            except ValueError:
                return None

        def serialize(self) -> IHostMemory:
            return IHostMemory(json.dumps(sorted(self.entries)).encode())

    config_slots = ("flags", "profiling_verbosity", "profiles", "timing_cache", "cache_loaded")
    class IBuilderConfig:
        __slots__ = config_slots + (("int8_calibrator",) if major == 10 else ())

        def __init__(self) -> None:
            self.flags, self.profiling_verbosity, self.profiles = set(), ProfilingVerbosity.LAYER_NAMES_ONLY, []
            self.timing_cache, self.cache_loaded = ITimingCache(b""), None

        def set_flag(self, flag: Any) -> None:
            self.flags.add(BuilderFlag(flag))

        def get_flag(self, flag: Any) -> bool:
            return BuilderFlag(flag) in self.flags

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, data: bytes) -> ITimingCache | None:
            return ITimingCache.parse(bytes(data))

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            self.timing_cache, self.cache_loaded = cache, set(cache.entries)
            return True

        def get_timing_cache(self) -> ITimingCache:
            return self.timing_cache

    def _layers(net: INetworkDefinition, config: IBuilderConfig) -> list[dict[str, Any]]:
        g = net.model.graph
        producer = {o: n for n in g.node for o in n.output}
        consumers: dict[str, list] = {}
        for n in g.node:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
        strong = major >= 11 or bool(net.flags & (1 << NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        int8 = strong or BuilderFlag.INT8 in config.flags if major == 10 else True
        half = major == 10 and not strong and getattr(BuilderFlag, "FP16", None) in config.flags

        def dtype(name: str, quantized: bool) -> str:
            if quantized and int8:
                return "Int8"
            elem = net.types.get(name, onnx.TensorProto.FLOAT)
            if elem not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
                return _ELEM.get(elem, "INT64").title()
            return "Half" if elem == onnx.TensorProto.FLOAT16 or half else "Float"

        def fed_by_qdq(name: str) -> bool:
            dq = producer.get(name)
            return dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in producer

        layers = []
        for n in g.node:
            if n.op_type in ("QuantizeLinear", "DequantizeLinear", "Constant"):
                continue
            acts = [i for i in n.input if i and i not in {t.name for t in g.initializer} and not
                    (producer.get(i) is not None and producer[i].op_type == "DequantizeLinear" and producer[i].input[0] not in producer)]
            dqs = [producer[i].name for i in n.input if i in producer and producer[i].op_type == "DequantizeLinear"]
            layers.append({
                "Name": n.name,
                "LayerType": _LAYER_TYPES.get(n.op_type, "PointWiseV2"),
                "Inputs": [{"Name": i, "Location": "Device", "Dimensions": net.shapes[i],
                            "Format/Datatype": _FORMAT.get(d := dtype(i, fed_by_qdq(i)), d)} for i in acts],
                "Outputs": [{"Name": o, "Location": "Device", "Dimensions": net.shapes[o], "Format/Datatype": _FORMAT.get(d := dtype(
                    o, any(c.op_type == "QuantizeLinear" for c in consumers.get(o, []))), d)} for o in n.output],
                "Metadata": "".join(f"[ONNX Layer: {x}]" for x in [n.name, *dqs]),
            })
        return layers

    class Builder:
        __slots__ = ("logger",)

        def __init__(self, logger: ILogger) -> None:
            self.logger = logger
            trt.stats["builders"] += 1

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            return INetworkDefinition(int(flags))

        def create_builder_config(self) -> IBuilderConfig:
            return IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            return IOptimizationProfile()

        def build_serialized_network(self, net: INetworkDefinition, config: IBuilderConfig) -> IHostMemory | None:
            def fail(msg: str) -> None:
                self.logger.log(Severity.ERROR, f"IBuilder::buildSerializedNetwork: Error Code 4: {msg}")

            if net.model is None or not net.outputs:
                return fail("API Usage Error (Network must have at least one output.)")
            profile = {k: v for p in config.profiles for k, v in p.shapes.items()}
            if any(d < 0 for t in net.inputs for d in t.shape) and not all(t.name in profile for t in net.inputs):
                return fail("API Usage Error (Network has dynamic or shape inputs, but no optimization profile has been defined.)")
            has_qdq = any(n.op_type == "QuantizeLinear" for n in net.model.graph.node)
            strong = major >= 11 or bool(net.flags & (1 << NetworkDefinitionCreationFlag.STRONGLY_TYPED))
            if major == 10 and has_qdq and not strong and BuilderFlag.INT8 not in config.flags:
                return fail("Internal Error (Int8 precision has been set for a layer or layer output, but int8 is not configured in the builder)")
            if major == 10 and strong and config.flags & {BuilderFlag.INT8, BuilderFlag.FP16}:
                return fail("API Usage Error (precision flags are not allowed in a strongly typed network)")
            layers = _layers(net, config)
            config.timing_cache.entries |= {f"{layer['LayerType']}:{layer['Name']}" for layer in layers}
            io = [{"name": t.name, "mode": m, "shape": list(t.shape), "dtype": t.dtype.name}
                  for m, ts in (("INPUT", net.inputs), ("OUTPUT", net.outputs)) for t in ts]
            trt.stats["builds"].append({"flags": sorted(f.name for f in config.flags), "network_flags": net.flags,
                                        "profile": profile, "cache_loaded": config.cache_loaded})
            plugins = sorted({n.op_type for n in net.model.graph.node if n.op_type.endswith("_TRT")})
            plan = {"magic": "FAKETRT", "version": trt.__version__, "layers": layers, "io": io, "plugins": plugins,
                    "profile": {k: [list(s) for s in v] for k, v in profile.items()},
                    "onnx": base64.b64encode(net.model.SerializeToString()).decode()}
            return IHostMemory(json.dumps(plan).encode())

    class IEngineInspector:
        __slots__ = ("engine",)

        def __init__(self, engine: Any) -> None:
            self.engine = engine

        def get_engine_information(self, fmt: Any) -> str:
            if fmt != LayerInformationFormat.JSON:
                return "\n".join(layer["Name"] for layer in self.engine.plan["layers"])
            io = self.engine.plan["io"]
            tensors = {"Bindings": [t["name"] for t in io]} if major == 10 else {"I/O Tensors": [
                {"Name": t["name"], "IOMode": t["mode"].title(), "DataType": t["dtype"].title(), "Dimensions": t["shape"]} for t in io]}
            return json.dumps({"Layers": self.engine.plan["layers"], **tensors})

    class IExecutionContext:
        __slots__ = ("engine", "shapes", "addresses")

        def __init__(self, engine: Any) -> None:
            self.engine, self.shapes, self.addresses = engine, {}, {}

        def set_input_shape(self, name: str, shape: tuple) -> bool:
            lo, _, hi = self.engine.plan["profile"].get(name, [self.engine.io[name]["shape"]] * 3)
            ok = len(shape) == len(lo) and all(a <= s <= b for a, s, b in zip(lo, shape, hi))
            if ok:
                self.shapes[name] = tuple(int(s) for s in shape)
            return ok

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            if name in self.shapes:
                return self.shapes[name]
            batch = next(iter(self.shapes.values()), (-1,))[0]
            return tuple(batch if d < 0 else d for d in self.engine.io[name]["shape"])

        def set_tensor_address(self, name: str, ptr: int) -> bool:
            self.addresses[name] = int(ptr)
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            import onnxruntime as ort

            io = self.engine.io
            if set(self.addresses) != set(io) or any(io[n]["mode"] == "INPUT" and n not in self.shapes for n in io):
                return False
            feeds = {}
            for n, t in io.items():
                if t["mode"] == "INPUT":
                    shape, dt = self.shapes[n], np.dtype(_NP[t["dtype"]])
                    raw = (ctypes.c_uint8 * (int(np.prod(shape)) * dt.itemsize)).from_address(self.addresses[n])
                    feeds[n] = np.frombuffer(raw, dtype=dt).reshape(shape).copy()
            if self.engine.session is None:
                self.engine.session = ort.InferenceSession(base64.b64decode(self.engine.plan["onnx"]), providers=["CPUExecutionProvider"])
            for n, value in zip([o.name for o in self.engine.session.get_outputs()], self.engine.session.run(None, feeds)):
                data = np.ascontiguousarray(value, dtype=_NP[io[n]["dtype"]])
                ctypes.memmove(self.addresses[n], data.ctypes.data, data.nbytes)
            return True

    class ICudaEngine:
        __slots__ = ("plan", "io", "names", "session")

        def __init__(self, plan: dict[str, Any]) -> None:
            self.plan, self.io, self.session = plan, {t["name"]: t for t in plan["io"]}, None
            self.names = [t["name"] for t in plan["io"]]

        num_io_tensors = property(lambda self: len(self.names))

        def get_tensor_name(self, i: int) -> str:
            return self.names[i]

        def get_tensor_mode(self, name: str) -> Any:
            return TensorIOMode[self.io[name]["mode"]]

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return tuple(self.io[name]["shape"])

        def get_tensor_dtype(self, name: str) -> Any:
            return DataType[self.io[name]["dtype"]]

        def create_execution_context(self) -> IExecutionContext:
            return IExecutionContext(self)

        def create_engine_inspector(self) -> IEngineInspector:
            return IEngineInspector(self)

    class Runtime:
        __slots__ = ("logger",)

        def __init__(self, logger: ILogger) -> None:
            self.logger = logger
            trt.stats["runtimes"] += 1

        def deserialize_cuda_engine(self, data: bytes) -> ICudaEngine | None:
            if cudart is None or not cudart.cudaGetDeviceCount()[1]:  # (err, None) without a driver
                self.logger.log(Severity.ERROR, "CUDA initialization failure with error: 35")
                return None
            try:
                plan = json.loads(bytes(data))
            except ValueError:
                plan = {}
            if plan.get("magic") != "FAKETRT" or plan.get("version") != trt.__version__:
                self.logger.log(Severity.ERROR, "IRuntime::deserializeCudaEngine: Error Code 1: Serialization "
                                "(Serialization assertion: the engine plan is not compatible with this version of TensorRT)")
                return None
            if plan.get("plugins") and not trt.stats["plugins"]:
                self.logger.log(Severity.ERROR, f"getPluginCreator could not find plugin: {plan['plugins'][0]} version: 1")
                return None
            return ICudaEngine(plan)

    for cls in (ILogger, ITensor, INetworkDefinition, OnnxParser, IOptimizationProfile, IHostMemory, ITimingCache,
                IBuilderConfig, Builder, IEngineInspector, IExecutionContext, ICudaEngine, Runtime):
        setattr(trt, cls.__name__, cls)
    trt.Logger = type("Logger", (ILogger,), {k: getattr(Severity, k) for k in Severity.__members__})
    for e in (DataType, BuilderFlag, NetworkDefinitionCreationFlag, ProfilingVerbosity, LayerInformationFormat, TensorIOMode):
        setattr(trt, e.__name__, e)
    trt.nptype = nptype
    trt.init_libnvinfer_plugins = init_libnvinfer_plugins
    if major == 10:  # removed in TensorRT 11
        trt.IInt8EntropyCalibrator2 = type("IInt8EntropyCalibrator2", (), {})
        Builder.platform_has_fast_int8 = property(lambda self: True)
    return trt
