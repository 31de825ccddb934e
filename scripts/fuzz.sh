#!/usr/bin/env bash
# Runs every fuzz target of the Go module in the current directory, one after
# the other, each for FUZZTIME, and fails when any of them fails (a new
# failing input is saved under the package's testdata/fuzz/, as go test does).
#
# Finding them: `go list` names each package's test files (those that build
# on this OS); the packages where one of them has a line starting with
# "func Fuzz" are asked with `go test -list '^Fuzz'`, which names their
# targets exactly (text in a string or comment does not count).
#
# Usage: scripts/fuzz.sh [PACKAGES...]   (default ./...)
# Environment:
#   FUZZTIME  how long each target runs: go test's -fuzztime (default 5s;
#             30s, 10m, or 1000x for a number of inputs)
#   GO        the go command (default go)
#
# Exit status: 0 when every target passed (or there is none), 1 when one
# failed, 2 when the targets could not be listed.
set -euo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-5s}
(($#)) || set -- ./...

# One line per test file: import path, tab, file.
files=$("$GO" list -f '{{$p := .}}{{range .TestGoFiles}}{{$p.ImportPath}}{{"\t"}}{{$p.Dir}}/{{.}}{{"\n"}}{{end}}{{range .XTestGoFiles}}{{$p.ImportPath}}{{"\t"}}{{$p.Dir}}/{{.}}{{"\n"}}{{end}}' "$@") || {
	echo "fuzz: go list $* failed" >&2
	exit 2
}
candidates=()
while IFS=$'\t' read -r pkg file; do
	[[ -n $pkg ]] || continue
	if grep -q '^func Fuzz' "$file"; then
		[[ " ${candidates[*]-} " == *" $pkg "* ]] || candidates+=("$pkg")
	fi
done <<<"$files"

targets=()
if ((${#candidates[@]})); then
	# go test -list prints a package's target names, then "ok <package> ...".
	listed=$("$GO" test -list '^Fuzz' "${candidates[@]}") || {
		printf '%s\n' "$listed" >&2
		echo "fuzz: go test -list '^Fuzz' ${candidates[*]} failed" >&2
		exit 2
	}
	names=()
	while read -r first second _; do
		case $first in
		Fuzz*) names+=("$first") ;;
		ok)
			for n in "${names[@]+"${names[@]}"}"; do
				targets+=("$second $n")
			done
			names=()
			;;
		esac
	done <<<"$listed"
fi

if ((${#targets[@]} == 0)); then
	echo "fuzz: no fuzz targets in $*"
	exit 0
fi
echo "fuzz: ${#targets[@]} targets, $FUZZTIME each"
# deadlineFlake reports whether the output in $1 is only Go's fuzzing
# coordinator racing its own -fuzztime deadline (go.dev/issue/75804, fixed
# in Go 1.27): "context deadline exceeded" and nothing found, no failing
# input written and no panic or test failure message.
deadlineFlake() {
	grep -q 'context deadline exceeded' "$1" &&
		! grep -q -e 'Failing input written' -e 'panic:' -e '_test.go:[0-9]' "$1"
}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
failed=()
for t in "${targets[@]}"; do
	pkg=${t% *} name=${t#* }
	echo "fuzz: $name in $pkg"
	for try in 1 2; do
		if "$GO" test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1 | tee "$out"; then
			break
		fi
		if ((try == 1)) && deadlineFlake "$out"; then
			echo "fuzz: $name stopped on Go's fuzztime deadline race with nothing found (go.dev/issue/75804): once more"
			continue
		fi
		failed+=("$name $pkg")
		break
	done
done
if ((${#failed[@]})); then
	for f in "${failed[@]}"; do
		name=${f% *} pkg=${f#* }
		echo "fuzz: FAILED: $name in $pkg (the failing input is saved in its testdata/fuzz/$name; go test -run '^$name\$' $pkg replays it)" >&2
	done
	exit 1
fi
echo "fuzz: all ${#targets[@]} targets passed"
