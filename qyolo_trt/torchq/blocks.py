"""Cut a ``TorchGraph`` into blocks for block-wise reconstruction (BRECQ): one YOLO unit per block.

Ultralytics and yolov5 exports name nodes ``/model.N/...``: every node under one ``/model.N/`` prefix is one block
(a Conv-SiLU, a C3 / C2f / SPPF unit, an Upsample, a Concat, the Detect head). In a graph without such names every
conv starts a block of its own and other nodes join the block of their first input. A block reads ``inputs`` (the
tensors its nodes read, after their quantizers) that come from ``raw_inputs`` (the same tensors before their
activation quantizers and shifts: what the previous blocks produced) and writes ``outputs`` (what later blocks or
the graph outputs read).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import QyoloError
from .graph import Step, TorchGraph

UNIT_NAME = re.compile(r"^/?(model\.\d+)/")
NONLOCAL_OPS = frozenset({"Reshape", "Transpose", "MatMul", "Gemm", "Softmax", "Gather", "Flatten"})  # crops break them
PARAMETER_OPS = ("Weight", "Bias")


@dataclass
class Block:
    name: str
    steps: list[Step]  # the block's own nodes (no quantizers, weights or biases)
    raw_inputs: list[str]
    inputs: list[str]
    outputs: list[str]
    weights: list[str]  # quantized weights its convs read
    convs: list[str]  # its convs with a quantized weight and a float bias (``TorchGraph.bias`` keys)
    targets: list[str]  # what reconstruction compares: the outputs, or (a head) the inputs of its float convs


def partition(graph: TorchGraph) -> list[Block]:
    """The graph's blocks in an order where each block's raw inputs are graph inputs or earlier blocks' outputs."""
    producer = {o: s for s in graph.steps for o in s.outputs}
    order = {id(s): i for i, s in enumerate(graph.steps)}
    keys: dict[int, str] = {}
    members: dict[str, list[Step]] = {}
    for step in graph.steps:
        if step.chain or step.op in PARAMETER_OPS:
            continue
        keys[id(step)] = key = _key(step, producer, keys, order)
        members.setdefault(key, []).append(step)
    readers: dict[str, set[str]] = {n: {""} for n in graph.output_names}  # raw tensor -> blocks reading it ("": graph)
    for step in graph.steps:
        if id(step) in keys:
            for name in step.inputs:
                readers.setdefault(_raw(name, producer), set()).add(keys[id(step)])
    blocks = [_block(name, steps, graph, producer, readers) for name, steps in members.items()]
    return _ordered(blocks, set(graph.input_names))


def _ordered(blocks: list[Block], available: set[str]) -> list[Block]:
    """Blocks in dependency order (ties: graph order)."""
    ordered: list[Block] = []
    pending = list(blocks)
    while pending:
        ready = next((b for b in pending if all(n in available for n in b.raw_inputs)), None)
        if ready is None:
            missing = next(n for n in pending[0].raw_inputs if n not in available)
            raise QyoloError(f"torchq: block {pending[0].name} reads {missing!r}, which no block before it can produce")
        pending.remove(ready)
        ordered.append(ready)
        available.update(ready.outputs)
    return ordered


def _key(step: Step, producer: dict[str, Step], keys: dict[int, str], order: dict[int, int]) -> str:
    """``model.N`` from the node name; else a conv's own name; else the block of the input produced last."""
    if match := UNIT_NAME.match(step.name):
        return match.group(1)
    if step.op == "Conv":
        return step.name
    sources = [producer[s] for s in (_raw(n, producer) for n in step.inputs) if s in producer and id(producer[s]) in keys]
    return keys[id(max(sources, key=lambda s: order[id(s)]))] if sources else step.name


def _raw(name: str, producer: dict[str, Step]) -> str:
    """The tensor before the chain of quantizers / shifts that produced ``name``."""
    while name in producer and producer[name].chain:
        name = producer[name].inputs[0]
    return name


def _block(name: str, steps: list[Step], graph: TorchGraph, producer: dict[str, Step], readers: dict[str, set[str]]) -> Block:
    own = {o for s in steps for o in s.outputs}
    inputs = _unique(n for s in steps for n in s.inputs
                     if n and _raw(n, producer) not in own and n not in graph.consts and not (n in producer and producer[n].op in PARAMETER_OPS))  # fmt: skip
    outputs = [o for s in steps for o in s.outputs if readers.get(o, set()) - {name}]
    return Block(
        name=name,
        steps=steps,
        raw_inputs=_unique(_raw(n, producer) for n in inputs),
        inputs=inputs,
        outputs=outputs,
        weights=_unique(n for s in steps if s.op == "Conv" for n in s.inputs[1:2] if n in graph.weight_keys),
        convs=[s.name for s in steps if s.name in graph.bias_keys],
        targets=_targets(steps, graph, producer, outputs),
    )


def _targets(steps: list[Step], graph: TorchGraph, producer: dict[str, Step], outputs: list[str]) -> list[str]:
    """The block's outputs and the inputs of its float convs, except tensors computed from a float conv's output
    (a detection head is compared before its float convs and decode, not on decoded boxes, nor at a float conv after
    the decode such as YOLOv8's DFL). Comparing the head on its float convs' outputs instead was measured and lost
    (README: fall_yolov8s split A, agreement 0.951 -> 0.929, SQNR equal)."""
    after_float: set[str] = set()
    targets: list[str] = []
    for step in steps:
        if step.op == "Conv" and step.inputs[1] not in graph.weight_keys:
            targets.append(_raw(step.inputs[0], producer))
            after_float.update(step.outputs)
        elif any(_raw(n, producer) in after_float for n in step.inputs):
            after_float.update(step.outputs)
    return [t for t in _unique([*targets, *outputs]) if t not in after_float]


def is_local(graph: TorchGraph, given: list[str], outputs: list[str]) -> bool:
    """Only spatially local ops between ``given`` and ``outputs``: a spatial crop of the inputs is a valid input."""
    return not any(step.op in NONLOCAL_OPS for step, _ in graph.plan(tuple(sorted(given)), tuple(outputs)))


def _unique(names) -> list[str]:
    return list(dict.fromkeys(names))
