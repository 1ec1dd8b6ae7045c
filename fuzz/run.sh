#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time on a copy of its seed corpus (fuzz/corpus/NAME,
# which stays as committed) and exits non-zero if any target finds a crash; the crashing input is
# left in fuzz/artifacts/NAME/ (reproduce with `cargo fuzz run NAME fuzz/artifacts/NAME/<file>`).
#
#   fuzz/run.sh                  # every target, 60 s each
#   FUZZ_SECONDS=10 fuzz/run.sh client_message
#
# cargo-fuzz needs nightly rustc flags (-Zsanitizer=address): on a stable toolchain
# RUSTC_BOOTSTRAP=1 allows them. cargo-fuzz itself is installed from crates.io if missing.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${FUZZ_SECONDS:-60}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=${*:-$(cargo fuzz list)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Build once up front, so the time limit is spent fuzzing.
cargo fuzz build
failed=()
for target in $targets; do
  mkdir -p "$work/$target"
  echo "== fuzz $target for ${SECONDS_EACH}s" >&2
  # New inputs go to the first corpus directory (the scratch copy), the seeds are read only.
  if ! cargo fuzz run "$target" "$work/$target" "corpus/$target" -- \
      -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "!! fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzzing: no crashes in ${targets//$'\n'/ }" >&2
