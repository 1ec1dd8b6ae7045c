# shellcheck shell=bash
# Sourced by .ci/run: starts and stops the external services the tests talk to (PostgreSQL,
# Redis), each on a free port on 127.0.0.1 in a fresh temporary directory, so a CI run never
# shares state with a package's default instance or with an earlier run.
#
# Use from bash:  source .ci/services.sh; trap services_stop EXIT; services_start_postgres; ...
# Needs the Debian packages postgresql and redis-server, and python3 (for free_port). Run as root
# (PostgreSQL runs as the `postgres` user, which the package creates).

# A TCP port on 127.0.0.1 that nothing listens on: the kernel picks it (bind to port 0). It is
# closed again before the service binds it, a small window that only another process picking
# ports at the same moment could hit.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The packages' postinst scripts start their default instances wherever services may start
# (on a systemd machine; policy-rc.d denies it in most containers), and the unit files are
# enabled for the next boot either way. Stop and disable them, then kill whatever is left, so the
# only instances that run are the ones the script and the tests start themselves.
services_stop_package_defaults() {
    local unit name
    if command -v systemctl >/dev/null 2>&1; then
        # Without systemd as PID 1 `stop` fails ("System has not been booted with systemd");
        # `disable` still removes the boot links. Neither failure matters here.
        for unit in postgresql redis-server nginx prometheus; do
            systemctl stop "$unit" >/dev/null 2>&1 || true
            systemctl disable "$unit" >/dev/null 2>&1 || true
        done
    fi
    for name in postgres redis-server nginx prometheus; do
        pkill -x "$name" 2>/dev/null || true
    done
    # Give them a few seconds to exit (PostgreSQL writes a shutdown checkpoint), then force it.
    # (pgrep one name at a time: it warns about, and may not match, a -x pattern over 15 chars.)
    local _
    for name in postgres redis-server nginx prometheus; do
        for _ in $(seq 50); do
            pgrep -x "$name" >/dev/null 2>&1 || break
            sleep 0.1
        done
        pkill -KILL -x "$name" 2>/dev/null || true
    done
}

# Starts a throwaway PostgreSQL cluster (trust auth, no fsync) and exports
#   PG_BIN_DIR    the installed version's bin dir, for tests that start and restart their own
#   DATABASE_URL  postgres://postgres@127.0.0.1:PORT/postgres
services_start_postgres() {
    PG_BIN_DIR=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null \
        | sort -V | tail -n 1) || true
    if [ -z "$PG_BIN_DIR" ] || [ ! -x "$PG_BIN_DIR/initdb" ]; then
        echo "services: no PostgreSQL under /usr/lib/postgresql/*/bin (is postgresql installed?)" >&2
        return 1
    fi
    export PG_BIN_DIR
    CI_PG_DIR=$(mktemp -d /tmp/ci-postgres.XXXXXX)
    CI_PG_PORT=$(free_port)
    # initdb and the server run as postgres (they refuse root): it must own the directory that
    # holds the data dir, the socket and the log.
    chown postgres:postgres "$CI_PG_DIR"
    chmod 700 "$CI_PG_DIR"
    # `cd /`: the postgres user may not be able to read the caller's working directory.
    if ! (cd / && runuser -u postgres -- "$PG_BIN_DIR/initdb" -D "$CI_PG_DIR/data" \
        --auth=trust -U postgres --encoding=UTF8 --locale=C.UTF-8 --no-sync \
        >"$CI_PG_DIR/initdb.log" 2>&1); then
        echo "services: initdb failed:" >&2
        cat "$CI_PG_DIR/initdb.log" >&2
        return 1
    fi
    # max_connections=300: parallel tests each open a pool.
    if ! (cd / && runuser -u postgres -- "$PG_BIN_DIR/pg_ctl" -D "$CI_PG_DIR/data" \
        -l "$CI_PG_DIR/postgres.log" -w -t 60 \
        -o "-p $CI_PG_PORT -k $CI_PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" \
        start >/dev/null); then
        echo "services: PostgreSQL did not start:" >&2
        cat "$CI_PG_DIR/postgres.log" >&2
        return 1
    fi
    export DATABASE_URL="postgres://postgres@127.0.0.1:$CI_PG_PORT/postgres"
    # pg_ctl -w already waited for the socket; check the TCP address the tests use.
    local _
    for _ in $(seq 100); do
        if "$PG_BIN_DIR/pg_isready" -q -h 127.0.0.1 -p "$CI_PG_PORT" -U postgres; then
            echo "PostgreSQL $("$PG_BIN_DIR/postgres" --version | awk '{print $3}') on 127.0.0.1:$CI_PG_PORT (data in $CI_PG_DIR)"
            return 0
        fi
        sleep 0.1
    done
    echo "services: PostgreSQL is not ready on 127.0.0.1:$CI_PG_PORT:" >&2
    cat "$CI_PG_DIR/postgres.log" >&2
    return 1
}

