"""An exported multistream student inside the kyutai ``moshi`` runtime (``LMModel`` + ``LMGen``), via swap_backbone.

Optional: skipped when the ``moshi`` package is not installed. Tolerance fp32 ≤ 1e-5.
"""

import subprocess
import sys

import pytest
import torch

from students import StudentLM
from students.io import load_student, save_student
from tests.students.conftest import jitter_, rel_err, tiny_config

moshi_lm = pytest.importorskip("moshi.models.lm")
from moshi.utils.compile import no_compile  # noqa: E402

from students.kyutai import swap_backbone  # noqa: E402

TOL = 1e-5
N_Q, DEP_Q, CARD, TEXT_CARD, DIM = 4, 2, 16, 20, 32
HYBRID = ["gla", "attn", "rwkv7", "mamba2"]


def tiny_lm() -> torch.nn.Module:
    """A Hibiki-shaped LMModel: text + 2 generated + 2 input codebooks, acoustic delay 1, tiny depformer."""
    torch.manual_seed(0)
    lm = moshi_lm.LMModel(
        delays=[0, 0, 1, 0, 1], n_q=N_Q, dep_q=DEP_Q, card=CARD, text_card=TEXT_CARD, dim=DIM, num_heads=4, num_layers=2,
        hidden_scale=2, norm="rms_norm_f32", positional_embedding="rope", gating="silu", context=50, causal=True,
        depformer_dim=16, depformer_num_heads=2, depformer_num_layers=1, depformer_dim_feedforward=32, depformer_pos_emb="none",
        depformer_multi_linear=True, depformer_weights_per_step=True,
    )
    return lm.eval()


def tiny_student(**kw) -> StudentLM:
    config = tiny_config(
        HYBRID, num_layers=4, mixers={"attn": {"window": 4}},
        vocab_size=kw.pop("vocab_size", TEXT_CARD), hidden_size=kw.pop("hidden_size", DIM),
        stream_vocab_sizes=kw.pop("stream_vocab_sizes", [TEXT_CARD + 1] + [CARD + 1] * N_Q), **kw,
    )
    return jitter_(StudentLM(config)).eval()


