"""Exact simplifications of the PP-OCRv4 detector's ONNX graph, made before onnxruntime loads it.

The exported graph spells each of PP-LCNetV3's learnable affine blocks as a
scalar ``Mul`` and ``Add`` and each hard-swish as four elementwise ops
(``Add 3``, ``Clip 0..6``, ``Mul``, ``Div 6``). onnxruntime fuses none of
them (the scalars sit on the wrong input for its Conv fusions), so about 45 %
of the detector's CPU time went to elementwise passes over full-size feature
maps. Folding them gives the same probabilities (to float rounding) in about
two thirds of the time (``tests/test_text_graph.py`` checks both).

The rules, applied until none matches:

* ``Conv -> Mul(s)`` / ``Conv -> Add(b)``: into the convolution's weights and bias.
* ``Add(x, 3) -> Clip(0, 6) -> Mul(x, .) -> Div(6)``: one ``HardSwish(x)``
  (opset 14; the graph is converted from 12, which lacks it).
* ``Mul(s) -> Add(b) -> Conv`` (an activation's affine block feeding
  convolutions): ``s`` into their weights; ``b`` into their bias where they
  pad nothing (1x1), otherwise kept as ``Add(x, b / s)``, since a padded
  border sees zeros, not ``b``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

HARDSWISH_OPSET = 14


class _Graph:
    """Initializers by name, and who produces and consumes each tensor, for pattern matching."""

    def __init__(self, graph) -> None:  # onnx.GraphProto
        from onnx import numpy_helper

        self.graph = graph
        self.consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        nodes = []
        for n in graph.node:  # Constant nodes become initializers, so every rule sees one kind of constant
            if n.op_type == "Constant":
                self.consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
            else:
                nodes.append(n)
        self.set_nodes(nodes)

    def set_nodes(self, nodes: list) -> None:
        del self.graph.node[:]
        self.graph.node.extend(nodes)
        self.consumers: dict[str, list] = defaultdict(list)
        for n in self.graph.node:
            for i in n.input:
                self.consumers[i].append(n)
        self.outputs = {o.name for o in self.graph.output}

    def sole_consumer(self, node):
        """The one node reading ``node``'s output, or None (several readers, or a graph output)."""
        readers = self.consumers[node.output[0]]
        return readers[0] if len(readers) == 1 and node.output[0] not in self.outputs else None

    def scalar(self, node) -> tuple[float, str, str] | None:
        """``(value, the other input, the constant's name)`` when a binary op has one scalar constant input."""
        if len(node.input) != 2:
            return None
        for const, other in (node.input, node.input[::-1]):
            value = self.consts.get(const)
            if value is not None and value.size == 1:
                return float(value.ravel()[0]), other, const
        return None

    def rewire(self, old: str, new: str) -> None:
        for n in self.consumers[old]:
            n.input[:] = [new if i == old else i for i in n.input]

    def store(self) -> None:
        """Write back the constants still read, as initializers."""
        from onnx import numpy_helper

        read = {i for n in self.graph.node for i in n.input}
        del self.graph.initializer[:]
        self.graph.initializer.extend(numpy_helper.from_array(np.asarray(v, dtype=np.float32) if v.dtype == np.float64 else v, k) for k, v in self.consts.items() if k in read)


# A rule looks at one node; when its pattern starts there it edits the graph's constants and inputs and
# returns (nodes to remove, nodes that take the last removed node's place), else None.
Change = tuple[list, list]


def _conv_affine(g: _Graph, conv) -> Change | None:
    """``Conv -> Mul(s)`` or ``Conv -> Add(b)``: fold into the conv."""
    if conv.op_type != "Conv" or len(conv.input) != 3 or conv.input[1] not in g.consts or conv.input[2] not in g.consts:
        return None
    op = g.sole_consumer(conv)
    found = g.scalar(op) if op is not None and op.op_type in ("Mul", "Add") else None
    if found is None or op.output[0] in g.outputs:
        return None
    value, _, _ = found
    w, b = g.consts[conv.input[1]], g.consts[conv.input[2]]
    g.consts[conv.input[1]], g.consts[conv.input[2]] = (w * value, b * value) if op.op_type == "Mul" else (w, b + value)
    g.rewire(op.output[0], conv.output[0])
    return [op], []


