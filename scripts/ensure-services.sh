#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer on 127.0.0.1 for the tests, starting them if not.
set -euo pipefail

pg_host=${HISTOCR_TEST_PG_HOST:-127.0.0.1}
redis_port=${HISTOCR_TEST_REDIS_PORT:-6379}

if ! pg_isready -h "$pg_host" -p 5432 -q; then
  echo "PostgreSQL is not answering; starting it"
  if command -v pg_ctlcluster >/dev/null && [[ -d /etc/postgresql ]]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
  else
    echo "no PostgreSQL cluster found (install postgresql)" >&2
    exit 1
  fi
  for _ in $(seq 1 30); do pg_isready -h "$pg_host" -p 5432 -q && break; sleep 1; done
  pg_isready -h "$pg_host" -p 5432 -q || { echo "PostgreSQL did not start" >&2; exit 1; }
fi

if ! redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1; then
  echo "Redis is not answering; starting it"
  if ! command -v redis-server >/dev/null; then
    echo "redis-server is not installed (install redis-server)" >&2
    exit 1
  fi
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$redis_port" --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 1; done
  redis-cli -p "$redis_port" ping >/dev/null || { echo "Redis did not start" >&2; exit 1; }
fi
echo "PostgreSQL and Redis are up"