def random_codes(B: int, T: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(0, TEXT_CARD + 1, (B, 1, T), generator=g)
    audio = torch.randint(0, CARD + 1, (B, N_Q, T), generator=g)
    return torch.cat([text, audio], 1)


@pytest.fixture(autouse=True)
def _eager():
    """moshi torch.compiles its RMSNorm lazily; tiny CPU tests run eager."""
    with no_compile(), torch.no_grad():
        yield


def test_exported_student_forward_text_equals_student(tmp_path):
    """(a) A student reloaded from its export, swapped in with its embeddings: forward_text == the student's forward."""
    save_student(tiny_student(), tmp_path / "export")
    student = load_student(tmp_path / "export").eval()
    lm = swap_backbone(tiny_lm(), student, copy_embeddings=True)
    codes = random_codes(2, 23)
    out, text_logits = lm.forward_text(codes)
    ref = student(codes)
    assert text_logits.shape == (2, 1, 23, TEXT_CARD)
    assert rel_err(text_logits[:, 0], ref.logits) <= TOL
    assert rel_err(out, ref.last_hidden_state) <= TOL
    assert not any(k.startswith("transformer.embeds") or "lm_head" in k for k in lm.state_dict())


def test_lm_keeps_its_embeddings_and_head():
    """(a) Without copying: LMModel's own embeddings and text head around the student's blocks and final norm."""
    lm, student = tiny_lm(), tiny_student()
    text_emb = lm.text_emb.weight.clone()
    swap_backbone(lm, student)
    assert torch.equal(lm.text_emb.weight, text_emb) and lm.out_norm is student.norm
    seen = []
    lm.transformer.register_forward_hook(lambda m, args, kwargs, out: seen.append(args[0]), with_kwargs=True)
    codes = random_codes(2, 19)
    out, text_logits = lm.forward_text(codes)
    h = seen[0]  # LMModel's summed embeddings
    assert rel_err(h, sum(lm.emb[k](codes[:, 1 + k]) for k in range(N_Q)) + lm.text_emb(codes[:, 0])) <= TOL
    for layer in student.layers:
        h = layer(h)
    ref = student.norm(h)
    assert rel_err(out, ref) <= TOL
    assert rel_err(text_logits[:, 0], lm.text_linear(ref)) <= TOL


def test_streaming_forward_text_equals_full_sequence():
    """(b) Under lm.streaming: a prefill chunk then one frame at a time gives the full sequence's logits; reset restarts."""
    lm = swap_backbone(tiny_lm(), tiny_student(), copy_embeddings=True)
    codes = random_codes(2, 21)
    _, full = lm.forward_text(codes)
    with lm.streaming(2):
        for _ in range(2):  # the second pass checks reset_streaming
            parts = [lm.forward_text(codes[:, :, :7])[1]]
            parts += [lm.forward_text(codes[:, :, t : t + 1])[1] for t in range(7, 21)]
            assert rel_err(torch.cat(parts, 2), full) <= TOL
            lm.reset_streaming()
            assert all(not t.any() for _, t in lm.transformer.recurrent_state.items())
    assert lm.transformer.recurrent_state is None


def test_exec_mask_freezes_masked_streams():
    """Streams with a false exec_mask keep their state (moshi's contract for out-of-sync batching); a masked reset zeroes one."""
    lm = swap_backbone(tiny_lm(), tiny_student(), copy_embeddings=True)
    codes = random_codes(2, 6)
    with lm.streaming(2):
        lm.forward_text(codes[:, :, :5])
        before = lm.transformer.recurrent_state.clone()
        lm.set_exec_mask(torch.tensor([True, False]))
        lm.forward_text(codes[:, :, 5:6])
        pairs = list(zip(dict(lm.transformer.recurrent_state.items()).values(), dict(before.items()).values(), strict=True))
        assert all(torch.equal(a[1], b[1]) for a, b in pairs)
        assert any(not torch.equal(a[0], b[0]) for a, b in pairs)
        lm.reset_streaming(torch.tensor([False, True]))  # a finished session: only stream 1 restarts
        pairs = list(zip(dict(lm.transformer.recurrent_state.items()).values(), dict(before.items()).values(), strict=True))
        assert all(not a[1].any() for a, _ in pairs) and any(not torch.equal(a[0], b[0]) for a, b in pairs)


def test_lmgen_steps_the_student():
    """(b) LMGen.step drives the student: per-frame backbone outputs and text logits equal the full sequence's."""
    lm = swap_backbone(tiny_lm(), tiny_student(), copy_embeddings=True)
    inputs, outputs, logits = [], [], []

    def record(module, args, kwargs, out):
        inputs.append(args[0])
        outputs.append(out)

    hook = lm.transformer.register_forward_hook(record, with_kwargs=True)
    gen = moshi_lm.LMGen(lm, temp=0.8, temp_text=0.7, top_k=5, top_k_text=5, on_text_logits_hook=logits.append)
    g = torch.Generator().manual_seed(3)
    frames = []
    with gen.streaming(1):
        for _ in range(9):
            frame = gen.step(torch.randint(0, CARD, (1, N_Q - DEP_Q, 1), generator=g))
            frames.append(frame)
    assert frames[0] is None and all(f.shape == (1, 1 + DEP_Q, 1) for f in frames[1:])
    hook.remove()
    assert len(inputs) == 9 and all(x.shape == (1, 1, DIM) for x in inputs)
    full = lm.transformer(torch.cat(inputs, 1))  # not streaming now: the whole sequence at once
    assert rel_err(torch.cat(outputs, 1), full) <= TOL
    assert rel_err(torch.cat(logits, 2)[:, 0], lm.text_linear(lm.out_norm(full))) <= TOL


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"hidden_size": 48, "head_dim": 12}, "student.hidden_size"),
        ({"stream_vocab_sizes": [TEXT_CARD + 1] + [CARD + 1] * 2}, "student.stream_vocab_sizes"),
        ({"stream_vocab_sizes": [TEXT_CARD + 1] + [CARD + 1] * 3 + [CARD]}, "student.stream_vocab_sizes[4]"),
        ({"stream_vocab_sizes": [], "vocab_size": TEXT_CARD}, "student.stream_vocab_sizes"),
        ({"vocab_size": TEXT_CARD + 5}, "student.vocab_size"),
    ],
)
def test_mismatch_names_the_field(kw, field):
    """(c) A student that does not fit the LMModel is refused, naming its field; the LMModel is left as it was."""
    lm = tiny_lm()
    transformer = lm.transformer
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        swap_backbone(lm, tiny_student(**kw))
    assert lm.transformer is transformer


def test_students_never_import_moshi():
    code = "import sys, students, students.kyutai; assert 'moshi' not in sys.modules, 'moshi imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
