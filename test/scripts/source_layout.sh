#!/usr/bin/env bash
# The shape of src/ (issue 20), checked on the built objects: no two files
# depend on each other in a circle (by the symbols each .o defines and uses);
# no .c file runs past 1000 lines; every SQL statement goes through
# ptm_plan_run() and every SPI connection through ptm_spi_connect()
# (spi_util.c); shmem.c alone installs shared-memory hooks; each setting is
# defined in the one file that reads it; no trace of the 0.1.0 schema in C
# (the library refuses 0.1.0's SQL: docs/architecture.md); every file is in
# the source map of docs/architecture.md and the file list of ptm_lease.h.
# TAP output, run by test/run (suite "scripts").
set -uo pipefail
source "$(dirname "$0")/../lib/common.sh"
ptm_pg_config

n=0
result() { # result STATUS NAME: one TAP line
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
}
diag() { sed 's/^/# /'; }

cd "$PTM_ROOT"
make -s PG_CONFIG="${PG_CONFIG:-pg_config}" >/dev/null 2>&1
result $? "the extension builds"

out=$(python3 test/lib/module_graph.py . 2>&1); s=$?
result $s "no circle among the source files"
[ $s -eq 0 ] || echo "$out" | diag

long=$(wc -l src/*.c | awk '$2 != "total" && $1 > 1000 {print $2 ": " $1 " lines"}')
result "$([ -z "$long" ]; echo $?)" "no .c file runs past 1000 lines"
[ -z "$long" ] || echo "$long" | diag

spi=$(grep -nE '\bSPI_(connect|finish|prepare|keepplan|execute[a-z_]*|execp|cursor_[a-z_]*)\(' src/*.c | grep -v '^src/spi_util\.c:')
result "$([ -z "$spi" ]; echo $?)" "SQL runs only through spi_util.c (ptm_plan_run, ptm_spi_connect)"
[ -z "$spi" ] || echo "$spi" | diag

hooks=$(grep -nE '\b(shmem_request_hook|shmem_startup_hook)\s*=' src/*.c | grep -v '^src/shmem\.c:')
result "$([ -z "$hooks" ]; echo $?)" "shmem.c alone installs the shared-memory hooks"
[ -z "$hooks" ] || echo "$hooks" | diag

# A setting's variable, defined (nm: D/B) in the file whose DefineCustom*
# call names it, is used by no other object.
gucs=$(for c in src/*.c; do
    awk '/DefineCustom[A-Za-z]+Variable\(/{want=1} want && /^[[:space:]]*&[a-z_]+,/{gsub(/[&,[:space:]]/,""); print; want=0}' "$c" |
        while read -r var; do
            users=$(for o in src/*.o; do [ "$o" = "${c%.c}.o" ] && continue; nm "$o" | grep -qE "^ +U $var\$" && basename "$o"; done | tr '\n' ' ')
            [ -n "$users" ] && echo "$var (defined in $c) is read by: $users"
        done
done)
result "$([ -z "$gucs" ]; echo $?)" "each setting is defined in the file that reads it"
[ -z "$gucs" ] || echo "$gucs" | diag

old=$(grep -nE 'ptm_schema_is_020|_010\b|LeasePlan|v010' src/*.c src/*.h)
result "$([ -z "$old" ]; echo $?)" "no 0.1.0 branch in the C code"
[ -z "$old" ] || echo "$old" | diag

missing=$(for c in src/*.c; do
    f=$(basename "$c")
    grep -q "\b$f\b" docs/architecture.md || echo "$f: not in docs/architecture.md"
    grep -q "\b$f\b" src/ptm_lease.h || echo "$f: not in the file list of src/ptm_lease.h"
done)
result "$([ -z "$missing" ]; echo $?)" "every source file is in the source map and the file list"
[ -z "$missing" ] || echo "$missing" | diag

echo "1..$n"
