#!/usr/bin/env bash
# `make run`: the whole hub on this machine. A local nats-server with
# JetStream (store under ./var/nats), every service, the partnership register
# and a demo scenario. Ctrl-C stops everything.
#
# `make cluster` (HUB_LOCAL_CLUSTER=1): the same hub on a three-node NATS
# cluster on loopback (deploy/nats/cluster/node.conf; client ports
# 4222-4224, route ports 6222-6224), the stream kept on all three
# (HUB_STREAM_REPLICAS=3), as production runs it: TLS on client and route
# connections (a throwaway CA under ./var/cluster/tls) and one NATS user
# per process with only its own rights (deploy/nats/accounts.conf;
# passwords made once into ./var/cluster/nats-passwords.env). Its data
# lives apart, under ./var/cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=target/release
NATS_PORT=${HUB_LOCAL_NATS_PORT:-4222}
if [ "${HUB_LOCAL_CLUSTER:-0}" = 1 ]; then
  VAR=var/cluster
  NATS_PORTS=("$NATS_PORT" $((NATS_PORT + 1)) $((NATS_PORT + 2)))
  ROUTE_PORTS=(6222 6223 6224)
  export HUB_STREAM_REPLICAS=3
  urls=""
  for p in "${NATS_PORTS[@]}"; do urls="${urls:+$urls,}nats://127.0.0.1:$p"; done
  export HUB_NATS_URL=${HUB_NATS_URL:-$urls}
