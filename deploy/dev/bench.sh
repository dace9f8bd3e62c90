#!/usr/bin/env bash
# Runs the benchmarks and prints every figure on a line of its own, "metric: value unit".
#   deploy/dev/bench.sh            every benchmark
#   deploy/dev/bench.sh NAME       one of them: scheduler (all of the scheduler's), or one
#                                  scheduler benchmark: batch, single, latency, packing, memory,
#                                  capacity, chaos (kill -9 of PostgreSQL mid-run); agent (all of the QEMU
#                                  backend's), or one of agent-create, agent-migrate,
#                                  agent-snapshot-migrate, agent-memory;
#                                  postgres-floor (PostgreSQL alone at the latency benchmark's rate)
# Extra arguments go to the benchmark, e.g. deploy/dev/bench.sh batch --nodes 2000 --vms 20000;
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

SCHEDULER_BENCHMARKS="batch single latency packing memory capacity chaos"
AGENT_BENCHMARKS="agent-create agent-migrate agent-snapshot-migrate agent-memory"
status=0

run_scheduler() {
  dotnet run -c Release --project tests/Cloud.Scheduler.Benchmarks -- "$1" "${@:2}" || status=1
}

run_agent() {
  dotnet run -c Release --project tests/Cloud.Agent.Qemu.Benchmarks -- "$1" "${@:2}" || status=1
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
  *)
    if [[ " $SCHEDULER_BENCHMARKS " == *" $NAME "* ]]; then
      run_scheduler "$NAME" "$@"
    elif [[ " $AGENT_BENCHMARKS " == *" $NAME "* ]]; then
      run_agent "${NAME#agent-}" "$@"
    else
      echo "Unknown benchmark '$NAME': all, scheduler, agent, $SCHEDULER_BENCHMARKS $AGENT_BENCHMARKS postgres-floor." >&2
      exit 2
    fi
    ;;
esac
exit $status
