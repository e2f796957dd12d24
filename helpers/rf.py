"""Receptive-field table of any CNN, computed per tensor on the graph it actually runs.

The model's ``forward`` is traced with ``torch.fx`` and every tensor gets a receptive field
``rf`` and a ``jump`` (the distance between neighbouring outputs, in input pixels); the input
image has rf 1, jump 1. At each Conv2d / MaxPool2d / AvgPool2d (module or ``F.conv2d``,
``F.max_pool2d``, ``F.avg_pool2d``):

    k_eff = d * (k - 1) + 1                  effective kernel of a dilated layer
    rf_out = rf_in + (k_eff - 1) * jump_in   receptive field
    jump_out = jump_in * stride

Any other operation keeps the geometry of its tensor inputs; where several meet (``x + f(x)``,
``torch.cat``, ``*``, ...) the result takes the largest rf and the largest jump of them. The
jumps of merged maps agree whenever the maps line up pixel for pixel (a residual add, a concat
of same-size branches that went through the same strides), and then this is exact; if they
differ, the result is an upper bound. So residual, Inception-style and other branching nets
come out right, not only chains.

The table has one row per sliding-window layer, in forward order, with its output size from
one zero batch; ``receptive_field`` is the rf of the model's output. Global/adaptive pooling,
flatten and linear layers are not sliding windows and are left out (the output keeps the rf
of the last feature map); transposed convolutions and upsampling are not modelled. Square
kernels are assumed: for others the table follows the height axis.

Python branches on shapes (``if x.shape[1] != 3: raise ...``) are settled with the zero batch,
so the table is that of ``input_size``. A model torch.fx cannot trace (branches on tensor
values, ``len(x)``, ``range(x.size(0))``, ...) raises a one-line ValueError. Needs only torch
(matplotlib for the figure).
"""

from __future__ import annotations

import inspect
import os
import traceback
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.node import Node, map_arg

if TYPE_CHECKING:  # for the type hint only: matplotlib is imported when a figure is drawn
    from matplotlib.figure import Figure

_LAYERS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)

# functional sliding windows: (function, kind, its parameter names in order)
_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_MAX_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_AVG_ARGS = ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
             "divisor_override")
_FUNCTIONAL = [(f, kind, names) for fs, kind, names in (
    ((F.conv2d, torch.conv2d), "F.conv2d", _CONV_ARGS),
    ((F.max_pool2d, F.max_pool2d_with_indices, torch.max_pool2d), "F.max_pool2d", _MAX_ARGS),
    ((F.avg_pool2d, getattr(torch, "avg_pool2d", F.avg_pool2d)), "F.avg_pool2d", _AVG_ARGS),
) for f in fs]

# reading these gives the shape (or dtype, device) of a tensor, never its values
_META_ATTRS = {"shape", "ndim", "dtype", "device", "is_cuda", "layout", "requires_grad"}
_META_METHODS = {"size", "dim", "ndimension", "numel", "nelement", "element_size", "get_device",
                 "is_floating_point", "is_complex", "is_contiguous"}
_MAX_BRANCHES = 1000
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_THIS_FILE = os.path.abspath(__file__)


@dataclass
class RFRow:
    """One line of the receptive-field table."""

    layer: str
    kind: str
    kernel: int
    stride: int
    padding: int
    dilation: int
    out_size: int
    jump: int
    rf: int


def _first(v) -> int:
    return int(v[0] if isinstance(v, (tuple, list)) else v)


def _padding(p, k: int, d: int) -> int:
    """Padding as an int; ``"same"`` pads d*(k-1) in all, the smaller half first, ``"valid"`` none."""
    if isinstance(p, str):
        return d * (k - 1) // 2 if p == "same" else 0
    return _first(p)


# --- tracing --------------------------------------------------------------------------------

class _NeedAnswer(Exception):
    """Raised inside tracing when a branch on shapes needs the zero batch's real value."""

    def __init__(self, node: Node):
        super().__init__(node.name)
        self.node = node


class _DataDependent(Exception):
    """Raised inside tracing when ``forward`` branches on the values of the input."""

    def __init__(self, where: str):
        super().__init__(where)
        self.where = where


def _is_metadata(n: Node) -> bool:
    return ((n.op == "call_method" and n.target in _META_METHODS)
            or (n.op == "call_function" and n.target is getattr and len(n.args) > 1
                and n.args[1] in _META_ATTRS)
            or (n.op == "call_function" and n.target is torch.numel))


def _reads_values(node: Node) -> bool:
    """Whether ``node`` depends on the values, not only the shape, of the image input."""
    image = next(n for n in node.graph.nodes if n.op == "placeholder")
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        if n in seen or _is_metadata(n):
            continue
        if n is image:
            return True
        seen.add(n)
        stack.extend(n.all_input_nodes)
    return False