def _hardswish(g: _Graph, add) -> Change | None:
    """``Add(x, 3) -> Clip(0, 6) -> Mul(x, .) -> Div(6)``: one HardSwish."""
    found = g.scalar(add) if add.op_type == "Add" else None
    if found is None or found[0] != 3.0:
        return None
    x = found[1]
    clip = g.sole_consumer(add)
    if clip is None or clip.op_type != "Clip" or [float(g.consts[i]) if i in g.consts else None for i in clip.input[1:]] != [0.0, 6.0]:
        return None
    mul = g.sole_consumer(clip)
    if mul is None or mul.op_type != "Mul" or sorted(mul.input) != sorted([x, clip.output[0]]):
        return None
    div = g.sole_consumer(mul)
    divisor = g.scalar(div) if div is not None and div.op_type == "Div" else None
    if divisor is None or divisor[2] != div.input[1] or divisor[0] != 6.0:
        return None
    from onnx import helper

    return [add, clip, mul, div], [helper.make_node("HardSwish", [x], [div.output[0]], name=f"{div.output[0]}_hardswish")]


def _affine_into_convs(g: _Graph, mul) -> Change | None:
    """``Mul(s) -> Add(b) -> Conv(s)``: ``s`` (and ``b`` where no conv pads) into the convs."""
    found = g.scalar(mul) if mul.op_type == "Mul" else None
    add = g.sole_consumer(mul) if found is not None else None
    bias = g.scalar(add) if add is not None and add.op_type == "Add" else None
    if bias is None or found[0] == 0.0 or add.output[0] in g.outputs:
        return None
    convs = g.consumers[add.output[0]]
    if not convs or not all(c.op_type == "Conv" and c.input[0] == add.output[0] and len(c.input) == 3
                            and c.input[1] in g.consts and c.input[2] in g.consts for c in convs):
        return None
    s, x = found[0], found[1]
    b = bias[0]
    padless = all(not any(a.ints) for c in convs for a in c.attribute if a.name == "pads")
    for c in convs:
        w = g.consts[c.input[1]]
        if padless:  # W (s y + b) = (s W) y + b * sum(W): exact without padding
            g.consts[c.input[2]] = g.consts[c.input[2]] + b * w.sum(axis=(1, 2, 3))
        g.consts[c.input[1]] = w * s
    if padless:
        for c in convs:
            c.input[0] = x
        return [mul, add], []
    g.consts[bias[2]] = np.asarray(b / s, dtype=np.float32)  # (s W)(y + b / s) = W (s y + b), padding included
    add.input[:] = [x if i == mul.output[0] else i for i in add.input]
    return [mul], []


RULES = (_conv_affine, _hardswish, _affine_into_convs)


def _apply_one(g: _Graph) -> bool:
    """Apply the first rule that matches anywhere; False when none does."""
    for node in g.graph.node:
        for rule in RULES:
            change = rule(g, node)
            if change is not None:
                removed, added = change
                drop = {id(n) for n in removed}
                kept = []
                for n in g.graph.node:
                    if id(n) not in drop:
                        kept.append(n)
                    elif n is removed[-1]:
                        kept.extend(added)  # the last removed node's place keeps the order topological
                g.set_nodes(kept)
                return True
    return False


def simplified(path: Path) -> bytes:
    """The model at ``path`` with the rules above applied, serialised for ``onnxruntime.InferenceSession``."""
    import onnx
    from onnx import version_converter

    model = version_converter.convert_version(onnx.load(str(path)), HARDSWISH_OPSET)
    g = _Graph(model.graph)
    while _apply_one(g):
        pass
    g.store()
    return model.SerializeToString()
