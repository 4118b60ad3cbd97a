#!/usr/bin/env bash
# Stands up the proxy bench's plain HTTP/1.1 setup outside the bench, for profiling
# (docs/profiling.md): an nginx backend answering `200 ok` (one worker), `switchyard serve`
# with the bench's one-service config, and one proxy on one worker in front of it:
#
#   benches/peers/stand.sh sidecar [BINARY]   # `switchyard proxy --concurrency 1` (default binary:
#                                             # target/release/switchyard)
#   benches/peers/stand.sh haproxy
#
# Prints the proxy's port and pid, then waits; Ctrl-C (or SIGTERM) stops everything it started.
# Set PROXY_WRAPPER to run the proxy under a tool, e.g. PROXY_WRAPPER="heaptrack -o /tmp/h";
# HTTP2=1 for the `--peers --h2` shape (cleartext HTTP/2 to the backend; clients such as
# h2load speak it by prior knowledge, curl and wrk still get HTTP/1.1).
set -euo pipefail

which_proxy=${1:?usage: stand.sh sidecar|haproxy [BINARY]}
here=$(cd "$(dirname "$0")/../.." && pwd)
binary=${2:-$here/target/release/switchyard}
dir=$(mktemp -d /tmp/switchyard-stand.XXXXXX)
pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap stop EXIT INT TERM

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
backend=$(port)
listen=$(port)
# HTTP/2 to the backend when asked: nginx's listen option, the backend service's protocol,
# haproxy's server option.
http2=${HTTP2:-}
backend_listen=${http2:+ http2}
service_protocol=${http2:+ protocol: H2C,}
server_options=${http2:+ proto h2}
mkdir -p "$dir/temp"
cat >"$dir/backend.conf" <<EOF
daemon off; master_process off; worker_processes 1; worker_rlimit_nofile 20000;
pid $dir/backend.pid; error_log $dir/backend.log error;
events { worker_connections 19000; }
http { access_log off; client_body_temp_path $dir/temp; proxy_temp_path $dir/temp;
  keepalive_requests 100000000; http2_max_requests 100000000;
  server { listen 127.0.0.1:$backend$backend_listen; location / { return 200 "ok"; } } }
EOF
nginx -c "$dir/backend.conf" -e "$dir/backend.log" &
pids+=($!)

case $which_proxy in
haproxy)
  cat >"$dir/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend f
  bind 127.0.0.1:$listen
  default_backend b
backend b
  server s 127.0.0.1:$backend$server_options
EOF
  ${PROXY_WRAPPER:-} haproxy -db -f "$dir/haproxy.cfg" &
  proxy=$!
  ;;
sidecar)
  xds=$(port)
  cat >"$dir/lb.yaml" <<EOF
networkEndpointGroups:
- {name: b, zone: us-central1-a, endpoints: [{ipAddress: 127.0.0.1, port: $backend}]}
backendServices:
- {name: b,$service_protocol backends: [{group: zones/us-central1-a/networkEndpointGroups/b, balancingMode: RATE, maxRate: 100000}]}
urlMaps:
- {name: m, defaultService: global/backendServices/b}
targetHttpProxies:
- {name: p, urlMap: global/urlMaps/m}
forwardingRules:
- {name: f, IPAddress: 127.0.0.1, portRange: "$listen", target: global/targetHttpProxies/p}
EOF
  "$binary" serve "$dir/lb.yaml" --xds-listen "127.0.0.1:$xds" \
    --admin-listen "127.0.0.1:$(port)" >"$dir/serve.log" 2>&1 &
  pids+=($!)
  sed -e "s/port_value: 18000/port_value: $xds/" -e "s/port_value: 9901/port_value: $(port)/" \
    "$here/envoy-configs/envoy-bootstrap.yaml" >"$dir/bootstrap.yaml"
  RUST_LOG=switchyard=warn ${PROXY_WRAPPER:-} "$binary" proxy --concurrency 1 \
    --bootstrap "$dir/bootstrap.yaml" &
  proxy=$!
  ;;
*)
  echo "stand.sh: sidecar or haproxy, not $which_proxy" >&2
  exit 2
  ;;
esac
pids+=("$proxy")
for _ in $(seq 100); do
  if curl -sf -o /dev/null "http://127.0.0.1:$listen/"; then break; fi
  sleep 0.1
done
echo "$which_proxy on 127.0.0.1:$listen, pid $proxy (backend nginx on $backend)"
wait "$proxy"
