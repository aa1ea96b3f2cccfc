#!/usr/bin/env bash
# kube-testenv.sh — a real Kubernetes control plane on loopback for tests,
# built from source with the Go module proxy (no Docker, no image pulls, no
# prebuilt binary downloads).
#
#   kube-testenv.sh CACHE_DIR [install|start|stop|status|env|running|use PID|release PID]
#                                                            (default: start)
#
#   install  build etcd, kube-apiserver, kube-controller-manager and
#            kube-scheduler (only the first two if KUBETEST_CONTROLLERS=0)
#            into CACHE_DIR/bin. Idempotent: skipped when the binaries exist
#            and were built from the same go.mod/go.sum/flags/Go version.
#   start    install (if needed), then start etcd + kube-apiserver
#            (+ kube-controller-manager + kube-scheduler) on 127.0.0.1 with
#            free ports, wait until ready, write an admin kubeconfig and print
#            its path as the only line on stdout. If this run dir's control
#            plane is already up and ready, it just prints the path again.
#   stop     stop the processes started by `start`, by their recorded PIDs
#            (SIGTERM, then SIGKILL after 15 s): kcm + scheduler, then the
#            apiserver, then etcd. Takes ~7 s.
#   status   show ports, PIDs and RSS.
#   env      print shell assignments (KUBECONFIG=..., KUBETEST_*) to eval.
#   running  exit 0 if this run dir's control plane is up and ready, else 1.
#   use PID  for with-cluster.sh: like start, and record PID as a user. If
#            the control plane was not running, it is marked as started on
#            behalf of its users, so the last `release` stops it.
#   release PID
#            forget PID (and users that have exited); stop the control plane
#            if `use` started it and no user is left. One that was started
#            with `start` (a developer's `make cluster`) is left running.
#
# install, start, stop, use and release hold a lock on CACHE_DIR/lock, so
# concurrent callers (two `make test` at once) wait for each other instead
# of building or starting twice.
#
# Environment knobs:
#   KUBETEST_RUN_DIR        state dir (pki, etcd data, logs, pids, kubeconfig);
#                           default CACHE_DIR/run. Use one per parallel env.
#   KUBETEST_CONTROLLERS    1 (default) also run kube-controller-manager and
#                           kube-scheduler; 0 = etcd + apiserver only (then the
#                           ServiceAccount admission plugin is disabled, since
#                           nothing creates the "default" ServiceAccounts; and
#                           ResourceQuotas are stored but not enforced, since
#                           only the controller fills their status.hard).
#   KUBETEST_KEEP_DATA      1 keeps etcd data across start/stop (default: wiped
#                           at each start so every run begins clean).
#   KUBETEST_APISERVER_ARGS / KUBETEST_KCM_ARGS / KUBETEST_SCHEDULER_ARGS
#                           extra flags appended to each component.
#   GOCACHE / GOMODCACHE    honoured as usual (default: the go env ones, so
#                           the project's own build shares the module cache).
#
# Needs: go >= 1.26 (module requires go 1.26.0), openssl, curl, python3 (free
# ports), flock and setsid (util-linux). All are on the machine image; nothing
# here touches a non-loopback address except the Go module proxy through the
# `go` command during install.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
K8S_VERSION=v1.37.2          # must match k8s.io/kubernetes in $HERE/go.mod
CACHE=${1:?usage: kube-testenv.sh CACHE_DIR [install|start|stop|status|env|running|use PID|release PID]}
CMD=${2:-start}
USER_PID=${3:-}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
BIN=$CACHE/bin
RUN=${KUBETEST_RUN_DIR:-$CACHE/run}
CONTROLLERS=${KUBETEST_CONTROLLERS:-1}

log() { echo "kube-testenv: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need() {  # fail early, with the fix, rather than halfway through a start
  local c missing=()
  for c in go openssl curl python3 flock setsid; do command -v "$c" >/dev/null || missing+=("$c"); done
  ((${#missing[@]} == 0)) && return 0
  local hint=()
  for c in "${missing[@]}"; do
    case $c in
      go) hint+=("Go >= 1.26 from https://go.dev/dl") ;;
      flock|setsid) hint+=("apt-get install -y util-linux") ;;
      *) hint+=("apt-get install -y $c") ;;
    esac
  done
  die "missing ${missing[*]}: install with: $(printf '%s; ' "${hint[@]}")"
}

