#!/usr/bin/env bash
# with-cluster.sh CMD...: run CMD with KUBECONFIG set to the test control
# plane (kube-testenv.sh), starting it first if it is not running, and
# stopping it afterwards, even when CMD fails, unless someone else still
# uses it or a developer started it (`make cluster`).
#
#   KUBETEST_CACHE   where the binaries and the run dir live
#                    (default $HOME/.cache/kube-testenv: outside the clone,
#                    so a kept machine builds once)
#
# The exit status is CMD's.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TESTENV=$HERE/kube-testenv.sh
CACHE=${KUBETEST_CACHE:-$HOME/.cache/kube-testenv}
(($# > 0)) || { echo "usage: with-cluster.sh CMD [ARG...]" >&2; exit 2; }

# Register before starting, so a Ctrl-C during a cold build still releases.
trap '"$TESTENV" "$CACHE" release $$' EXIT
# Without these, a SIGTERM would end the shell without running the EXIT trap.
trap 'exit 130' INT
trap 'exit 143' TERM
KUBECONFIG=$("$TESTENV" "$CACHE" use $$) || exit
export KUBECONFIG
echo "with-cluster: KUBECONFIG=$KUBECONFIG" >&2
"$@"
