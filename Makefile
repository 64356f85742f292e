# The two entry points of README.md. Each installs the host tools it needs.
#
#   make run    build examples/minimal.imago and boot it in QEMU (serial console
#               on this terminal; quit with Ctrl-a x)
#   make test   formatting, lints, the flake check, a build of the examples
#               from an empty package cache and store, and the whole test suite
#   make check  formatting, lints, the flake check, and shellcheck and
#               busybox sh -n on switch-to-configuration (needs the tools of
#               `.ci/host-tools.sh test`; `make test` installs them first)

CARGO ?= cargo
EXAMPLE ?= examples/minimal.imago

.PHONY: run test check host-tools host-tools-test

run: host-tools
	$(CARGO) build --release --locked -p imago
	./target/release/imago run $(EXAMPLE)

test: host-tools-test check
	./.ci/fuzz-check.sh
	$(CARGO) build --locked -p imago
	./.ci/fresh-build.sh target/debug/imago
	$(CARGO) test --workspace --locked --no-fail-fast

check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	nix-instantiate --parse flake.nix >/dev/null
	./.ci/check-switch-script.sh

host-tools:
	@./.ci/host-tools.sh run

host-tools-test:
	@./.ci/host-tools.sh test
