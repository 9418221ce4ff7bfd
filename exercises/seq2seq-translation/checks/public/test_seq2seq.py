"""Public checks of seq2seq-translation: masks, teacher forcing, the forward pass and greedy decoding."""

import pytest
import torch

from grader.testing import assert_tensor_close, expect_type


def _bool_tensor(value, shape, what):
    expect_type(value, torch.Tensor, what)
    assert tuple(value.shape) == tuple(shape), f"{what} has shape {tuple(value.shape)}, expected {tuple(shape)}"
    assert value.dtype == torch.bool, f"{what} should be a bool tensor (True = may NOT attend), got {value.dtype}"
    return value


@pytest.mark.points(1)
def test_padding_mask(student, s2s):
    """padding_mask is True exactly where the ids equal pad_id, whatever pad_id is"""
    ids = torch.tensor([[5, 6, 7, 0, 0], [3, 0, 0, 0, 0], [4, 4, 9, 8, 2]])
    for pad_id in (0, 4):
        got = _bool_tensor(student.padding_mask(ids, pad_id), ids.shape, f"padding_mask(ids, pad_id={pad_id})")
        want = ids == pad_id
        if torch.equal(got, ~want):
            raise AssertionError("the padding mask is inverted: True must mark PADDING (positions that may not be "
                                 "attended to), as nn.Transformer's key_padding_mask expects")
        assert torch.equal(got, want), (f"padding_mask(ids, pad_id={pad_id}) should be ids == pad_id: got "
                                        f"{got.int().tolist()}, expected {want.int().tolist()}")


@pytest.mark.points(1)
def test_causal_mask(student):
    """causal_mask(T) is True above the diagonal only, as nn.Transformer.generate_square_subsequent_mask"""
    for size in (1, 4, 7):
        got = _bool_tensor(student.causal_mask(size), (size, size), f"causal_mask({size})")
        want = torch.nn.Transformer.generate_square_subsequent_mask(size) == float("-inf")
        if size > 1 and torch.equal(got, want.T):
            raise AssertionError("the causal mask is transposed: query i (row) may see keys j <= i, so True "
                                 "(blocked) goes ABOVE the diagonal (torch.triu(..., diagonal=1))")
        if size > 1 and torch.equal(got, want | torch.eye(size, dtype=torch.bool)):
            raise AssertionError("the causal mask blocks the diagonal: a position may attend to itself "
                                 "(use diagonal=1 in torch.triu)")
        assert torch.equal(got, want), f"causal_mask({size}) should be True exactly where column > row: {got.int()}"


@pytest.mark.points(1)
def test_shift_right(student, s2s):
    """shift_right puts BOS first and drops the last label: same shape, one step later"""
    labels = torch.tensor([[7, 8, 9, 2, 0, 0], [5, 2, 0, 0, 0, 0], [3, 4, 5, 6, 7, 2]])
    for bos in (s2s.BOS, 11):
        got = student.shift_right(labels, bos)
        expect_type(got, torch.Tensor, "shift_right(labels)")
        assert tuple(got.shape) == tuple(labels.shape), (
            f"shift_right(labels) has shape {tuple(got.shape)}, expected {tuple(labels.shape)}: keep T columns "
            "(BOS, then labels[:, :-1]); the decoder predicts labels[:, t] at position t")
        assert got.dtype == torch.long, f"shift_right should keep the int64 dtype, got {got.dtype}"
        if torch.equal(got, labels):
            raise AssertionError("shift_right returned the labels unshifted: the decoder would read the token it "
                                 "has to predict; put BOS first and drop the last column")
        want = torch.cat([torch.full((3, 1), bos), labels[:, :-1]], dim=1)
        assert torch.equal(got, want), (
            f"shift_right(labels, bos_id={bos}) should be [bos_id, labels[:, :-1]] per row: got {got.tolist()}, "
            f"expected {want.tolist()}")


@pytest.mark.points(1)
def test_make_batch(student, s2s):
    """make_batch pads sources, and targets + EOS, to their own longest lengths"""
    src = [[5, 6, 7], [8], [9, 10, 11, 12, 13]]
    tgt = [[20, 21], [], [22, 23, 24, 25, 26, 27]]
    got = student.make_batch(src, tgt)
    expect_type(got, (tuple, list), "make_batch(...)")
    assert len(got) == 2, f"make_batch should return (src, labels), got {len(got)} items"
    src_ids, labels = got
    for value, name in ((src_ids, "src"), (labels, "labels")):
        expect_type(value, torch.Tensor, f"make_batch(...)'s {name}")
        assert value.dtype == torch.long, f"make_batch(...)'s {name} should be int64, got {value.dtype}"
    want_src = torch.tensor([[5, 6, 7, 0, 0], [8, 0, 0, 0, 0], [9, 10, 11, 12, 13]])
    want_labels = torch.tensor([[20, 21, 2, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0, 0], [22, 23, 24, 25, 26, 27, 2]])
    assert tuple(src_ids.shape) == (3, 5), (f"src has shape {tuple(src_ids.shape)}, expected (3, 5): pad each "
                                            "source to the longest SOURCE, with PAD and no BOS/EOS")
    assert torch.equal(src_ids, want_src), f"src should be {want_src.tolist()}, got {src_ids.tolist()}"
    assert tuple(labels.shape) == (3, 7), (f"labels has shape {tuple(labels.shape)}, expected (3, 7): the longest "
                                           "TARGET plus one EOS (targets and sources have lengths of their own)")
    assert torch.equal(labels, want_labels), (f"labels should be each target, then EOS, then PAD: expected "
                                              f"{want_labels.tolist()}, got {labels.tolist()}")


