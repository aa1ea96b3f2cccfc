#!/usr/bin/env bash
# versitygw.sh — installs the S3 gateway the object-storage tests run
# against (github.com/versity/versitygw, pinned) and prints the binary's
# absolute path as the only line on stdout.
#
#   hack/tools/versitygw.sh
#
# It is built from the Go module proxy with `go install pkg@version`, from
# a temporary directory, so the project's go.mod never sees its large
# dependency graph. Cold (empty module and build caches) it takes about
# 100 s on 2 cores; when the binary is there it returns at once.
#
# Environment:
#   KRAKEN_TOOLS   cache root (default $HOME/.cache/kraken-tools); the
#                  binary goes to $KRAKEN_TOOLS/versitygw-v1.8.0/versitygw
#
# The tests find it through KRAKEN_VERSITYGW, or in that default path.
set -euo pipefail

VERSION=v1.8.0
TOOLS=${KRAKEN_TOOLS:-$HOME/.cache/kraken-tools}
DIR=$TOOLS/versitygw-$VERSION
BIN=$DIR/versitygw

if [[ ! -x $BIN ]]; then
	mkdir -p "$DIR"
	# Two `make test` at once wait for each other instead of building twice.
	exec 9>"$DIR/.lock"
	flock 9
	if [[ ! -x $BIN ]]; then
		command -v go >/dev/null || { echo "versitygw.sh: go is needed to build versitygw" >&2; exit 1; }
		tmp=$(mktemp -d)
		trap 'rm -rf "$tmp"' EXIT
		echo "versitygw.sh: building versitygw $VERSION into $DIR (about 100 s the first time)" >&2
		# Into a temp GOBIN then renamed, so a build cut short never
		# leaves a half-written binary that looks installed.
		(cd "$tmp" && GOFLAGS= GOWORK=off GOBIN="$tmp/bin" go install "github.com/versity/versitygw/cmd/versitygw@$VERSION") >&2
		mv "$tmp/bin/versitygw" "$BIN"
	fi
fi
echo "$BIN"