else
  VAR=var
  NATS_PORTS=("$NATS_PORT")
  export HUB_NATS_URL=${HUB_NATS_URL:-nats://127.0.0.1:$NATS_PORT}
fi
export HUB_TOKENS_FILE=${HUB_TOKENS_FILE:-seeds/dev-tokens.json}
export HUB_PARTNERSHIPS_FILE=${HUB_PARTNERSHIPS_FILE:-seeds/partnerships.tsv}
export HUB_SECRET_FILE=${HUB_SECRET_FILE:-./$VAR/hub.secret}
mkdir -p $VAR/nats $VAR/logs var/logs
# Services never make up a secret (a mis-mounted one must stop them): the
# local hub's is made here, once, and kept with its data.
[ -f "$HUB_SECRET_FILE" ] || $BIN/hubctl secret create "$HUB_SECRET_FILE"

pids=()
# nats-server's garbage collector with a memory budget, as deployed
# (docs/operations.md, "A memory budget for nats-server's garbage
# collector"); set GOMEMLIMIT to give it another.
NATS_ENV=(GOGC=off "GOMEMLIMIT=${GOMEMLIMIT:-2GiB}")
stop() {
  trap - EXIT INT TERM
  echo; echo "stopping the hub..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped. Data is kept in ./$VAR (make clean-var forgets it)."
  exit 0
}
trap stop EXIT INT TERM

wait_for_line() { # file pattern what
  for _ in $(seq 1 600); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$3 did not start; see $1" >&2; tail -20 "$1" >&2; exit 1
}

USERS="custody-service prison-service pharmacy-service treatment-service ambulance-service identity-service key-service pickup-projection training-projection activity-projection hub-operator"
pass_var() { echo "HUB_NATS_PASS_$(echo "$1" | tr 'a-z-' 'A-Z_')"; }
# The settings a process needs to reach NATS as its own user (cluster only).
as_user() { # user command...
  local user=$1; shift
  if [ "${HUB_LOCAL_CLUSTER:-0}" = 1 ]; then
    local var; var=$(pass_var "$user")
    HUB_NATS_USER=$user HUB_NATS_PASSWORD=${!var} HUB_NATS_TLS_CA=$VAR/tls/ca.pem \
      HUB_NATS_TLS_CERT=$VAR/tls/client.pem HUB_NATS_TLS_KEY=$VAR/tls/client-key.pem "$@"
  else
    "$@"
  fi
}
if [ "${HUB_LOCAL_CLUSTER:-0}" = 1 ]; then
  [ -f $VAR/tls/ca.pem ] || bash deploy/nats/make-test-ca.sh $VAR/tls >/dev/null
  if [ ! -f $VAR/nats-passwords.env ]; then
    (umask 077; for u in $USERS; do
      echo "export $(pass_var "$u")=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')"
    done >$VAR/nats-passwords.env)
  fi
  # shellcheck disable=SC1090
  source $VAR/nats-passwords.env
  export HUB_NATS_SERVER_CERT=$VAR/tls/server.pem HUB_NATS_SERVER_KEY=$VAR/tls/server-key.pem \
    HUB_NATS_CA=$VAR/tls/ca.pem
  # The hub's own listeners serve TLS too (gRPC, metrics, the dashboard),
  # with the same throwaway CA; hubctl and the dashboard call https://.
  export HUB_TLS_CERT_FILE=$VAR/tls/server.pem HUB_TLS_KEY_FILE=$VAR/tls/server-key.pem \
    HUB_TLS_CA_FILE=$VAR/tls/ca.pem
  for s in custody-service:50051 prison-service:50052 pharmacy-service:50053 \
    treatment-service:50054 ambulance-service:50055 identity-service:50056 \
    pickup-projection:50061 training-projection:50062 activity-projection:50063; do
    export "HUB_$(echo "${s%%:*}" | tr 'a-z-' 'A-Z_')_ADDR=https://127.0.0.1:${s##*:}"
  done
  SCHEME=https
  # The same settings for a shell of yours (hubctl against this hub).
  { env | grep -E '^HUB_(TLS_CA_FILE|[A-Z_]+_ADDR)=' | sed 's/^/export /'; } >$VAR/env.sh
else
  SCHEME=http
fi

for p in "${NATS_PORTS[@]}"; do
  if (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null; then
    echo "port $p is taken: stop what runs there, or set HUB_LOCAL_NATS_PORT" >&2
    exit 1
  fi
done
if [ "${HUB_LOCAL_CLUSTER:-0}" = 1 ]; then
  routes=()
  for r in "${ROUTE_PORTS[@]}"; do routes+=("nats-route://127.0.0.1:$r"); done
  for i in 0 1 2; do
    HUB_NODE_NAME=hub-$((i + 1)) HUB_NODE_HOST=127.0.0.1 HUB_NODE_PORT=${NATS_PORTS[$i]} \
      HUB_NODE_CLUSTER_PORT=${ROUTE_PORTS[$i]} HUB_NODE_STORE_DIR=$VAR/nats/hub-$((i + 1)) \
      HUB_ROUTE_1=${routes[0]} HUB_ROUTE_2=${routes[1]} HUB_ROUTE_3=${routes[2]} \
      env "${NATS_ENV[@]}" .venv/bin/nats-server -c deploy/nats/cluster/node.conf >"$VAR/logs/nats-server-$((i + 1)).log" 2>&1 &
    pids+=($!)
  done
  for i in 1 2 3; do
    wait_for_line "$VAR/logs/nats-server-$i.log" "Server is ready" "nats-server hub-$i"
  done
else
  env "${NATS_ENV[@]}" .venv/bin/nats-server -js -a 127.0.0.1 -p "$NATS_PORT" --store_dir var/nats >var/logs/nats-server.log 2>&1 &
  pids+=($!)
  wait_for_line var/logs/nats-server.log "Server is ready" "nats-server"
fi

# The stream and the buckets are the operator's to create (services may
# only check them under deploy/nats/accounts.conf).
as_user hub-operator "$BIN/hubctl" nats init >$VAR/logs/nats-init.log 2>&1 \
  || { echo "hubctl nats init failed; see $VAR/logs/nats-init.log" >&2; cat $VAR/logs/nats-init.log >&2; exit 1; }

SERVICES="key-service custody-service prison-service pharmacy-service treatment-service ambulance-service identity-service pickup-projection training-projection activity-projection"
for svc in $SERVICES; do
  # A projection's store holds positions in this stream: the cluster's
  # live apart from the single server's.
  # `exec` in the background subshell: $! is the service itself, so
  # stopping the hub (Ctrl-C, a failed step, a process that exited) stops
  # it, rather than its subshell and leaving the service running.
  (HUB_DATA_DIR=./$VAR/$svc as_user "$svc" exec "$BIN/$svc") >"$VAR/logs/$svc.log" 2>&1 &
  pids+=($!)
done
for svc in $SERVICES; do
  wait_for_line "$VAR/logs/$svc.log" "$svc listening on" "$svc"
done

"$BIN/dashboard" >$VAR/logs/dashboard.log 2>&1 &
pids+=($!)
wait_for_line $VAR/logs/dashboard.log "listening" "dashboard"

HUB_TOKEN=dev-hub-admin-token "$BIN/hubctl" seed demo

cat <<INFO

The hub is running (logs in $VAR/logs/).

  Dashboard: $SCHEME://127.0.0.1:8080/   (sign in with a demo token below)

  nats-server         $HUB_NATS_URL
  custody-service     127.0.0.1:50051   metrics http://127.0.0.1:51051/metrics
  prison-service      127.0.0.1:50052   metrics http://127.0.0.1:51052/metrics
  pharmacy-service    127.0.0.1:50053   metrics http://127.0.0.1:51053/metrics
  treatment-service   127.0.0.1:50054   metrics http://127.0.0.1:51054/metrics
  ambulance-service   127.0.0.1:50055   metrics http://127.0.0.1:51055/metrics
  identity-service    127.0.0.1:50056   metrics http://127.0.0.1:51056/metrics
  key-service         127.0.0.1:50057   metrics http://127.0.0.1:51057/metrics
  pickup-projection   127.0.0.1:50061   metrics http://127.0.0.1:51061/metrics
  training-projection 127.0.0.1:50062   metrics http://127.0.0.1:51062/metrics
  activity-projection 127.0.0.1:50063   metrics http://127.0.0.1:51063/metrics

Demo tokens (seeds/dev-tokens.json, local use only):
  custody_officer     dev-custody-officer-token (bradford, leeds)
  carat_worker        dev-carat-worker-token    (bradford, leeds)
  dip_worker          dev-dip-worker-token      (bradford)
  prison_officer      dev-prison-officer-token  (bradford, leeds)
  treatment_worker    dev-treatment-worker-token (bradford)
  pharmacist          dev-pharmacist-token      (bradford)
  paramedic           dev-paramedic-token       (bradford, leeds)
  partnership_analyst dev-analyst-token         (bradford)
  data_steward        dev-data-steward-token    (bradford)
  carat_worker        dev-leeds-carat-token     (leeds only)
  admin               dev-hub-admin-token       (all)

Try ($([ "$SCHEME" = https ] && echo "after: source $VAR/env.sh, for TLS; ")the commands below):
  HUB_TOKEN=dev-carat-worker-token $BIN/hubctl pickups --partnership bradford
  HUB_TOKEN=dev-carat-worker-token $BIN/hubctl prison record-release-date --partnership bradford \\
      --prison-code LEI --prison-number A1234BC --release-date $(date +%F)
  $BIN/hubctl events tail --follow        (the stream itself, decoded, still pseudonymous;
                                          on make cluster, as the operator: see $VAR/nats-passwords.env)
  HUB_TOKEN=dev-analyst-token $BIN/hubctl training --partnership bradford
  HUB_TOKEN=dev-analyst-token $BIN/hubctl activity --partnership bradford
  HUB_TOKEN=dev-analyst-token $BIN/hubctl national --figure needle_exchange_return_rate_pct
  HUB_TOKEN=dev-analyst-token $BIN/hubctl pickup-summary --partnership bradford
  HUB_TOKEN=dev-data-steward-token $BIN/hubctl identity duplicates --partnership bradford
  HUB_TOKEN=dev-leeds-carat-token $BIN/hubctl lookup --partnership bradford --prison-number A1234BC \\
      --reason "released to Leeds tonight, checking the gate plan"   (breaks the glass: audited)
  HUB_TOKEN=dev-hub-admin-token $BIN/hubctl audit --break-glass --partnership bradford
  HUB_TOKEN=dev-hub-admin-token $BIN/hubctl projection status
  HUB_TOKEN=dev-hub-admin-token $BIN/hubctl projection rebuild pickup
Any gRPC client works through reflection, e.g. grpcurl:
  grpcurl -plaintext -H 'authorization: Bearer dev-carat-worker-token' \\
      -d '{"partnership_code":"bradford"}' 127.0.0.1:50061 hub.projections.v1.PickupListService/ListPickups

Ctrl-C stops everything.
INFO
wait -n "${pids[@]}" || true
echo "a process exited; see $VAR/logs/" >&2
