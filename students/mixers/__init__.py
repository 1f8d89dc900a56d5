"""Student mixer kinds. Importing this package registers every kind in ``MIXERS``."""

from students.mixers.attention import AttentionMixer
from students.mixers.base import MIXERS, Mixer, mixer_class, register_mixer
from students.mixers.gla import GLAMixer
from students.mixers.mamba2 import Mamba2Mixer
from students.mixers.rwkv7 import RWKV7Mixer

__all__ = ["MIXERS", "AttentionMixer", "GLAMixer", "Mixer", "Mamba2Mixer", "RWKV7Mixer", "mixer_class", "register_mixer"]
