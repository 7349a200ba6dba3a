#!/usr/bin/env bash
# Make sure the services the tests need answer on loopback:
#   Redis 6379, NATS 4222 (JetStream), MariaDB 3306 (root / empty password, database `test`),
# plus the redis-server binary itself (the Redis Cluster tests spawn their own instances)
# and Debian's Chromium with its driver (the console's browser test drives it with Playwright;
# Playwright's own browser download is never used).
#
# Services that already answer are left alone (we never stop anything). Missing ones are
# started; missing binaries are apt-installed when we are root, otherwise we print the
# Debian packages to install and fail under CI (warn otherwise). What we start keeps
# running; its pid and log go to .services/ (git-ignored).
#
# Ports can be overridden (REDIS_PORT, NATS_PORT, MYSQL_PORT) so this script can be
# exercised without touching the machine's own services. Only root on the default port
# uses the system data dirs; any other instance is fully isolated under .services/.
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_PORT=${REDIS_PORT:-6379}
NATS_PORT=${NATS_PORT:-4222}
MYSQL_PORT=${MYSQL_PORT:-3306}
STATE=$PWD/.services
mkdir -p "$STATE"
export PATH=$PATH:/usr/sbin:/sbin # nats-server, mariadbd and start-stop-daemon live here

log() { echo "services: $*" >&2; }
# A missing service is fatal in CI, but a developer can still run the tests that don't need it.
problem() {
    case ${CI:-} in
    "" | false | 0) log "WARNING: $*" ;;
    *) log "ERROR: $*" && exit 1 ;;
    esac
}
bin() { command -v "$1" 2>/dev/null; }
is_up() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
wait_up() { # name port logfile -- bounded: 30 s
    local _
    for _ in $(seq 60); do
        is_up "$2" && log "$1 started on port $2" && return 0
        sleep 0.5
    done
    problem "$1 did not come up on port $2 within 30 s (log: $3)"
}
# The system dirs belong to the machine's standard instance; use them only as root on its port.
system_mode() { [ "$(id -u)" = 0 ] && [ "$1" = "$2" ]; }
# start-stop-daemon with our own pidfile: --oknodo then only matches *our* instance,
# not e.g. the machine's nats-server on another port.
daemon() { # name port exe args...
    local exe=$3 pidf=$STATE/$1-$2.pid out=$STATE/$1-$2.out
    shift 3
    if bin start-stop-daemon >/dev/null; then
        start-stop-daemon --start --oknodo --background --make-pidfile --pidfile "$pidf" \
            --output "$out" --exec "$exe" -- "$@"
    else
        nohup "$exe" "$@" >"$out" 2>&1 &
        echo $! >"$pidf"
    fi
}

start_redis() {
    local dir=/var/lib/redis logf=/var/log/redis/ci.log
    system_mode "$REDIS_PORT" 6379 || { dir=$STATE/redis-$REDIS_PORT && logf=$STATE/redis-$REDIS_PORT.log; }
    mkdir -p "$dir" "$(dirname "$logf")"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
        --appendonly no --dir "$dir" --logfile "$logf" --pidfile "$STATE/redis-$REDIS_PORT.pid"
    wait_up Redis "$REDIS_PORT" "$logf"
}

start_nats() {
    local sd=/var/lib/nats-server logf=/var/log/nats-server.log
    system_mode "$NATS_PORT" 4222 || { sd=$STATE/nats-$NATS_PORT && logf=$STATE/nats-$NATS_PORT.log; }
    mkdir -p "$sd"
    daemon nats "$NATS_PORT" "$(bin nats-server)" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$sd" -l "$logf"
    wait_up NATS "$NATS_PORT" "$logf"
}

mysql_sock() {
    if system_mode "$MYSQL_PORT" 3306; then echo /run/mysqld/mysqld.sock; else echo "$STATE/mariadb-$MYSQL_PORT.sock"; fi
}

