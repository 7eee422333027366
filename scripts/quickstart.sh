#!/usr/bin/env bash
# Installs what is missing, builds voicegate and runs it with the embedded default: SQLite,
# offline Whisper, espeak-ng and the scripted agent, answering any number dialled from this
# machine. Call it with: target/release/voicegate call sip:+15550100@127.0.0.1
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
export HF_HUB_OFFLINE=1
cargo build --release
exec target/release/voicegate serve "$@"