def _where(frames: list[traceback.FrameSummary]) -> str:
    """`` at file:line `code` `` for the innermost frame of the user's code, or ""."""
    for f in reversed(frames):
        path = os.path.abspath(f.filename)
        if not path.startswith(_TORCH_DIR) and path != _THIS_FILE:
            code = f" `{f.line.strip()}`" if f.line else ""
            return f" at {os.path.basename(f.filename)}:{f.lineno}{code}"
    return ""


class _ShapeTracer(fx.Tracer):
    """A Tracer that keeps sliding-window layers whole and settles branches on shapes.

    ``answers`` holds the truth values of the shape conditions met so far, in order; a new one
    stops the trace with ``_NeedAnswer`` so that the caller can compute it and trace again.
    """

    def __init__(self, answers: list[bool]):
        super().__init__()
        self.answers = answers
        self.asked = 0

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, _LAYERS) or super().is_leaf_module(m, module_qualified_name)

    def to_bool(self, obj: fx.Proxy) -> bool:
        if self.asked < len(self.answers):
            self.asked += 1
            return self.answers[self.asked - 1]
        if _reads_values(obj.node):
            raise _DataDependent(_where(traceback.extract_stack()))
        raise _NeedAnswer(obj.node)


def _evaluate(graph: fx.Graph, root: nn.Module, x: torch.Tensor,
              stop: Node | None = None) -> dict[Node, Any]:
    """Run ``graph`` (up to ``stop``) on ``x`` and return every node's value."""
    env: dict[Node, Any] = {}
    first = True
    for node in graph.nodes:
        args = map_arg(node.args, env.__getitem__)
        kwargs = map_arg(node.kwargs, env.__getitem__)
        if node.op == "placeholder":
            value = x if first else (args[0] if args else None)
            first = False
        elif node.op == "get_attr":
            value = root
            for part in node.target.split("."):
                value = getattr(value, part)
        elif node.op == "call_function":
            value = node.target(*args, **kwargs)
        elif node.op == "call_method":
            value = getattr(args[0], node.target)(*args[1:], **kwargs)
        elif node.op == "call_module":
            value = root.get_submodule(node.target)(*args, **kwargs)
        else:  # output
            value = args[0]
        env[node] = value
        if node is stop:
            break
    return env


def _trace(model: nn.Module, x: torch.Tensor) -> fx.Graph:
    """The fx graph of ``model`` for input ``x``, or a one-line ValueError saying why not."""
    name = type(model).__name__
    try:  # arguments after the image keep their defaults, as when the model ran
        params = list(inspect.signature(model.forward).parameters.values())[1:]
    except (TypeError, ValueError):
        params = []
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    answers: list[bool] = []
    for _ in range(_MAX_BRANCHES):
        tracer = _ShapeTracer(answers)
        try:
            try:
                return tracer.trace(model, concrete_args=defaults or None)
            except _NeedAnswer as q:
                answers.append(bool(_evaluate(tracer.graph, model, x, stop=q.node)[q.node]))
        except _DataDependent as e:
            raise ValueError(
                f"rf_table cannot follow {name}: its forward branches on tensor values{e.where}, "
                f"so which layers run depends on the data; pass the part of the model without "
                f"that branch instead, e.g. rf_table(model.features)") from None
        except Exception as e:  # noqa: BLE001 - any failure of tracing is reported the same way
            first_line = (str(e).splitlines() or [""])[0]
            where = _where(traceback.extract_tb(e.__traceback__))
            raise ValueError(
                f"rf_table cannot trace {name} with torch.fx ({type(e).__name__}: {first_line})"
                f"{where}; pass a traceable part of the model instead, e.g. "
                f"rf_table(model.features), or avoid len(), range() and loops over tensors "
                f"in its forward") from None
    raise ValueError(f"rf_table cannot trace {name}: its forward takes more than "
                     f"{_MAX_BRANCHES} Python branches on shapes")


# --- geometry -------------------------------------------------------------------------------

def _window(node: Node, root: nn.Module, env: dict[Node, Any]) -> tuple[str, str, int, int, int, int] | None:
    """(layer, kind, kernel, stride, padding, dilation) if ``node`` is a sliding window."""
    if node.op == "call_module":
        m = root.get_submodule(node.target)
        if not isinstance(m, _LAYERS):
            return None
        k, s = _first(m.kernel_size), _first(m.stride)
        d = _first(getattr(m, "dilation", 1))
        kind = type(m).__name__
        if isinstance(m, nn.Conv2d):
            kind = _conv_kind(kind, d, m.groups > 1 and m.groups == m.in_channels)
        return node.target, kind, k, s, _padding(m.padding, k, d), d
    if node.op != "call_function":
        return None
    spec = next(((kind, names) for f, kind, names in _FUNCTIONAL if node.target is f), None)
    if spec is None:
        return None
    kind, names = spec
    bound = dict(zip(names, map_arg(node.args, env.__getitem__)))
    bound.update(map_arg(node.kwargs, env.__getitem__))
    d = _first(bound.get("dilation", 1))
    if kind == "F.conv2d":
        weight, groups = bound["weight"], int(bound.get("groups", 1))
        k, s = int(weight.shape[-2]), _first(bound.get("stride", 1))
        kind = _conv_kind(kind, d, groups > 1 and weight.shape[1] == 1)
    else:
        k = _first(bound["kernel_size"])
        stride = bound.get("stride")
        s = _first(stride) if stride not in (None, [], ()) else k
    return node.name, kind, k, s, _padding(bound.get("padding", 0), k, d), d


