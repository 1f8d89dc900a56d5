"""distill: turn a speech-token transformer into a streaming recurrent student.

The application layer (Hydra configs, Lightning training, export). Model code lives in the
framework-free packages ``students``, ``teachers``, ``kernels`` and ``eval``.
"""

__version__ = "0.1.0"
