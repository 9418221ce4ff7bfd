"""Public checks of the distillation exercise: the KD loss by value (KL form), by gradient (KL or soft
cross-entropy form), its properties, and its padding mask."""

import pytest
import torch

from grader.testing import StudentCodeError, assert_tensor_close, expect_tensor

KL_FORM = ("kd_loss = T^2 * sum_c p_t (log p_t - log q_s), summed over positions and divided by their number, "
           "with p_t = softmax(teacher / T) and q_s = softmax(student / T): "
           "F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction='batchmean') * T**2")


@pytest.mark.points(2)
def test_kd_loss_value(student, reference, kd):
    """kd_loss equals T^2 * KL(p_t || q_s) with batchmean, at T = 2, 1 and 4 and on (batch, seq, C) logits (the
    KL form is graded by value)"""
    s, t = kd.logits_pair(1, (12, 7))
    for temperature in (2.0, 1.0, 4.0):
        got = kd.loss_value(student.kd_loss(s, t, temperature), f"kd_loss(s, t, temperature={temperature})")
        want = reference.kd_loss(s, t, temperature)
        named = kd.diagnose(s, t, temperature, float(got)) if got.shape == () else None
        assert_tensor_close(got, want, rtol=1e-4, atol=1e-6, name=f"kd_loss at T={temperature} on (12, 7) logits",
                            advice=named or KL_FORM)
    s3, t3 = kd.logits_pair(6, (2, 3, 7))
    got = kd.loss_value(student.kd_loss(s3, t3, 2.0), "kd_loss(s, t, 2.0) on (batch=2, seq=3, C=7) logits")
    want = reference.kd_loss(s3, t3, 2.0)
    advice = ("with (batch, seq, C) logits every one of the batch * seq positions is a row: flatten to (-1, C) and "
              "divide by the number of positions (6)")
    if got.shape == () and abs(float(got) - 3 * float(want)) <= 1e-4 * abs(3 * float(want)):
        advice = "the sum is divided by the batch size (2), not by the 6 positions of the (2, 3, 7) logits"
    assert_tensor_close(got, want, rtol=1e-4, atol=1e-6, name="kd_loss on (2, 3, 7) logits", advice=advice)
    low, high = (float(reference.kd_loss(s, t, temp)) for temp in (1.0, 4.0))
    assert low != high, "grader bug: the temperature should change the loss"


@pytest.mark.points(1)
def test_kd_loss_zero_for_identical_logits(student, kd):
    """kd_loss is 0 when the student's logits equal the teacher's, and never negative"""
    s, t = kd.logits_pair(2, (9, 5), scale=3.0)
    for temperature in (1.0, 3.0):
        same = float(kd.loss_value(student.kd_loss(t, t.clone(), temperature), f"kd_loss(t, t, {temperature})"))
        assert abs(same) < 1e-5, (
            f"kd_loss of identical logits is {same:.4g} at T={temperature}, expected 0: "
            + (kd.diagnose(t, t, temperature, same) or "KL(p_t || q_s) = sum p_t (log p_t - log q_s) vanishes when "
               "q_s = p_t: soften both logits by the same T and take the KL form (the soft cross-entropy form "
               "-T^2 sum p_t log q_s leaves T^2 times the teacher's entropy)"))
        other = float(kd.loss_value(student.kd_loss(s, t, temperature), f"kd_loss(s, t, {temperature})"))
        assert other >= -1e-6, f"kd_loss is negative ({other:.4g}): a KL divergence is never negative"


@pytest.mark.points(1)
def test_kd_loss_gradient(student, reference, kd):
    """the gradient with respect to the student logits is T * (q_s - p_t) / n at T = 1, 2 and 4 (KL or soft CE)"""
    s, t = kd.logits_pair(3, (10, 6))
    for temperature in (2.0, 4.0, 1.0):
        got = student.kd_loss_grad(s, t, temperature, None)
        want = reference.kd_loss_grad(s, t, temperature, None)
        advice = ("d kd_loss / d student_logits should be T * (softmax(s/T) - softmax(t/T)) / n: soften both "
                  "logits by T, multiply the divergence by T^2, divide by the number of positions n")
        if isinstance(got, torch.Tensor) and got.shape == want.shape:
            if torch.allclose(got * temperature**2, want, rtol=1e-3, atol=1e-7):
                advice = f"the gradient is 1/T^2 = 1/{temperature**2:g} of the expected one: the T^2 factor is missing"
            elif torch.allclose(got * s.shape[-1], want, rtol=1e-3, atol=1e-7):
                advice = "the gradient is 1/C of the expected one: use reduction='batchmean', not 'mean'"
            elif temperature != 1.0 and torch.allclose(got, (s.softmax(-1) - t.softmax(-1)) / len(s), rtol=1e-3,
                                                       atol=1e-7):
                advice = ("the gradient does not depend on T: it is (softmax(s) - softmax(t)) / n, the T = 1 "
                          "gradient. Divide both logits by T before the softmax and multiply the loss by T^2")
        assert_tensor_close(got, want, rtol=1e-4, atol=1e-7, name=f"gradient of kd_loss at T={temperature}",
                            advice=advice)