start_mariadb() {
    local exe args=() dir=$STATE/mariadb-$MYSQL_PORT
    exe=$(bin mariadbd)
    if system_mode "$MYSQL_PORT" 3306; then
        # Debian's my.cnf supplies datadir, socket, user=mysql and port; a fresh box may
        # lack the (tmpfs) socket dir or an initialised datadir.
        install -d -o mysql -g mysql /run/mysqld
        [ -d /var/lib/mysql/mysql ] || mysql_install_db --user=mysql --datadir=/var/lib/mysql >"$STATE/mariadb-install.log"
    else
        args=(--no-defaults --datadir="$dir" --socket="$(mysql_sock)" --port="$MYSQL_PORT"
            --bind-address=127.0.0.1 --user="$(id -un)" --skip-log-bin)
        # "normal" root auth = empty password, which is what the tests use.
        [ -d "$dir/mysql" ] || mysql_install_db --no-defaults --datadir="$dir" --user="$(id -un)" \
            --auth-root-authentication-method=normal >"$STATE/mariadb-$MYSQL_PORT-install.log"
    fi
    daemon mariadb "$MYSQL_PORT" "$exe" "${args[@]}"
    wait_up MariaDB "$MYSQL_PORT" "$STATE/mariadb-$MYSQL_PORT.out"
}

# The tests log in as root with an empty password over TCP and use database `test`.
setup_mariadb() {
    is_up "$MYSQL_PORT" || return 0
    local client tcp
    client=$(bin mariadb || bin mysql) || { problem "no mysql client to check MariaDB (apt-get install mariadb-client)" && return 0; }
    tcp=("$client" --protocol=tcp -h127.0.0.1 -P"$MYSQL_PORT" -uroot)
    "${tcp[@]}" -e 'CREATE DATABASE IF NOT EXISTS test' 2>/dev/null && return 0
    # Debian's root@localhost uses unix_socket auth: as OS root, log in over the socket and
    # allow the empty password too. With skip-name-resolve, TCP logins match root@127.0.0.1.
    log "MariaDB: enabling root login with an empty password over TCP"
    "$client" -uroot --socket="$(mysql_sock)" -e "
        ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;
        CREATE USER IF NOT EXISTS root@'127.0.0.1';
        ALTER USER root@'127.0.0.1' IDENTIFIED BY '';
        GRANT ALL PRIVILEGES ON *.* TO root@'127.0.0.1' WITH GRANT OPTION;
        CREATE DATABASE IF NOT EXISTS test;" || true
    "${tcp[@]}" -e 'SELECT 1' >/dev/null ||
        problem "MariaDB on port $MYSQL_PORT refuses root with an empty password over TCP"
}

# 1. Binaries: redis-server and chromium always (cluster and browser tests), the others only
#    if their port is down.
need=()
bin redis-server >/dev/null || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
bin chromedriver >/dev/null || need+=(chromium-driver)
is_up "$NATS_PORT" || bin nats-server >/dev/null || need+=(nats-server)
is_up "$MYSQL_PORT" || bin mariadbd >/dev/null || need+=(mariadb-server)
if ((${#need[@]})); then
    if [ "$(id -u)" = 0 ] && bin apt-get >/dev/null; then
        log "installing ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        # A fresh image often has no package lists yet: update only if the first try fails.
        apt-get install -y -q "${need[@]}" || { apt-get update -q && apt-get install -y -q "${need[@]}"; }
    else
        problem "missing Debian packages: ${need[*]}  (install: sudo apt-get install -y ${need[*]})"
    fi
fi

# 2. Services: start what is down and can be started. (apt's postinst may have started some.)
check() { # name port starter binary
    if is_up "$2"; then
        log "$1 is up on port $2"
    elif bin "$4" >/dev/null; then
        log "$1 is down on port $2: starting it"
        "$3"
    else
        problem "$1 is down on port $2 and $4 is not installed"
    fi
}
check Redis "$REDIS_PORT" start_redis redis-server
check NATS "$NATS_PORT" start_nats nats-server
check MariaDB "$MYSQL_PORT" start_mariadb mariadbd
setup_mariadb
