"""distill: turn a speech-token transformer into a streaming recurrent student.

The application layer (Hydra configs, Lightning training, export). Model code lives in the
framework-free packages ``students``, ``teachers``, ``kernels`` and ``eval``.
"""

from pathlib import Path

from omegaconf import OmegaConf

__version__ = "0.1.0"

# The checkout's root, so configs can name shipped assets (teachers/pretrained/...) from any cwd.
ROOT = Path(__file__).resolve().parents[1]
if not OmegaConf.has_resolver("distill_root"):
    OmegaConf.register_new_resolver("distill_root", lambda: str(ROOT))
