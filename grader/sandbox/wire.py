"""The wire format between the trusted grader and the sandboxed worker.

Only plain data crosses: ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, ``list``,
``tuple``, ``dict`` and dense torch tensors (raw bytes with dtype and shape).  Nothing is ever
pickled.  A frame is a 4-byte big-endian header length, a JSON header, then the binary blobs the
header lists.  Decoding builds fresh builtin objects, so whatever the sender's objects pretended
to be (a rigged ``__eq__``, a tensor subclass), the receiver only ever holds plain data.

This module is copied verbatim into every sandbox, so it imports nothing but the standard
library; torch is imported only when a tensor is actually encoded or decoded.
"""

from __future__ import annotations

import json
import struct
import sys
from typing import IO, Any

MAX_HEADER_BYTES = 64 * 1024 * 1024
MAX_FRAME_BYTES = 1024 * 1024 * 1024
MAX_DEPTH = 64

#: dtypes allowed across the boundary, by their torch attribute name
TENSOR_DTYPES = (
    "float64", "float32", "float16", "bfloat16", "complex64", "complex128",
    "int64", "int32", "int16", "int8", "uint8", "bool",
)  # fmt: skip


class WireError(Exception):
    """A value or frame that cannot cross the boundary."""


def describe_type(value: object) -> str:
    """Name a value's type the way a student would recognise it."""
    cls = type(value)
    module = getattr(cls, "__module__", "")
    name = getattr(cls, "__qualname__", cls.__name__)
    return name if module in ("builtins", "") else f"{module}.{name}"


def _torch() -> Any:
    import torch

    return torch


def _is_plain_tensor(value: object) -> bool:
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    # Parameters are plain tensors with a flag; any other subclass could rig comparisons.
    return type(value) in (torch.Tensor, torch.nn.Parameter)


def _encode(value: Any, blobs: list[bytes], depth: int, path: str) -> Any:
    if depth > MAX_DEPTH:
        raise WireError(f"{path}: nested deeper than {MAX_DEPTH} levels")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if -(2**63) <= value < 2**63 else {"i": str(value)}
    if kind is float:
        return {"f": repr(value)} if value != value or value in (float("inf"), float("-inf")) else value
    if kind is bytes:
        blobs.append(value)
        return {"b": len(blobs) - 1}
    if kind is list:
        return [_encode(v, blobs, depth + 1, f"{path}[{i}]") for i, v in enumerate(value)]
    if kind is tuple:
        return {"t": [_encode(v, blobs, depth + 1, f"{path}[{i}]") for i, v in enumerate(value)]}
    if kind is dict:
        pairs = [
            [_encode(k, blobs, depth + 1, f"{path}.key"), _encode(v, blobs, depth + 1, f"{path}[{k!r}]")]
            for k, v in value.items()
        ]
        return {"d": pairs}
    if _is_plain_tensor(value):
        return _encode_tensor(value, blobs, path)
    raise WireError(
        f"{path} is a {describe_type(value)}; only None, bool, int, float, str, bytes, list, tuple, "
        "dict and plain torch tensors can be returned to the grader"
    )


def _encode_tensor(tensor: Any, blobs: list[bytes], path: str) -> dict[str, Any]:
    torch = _torch()
    if tensor.layout != torch.strided or tensor.is_quantized:
        raise WireError(f"{path} is a {tensor.layout} tensor; convert it to a dense tensor")
    name = str(tensor.dtype).removeprefix("torch.")
    if name not in TENSOR_DTYPES:
        raise WireError(f"{path} has dtype {tensor.dtype}, which cannot be returned to the grader")
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    raw = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
    blobs.append(raw)
    return {"T": len(blobs) - 1, "dtype": name, "shape": list(tensor.shape)}


def encode(value: object, path: str = "value") -> tuple[Any, list[bytes]]:
    """Turn ``value`` into a JSON-able tree and a list of blobs, or raise :class:`WireError`."""
    blobs: list[bytes] = []
    return _encode(value, blobs, 0, path), blobs


def _decode(node: Any, blobs: list[bytes], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise WireError("frame nested too deeply")
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_decode(v, blobs, depth + 1) for v in node]
    if not isinstance(node, dict) or len(node) == 0:
        raise WireError("malformed frame")
    if "t" in node:
        return tuple(_decode(v, blobs, depth + 1) for v in node["t"])
    if "d" in node:
        out = {}
        for pair in node["d"]:
            key = _decode(pair[0], blobs, depth + 1)
            if isinstance(key, (list, dict)):
                raise WireError("unhashable dict key")
            out[key] = _decode(pair[1], blobs, depth + 1)
        return out
    if "i" in node:
        return int(str(node["i"]))
    if "f" in node:
        return float(str(node["f"]))
    if "b" in node:
        return bytes(blobs[int(node["b"])])
    if "T" in node:
        return _decode_tensor(node, blobs)
    raise WireError("malformed frame")


def _decode_tensor(node: dict[str, Any], blobs: list[bytes]) -> Any:
    torch = _torch()
    name = node["dtype"]
    if name not in TENSOR_DTYPES:
        raise WireError(f"tensor dtype {name!r} not allowed")
    dtype = getattr(torch, name)
    shape = [int(s) for s in node["shape"]]
    raw = blobs[int(node["T"])]
    numel = 1
    for s in shape:
        if s < 0:
            raise WireError("negative tensor dimension")
        numel *= s
    itemsize = torch.empty((), dtype=dtype).element_size()
    if numel * itemsize != len(raw):
        raise WireError(f"tensor of shape {shape} and dtype {name} does not match its {len(raw)} bytes")
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(raw), dtype=dtype).reshape(shape).clone()


def decode(tree: Any, blobs: list[bytes]) -> Any:
    """Rebuild plain data from :func:`encode`'s output; never runs sender-supplied code."""
    try:
        return _decode(tree, blobs, 0)
    except WireError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise WireError(f"malformed frame: {exc}") from None


def write_frame(stream: IO[bytes], header: dict[str, Any], blobs: list[bytes] | tuple[bytes, ...] = ()) -> None:
    """Write one frame: header JSON (with blob sizes) followed by the blobs."""
    header = dict(header, blobs=[len(b) for b in blobs])
    data = json.dumps(header, allow_nan=True, separators=(",", ":")).encode()
    stream.write(struct.pack(">I", len(data)))
    stream.write(data)
    for blob in blobs:
        stream.write(blob)
    stream.flush()


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            raise EOFError("channel closed")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: IO[bytes], max_bytes: int = MAX_FRAME_BYTES) -> tuple[dict[str, Any], list[bytes]]:
    """Read one frame; raise :class:`EOFError` on a closed channel, :class:`WireError` on garbage."""
    (size,) = struct.unpack(">I", _read_exact(stream, 4))
    if size > MAX_HEADER_BYTES:
        raise WireError(f"frame header of {size} bytes is too large")
    try:
        header = json.loads(_read_exact(stream, size))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"frame header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise WireError("frame header is not an object")
    sizes = header.get("blobs", [])
    if not isinstance(sizes, list) or not all(isinstance(s, int) and s >= 0 for s in sizes):
        raise WireError("bad blob list")
    if sum(sizes) > max_bytes:
        raise WireError(f"frame of {sum(sizes)} bytes exceeds the {max_bytes}-byte limit")
    blobs = [_read_exact(stream, s) for s in sizes]
    return header, blobs
