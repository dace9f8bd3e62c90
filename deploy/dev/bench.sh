#!/usr/bin/env bash
# Runs the benchmarks and prints every figure on a line of its own, "metric: value unit".
#   deploy/dev/bench.sh            every benchmark
#   deploy/dev/bench.sh NAME       one of them: scheduler (all of the scheduler's), or one
#                                  scheduler benchmark: batch, single, latency, packing, memory,
#                                  capacity, chaos (kill -9 of PostgreSQL mid-run); agent (all of the QEMU
#                                  backend's), or one of agent-create, agent-migrate,
#                                  agent-snapshot-migrate, agent-memory, agent-migrate-tls
#                                  (live migration over QEMU's TLS against plaintext, same guest);
#                                  postgres-floor (PostgreSQL alone at the latency benchmark's rate)
#   deploy/dev/bench.sh grpc [BASELINE_REV]
#                                  the gRPC path to a real agent (fake backend, loopback): unary
#                                  p50/p99/mean and calls/s (1 and 8 callers), server-streaming
#                                  msgs/s and MB/s (ReadImage), the agent's RSS with 50 VMs. Runs it
#                                  twice, one build after the other on this machine: from
#                                  BASELINE_REV (default fbd1e8d, the last commit on the hand-written
#                                  gRPC stack) in a temporary worktree, then from this tree; then
#                                  prints "metric [current/baseline]: ratio x". Both builds use this
#                                  tree's measuring code; the gRPC-specific files (AgentClient.cs and
#                                  the csproj) come from BASELINE_REV if it has the benchmark, else
#                                  from the commit that added it. Not part of "all".
# Extra arguments go to the benchmark, e.g. deploy/dev/bench.sh batch --nodes 2000 --vms 20000,
# deploy/dev/bench.sh grpc fbd1e8d --calls 5000 (to both builds);
# --profile adds where the time went after each scheduler benchmark: span time per placed VM,
# and PostgreSQL's time per statement (pg_stat_statements, nested statements included).
# Exits non-zero when a benchmark fails or finds a broken invariant.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ROOT=$(repo_root)
cd "$ROOT"

ensure_apt "${RUNTIME_PACKAGES[@]}"
ensure_dotnet

NAME=${1:-all}
shift $(( $# > 0 ? 1 : 0 ))

SCHEDULER_BENCHMARKS="batch single latency packing memory capacity chaos audit"
AGENT_BENCHMARKS="agent-create agent-migrate agent-snapshot-migrate agent-memory agent-migrate-tls"
status=0

run_scheduler() {
  dotnet run -c Release --project tests/Cloud.Scheduler.Benchmarks -- "$1" "${@:2}" || status=1
}

run_agent() {
  dotnet run -c Release --project tests/Cloud.Agent.Qemu.Benchmarks -- "$1" "${@:2}" || status=1
}

GRPC_BENCH=tests/Cloud.Grpc.Benchmarks
GRPC_BASELINE=fbd1e8d
# The benchmark's files that belong to one gRPC stack; the rest (measuring, printing) is shared.
GRPC_STACK_FILES=(Cloud.Grpc.Benchmarks.csproj AgentClient.cs)

# run_grpc [BASELINE_REV] [ARGS...]: the gRPC benchmark from BASELINE_REV, then from this tree, then the ratios.
run_grpc() {
  local rev=$GRPC_BASELINE
  if [[ $# -gt 0 && $1 != -* ]]; then
    rev=$1
    shift
  fi
  local base
  if ! base=$(git rev-parse --verify --quiet "$rev^{commit}"); then
    echo "Unknown revision '$rev'." >&2
    status=2
    return
  fi
  # The stack-specific files for the baseline: its own if it has the benchmark, else those of the
  # commit that added the benchmark (written for the hand-written stack), else (not committed yet) this tree's.
  local stack_rev=""
  if git cat-file -e "$base:$GRPC_BENCH/AgentClient.cs" 2>/dev/null; then
    stack_rev=$base
  else
    stack_rev=$(git log --format=%H --diff-filter=A -- "$GRPC_BENCH/AgentClient.cs" | tail -n 1)
  fi

  GRPC_TMP=$(mktemp -d /tmp/cloud-grpc-baseline.XXXXXX)
  local out_base="$GRPC_TMP.baseline.txt" out_current="$GRPC_TMP.current.txt"
  trap 'git worktree remove --force "$GRPC_TMP" >/dev/null 2>&1; rm -rf "$GRPC_TMP" "$GRPC_TMP".*.txt; git worktree prune' EXIT
  git worktree add --detach --quiet "$GRPC_TMP" "$base" || { status=1; return; }
  rm -rf "${GRPC_TMP:?}/$GRPC_BENCH"
  mkdir -p "$GRPC_TMP/$GRPC_BENCH"
  tar -C "$GRPC_BENCH" --exclude=./bin --exclude=./obj -cf - . | tar -C "$GRPC_TMP/$GRPC_BENCH" -xf -
  if [[ -n $stack_rev ]]; then
    for f in "${GRPC_STACK_FILES[@]}"; do
      git show "$stack_rev:$GRPC_BENCH/$f" >"$GRPC_TMP/$GRPC_BENCH/$f" || { status=1; return; }
    done
  fi

  # The machine's load before the first run: figures taken under other work are not comparable.
  echo "# grpc: load $(cut -d' ' -f1-3 /proc/loadavg) before the runs" >&2
  echo "# grpc baseline: $rev ($(git rev-parse --short "$base")), gRPC files from ${stack_rev:-this tree}" >&2
  (cd "$GRPC_TMP" && dotnet run -c Release --project "$GRPC_BENCH" -- --label baseline "$@") | tee "$out_base" || status=1
  local dirty=""
  git diff --quiet HEAD || dirty=" with uncommitted changes"
  echo "# grpc current: this tree, $(git rev-parse --short HEAD)$dirty" >&2
  dotnet run -c Release --project "$GRPC_BENCH" -- --label current "$@" | tee "$out_current" || status=1

  awk '$2 == "[baseline]:" { b[$1] = $3; order[++n] = $1 }
       $2 == "[current]:" { c[$1] = $3 }
       END { for (i = 1; i <= n; i++) { k = order[i]; if ((k in c) && b[k] > 0) printf "%s [current/baseline]: %.3f x\n", k, c[k] / b[k] } }' \
    "$out_base" "$out_current"
}

case "$NAME" in
  all)
    run_scheduler all "$@"
    run_agent all
    deploy/dev/postgres-floor.sh || status=1
    ;;
  postgres-floor)
    deploy/dev/postgres-floor.sh "$@" || status=1
    ;;
  scheduler)
    run_scheduler all "$@"
    ;;
  agent)
    run_agent all "$@"
    ;;
  grpc)
    run_grpc "$@"
    ;;
  *)
    if [[ " $SCHEDULER_BENCHMARKS " == *" $NAME "* ]]; then
      run_scheduler "$NAME" "$@"
    elif [[ " $AGENT_BENCHMARKS " == *" $NAME "* ]]; then
      run_agent "${NAME#agent-}" "$@"
    else
      echo "Unknown benchmark '$NAME': all, scheduler, agent, grpc, $SCHEDULER_BENCHMARKS $AGENT_BENCHMARKS postgres-floor." >&2
      exit 2
    fi
    ;;
esac
exit $status