@pytest.mark.points(2)
def test_forward_matches_reference(student, reference, s2s, targets):
    """encode and forward equal the reference with the same weights, with padding on both sides (S != T)"""
    ref, state = s2s.reference_model(reference, seed=1)
    model = s2s.student_model(student, state)
    g = torch.Generator().manual_seed(2)
    src = s2s.random_ids([5, 2, 7], s2s.SMALL["src_vocab_size"], g)
    dec = s2s.decoder_input([4, 6, 1], s2s.SMALL["tgt_vocab_size"], g)
    with torch.no_grad():
        memory = ref.encode(src)
        want = ref.forward(src, dec)
    got_memory = model.encode(src)
    expect_type(got_memory, torch.Tensor, "encode(src)")
    assert tuple(got_memory.shape) == tuple(memory.shape), (
        f"encode(src) has shape {tuple(got_memory.shape)}, expected {tuple(memory.shape)} (batch, S, d_model)")
    real_src = src != s2s.PAD
    got = model.forward(src, dec)
    why = s2s.diagnose("forward", got, ref, src, dec) if isinstance(got, torch.Tensor) else None
    s2s.assert_logits(got, want, dec != s2s.PAD, what="forward(src, decoder_input)", targets=targets, why=why,
                      advice="logits differ from the reference with the same weights: embeddings * sqrt(d_model) + "
                             "sinusoidal positions, the source padding mask in the encoder AND the cross-attention, "
                             "the causal mask in the decoder, then the generator")
    assert_tensor_close(got_memory[real_src], memory[real_src], name="encode(src) at real source positions",
                        advice="the encoder's output differs from the reference: source embedding * sqrt(d_model) "
                               "+ positions, dropout off in eval mode, src_key_padding_mask = padding_mask(src)",
                        **s2s.tol(targets))


@pytest.mark.points(2)
def test_loss_matches_reference(student, reference, s2s, targets):
    """loss(src, labels) is the teacher-forced cross-entropy over the non-pad labels, as the reference's"""
    ref, state = s2s.reference_model(reference, seed=3)
    model = s2s.student_model(student, state)
    g = torch.Generator().manual_seed(4)
    src = s2s.random_ids([6, 3, 4, 2], s2s.SMALL["src_vocab_size"], g)
    labels = s2s.random_ids([3, 9, 1, 5], s2s.SMALL["tgt_vocab_size"], g)
    for row, length in enumerate([3, 9, 1, 5]):
        labels[row, length - 1] = s2s.EOS
    with torch.no_grad():
        want = ref.loss(src, labels)
    got = model.loss(src, labels)
    expect_type(got, torch.Tensor, "loss(src, labels)")
    assert got.dim() == 0 and got.is_floating_point(), (
        f"loss(src, labels) should be a 0-dim float tensor, got shape {tuple(got.shape)}, {got.dtype}")
    why = (s2s.diagnose("loss", got, ref, src, labels)
           or s2s.forward_differs(model, ref, src, reference.shift_right(labels)))
    assert_tensor_close(got, want, name="loss(src, labels)", **s2s.tol(targets), advice=(
        f"{why + chr(10) if why else ''}the loss differs from the reference: decoder input = shift_right(labels), "
        "cross-entropy of the logits against labels, averaged over the non-PAD labels of the whole batch"))


@pytest.mark.points(2)
def test_greedy_matches_reference(student, reference, s2s):
    """greedy_decode gives the reference's tokens on fixed weights: stops at EOS per sequence, at most max_len"""
    ref, state, src, max_len = s2s.greedy_case(reference, seed=5)
    model = s2s.student_model(student, state)
    want = ref.greedy_decode(src, max_len=max_len)
    got = s2s.expect_ids(model.greedy_decode(src, max_len), src.shape[0], f"greedy_decode(src, max_len={max_len})")
    if got != want:
        why = s2s.diagnose("greedy", got, ref, src, max_len) or s2s.forward_differs(
            model, ref, src, s2s.decoder_input([4, 2], s2s.SMALL["tgt_vocab_size"], torch.Generator().manual_seed(6)))
        raise AssertionError(
            f"{why + chr(10) if why else ''}greedy_decode differs from the reference on the same weights: start "
            "from BOS, append the argmax of the last position each step, end a sequence at its first EOS (not "
            "included), stop after max_len steps; return tokens without BOS and EOS\n"
            f"got {got}\nexpected {want}")