@pytest.mark.points(1)
def test_kd_loss_padding_excluded(student, kd):
    """with a mask, kd_loss equals your own kd_loss on the real positions alone: padding changes nothing, gets no
    gradient and does not count in the divisor"""
    s, t = kd.logits_pair(4, (3, 5, 7))
    mask = torch.arange(5)[None, :] < torch.tensor([5, 2, 3])[:, None]  # 10 real positions of 15
    noisy_s, noisy_t = s.clone(), t.clone()
    noisy_s[~mask] = 50.0 * torch.randn(int((~mask).sum()), 7)
    noisy_t[~mask] = -50.0 * torch.randn(int((~mask).sum()), 7)
    real = kd.loss_value(student.kd_loss(s[mask], t[mask], 2.0), "kd_loss(s[mask], t[mask], 2.0) on (10, 7)")
    masked = kd.loss_value(student.kd_loss(s, t, 2.0, mask), "kd_loss(s, t, 2.0, mask) on (3, 5, 7)")
    noisy = kd.loss_value(student.kd_loss(noisy_s, noisy_t, 2.0, mask), "kd_loss with other values at padded positions")
    assert_tensor_close(noisy, masked, rtol=1e-5, atol=1e-6, name="kd_loss after changing only padded positions",
                        advice=("the loss changed when only PADDED positions (mask False) changed: drop them before "
                                "the sum (s[mask], t[mask]), so padding adds nothing"))
    advice = ("kd_loss(s, t, T, mask) on (3, 5, 7) should equal kd_loss(s[mask], t[mask], T) on the 10 real "
              "positions: divide by the number of REAL positions (10), not by the batch size (3) nor by all 15")
    if masked.shape == () and real.shape == () and float(real) != 0.0:
        ratio = float(masked) / float(real)
        if abs(ratio - 10 / 3) < 1e-3:
            advice = "the masked loss is divided by the batch size (3), not by the number of real positions (10)"
        elif abs(ratio - 10 / 15) < 1e-3:
            advice = "the masked loss is divided by all 15 positions, padding included: divide by the 10 real ones"
    assert_tensor_close(masked, real, rtol=1e-5, atol=1e-6, name="kd_loss with a mask vs on the real positions",
                        advice=advice)
    grad = expect_tensor(student.kd_loss_grad(noisy_s, noisy_t, 2.0, mask), (3, 5, 7), None,
                         "kd_loss_grad(s, t, 2.0, mask)")
    assert float(grad[~mask].abs().max()) == 0.0, "padded positions received a gradient: mask them out"
    own = expect_tensor(student.kd_loss_grad(s[mask], t[mask], 2.0, None), (10, 7), None,
                        "kd_loss_grad(s[mask], t[mask], 2.0)")
    assert_tensor_close(grad[mask], own, rtol=1e-4, atol=1e-7, name="gradient on the real positions, with a mask",
                        advice="with a mask, the real positions' gradient should equal the gradient of kd_loss on "
                               "those positions alone: count only the real positions in the divisor")


@pytest.mark.points(1)
def test_bad_temperature_raises(student, kd):
    """kd_loss raises ValueError for a temperature that is not positive"""
    s, t = kd.logits_pair(5, (4, 3))
    for temperature in (0.0, -1.0):
        with pytest.raises(StudentCodeError) as caught:
            student.kd_loss(s, t, temperature)
            pytest.fail(f"kd_loss(s, t, temperature={temperature}) should raise ValueError: T must be positive")
        assert caught.value.exc_type == "ValueError", (
            f"kd_loss(s, t, temperature={temperature}) raised {caught.value.exc_type}, expected ValueError")
