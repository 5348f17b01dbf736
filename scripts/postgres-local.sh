#!/usr/bin/env bash
# A throwaway PostgreSQL server on this machine, to try `tune.storage=postgresql://...` with
# several workers (and for the tests marked `postgres`). It listens on a Unix socket only, runs
# as an unprivileged user (PostgreSQL refuses root) and asks for a password.
#
#   scripts/postgres-local.sh start [--install]   initdb (first time), start, create the database
#   scripts/postgres-local.sh url                  print the study URL (with the password)
#   scripts/postgres-local.sh status               say whether it runs; exit 1 if not
#   scripts/postgres-local.sh stop                 stop the server (the data stay)
#   scripts/postgres-local.sh clean                stop it and remove the state folder
#
# Then:
#   python -m selfcross.tune model=cross modality=TA tune.workers=3 \
#       tune.storage="$(scripts/postgres-local.sh url)"
#
# Settings (environment variables):
#   PG_LOCAL_DIR        state folder: data, socket, log (default /tmp/selfcross-postgres)
#   PG_LOCAL_USER       the unprivileged system user the server runs as, when started by root
#                       (default nobody); started by another user, it runs as that user
#   PG_LOCAL_PASSWORD   the database role's password (default selfcross)
#   PG_LOCAL_INSTALL=1  same as --install: apt-get install postgresql when it is missing
#                       (Debian/Ubuntu, as root)
# The role and the database are both named selfcross. Only this server's own process is
# stopped (its pid file); a system-wide PostgreSQL is left alone.
set -euo pipefail

STATE=${PG_LOCAL_DIR:-/tmp/selfcross-postgres}
RUN_AS=${PG_LOCAL_USER:-nobody}
PASSWORD=${PG_LOCAL_PASSWORD:-selfcross}
INSTALL=${PG_LOCAL_INSTALL:-0}
ROLE=selfcross
DB=selfcross
MARKER=$STATE/.postgres-local

die() {
    echo "postgres-local: error: $*" >&2
    exit 1
}
say() { echo "postgres-local: $*" >&2; }

bindir() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x $dir/initdb ]] && { echo "$dir"; return 0; }
    done
    command -v initdb >/dev/null && dirname "$(command -v initdb)" && return 0
    return 1
}

install_packages() {
    bindir >/dev/null && return 0
    [[ $INSTALL == 1 ]] || die "PostgreSQL is not installed (initdb, pg_ctl); install the Debian package postgresql or rerun with --install"
    [[ $EUID -eq 0 ]] || die "installing packages needs root (sudo)"
    command -v apt-get >/dev/null || die "no apt-get: install PostgreSQL by hand"
    say "installing postgresql (apt-get)"
    local log
    log=$(mktemp /tmp/postgres-local-apt.XXXXXX.log)
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends postgresql; } >"$log" 2>&1 ||
        die "apt-get install postgresql failed (see $log)"
    bindir >/dev/null || die "still no initdb after apt-get install (see $log)"
    rm -f "$log"
}

as_server() { # run a command as the server's user
    if [[ $EUID -eq 0 ]]; then
        setpriv --reuid="$RUN_AS" --regid="$(id -g "$RUN_AS")" --clear-groups -- "$@"
    else
        "$@"
    fi
}

running() { [[ -f $MARKER ]] && as_server "$BIN/pg_ctl" -D "$STATE/data" status >/dev/null 2>&1; }

url() { echo "postgresql://$ROLE:$PASSWORD@/$DB?host=$STATE/socket"; }

start() {
    install_packages
    BIN=$(bindir)
    if running; then
        say "already running ($STATE)"
        url
        return 0
    fi
    if [[ -d $STATE && ! -f $MARKER && -n $(ls -A "$STATE") ]]; then
        die "$STATE exists and is not a postgres-local state folder; set PG_LOCAL_DIR"
    fi
    mkdir -p "$STATE"
    touch "$MARKER"
    chmod 755 "$STATE"
    mkdir -p "$STATE/socket" "$STATE/log"
    [[ $EUID -eq 0 ]] && chown "$RUN_AS:$(id -g "$RUN_AS")" "$STATE/socket" "$STATE/log"
    if [[ ! -f $STATE/data/PG_VERSION ]]; then
        local pwfile=$STATE/log/pwfile
        echo "$PASSWORD" >"$pwfile"
        mkdir -p "$STATE/data"
        if [[ $EUID -eq 0 ]]; then chown "$RUN_AS:$(id -g "$RUN_AS")" "$STATE/data" "$pwfile"; fi
        as_server "$BIN/initdb" -D "$STATE/data" -U "$ROLE" --pwfile="$pwfile" \
            --auth-local=scram-sha-256 --auth-host=reject -E UTF8 >"$STATE/log/initdb.log" 2>&1 ||
            die "initdb failed (see $STATE/log/initdb.log)"
        rm -f "$pwfile"
    fi
    as_server "$BIN/pg_ctl" -D "$STATE/data" -l "$STATE/log/server.log" -w -t 60 \
        -o "-c listen_addresses='' -c unix_socket_directories='$STATE/socket' -c fsync=off" \
        start >/dev/null || die "the server did not start (see $STATE/log/server.log)"
    if ! PGPASSWORD=$PASSWORD "$BIN/psql" -h "$STATE/socket" -U "$ROLE" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1; then
        PGPASSWORD=$PASSWORD "$BIN/createdb" -h "$STATE/socket" -U "$ROLE" "$DB" ||
            die "could not create the database $DB"
    fi
    say "up: $("$BIN/postgres" --version), socket in $STATE/socket"
    url
}

stop() {
    [[ -f $MARKER ]] || { say "nothing to stop ($STATE is no postgres-local folder)"; return 0; }
    BIN=$(bindir) || die "PostgreSQL is not installed"
    if running; then
        as_server "$BIN/pg_ctl" -D "$STATE/data" -m fast -w stop >/dev/null
        say "stopped"
    fi
}

cmd=${1:-}
shift || true
for arg in "$@"; do
    case $arg in
    --install) INSTALL=1 ;;
    *) die "unknown option $arg (usage: $0 start [--install] | url | status | stop | clean)" ;;
    esac
done
case $cmd in
start) start ;;
stop) stop ;;
clean)
    stop
    [[ -f $MARKER ]] && rm -rf "$STATE"
    say "removed $STATE"
    ;;
url) url ;;
status)
    BIN=$(bindir) || die "PostgreSQL is not installed"
    if running; then echo "running: $(url)"; else
        echo "not running ($STATE)"
        exit 1
    fi
    ;;
*) die "usage: $0 start [--install] | url | status | stop | clean" ;;
esac
