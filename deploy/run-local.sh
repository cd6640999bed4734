#!/usr/bin/env bash
# `make run`: the whole hub on this machine. A local nats-server with
# JetStream (store under ./var/nats), every service, the partnership register
# and a demo scenario. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=target/release
NATS_PORT=${HUB_LOCAL_NATS_PORT:-4222}
export HUB_NATS_URL=${HUB_NATS_URL:-nats://127.0.0.1:$NATS_PORT}
export HUB_TOKENS_FILE=${HUB_TOKENS_FILE:-seeds/dev-tokens.json}
export HUB_PARTNERSHIPS_FILE=${HUB_PARTNERSHIPS_FILE:-seeds/partnerships.tsv}
export HUB_SECRET_FILE=${HUB_SECRET_FILE:-./var/hub.secret}
mkdir -p var/nats var/logs

pids=()
stop() {
  trap - EXIT INT TERM
  echo; echo "stopping the hub..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped. Data is kept in ./var (make clean-var forgets it)."
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

if (exec 3<>/dev/tcp/127.0.0.1/"$NATS_PORT") 2>/dev/null; then
  echo "port $NATS_PORT is taken: stop what runs there, or set HUB_LOCAL_NATS_PORT" >&2
  exit 1
fi
.venv/bin/nats-server -js -a 127.0.0.1 -p "$NATS_PORT" --store_dir var/nats >var/logs/nats-server.log 2>&1 &
pids+=($!)
wait_for_line var/logs/nats-server.log "Server is ready" "nats-server"

SERVICES="custody-service prison-service pharmacy-service treatment-service ambulance-service pickup-projection training-projection"
for svc in $SERVICES; do
  "$BIN/$svc" >"var/logs/$svc.log" 2>&1 &
  pids+=($!)
done
for svc in $SERVICES; do
  wait_for_line "var/logs/$svc.log" "$svc listening on" "$svc"
done

"$BIN/dashboard" >var/logs/dashboard.log 2>&1 &
pids+=($!)
wait_for_line var/logs/dashboard.log "listening" "dashboard"

HUB_TOKEN=dev-hub-admin-token "$BIN/hubctl" seed demo

cat <<INFO

The hub is running (logs in var/logs/).

  Dashboard: http://127.0.0.1:8080/   (sign in with a demo token below)

  nats-server         $HUB_NATS_URL
  custody-service     127.0.0.1:50051   metrics http://127.0.0.1:51051/metrics
  prison-service      127.0.0.1:50052   metrics http://127.0.0.1:51052/metrics
  pharmacy-service    127.0.0.1:50053   metrics http://127.0.0.1:51053/metrics
  treatment-service   127.0.0.1:50054   metrics http://127.0.0.1:51054/metrics
  ambulance-service   127.0.0.1:50055   metrics http://127.0.0.1:51055/metrics
  pickup-projection   127.0.0.1:50061   metrics http://127.0.0.1:51061/metrics
  training-projection 127.0.0.1:50062   metrics http://127.0.0.1:51062/metrics

Demo tokens (seeds/dev-tokens.json, local use only):
  custody_officer     dev-custody-officer-token (bradford, leeds)
  carat_worker        dev-carat-worker-token    (bradford, leeds)
  dip_worker          dev-dip-worker-token      (bradford)
  prison_officer      dev-prison-officer-token  (bradford, leeds)
  treatment_worker    dev-treatment-worker-token (bradford)
  pharmacist          dev-pharmacist-token      (bradford)
  paramedic           dev-paramedic-token       (bradford, leeds)
  partnership_analyst dev-analyst-token         (bradford)
  admin               dev-hub-admin-token       (all)

Try:
  HUB_TOKEN=dev-carat-worker-token $BIN/hubctl pickups --partnership bradford
  HUB_TOKEN=dev-carat-worker-token $BIN/hubctl prison record-release-date --partnership bradford \\
      --prison-code LEI --prison-number A1234BC --release-date $(date +%F)
  $BIN/hubctl events tail --follow        (the stream itself, decoded, still pseudonymous)
  HUB_TOKEN=dev-analyst-token $BIN/hubctl training --partnership bradford
  HUB_TOKEN=dev-analyst-token $BIN/hubctl pickup-summary --partnership bradford
  HUB_TOKEN=dev-hub-admin-token $BIN/hubctl projection status
  HUB_TOKEN=dev-hub-admin-token $BIN/hubctl projection rebuild pickup
Any gRPC client works through reflection, e.g. grpcurl:
  grpcurl -plaintext -H 'authorization: Bearer dev-carat-worker-token' \\
      -d '{"partnership_code":"bradford"}' 127.0.0.1:50061 hub.projections.v1.PickupListService/ListPickups

Ctrl-C stops everything.
INFO
wait -n "${pids[@]}" || true
echo "a process exited; see var/logs/" >&2
