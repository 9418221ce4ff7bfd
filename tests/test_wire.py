from __future__ import annotations

import io
import math

import pytest
import torch

from grader.sandbox import wire


@pytest.mark.parametrize(
    "value",
    [None, True, 3, -(2**80), 2.5, "héllo ✓", b"\x00\xff", [1, [2, (3, 4)]], (1, "a"), {"a": 1, 2: [3], (1, 2): None},
     {"__t": 1, "t": [1]}, []],
)
def test_wire_roundtrip_plain(value):
    tree, blobs = wire.encode(value)
    assert wire.decode(tree, blobs) == value
    assert type(wire.decode(tree, blobs)) is type(value)


def test_wire_roundtrip_special_floats():
    tree, blobs = wire.encode([math.inf, -math.inf, math.nan])
    a, b, c = wire.decode(tree, blobs)
    assert a == math.inf and b == -math.inf and math.isnan(c)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16, torch.int64,
                                   torch.bool, torch.uint8, torch.complex64])
def test_wire_roundtrip_tensor(dtype):
    t = (torch.arange(24).reshape(2, 3, 4) % 5).to(dtype)
    out = wire.decode(*wire.encode(t))
    assert type(out) is torch.Tensor and out.dtype == dtype and torch.equal(out, t)


def test_wire_tensor_views_and_empty():
    base = torch.arange(20.0).reshape(4, 5)
    view = base[1:, ::2].t()
    assert torch.equal(wire.decode(*wire.encode(view)), view)
    empty = torch.zeros(0, 3)
    assert wire.decode(*wire.encode(empty)).shape == (0, 3)
    scalar = torch.tensor(3.5)
    assert wire.decode(*wire.encode(scalar)).item() == 3.5


class RiggedEq:
    def __eq__(self, other):
        return True


class SneakyTensor(torch.Tensor):
    def __eq__(self, other):
        return torch.ones_like(other, dtype=torch.bool)


class MyInt(int):
    pass


@pytest.mark.parametrize("value", [RiggedEq(), SneakyTensor(torch.zeros(2)), MyInt(3), {1, 2}, object(),
                                   [1, RiggedEq()], torch.zeros(2).to_sparse()])
def test_wire_rejects_non_plain_types(value):
    with pytest.raises(wire.WireError):
        wire.encode(value)


def test_wire_rejects_deep_nesting():
    value: list = []
    for _ in range(wire.MAX_DEPTH + 5):
        value = [value]
    with pytest.raises(wire.WireError, match="deeper"):
        wire.encode(value)


def test_wire_frames_roundtrip_and_garbage():
    buf = io.BytesIO()
    tree, blobs = wire.encode({"x": torch.ones(3)})
    wire.write_frame(buf, {"op": "call", "args": tree}, blobs)
    buf.seek(0)
    header, got = wire.read_frame(buf)
    assert torch.equal(wire.decode(header["args"], got)["x"], torch.ones(3))
    with pytest.raises(EOFError):
        wire.read_frame(io.BytesIO(b"\x00\x00"))
    with pytest.raises(wire.WireError):
        wire.read_frame(io.BytesIO(b"\x00\x00\x00\x03abc"))
    with pytest.raises(wire.WireError):
        wire.read_frame(io.BytesIO(b"\xff\xff\xff\xff"))


def test_wire_decode_checks_tensor_size():
    with pytest.raises(wire.WireError, match="does not match"):
        wire.decode({"T": 0, "dtype": "float32", "shape": [4]}, [b"\x00" * 8])
    with pytest.raises(wire.WireError, match="not allowed"):
        wire.decode({"T": 0, "dtype": "qint8", "shape": [1]}, [b"\x00"])
    with pytest.raises(wire.WireError, match="malformed"):
        wire.decode({"zz": 1}, [])
