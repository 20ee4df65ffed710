# zedis — the targets the README names.
CARGO ?= cargo
UP_ARGS ?=

.PHONY: deps build release up test lint fmt bench-failover bench-proxy bench-coord bench-config bench-migrate clean

deps:
	@scripts/ensure-deps.sh

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release -p zedis-cli

## Start the local sandbox (ZooKeeper + Redis groups + controllers) until Ctrl-C.
up: deps release
	target/release/zedis up $(UP_ARGS)

## The whole test suite against real redis-server and ZooKeeper processes.
test: deps
	$(CARGO) test --workspace --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## kill -9 of a master -> first successful write, zedis against Redis Sentinel.
bench-failover: deps
	@scripts/ensure-deps.sh redis-sentinel
	$(CARGO) build --release -p zedis-cli -p zedis-bench-failover
	target/release/zedis-bench-failover --runs 10

## redis-benchmark directly, through twemproxy and through the zedis proxy (SET/GET/MSET, pipeline 1 and 16).
bench-proxy: deps
	@scripts/ensure-deps.sh nutcracker redis-tools
	$(CARGO) build --release -p zedis-cli -p zedis-bench-proxy
	target/release/zedis-bench-proxy

## Lock acquire+release cycles/s: ZooKeeper lock vs raw create+delete, Redis lease lock vs raw SET NX+DEL.
bench-coord: deps
	$(CARGO) build --release -p zedis-bench-coord
	target/release/zedis-bench-coord

## Config change -> 100 watchers and the Redis mirror updated, p50/p99.
bench-config: deps
	$(CARGO) build --release -p zedis-bench-config
	target/release/zedis-bench-config

## Slot migration keys/s and MB/s against raw SCAN+MIGRATE of the same keys; client p50/p99 through the proxy during the move.
bench-migrate: deps
	$(CARGO) build --release -p zedis-cli -p zedis-bench-migrate
	target/release/zedis-bench-migrate

clean:
	$(CARGO) clean
