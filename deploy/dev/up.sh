#!/usr/bin/env bash
# Starts a whole dev cloud on this machine: an embedded PostgreSQL (inside the controller),
# the controller (REST 127.0.0.1:8080 and gRPC 127.0.0.1:8081 over TLS, the node port
# 127.0.0.1:8082 over mutual TLS) and two agents on the QEMU backend (127.0.0.2:7070 and
# 127.0.0.3:7070, mutual TLS). The controller makes the cloud's CA in .cloud/trust at its first
# start; each agent gets ca.pem in its TLS folder and joins with a join token made through the
# API. Ctrl-C stops everything, guests included.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ROOT=$(repo_root)
cd "$ROOT"

BACKEND=${CLOUD_AGENT_BACKEND:-qemu}
ensure_apt "${RUNTIME_PACKAGES[@]}"
ensure_dotnet

STATE="$ROOT/.cloud"
BIN="$STATE/bin"
mkdir -p "$STATE/logs"
# Searchable (not listable) by others: the postgres user must reach the cluster inside;
# the secrets in it are files of mode 600.
chmod 711 "$STATE"

echo "Building..."
dotnet publish controller/Cloud.Controller -c Release -o "$BIN/controller" -v quiet -nologo >/dev/null
# The dev cloud runs the agent on the JIT: a Native AOT publish (what deploy/ ships) takes minutes.
dotnet publish agent/Cloud.Agent -c Release -p:PublishAot=false -o "$BIN/agent" -v quiet -nologo >/dev/null
dotnet publish controller/Cloud.Cli -c Release -o "$BIN/cli" -v quiet -nologo >/dev/null

# One operator token per dev cloud, kept across runs; the controller is given only its hash.
if [ ! -s "$STATE/operator-token" ]; then
  (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$STATE/operator-token")
fi
TOKEN=$(cat "$STATE/operator-token")
TOKEN_SHA256=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)
# The cloud's CA: made by the controller at its first start (Trust:CreateCa), kept across runs.
TRUST="$STATE/trust"
CA="$TRUST/ca.pem"
(umask 077; cat > "$STATE/cloudctl.json" <<JSON
{
  "currentProfile": "default",
  "profiles": {
    "default": { "url": "https://127.0.0.1:8080", "token": "$TOKEN", "caFile": "$CA" }
  }
}
JSON
)
cat > "$BIN/cloudctl" <<SH
#!/usr/bin/env bash
export CLOUDCTL_CONFIG="\${CLOUDCTL_CONFIG:-$STATE/cloudctl.json}"
exec dotnet "$BIN/cli/cloudctl.dll" "\$@"
SH
chmod +x "$BIN/cloudctl"

PIDS=()
STOPPING=""
cleanup() {
  # A second Ctrl-C, or the TERM a wrapper forwards after its own, must not end the cleanup
  # half-way and leave guests running: from here on both are ignored.
  trap '' INT TERM
  trap - EXIT
  # Finish the cleanup even when the terminal or a pipe reading our output is gone.
  # A failed echo (its reader gone) must not end the cleanup half-way.
  trap '' PIPE HUP
  set +e
  STOPPING=1
  echo
  echo "Stopping..."
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  # Guests outlive an agent on purpose (a restarted agent adopts them); a dev cloud that
  # stops takes its guests with it. Without their pid files the next start finds them
  # stopped rather than crashed.
  for pidfile in "$STATE"/agents/*/vms/*/qemu.pid; do
    [ -f "$pidfile" ] && kill -KILL "$(cat "$pidfile")" 2>/dev/null
    rm -f "$pidfile"
  done
  if [ -f "$STATE/postgres/pgdata/postmaster.pid" ]; then
    runuser -u postgres -- /usr/lib/postgresql/*/bin/pg_ctl -D "$STATE/postgres/pgdata" stop -m fast >/dev/null 2>&1 || true
  fi
  echo "Stopped."
}
trap cleanup INT TERM EXIT

echo "Starting the controller..."
Auth__OperatorTokenSha256__0="$TOKEN_SHA256" \
Controller__EmbeddedDatabaseDirectory="$STATE/postgres" \
Controller__RestListen=127.0.0.1:8080 Controller__GrpcListen=127.0.0.1:8081 Controller__NodeListen=127.0.0.1:8082 \
Trust__Directory="$TRUST" Trust__CreateCa=true \
  dotnet "$BIN/controller/Cloud.Controller.dll" --contentRoot "$BIN/controller" >"$STATE/logs/controller.log" 2>&1 &
PIDS+=($!)
ready=""
for _ in $(seq 1 120); do
  # Over TLS, checked against the cloud's CA (there once the controller made it).
  [ -s "$CA" ] && curl -fsS --cacert "$CA" https://127.0.0.1:8080/healthz/ready >/dev/null 2>&1 && { ready=1; break; }
  kill -0 "${PIDS[0]}" 2>/dev/null || { echo "The controller exited; see $STATE/logs/controller.log" >&2; tail -20 "$STATE/logs/controller.log" >&2; exit 1; }
  sleep 0.5
done
[ -n "$ready" ] || { echo "The controller did not become ready in 60 s; see $STATE/logs/controller.log" >&2; exit 1; }

for n in 1 2; do
  address="127.0.0.$((n + 1))"
  tls="$STATE/agents/agent-$n/tls"
  mkdir -p "$tls"
  chmod 700 "$tls"
  # The operator's part of a node's trust: the CA to check the controller with, and a
  # single-use join token for this node's name (unused when its certificate is still valid).
  cp "$CA" "$tls/ca.pem"
  join_token=$("$BIN/cloudctl" node join-token "agent-$n" --ttl 1h --quiet) \
    || { echo "Could not make a join token for agent-$n (see above)." >&2; exit 1; }
  echo "Starting agent-$n on $address:7070 ($BACKEND backend)..."
  Agent__NodeName="agent-$n" Agent__Listen="$address:7070" Agent__Backend="$BACKEND" \
  Agent__ControllerUrl=https://127.0.0.1:8082 Agent__TlsDirectory="$tls" Agent__JoinToken="$join_token" \
  Agent__Qemu__DataDirectory="$STATE/agents/agent-$n" Agent__Qemu__ListenAddress="$address" \
    dotnet "$BIN/agent/Cloud.Agent.dll" --contentRoot "$BIN/agent" >"$STATE/logs/agent-$n.log" 2>&1 &
  PIDS+=($!)
done

cat <<INFO

Cloud is up (TLS on every port; the cloud's CA is $CA).
  REST API      https://127.0.0.1:8080/v1   (Authorization: Bearer \$(cat $STATE/operator-token); curl --cacert $CA)
  gRPC API      127.0.0.1:8081 (TLS): cloud.compute.v1.Compute
  node port     127.0.0.1:8082 (mutual TLS, agents only): cloud.node.v1
  agents        127.0.0.2:7070, 127.0.0.3:7070 (mutual TLS, the controller only): cloud.agent.v1.NodeAgent
  operator token   $STATE/operator-token
  cloudctl config  $STATE/cloudctl.json (trusts $CA)
  agents' TLS      $STATE/agents/agent-N/tls
  logs             $STATE/logs/

Try:
  export PATH="$BIN:\$PATH"
  cloudctl vm create --name demo
  cloudctl vm list
  cloudctl node list

Ctrl-C stops everything.
INFO

wait -n "${PIDS[@]}" || true
[ -z "$STOPPING" ] && echo "A process exited; see $STATE/logs/." >&2
