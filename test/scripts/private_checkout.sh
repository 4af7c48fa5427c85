#!/usr/bin/env bash
# test/run and test/demo from a checkout only root can read (issue 18): the
# common fresh-machine case of a clone under /root (mode 700), run as root,
# while the server and the Perl TAP tests run as the postgres user.
#
# This checkout's sources (with its build products, so that nothing is
# compiled again; without .git and .pgdata) are copied into a mode-700
# directory.  From there: test/run runs one quick TAP test; test/demo runs the
# demo, whose output must say which errors are intended; the README's quick
# start, its PTM01 example and its metrics query run against the demo
# database as the README says and give what it shows; test/demo stop and
# clean say what they did.  TAP output, run by test/run (suite "scripts").
set -uo pipefail
source "$(dirname "$0")/../lib/common.sh"

n=0
result() { # result STATUS NAME: one TAP line
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
    return "$1"
}
check() { # check NAME CMD...: ok when CMD succeeds
    local name=$1; shift
    "$@"; result $? "$name"
}
skip() { n=$((n + 1)); echo "ok $n # skip $1"; }
diag() { sed 's/^/# /' "$@"; }

private=$(mktemp -d /tmp/ptm_private.XXXXXX)    # mode 700, as /root is
clone=$private/ptm_lease
port=$(ptm_free_port)
cleanup() {
    [ -x "$clone/test/demo" ] && (cd "$clone" && PTM_DEMO_PORT=$port test/demo clean >/dev/null 2>&1)
    rm -rf "$private"
}
trap cleanup EXIT
mkdir -p "$clone"
tar -C "$PTM_ROOT" -cf - --exclude-vcs --exclude=./.pgdata --exclude=./results --exclude=./output_iso . \
    | tar -C "$clone" -xf - || { echo "Bail out! could not copy $PTM_ROOT"; exit 1; }
cd "$clone"

# 1. test/run: one quick Perl TAP test, which runs as postgres when we are root
if [ "$(id -u)" -eq 0 ]; then
    ! ptm_server_can_enter "$clone"
    result $? 'the postgres user cannot enter the copy, as in a clone under /root'
else
    skip 'not root: the server runs as this user, who can read the copy'
fi
test/run tap 001_preload > "$private/run.log" 2>&1
result $? "test/run tap 001_preload from it passes ($(tail -n 1 "$private/run.log"))" \
    || diag <(tail -n 30 "$private/run.log")

# 2. test/demo
PTM_DEMO_PORT=$port test/demo > "$private/demo.log" 2>&1
result $? 'test/demo from it ends without an error' || diag <(tail -n 30 "$private/demo.log")
grep -n NOTICE "$private/demo.log" | diag
result $(( ! PIPESTATUS[0] )) 'the demo prints no NOTICE'
grep -n 'current transaction is aborted' "$private/demo.log" | diag
result $(( ! PIPESTATUS[0] )) 'no statement of the demo fails because an earlier one did'
# Every error the demo shows is announced on the line just before it.
unannounced=$(awk '/ERROR:/ && prev !~ /expected: ERROR/ { print NR": "$0 } { prev = $0 }' "$private/demo.log")
result "$([ -z "$unannounced" ]; echo $?)" 'every error in the demo is announced as expected' \
    || echo "$unannounced" | diag
errors=$(grep -c 'ERROR:' "$private/demo.log")
result "$([ "$errors" -eq 2 ]; echo $?)" "the demo shows its two intended errors ($errors)"
check 'the demo shows the worker check of health() with its status and detail' \
    bash -c 'grep -q "^check  | worker" "$1" && grep -q "^status | " "$1" && grep -q "^detail | ." "$1"' \
    _ "$private/demo.log"
# the demo database has a worker without any configuration (the launcher)
check 'the demo database has a running worker, unconfigured' \
    bash -c 'grep -q "^status | ok" "$1" && grep -q "^value  | running" "$1"' \
    _ "$private/demo.log"

# 3. the README against the demo database, as a reader pastes it
block() { # block LANG PATTERN: the first ```LANG block of the README with a line matching PATTERN
    awk -v lang="$1" -v pat="$2" '
        $0 == "```" lang { inside = 1; text = ""; hit = 0; next }
        inside && /^```/ { inside = 0; if (hit) { printf "%s", text; exit } next }
        inside { text = text $0 "\n"; if ($0 ~ pat) hit = 1 }' README.md
}
readme_psql() { psql -X -h "$clone/.pgdata/sock" -p "$port" -U postgres ptm_demo "$@"; }
# The quick start, then the PTM01 example in the same session (it uses the
# quick start's :lease_epoch): the command after "=> " in the README's text
# block, whose other lines are what it shows.
block text '^=> ' > "$private/ptm01.txt"
{
    block sql "acquire_partition_lease\\('quickstart'"
    echo '\set ON_ERROR_STOP 0'
    sed -n 's/^=> //p' "$private/ptm01.txt"
} > "$private/quickstart.sql"
readme_psql -v ON_ERROR_STOP=1 -f "$private/quickstart.sql" > "$private/quickstart.log" 2>&1
result $? "the README's quick start runs in the demo database" || diag "$private/quickstart.log"
grep -v '^=> ' "$private/ptm01.txt" > "$private/ptm01.want"
sed -n 's/^psql:[^:]*:[0-9]*: //; /^\(ERROR\|DETAIL\|HINT\): /p' "$private/quickstart.log" \
    | diff "$private/ptm01.want" - > "$private/ptm01.diff"
result $? "the README's PTM01 example shows what a reader gets right after test/demo" \
    || diag "$private/ptm01.diff"
block sql 'FROM ptm\.metrics' > "$private/metrics.sql"
readme_psql -v ON_ERROR_STOP=1 -f "$private/metrics.sql" > "$private/metrics.log" 2>&1
result $? "the README's health and metrics queries run" || diag "$private/metrics.log"
check "the README's metrics query shows no histogram bucket rows" \
    bash -c 'grep -q "lease_acquisitions_total" "$1" && ! grep -q "_bucket" "$1"' _ "$private/metrics.log"

# 4. stop and clean
out=$(PTM_DEMO_PORT=$port test/demo stop 2>&1)
check "test/demo stop stops the server ($out)" grep -q 'demo server stopped' <<<"$out"
out=$(PTM_DEMO_PORT=$port test/demo stop 2>&1)
check "test/demo stop again says nothing runs ($out)" grep -q 'no demo server is running' <<<"$out"
target=$(readlink -f .pgdata)
out=$(PTM_DEMO_PORT=$port test/demo clean 2>&1)
left=$(find . -name '*.o' -o -name '*.so' | head -n 5)
result "$([ ! -e .pgdata ] && [ ! -e "$target" ] && [ -z "$left" ]; echo $?)" \
    "test/demo clean removes .pgdata, where it points, and the build products (${left:-none left})"

echo "1..$n"
