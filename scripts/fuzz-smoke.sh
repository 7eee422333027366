#!/usr/bin/env bash
# Runs every fuzz target in fuzz/fuzz_targets for FUZZ_SECONDS each (default 60), seeded with
# the SIP and SDP test fixtures. Installs cargo-fuzz from crates.io when it is missing.
#
# Only stable Rust exists here, so the targets run without a sanitizer (`--sanitizer none`,
# because AddressSanitizer needs the unstable -Zsanitizer) and RUSTC_BOOTSTRAP=1 lets stable
# rustc accept the remaining flags cargo-fuzz passes. A crash fails the script and leaves
# the input in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

seconds=${FUZZ_SECONDS:-60}
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-smoke: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
# Debug info would double the size of the fuzz build and is not needed to report a crash input.
export CARGO_PROFILE_RELEASE_DEBUG=false
# Build against the same dependency versions as the main crate.
cp Cargo.lock fuzz/Cargo.lock

seed() {
  local target=$1 corpus=$2
  case "$target" in
    sip_*) cp tests/sip/fixtures/* "$corpus"/ 2>/dev/null || true ;;
    sdp_*) cp tests/sdp/*.sdp "$corpus"/ 2>/dev/null || true ;;
  esac
}

status=0
for file in fuzz/fuzz_targets/*.rs; do
  target=$(basename "$file" .rs)
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
  seed "$target" "$corpus"
  echo "fuzz-smoke: $target for ${seconds}s"
  if ! cargo fuzz run --sanitizer none "$target" "$corpus" -- \
      -max_total_time="$seconds" -max_len=65536 -print_final_stats=1; then
    echo "fuzz-smoke: $target failed; the input is in fuzz/artifacts/$target/" >&2
    status=1
  fi
done
exit "$status"