# Starts a throwaway Redis (no persistence) and exports
#   REDIS_URL         redis://127.0.0.1:PORT/
#   REDIS_SERVER_BIN  for tests that start and restart their own
services_start_redis() {
    REDIS_SERVER_BIN=$(command -v redis-server) || {
        echo "services: redis-server not found (is redis-server installed?)" >&2
        return 1
    }
    export REDIS_SERVER_BIN
    CI_REDIS_DIR=$(mktemp -d /tmp/ci-redis.XXXXXX)
    CI_REDIS_PORT=$(free_port)
    # --dir: nothing is saved, but keep anything Redis writes inside the temp dir.
    if ! "$REDIS_SERVER_BIN" --port "$CI_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --dir "$CI_REDIS_DIR" --pidfile "$CI_REDIS_DIR/redis.pid" \
        --logfile "$CI_REDIS_DIR/redis.log"; then
        echo "services: redis-server failed:" >&2
        cat "$CI_REDIS_DIR/redis.log" >&2 2>/dev/null || true
        return 1
    fi
    export REDIS_URL="redis://127.0.0.1:$CI_REDIS_PORT/"
    local _
    for _ in $(seq 100); do
        if [ "$(redis-cli -h 127.0.0.1 -p "$CI_REDIS_PORT" ping 2>/dev/null)" = PONG ]; then
            echo "Redis $("$REDIS_SERVER_BIN" --version | sed -n 's/.* v=\([^ ]*\).*/\1/p') on 127.0.0.1:$CI_REDIS_PORT"
            return 0
        fi
        sleep 0.1
    done
    echo "services: Redis is not answering on 127.0.0.1:$CI_REDIS_PORT:" >&2
    cat "$CI_REDIS_DIR/redis.log" >&2 2>/dev/null || true
    return 1
}

# Stops what services_start_* started and removes their temp dirs. Safe to call more than once,
# or when nothing was started; never fails (meant for an EXIT trap).
services_stop() {
    if [ -n "${CI_PG_DIR:-}" ]; then
        if [ -f "$CI_PG_DIR/data/postmaster.pid" ]; then
            (cd / && runuser -u postgres -- "$PG_BIN_DIR/pg_ctl" -D "$CI_PG_DIR/data" \
                -m immediate -w -t 30 stop >/dev/null 2>&1) || true
        fi
        rm -rf "$CI_PG_DIR" || true
        CI_PG_DIR=
    fi
    if [ -n "${CI_REDIS_DIR:-}" ]; then
        local pid _
        pid=$(cat "$CI_REDIS_DIR/redis.pid" 2>/dev/null) || pid=
        redis-cli -h 127.0.0.1 -p "$CI_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
        if [ -n "$pid" ]; then
            # shutdown returns before the process is gone; wait, then force it.
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
        fi
        rm -rf "$CI_REDIS_DIR" || true
        CI_REDIS_DIR=
    fi
    return 0
}
