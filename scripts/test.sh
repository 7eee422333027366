#!/usr/bin/env bash
# Runs every test: unit, integration, SIPp, baresip, SQLite and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
scripts/postgres.sh
export PATH="$HOME/.cargo/bin:$PATH"
export VOICEGATE_TEST_POSTGRES=${VOICEGATE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
export HF_HUB_OFFLINE=1

cargo test --all-targets -- "$@"
