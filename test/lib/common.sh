# Shared shell functions for test/run, test/demo and test/bench/run.
# Sourced, not executed.  Every function stops the script on failure.

PTM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# System packages the build and the four test suites need (Debian names).
PTM_PACKAGES="make gcc postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap \
libtap-parser-sourcehandler-pgtap-perl libipc-run-perl"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Install whichever of the packages (and any extra given as arguments) are
# missing.  Needs root and apt-get; otherwise says what to install and stops.
ptm_ensure_packages() {
    local missing=() p
    for p in $PTM_PACKAGES "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        die "missing packages: ${missing[*]} (install them, e.g. sudo apt-get install ${missing[*]})"
    fi
    say "installing ${missing[*]}"
    # postgresql-15 is upgraded with its dev package so that headers and server match.
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

# PG_CONFIG defaults to the PostgreSQL 15 that Debian ships.
ptm_pg_config() {
    if [ -z "${PG_CONFIG:-}" ] || [ "$PG_CONFIG" = pg_config ]; then
        if [ -x /usr/lib/postgresql/15/bin/pg_config ]; then
            PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
        else
            PG_CONFIG=$(command -v pg_config) || die "pg_config not found; set PG_CONFIG"
        fi
    fi
    export PG_CONFIG
    PG_BINDIR=$("$PG_CONFIG" --bindir)
    PG_PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
    PG_SHAREDIR=$("$PG_CONFIG" --sharedir)
    PG_PGXS_DIR=$(dirname "$("$PG_CONFIG" --pgxs)")/..
    PG_PGXS_DIR=$(cd "$PG_PGXS_DIR" && pwd)
}

ptm_build() {
    say "building (WERROR=${WERROR:-})"
    make -C "$PTM_ROOT" -s PG_CONFIG="$PG_CONFIG" ${WERROR:+WERROR=1} >/dev/null \
        || die "build failed"
}

# A private copy of the server with the extension installed into it, the way
# PostgreSQL's own "make check" uses a temporary install: the tests never touch
# the system's server and two checkouts can test side by side.
# Sets TMP_BINDIR.
ptm_temp_install() {
    local dest=$1
    say "installing into a temporary copy of the server under $dest"
    mkdir -p "$dest"
    local d
    for d in "$("$PG_CONFIG" --bindir)/.." "$PG_SHAREDIR"; do
        d=$(cd "$d" && pwd)
        mkdir -p "$dest$(dirname "$d")"
        cp -a "$d" "$dest$(dirname "$d")/"
    done
    make -C "$PTM_ROOT" -s PG_CONFIG="$PG_CONFIG" DESTDIR="$dest" install >/dev/null \
        || die "make install failed"
    TMP_BINDIR=$dest$PG_BINDIR
    [ -x "$TMP_BINDIR/postgres" ] || die "no postgres binary in $TMP_BINDIR"
}

# A free TCP port (the socket lives in its own directory, but the port number
# names the socket file and must not collide with a running server).
ptm_free_port() {
    local port
    for port in $(shuf -i 20000-40000 -n 50); do
        if ! (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
            echo "$port"; return 0
        fi
    done
    die "no free port"
}

# The server runs as the postgres user when the script runs as root (initdb and
# pg_ctl refuse root), otherwise as the calling user.  "ptm_as_server CMD..."
# runs CMD as that user, from / so that a checkout the postgres user cannot
# enter (a clone under /root, mode 700) is never its working directory.
ptm_as_server() {
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || useradd -r -m postgres
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# True when the server's user can enter DIR (as root: the postgres user, who
# needs every directory on the way to be searchable).
ptm_server_can_enter() {
    ptm_as_server test -x "$1/." 2>/dev/null
}

# ptm_copy_tree DEST: the checkout's sources, without build products, VCS data
# or the demo's .pgdata, copied to DEST.  test/run gives the Perl TAP suite,
# which runs as the server's user, this copy instead of the checkout.
ptm_copy_tree() {
    local dest=$1
    mkdir -p "$dest"
    tar -C "$PTM_ROOT" -cf - --exclude-vcs --exclude=./.pgdata --exclude=./results \
        --exclude=./output_iso --exclude=./tmp_check --exclude=./regression.diffs \
        --exclude=./regression.out --exclude='*.o' --exclude='*.so' --exclude='*.bc' . \
        | tar -C "$dest" -xf - || die "could not copy $PTM_ROOT to $dest"
}

# ptm_start_cluster BINDIR DATADIR SOCKDIR PORT [extra postgresql.conf lines...]
ptm_start_cluster() {
    local bindir=$1 datadir=$2 sockdir=$3 port=$4; shift 4
    mkdir -p "$(dirname "$datadir")" "$sockdir"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || useradd -r -m postgres
        chown postgres "$(dirname "$datadir")" "$sockdir"
    fi
    ptm_server_can_enter "$(dirname "$datadir")" \
        || die "the postgres user cannot enter $(dirname "$datadir"): make every directory above it searchable (chmod o+x)"
    ptm_as_server "$bindir/initdb" -D "$datadir" -A trust -U postgres --no-sync -E UTF8 --locale=C >/dev/null \
        || die "initdb failed"
    {
        echo "port = $port"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$sockdir'"
        echo "shared_preload_libraries = 'ptm_lease'"
        echo "fsync = off"
        echo "max_prepared_transactions = 10"
        echo "log_line_prefix = '%m [%p] %q%a '"
        local line; for line in "$@"; do echo "$line"; done
    } >> "$datadir/postgresql.conf"
    ptm_as_server "$bindir/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 60 start >/dev/null \
        || { cat "$datadir/server.log" >&2; die "server did not start"; }
}

# True when a server runs in DATADIR.
ptm_cluster_running() {
    local bindir=$1 datadir=$2
    [ -f "$datadir/postmaster.pid" ] && ptm_as_server "$bindir/pg_ctl" -D "$datadir" status >/dev/null 2>&1
}

ptm_stop_cluster() {
    local bindir=$1 datadir=$2
    [ -f "$datadir/postmaster.pid" ] && ptm_as_server "$bindir/pg_ctl" -D "$datadir" -m fast -w stop >/dev/null 2>&1
    return 0
}
