"""Recurrent students (plain PyTorch): config, mixers, model, streaming state, init from a teacher, I/O.

A miner needs only torch and safetensors::

    from students import load_student
    model = load_student("export/").eval()
    state = model.allocate_state(batch_size=1)
    logits = model.step(token_ids, state)   # one token per stream, state updated in place
"""

from students.config import StudentConfig, student_config_from_teacher
from students.init import AttentionWeights, InitReport, init_from_teacher
from students.io import load_student, save_student
from students.model import StudentLM, StudentOutput
from students.state import RecurrentState

__all__ = [
    "AttentionWeights",
    "InitReport",
    "RecurrentState",
    "StudentConfig",
    "StudentLM",
    "StudentOutput",
    "init_from_teacher",
    "load_student",
    "save_student",
    "student_config_from_teacher",
]
