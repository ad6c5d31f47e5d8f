#!/bin/sh
# SPDX-License-Identifier: MIT
# cli_test.sh UFPAGERCTL PYTHON: the CLI's contract. --help on every
# command (exit 0), --version, numeric arguments named when bad (exit 2),
# progress without "\r" when stderr is not a terminal, and bench --json
# that parses. Fast: one short bench run.
ctl=$1 py=$2
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# expect STATUS PATTERN ARGS...: exit status and a fixed string in stdout+stderr
expect() {
	want=$1 pat=$2
	shift 2
	"$ctl" "$@" >"$tmp/out" 2>&1
	rc=$?
	[ "$rc" = "$want" ] || bad "ufpagerctl $*: exit $rc, want $want: $(head -c 400 "$tmp/out")"
	[ -z "$pat" ] || grep -qF -- "$pat" "$tmp/out" ||
		bad "ufpagerctl $*: no '$pat' in: $(head -c 400 "$tmp/out")"
}

for c in check config bench stats top version help run; do
	expect 0 usage "$c" --help
done
expect 0 "ufpagerctl" help bench
expect 0 "libufpager 0." --version
expect 0 "libufpager 0." version
expect 2 "unexpected argument 'x'" version x
expect 2 "unexpected argument 'x'" check x
expect 1 "NBD URI" check --swap "nbd+unix:///x"
expect 1 "UNUSABLE" check --swap "nbd+unix:///x?socket=$tmp/nobody.sock"
expect 0 "usable" check --swap "$tmp"
expect 2 "bad option '--bogus'" config --bogus
expect 2 "--interval: 'abc' is not a number" top --interval abc 1
expect 2 "--count: '0' is out of range" top --count 0 1
expect 2 "--seconds: 'abc' is not a number" bench --seconds abc
expect 2 "--seconds: '-1' is out of range" bench --seconds -1
expect 2 "--pages: '12x' is not a number" bench --pages 12x
expect 2 "--writer-mb: '0' is out of range" bench --writer-mb 0
expect 2 "--minutes: 'nan' is not a number" bench --minutes nan
expect 2 "--threads: '0'" bench --threads 0
expect 2 "--delivery: 'x'" bench --delivery x
expect 2 "--only: 'x' is not refault or policy" bench swap --only x
expect 2 "unknown suite 'nope'" bench nope
expect 2 "--app: 'nope' is not one of" bench apps --app nope
expect 2 "no PROGRAM given" run --budget 4M
expect 2 "--delivery: 'x'" run --delivery x true
expect 2 "--min: '12'" run --min 12 true
expect 2 "UFPAGER_BUDGET" run --budget 12345 true
expect 2 "UFPAGER_SWAP" run --swap "nbd://" true
expect 127 "nonexistent-program" run -- /nonexistent-program
# a program under the preload: not in sanitizer builds, whose library a
# program that was not built with the sanitizer cannot load
if [ -z "$UFP_SANITIZED" ]; then
	expect 3 "" run -- sh -c "exit 3"
else
	echo "skip: run of a real program (the preload of a sanitizer build)"
fi

# a short bench: stderr is a file here, so one progress line per step, no "\r"
"$ctl" bench faults --quick --seconds 0.02 --pages 200 --writer-mb 4 \
	--json "$tmp/b.json" >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ $rc = 0 ]; then
	"$py" -m json.tool "$tmp/b.json" >/dev/null || bad "bench --json does not parse"
	grep -q '"faults.sigbus_over_kernel"' "$tmp/b.json" || bad "no summary key in bench JSON"
	grep -q '"text"' "$tmp/b.json" || bad "no summary sentence in bench JSON"
	if tr -d '\n' <"$tmp/err" | grep -q "$(printf '\r')"; then
		bad "progress on a file used \\r"
	fi
	grep -q '^\[faults\] sigbus threads=1 writer=off' "$tmp/err" ||
		bad "no progress line per step: $(head -c 300 "$tmp/err")"
elif grep -q "userfaultfd" "$tmp/err"; then
	echo "bench part skipped: userfaultfd unavailable"
else
	bad "bench faults: exit $rc: $(tail -c 400 "$tmp/err")"
fi
exit $fail
