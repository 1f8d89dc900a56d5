"""Teacher adapters (plain PyTorch): one uniform interface over speech-token transformers.

``build_teacher(kind, config=... | path=...)`` returns a frozen :class:`TeacherAdapter` with the
teacher's geometry, its weights by role and its attention layers by index. Weights load from local
paths only.
"""

from teachers.base import AttentionCapture, TeacherAdapter, TeacherGeometry, TeacherOutput
from teachers.build import TEACHER_BUILDERS, build_teacher, register_teacher, save_teacher
from teachers.kyutai import KyutaiTeacher
from teachers.layout import TokenLayout
from teachers.llama import LlamaTeacher
from teachers.moshi import MoshiTeacher

__all__ = [
    "AttentionCapture",
    "KyutaiTeacher",
    "LlamaTeacher",
    "MoshiTeacher",
    "TEACHER_BUILDERS",
    "TeacherAdapter",
    "TeacherGeometry",
    "TeacherOutput",
    "TokenLayout",
    "build_teacher",
    "register_teacher",
    "save_teacher",
]
