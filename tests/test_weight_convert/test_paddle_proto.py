"""The protobuf wire decoder (varints, packed dims, malformed input)."""
import pytest

from weight_convert.errors import WeightsError
from weight_convert.paddle_proto import iter_fields, parse_program_desc, tensor_desc, varint

from ._helpers import pb_field, pb_tensor_desc, pb_varint


@pytest.mark.parametrize('n', [0, 1, 127, 128, 300, 2 ** 40])
def test_varint_round_trip(n):
    assert varint(pb_varint(n), 0) == (n, len(pb_varint(n)))


def test_tensor_desc_plain_and_packed_dims_and_negative():
    assert tensor_desc(pb_tensor_desc(5, [-1, 3, 128, 96])) == (5, [-1, 3, 128, 96])
    packed = pb_field(1, 4) + pb_field(2, b''.join(pb_varint(d) for d in (2, 3)))
    assert tensor_desc(packed) == (4, [2, 3])


def test_fields_of_a_message():
    msg = pb_field(1, 7) + pb_field(3, 'abc')
    assert [(f, wt, bytes(v) if isinstance(v, bytes) else v) for f, wt, v in iter_fields(msg)] == \
        [(1, 0, 7), (3, 2, b'abc')]


@pytest.mark.parametrize('buf, what', [(b'\x80', 'truncated protobuf varint'), (b'\x0a\x05ab', 'truncated'),
                                       (b'\x0b', 'wire type 3'), (b'\xff' * 11, 'malformed')])
def test_malformed(buf, what):
    with pytest.raises(WeightsError, match=what):
        list(iter_fields(buf))


def test_program_without_block():
    with pytest.raises(WeightsError, match='no block'):
        parse_program_desc(pb_field(2, 1))
