"""Package boundaries: model code is framework-free; our top-level `kernels` is not PyPI's."""

import subprocess
import sys


def test_model_packages_do_not_import_lightning_or_hydra():
    code = (
        "import sys, students, teachers, kernels, eval\n"
        "from students import load_student, StudentLM\n"
        "import kernels.ssd, kernels.causal_conv1d\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning', 'hydra', 'omegaconf'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_transformers_does_not_mistake_our_kernels_package_for_hf_kernels():
    code = (
        "import kernels\n"
        "from transformers.utils import import_utils\n"
        "assert not import_utils.is_kernels_available(), 'transformers thinks HF kernels is installed'\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        "LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