def _conv_kind(kind: str, dilation: int, depthwise: bool) -> str:
    if depthwise:
        return f"{kind} (depthwise)"
    return f"{kind} (dilation {dilation})" if dilation > 1 else kind


def _has_tensor(v: Any) -> bool:
    if isinstance(v, torch.Tensor):
        return True
    return isinstance(v, (list, tuple)) and any(_has_tensor(u) for u in v)


def _analyse(model: nn.Module, input_size: tuple[int, int, int]) -> tuple[list[RFRow], int]:
    """The table's rows and the receptive field of the model's output."""
    if len(input_size) != 3:
        raise ValueError(f"input_size must be (channels, height, width), got {input_size}")
    was_training = model.training
    attrs = set(vars(model))  # tracing stores tensor constants on the model: removed below
    model.eval()
    try:
        device = next(model.parameters(), torch.empty(0)).device
        x = torch.zeros(1, *input_size, device=device)
        with torch.no_grad():
            try:
                model(x)
            except RuntimeError as e:
                raise ValueError(f"the model cannot run on an input of size {tuple(input_size)}: "
                                 f"{str(e).splitlines()[0]}") from None
            graph = _trace(model, x)
            env = _evaluate(graph, model, x)
    finally:
        model.train(was_training)
        for extra in set(vars(model)) - attrs:
            if extra.startswith("_tensor_constant"):
                delattr(model, extra)

    rows: list[RFRow] = []
    geometry: dict[Node, tuple[int, int]] = {}  # node -> (rf, jump)
    image = next(n for n in graph.nodes if n.op == "placeholder")
    geometry[image] = (1, 1)
    out_rf = 1
    for node in graph.nodes:
        if node.op == "placeholder":
            continue
        window = _window(node, model, env)
        if window is not None:
            source = node.args[0] if node.args else node.kwargs.get("input")
            if not isinstance(source, Node) or source not in geometry:  # not from the image
                continue
            layer, kind, k, s, p, d = window
            rf, jump = geometry[source]
            rf, jump = rf + (d * (k - 1) + 1 - 1) * jump, jump * s
            geometry[node] = (rf, jump)
            out = env[node][0] if isinstance(env[node], (tuple, list)) else env[node]
            rows.append(RFRow(layer, kind, k, s, p, d, int(out.shape[-2]), jump, rf))
            continue
        inputs = [geometry[n] for n in node.all_input_nodes if n in geometry and _has_tensor(env[n])]
        if inputs:
            geometry[node] = (max(r for r, _ in inputs), max(j for _, j in inputs))
            if node.op == "output":
                out_rf = geometry[node][0]
    return rows, out_rf


# --- public API -----------------------------------------------------------------------------

def rf_table(model: nn.Module, input_size: tuple[int, int, int] = (3, 32, 32)) -> list[RFRow]:
    """Trace ``model`` on one zero batch of ``input_size`` (C, H, W) and return its RF table."""
    return _analyse(model, input_size)[0]


def receptive_field(model: nn.Module, input_size: tuple[int, int, int] = (3, 32, 32)) -> int:
    """The receptive field of the model's output: the largest over what reaches it."""
    return _analyse(model, input_size)[1]


def format_rf_table(rows: list[RFRow]) -> str:
    """The table as markdown (readable as plain text too)."""
    cols = list(asdict(rows[0]).keys()) if rows else list(RFRow.__dataclass_fields__)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(v) for v in asdict(r).values()) + " |" for r in rows]
    return "\n".join(lines)


def plot_rf_table(rows: list[RFRow], title: str = "Receptive field", save: str | None = None) -> Figure:
    """The table drawn as a matplotlib figure; returns the figure, saved to ``save`` if given.

    The title gives the largest rf of the rows, which is the network's unless a branch
    does not reach the output.
    """
    import matplotlib.pyplot as plt

    cols = list(RFRow.__dataclass_fields__)
    fig, ax = plt.subplots(figsize=(11, 0.25 * (len(rows) + 1) + 0.35))
    ax.axis("off")
    table = ax.table(cellText=[[str(v) for v in asdict(r).values()] for r in rows],
                     colLabels=cols, bbox=[0, 0, 1, 1], cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for (r, c), cell in table.get_celld().items():
        if r == 0:
            cell.set_facecolor("#dbe5f1")
        elif c == len(cols) - 1:
            cell.set_facecolor("#fdf2d0")
    ax.set_title(f"{title}: final RF {max((r.rf for r in rows), default=1)}")
    fig.tight_layout()
    if save:
        fig.savefig(save, dpi=120, bbox_inches="tight")
    return fig
