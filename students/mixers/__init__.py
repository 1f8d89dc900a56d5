"""Student mixer kinds. Importing this package registers every kind in ``MIXERS``."""

from students.mixers.base import MIXERS, Mixer, mixer_class, register_mixer
from students.mixers.mamba2 import Mamba2Mixer

__all__ = ["MIXERS", "Mixer", "Mamba2Mixer", "mixer_class", "register_mixer"]
