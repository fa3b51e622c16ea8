#!/usr/bin/env bash
# The Linux lane (`npm run test:linux`): sets up (or reuses) the kernels and the initramfs with linux/setup.sh,
# then runs generated traces with DMA probes against each Linux adapter in lockstep with the reference model:
#
#   linux-iommufd              iommufd on kernel A (LINUX_IOMMUFD_KERNEL=B for kernel B)
#   linux-vfio-type1           native VFIO type1, kernel A
#   linux-iommufd-vfio-compat  iommufd's /dev/vfio/vfio emulation, kernel B
#
# Results go to reports/out/<adapter>/ (results.json, failures/, console.log: the guest's console). Prints the time
# of each phase and, per adapter, traces/s and steps/s. Exits non-zero when any trace fails.
#
# Environment: LANE_RUNS (traces per adapter, default 500), LANE_SEED (default 1), LANE_MAX_STEPS (templates per
# trace, default 40), LANE_ADAPTERS (space-separated subset), LANE_SHRINK_BUDGET (default 100), and those of
# linux/setup.sh (IOASID_LINUX_CACHE, LINUX_SRC, LINUX_CONFIG_EXTRA, LINUX_JOBS, SKIP_APT).
#
# Not for: KVM, or kernels without the options of linux/configs/ (the adapters need IOMMUFD, VFIO cdev,
# INTEL_IOMMU and its debugfs).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"

t0=$(date +%s.%N)
bash "$HERE/setup.sh" || { echo "linux lane: setup failed" >&2; exit 1; }
CACHE="${IOASID_LINUX_CACHE:-$([[ -d /work ]] && echo /work/cache/ioasid-linux || echo "$HOME/.cache/ioasid-linux")}"
export IOASID_LINUX_CACHE="$CACHE"

# The adapter's host-side tests (protocol codec over a fake kernel) need the 6.12 uAPI headers setup.sh made, so they
# run here rather than in `npm test`.
npx --no-install mocha --no-config --node-option import=tsx --timeout 60000 'test/linux/*.test.ts' || { echo "linux lane: adapter host tests failed" >&2; exit 1; }

RUNS="${LANE_RUNS:-500}"
SEED="${LANE_SEED:-1}"
MAX_STEPS="${LANE_MAX_STEPS:-40}"
ADAPTERS="${LANE_ADAPTERS:-linux-iommufd linux-vfio-type1 linux-iommufd-vfio-compat}"
status=0
summary=()
for a in $ADAPTERS; do
  dir="reports/out/$a"
  rm -rf "$dir"
  mkdir -p "$dir"
  echo "== linux lane: $a ($RUNS traces, seed $SEED)" >&2
  s=$(date +%s.%N)
  npx --no-install tsx conformance/cli.ts run --adapter "$a" --runs "$RUNS" --seed "$SEED" --max-steps "$MAX_STEPS" \
    --shrink-budget "${LANE_SHRINK_BUDGET:-100}" --timeout 120000 --report-dir "$dir" --junit "$dir/junit.xml" --quiet \
    2> >(tee "$dir/run.stderr" >&2) | tee "$dir/run.log"
  rc=${PIPESTATUS[0]}
  e=$(date +%s.%N)
  line=$(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const a = Object.values(r.adapters)[0];
    const secs = Number(process.argv[2]);
    if (a.error) { console.log(`could not start: ${a.error.message}`); process.exit(0); }
    const n = a.traces.total + a.corpus.total;
    console.log(`${a.traces.passed}/${a.traces.total} random traces passed, corpus ${a.corpus.passed}/${a.corpus.total}, ${a.steps} steps, ${secs.toFixed(0)} s: ${(n / secs).toFixed(2)} traces/s, ${(a.steps / secs).toFixed(1)} steps/s`);
  ' "$dir/results.json" "$(echo "$e - $s" | bc)" 2>/dev/null || echo "no results.json")
  boot=$(grep -o 'boot to handshake [0-9.]* s' "$dir/run.stderr" | head -1)
  summary+=("$a: exit $rc; $line; $boot")
  [[ $rc == 0 ]] || status=1
done
echo "== linux lane summary (total $(echo "$(date +%s.%N) - $t0" | bc | cut -d. -f1) s)" >&2
cat "$CACHE/phases.log" | sed 's/^/   setup /' >&2
for l in "${summary[@]}"; do echo "   $l" >&2; done
exit $status