# lock serialises the commands that build, start or stop, across processes.
# fd 9 must not leak into the control-plane processes (launch closes it),
# or the lock would be held for as long as they run.
lock() {
  exec 9>>"$CACHE/lock"
  flock 9
}

# ---------------------------------------------------------------- install --
# Version stamping: without these -X flags the binaries report
# v0.0.0-master+$Format:%H$ (harmless for the API, but confusing in
# `kubectl version` and for client code that parses the server version).
ldflags() {
  local v=${K8S_VERSION#v} p=k8s.io/component-base/version
  local maj=${v%%.*} rest=${v#*.}; local min=${rest%%.*}
  echo "-s -w -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$maj -X $p.gitMinor=$min" \
       "-X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
}

install() {
  local src=$CACHE/src stamp want=(etcd kube-apiserver) b missing=() pkgs=()
  command -v go >/dev/null || die "go not found on PATH"
  [[ $CONTROLLERS == 1 ]] && want+=(kube-controller-manager kube-scheduler)
  # The stamp covers everything that determines the binaries.
  stamp=$(cat "$HERE/go.mod" "$HERE/go.sum" "$HERE/cmd/etcd/main.go" <(ldflags) <(go env GOVERSION) | sha256sum | cut -c1-16)
  if [[ -f $BIN/.stamp && $(cat "$BIN/.stamp") == "$stamp" ]]; then
    for b in "${want[@]}"; do [[ -x $BIN/$b ]] || missing+=("$b"); done
  else
    rm -rf "$BIN"; missing=("${want[@]}")   # inputs changed: rebuild everything wanted
  fi
  if ((${#missing[@]} == 0)); then log "binaries up to date in $BIN ($K8S_VERSION)"; return 0; fi
  # A cold build needs ~4.5 GB (3.7 GB build cache, 0.6 GB modules, 0.3 GB binaries).
  local d free_kb; d=$(go env GOCACHE)
  while [[ ! -d $d ]]; do d=$(dirname "$d"); done
  free_kb=$(df -Pk "$d" | awk 'NR==2{print $4}')
  ((free_kb > 6 * 1024 * 1024)) || log "WARNING: only $((free_kb / 1024)) MiB free for the Go build cache; a cold build needs ~4.5 GB"
  mkdir -p "$src/cmd/etcd" "$BIN"
  # A separate module that requires k8s.io/kubernetes and replaces every
  # k8s.io/* staging module by its published v0.X.Y twin (k8s.io/kubernetes's
  # own go.mod points them at ./staging, which is not in the module zip).
  cp "$HERE/go.mod" "$HERE/go.sum" "$src/"
  cp "$HERE/cmd/etcd/main.go" "$src/cmd/etcd/"
  for b in "${missing[@]}"; do
    case $b in etcd) pkgs+=(./cmd/etcd) ;; *) pkgs+=("k8s.io/kubernetes/cmd/$b") ;; esac
  done
  log "building ${missing[*]} $K8S_VERSION (cold, all four: 7-11 min on 2 cores)"
  local t0=$SECONDS
  # One `go build` for all: one action graph, shared compilation. No
  # -trimpath, so compiled client-go/apimachinery packages in GOCACHE are
  # reused by the project's own `go test` when it pins the same versions.
  # GOWORK=off: never pick up a go.work above CACHE_DIR.
  (cd "$src" && GOWORK=off GOFLAGS=-buildvcs=false go build -ldflags "$(ldflags)" -o "$BIN/" "${pkgs[@]}")
  echo "$stamp" > "$BIN/.stamp"
  log "built in $((SECONDS - t0)) s: $(cd "$BIN" && du -sh "${missing[@]}" | tr '\t\n' ': ')"
}

# ------------------------------------------------------------------ helpers --
freeport() {  # an unused TCP port on 127.0.0.1 (tiny race until the server binds it)
  python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()'
}

# alive NAME: true if RUN/NAME.pid names a live process running one of our binaries
alive() {
  local f=$RUN/$1.pid pid
  [[ -f $f ]] || return 1
  pid=$(cat "$f")
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against PID reuse: the process must be running a binary from $BIN.
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$BIN/" || return 1
}

wait_url() {  # NAME URL TIMEOUT_S [curl args...]
  local name=$1 url=$2 timeout=$3; shift 3
  local deadline=$((SECONDS + timeout))
  until curl -sf -o /dev/null --max-time 2 "$@" "$url"; do
    alive "$name" || { log "$name exited; last log lines:"; tail -n 30 "$RUN/$name.log" >&2; return 1; }
    ((SECONDS < deadline)) || { log "$name not ready after ${timeout}s ($url)"; tail -n 30 "$RUN/$name.log" >&2; return 1; }
    sleep 0.1
  done
}

launch() {  # NAME BINARY ARGS... : start in its own session, log to RUN/NAME.log
  local name=$1 bin=$2 pid i; shift
  setsid "$@" > "$RUN/$name.log" 2>&1 < /dev/null 9>&- &
  pid=$!
  echo "$pid" > "$RUN/$name.pid"
  # Until the forked shell has exec'd the binary, /proc/PID/cmdline is still
  # this script's, and alive() (which checks it) would report a false exit.
  for ((i = 0; i < 100; i++)); do
    [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$bin" ]] && return 0
    kill -0 "$pid" 2>/dev/null || return 0   # died at once: wait_url shows its log
    sleep 0.02
  done
}

# ------------------------------------------------------------------------ pki --
# EC P-256 keys (fast to generate). One CA signs the apiserver serving cert
# and the client certs; the apiserver trusts it via --client-ca-file.
pki() {
  local d=$RUN/pki
  [[ -f $d/done ]] && return 0
  mkdir -p "$d"; chmod 700 "$d"
  (
    cd "$d"
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    key ca.key
    openssl req -x509 -new -key ca.key -out ca.crt -days 3650 -subj "/CN=kube-testenv-ca" 2>/dev/null
    cert() {  # name subject extensions
      key "$1.key"
      openssl req -new -key "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      printf '%b' "$3" > "$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 3650 -extfile "$1.ext" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    # 10.0.0.1 is the "kubernetes" Service's ClusterIP inside the (never
    # routed) service range; only 127.0.0.1 is ever connected to.
    cert apiserver "/CN=kube-apiserver" \
      "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n"
    cert admin "/O=system:masters/CN=kube-testenv-admin" "extendedKeyUsage=clientAuth\n"
    cert kube-controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth\n"
    cert kube-scheduler "/CN=system:kube-scheduler" "extendedKeyUsage=clientAuth\n"
    # ServiceAccount token signing key pair (TokenRequest, SA tokens).
    key sa.key
    openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
    touch ./done
  )
}

kubeconfig() {  # OUTFILE CERTNAME USER ; certs embedded so the file is self-contained
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kube-testenv
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$RUN/pki/ca.crt")
users:
- name: $3
  user:
    client-certificate-data: $(base64 -w0 "$RUN/pki/$2.crt")
    client-key-data: $(base64 -w0 "$RUN/pki/$2.key")
contexts:
- name: kube-testenv
  context: {cluster: kube-testenv, user: $3}
current-context: kube-testenv
EOF
  chmod 600 "$1"
}

# -------------------------------------------------------------------- start --
start() {
  if alive kube-apiserver && [[ -f $RUN/ports ]]; then
    # shellcheck disable=SC1091
    source "$RUN/ports"
    if curl -sf -o /dev/null --cacert "$RUN/pki/ca.crt" "https://127.0.0.1:$APISERVER_PORT/readyz"; then
      log "already running (run dir $RUN)"; return 0
    fi
  fi
  stop_all quiet   # leftovers of a crashed run in this run dir
  install
  # If anything below fails (set -e), stop whatever was already started.
  trap 'log "start failed; stopping what was started"; stop_all quiet' EXIT
  mkdir -p "$RUN"
  [[ ${KUBETEST_KEEP_DATA:-0} == 1 ]] || rm -rf "$RUN/etcd-data"
  pki

  ETCD_PORT=$(freeport); ETCD_PEER_PORT=$(freeport); APISERVER_PORT=$(freeport)
  KCM_PORT=$(freeport); SCHEDULER_PORT=$(freeport)
  cat > "$RUN/ports" <<EOF
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
APISERVER_PORT=$APISERVER_PORT
KCM_PORT=$KCM_PORT
SCHEDULER_PORT=$SCHEDULER_PORT
EOF
  local t0; t0=$(date +%s%N)

  # etcd: single member, every URL pinned to 127.0.0.1 (the default peer URL
  # is localhost:2380, which would collide between parallel envs).
  # --unsafe-no-fsync: test data is disposable, and fsync dominates latency.
  launch etcd "$BIN/etcd" --name=testenv --data-dir="$RUN/etcd-data" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="testenv=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level=warn
  wait_url etcd "http://127.0.0.1:$ETCD_PORT/health" 30

  # kube-apiserver. Required for a modern apiserver: the three
  # --service-account-* flags (issuer + verify key + signing key), a serving
  # cert (else it self-signs into --cert-dir), --etcd-servers.
  # --authorization-mode=Node,RBAC: real RBAC enforcement (the admin cert is
  # in group system:masters, which bypasses RBAC by design).
  # --endpoint-reconciler-type=none: the "kubernetes" Endpoints would carry
  # 127.0.0.1, which Endpoints validation rejects (log noise only).
  local admission=()
  [[ $CONTROLLERS == 1 ]] || admission=(--disable-admission-plugins=ServiceAccount)
  # shellcheck disable=SC2086
  launch kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --cert-dir="$RUN/apiserver-certs" \
    --tls-cert-file="$RUN/pki/apiserver.crt" --tls-private-key-file="$RUN/pki/apiserver.key" \
    --client-ca-file="$RUN/pki/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$RUN/pki/sa.pub" --service-account-signing-key-file="$RUN/pki/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --authorization-mode=Node,RBAC --allow-privileged=true \
    --endpoint-reconciler-type=none "${admission[@]}" \
    ${KUBETEST_APISERVER_ARGS:-}
  wait_url kube-apiserver "https://127.0.0.1:$APISERVER_PORT/readyz" 120 --cacert "$RUN/pki/ca.crt"
  local t1; t1=$(date +%s%N)
  log "etcd + kube-apiserver ready in $(( (t1 - t0) / 1000000 )) ms"

  kubeconfig "$RUN/admin.kubeconfig" admin kube-testenv-admin

  if [[ $CONTROLLERS == 1 ]]; then
    kubeconfig "$RUN/kcm.kubeconfig" kube-controller-manager system:kube-controller-manager
    kubeconfig "$RUN/scheduler.kubeconfig" kube-scheduler system:kube-scheduler
    # kube-controller-manager: --use-service-account-credentials gives each
    # controller its own SA (as in a real cluster); the SA private key signs
    # those tokens and --root-ca-file fills each namespace's kube-root-ca.crt.
    # Node grace periods are stretched so a fake Node (no kubelet heart-
    # beats) stays Ready for the whole test run; the controller still removes
    # the not-ready taint once a test marks the Node Ready.
    # No --authentication/authorization-kubeconfig: their absence only turns
    # off delegated auth on the component's own /metrics; /healthz stays open.
    # shellcheck disable=SC2086
    launch kube-controller-manager "$BIN/kube-controller-manager" \
      --kubeconfig="$RUN/kcm.kubeconfig" \
      --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --cert-dir="$RUN/kcm-certs" \
      --leader-elect=false \
      --service-account-private-key-file="$RUN/pki/sa.key" --root-ca-file="$RUN/pki/ca.crt" \
      --use-service-account-credentials=true \
      --cluster-signing-cert-file="$RUN/pki/ca.crt" --cluster-signing-key-file="$RUN/pki/ca.key" \
      --node-monitor-grace-period=24h --node-startup-grace-period=24h \
      ${KUBETEST_KCM_ARGS:-}
    # shellcheck disable=SC2086
    launch kube-scheduler "$BIN/kube-scheduler" \
      --kubeconfig="$RUN/scheduler.kubeconfig" \
      --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --cert-dir="$RUN/scheduler-certs" \
      --leader-elect=false \
      ${KUBETEST_SCHEDULER_ARGS:-}
    wait_url kube-controller-manager "https://127.0.0.1:$KCM_PORT/healthz" 60 -k
    wait_url kube-scheduler "https://127.0.0.1:$SCHEDULER_PORT/healthz" 60 -k
    # The "default" ServiceAccount of "default" shows the controllers work.
    local deadline=$((SECONDS + 60))
    until curl -sf -o /dev/null --cacert "$RUN/pki/ca.crt" \
        --cert "$RUN/pki/admin.crt" --key "$RUN/pki/admin.key" \
        "https://127.0.0.1:$APISERVER_PORT/api/v1/namespaces/default/serviceaccounts/default"; do
      ((SECONDS < deadline)) || die "controller-manager did not create default/default ServiceAccount"
      sleep 0.2
    done
    log "controller-manager + scheduler ready in $(( ($(date +%s%N) - t1) / 1000000 )) ms more"
  fi
  trap - EXIT
  log "up: apiserver https://127.0.0.1:$APISERVER_PORT, etcd http://127.0.0.1:$ETCD_PORT, logs in $RUN/*.log"
}

running() {
  alive kube-apiserver && [[ -f $RUN/ports && -f $RUN/admin.kubeconfig ]] || return 1
  # shellcheck disable=SC1091
  source "$RUN/ports"
  curl -sf -o /dev/null --max-time 5 --cacert "$RUN/pki/ca.crt" "https://127.0.0.1:$APISERVER_PORT/readyz"
}

# ------------------------------------------------------------ use / release --
# Users are PID files in RUN/users; RUN/auto-started marks a control plane
# that `use` started, which the last `release` stops.
use() {
  [[ $USER_PID =~ ^[0-9]+$ ]] || die "use needs the PID of the process using the control plane"
  if ! running; then
    start
    touch "$RUN/auto-started"
  fi
  mkdir -p "$RUN/users"
  touch "$RUN/users/$USER_PID"
}

release() {
  [[ $USER_PID =~ ^[0-9]+$ ]] || die "release needs the PID given to use"
  local f left=()
  rm -f "$RUN/users/$USER_PID"
  alive kube-apiserver || { rm -f "$RUN/auto-started"; return 0; }   # nothing to stop
  for f in "$RUN"/users/*; do
    [[ -e $f ]] || continue
    if kill -0 "${f##*/}" 2>/dev/null; then left+=("${f##*/}"); else rm -f "$f"; fi
  done
  if [[ ! -f $RUN/auto-started ]]; then
    log "leaving the control plane running: it was started with \`start\` (stop it with \`make cluster-stop\`)"
  elif ((${#left[@]} > 0)); then
    log "leaving the control plane running for its other users (PIDs ${left[*]})"
  else
    rm -f "$RUN/auto-started"
    stop_all
  fi
}

# --------------------------------------------------------------------- stop --
stop_group() {  # NAME...: SIGTERM all at once, wait up to 15 s, then SIGKILL; by recorded PID only
  local name pid i quiet=${QUIET:-} names=() pids=()
  for name in "$@"; do
    if alive "$name"; then
      pid=$(cat "$RUN/$name.pid"); names+=("$name"); pids+=("$pid")
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for ((i = 0; i < ${#pids[@]}; i++)); do
    local deadline=$((SECONDS + 15))
    while kill -0 "${pids[i]}" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
    if kill -0 "${pids[i]}" 2>/dev/null; then
      log "${names[i]} (${pids[i]}) ignored SIGTERM for 15 s: SIGKILL"; kill -KILL "${pids[i]}" 2>/dev/null || true
    fi
    [[ -n $quiet ]] || log "stopped ${names[i]} (${pids[i]})"
  done
  for name in "$@"; do rm -f "$RUN/$name.pid"; done
}

stop_all() {
  [[ -d $RUN ]] || return 0
  rm -f "$RUN/auto-started"
  # Clients first, etcd last: an apiserver whose etcd is gone retries for a
  # while before it exits. Each graceful stop takes ~2-3 s; total ~7 s.
  QUIET=${1:-} stop_group kube-scheduler kube-controller-manager
  QUIET=${1:-} stop_group kube-apiserver
  QUIET=${1:-} stop_group etcd
}

status() {
  local n
  [[ -f $RUN/ports ]] && cat "$RUN/ports"
  for n in etcd kube-apiserver kube-controller-manager kube-scheduler; do
    if alive "$n"; then
      echo "$n: running pid $(cat "$RUN/$n.pid") rss $(awk '/VmRSS/{print $2 " kB"}' "/proc/$(cat "$RUN/$n.pid")/status")"
    else
      echo "$n: not running"
    fi
  done
}

case $CMD in
  install) need; lock; install ;;
  start)
    need; lock; start
    rm -f "$RUN/auto-started"   # a developer's start: no release stops it
    echo "$RUN/admin.kubeconfig" ;;
  stop) lock; stop_all ;;
  status) status ;;
  running) running ;;
  use) need; lock; use; echo "$RUN/admin.kubeconfig" ;;
  release) lock; release ;;
  env)
    [[ -f $RUN/ports ]] || die "not started"
    sed 's/^/KUBETEST_/' "$RUN/ports"
    echo "KUBECONFIG=$RUN/admin.kubeconfig"
    echo "KUBETEST_BIN=$BIN" ;;
  *) die "unknown command $CMD (install|start|stop|status|env|running|use PID|release PID)" ;;
esac
