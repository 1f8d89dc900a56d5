import pytest
import torch
import torch.nn.functional as F

from distill.losses import DistillLoss, hidden_mse, kd_kl, next_token_ce


def _reference_kl(s, t, mask, T):
    p = F.softmax(t / T, -1)
    kl = (p * (F.log_softmax(t / T, -1) - F.log_softmax(s / T, -1))).sum(-1)
    return (kl * mask).sum() / mask.sum() * T**2


def test_kd_kl_is_token_mean_with_mask_and_chunking():
    s, t = torch.randn(3, 7, 11), torch.randn(3, 7, 11)
    mask = torch.rand(3, 7) > 0.3
    expected = _reference_kl(s, t, mask.float(), 2.0)
    for chunk in (1, 5, 4096):
        torch.testing.assert_close(kd_kl(s, t, mask, 2.0, chunk_tokens=chunk), expected, rtol=1e-5, atol=1e-6)


def test_kd_kl_ignores_padding_and_is_zero_for_equal_logits():
    t = torch.randn(2, 5, 9)
    s = t.clone()
    s[:, 3:] += 10 * torch.randn(2, 2, 9)  # garbage only where masked
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[:, :3] = True
    assert kd_kl(s, t, mask).item() == pytest.approx(0.0, abs=1e-6)
    mask[:, 3] = True
    assert kd_kl(s, t, mask).item() > 1e-3


def test_kd_kl_averages_extra_codebook_dims_per_token():
    s, t = torch.randn(2, 4, 3, 8), torch.randn(2, 4, 3, 8)
    mask = torch.ones(2, 4, dtype=torch.bool)
    per_cb = torch.stack([kd_kl(s[:, :, k], t[:, :, k], mask) for k in range(3)]).mean()
    torch.testing.assert_close(kd_kl(s, t, mask), per_cb, rtol=1e-5, atol=1e-6)


def test_hidden_mse_skips_embeddings_and_masks():
    h = tuple(torch.randn(2, 5, 4) for _ in range(3))
    h2 = (h[0] + 1.0, h[1].clone(), h[2].clone())  # differs only in the (skipped) embedding output
    mask = torch.ones(2, 5, dtype=torch.bool)
    assert hidden_mse(h2, h, mask).item() == pytest.approx(0.0, abs=1e-7)
    h3 = (h[0], h[1] + 1.0, h[2])
    assert hidden_mse(h3, h, mask).item() > 0.1


def test_next_token_ce_matches_cross_entropy():
    logits, ids = torch.randn(2, 6, 10), torch.randint(0, 10, (2, 6))
    mask = torch.ones(2, 6, dtype=torch.bool)
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, 10), ids[:, 1:].reshape(-1))
    torch.testing.assert_close(next_token_ce(logits, ids, mask), expected)


def test_distill_loss_rejects_bad_weights():
    with pytest.raises(ValueError, match="loss weights"):
        DistillLoss(kl_weight=0.0)
    with pytest.raises(ValueError, match="temperature"):
        DistillLoss(temperature=0.0)


def test_audio_term_needs_teacher_audio_logits_and_is_token_mean():
    loss = DistillLoss(kl_weight=1.0, audio_weight=0.5)
    mask = torch.ones(2, 5, dtype=torch.bool)

    class Out:
        def __init__(self, logits, audio=None):
            self.logits, self.audio_logits, self.hidden_states = logits, audio, None

    t_text, s_text = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    t_audio, s_audio = torch.randn(2, 4, 3, 9), torch.randn(2, 4, 3, 9)
    with pytest.raises(ValueError, match="audio_logits=true"):
        loss(Out(s_text), Out(t_text), torch.zeros(2, 4, 5, dtype=torch.long), mask)
    terms = loss(Out(s_text), Out(t_text, t_audio), torch.zeros(2, 4, 5, dtype=torch.long), mask, s_audio)
    expected_audio = kd_kl(s_audio, t_audio, torch.ones(2, 4, dtype=torch.bool))
    torch.testing.assert_close(terms["audio_kl"], expected_audio)
    torch.testing.assert_close(terms["loss"], terms["kd_kl"] + 0.5 * expected_audio)


def test_multistream_ce_targets_the_text_stream():
    logits = torch.randn(2, 6, 10)
    ids = torch.randint(0, 10, (2, 3, 6))
    mask = torch.ones(2, 6, dtype=torch.bool)
    torch.testing.assert_close(next_token_ce(logits, ids, mask), next_token_ce(logits, ids[:, 0], mask))
