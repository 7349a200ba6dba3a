# Developer entry points. Everything goes through scripts/test.sh so a fresh machine
# and CI (.ci/run) set up the same way. Extra args: make test ARGS="-k presence".
ARGS ?=

.PHONY: test serve lint venv

test:
	scripts/test.sh $(ARGS)

# Create/refresh .venv only (no services, no tests).
venv:
	VENV_ONLY=1 scripts/test.sh

serve: venv
	.venv/bin/sockudo-py $(ARGS)

lint: venv
	.venv/bin/ruff check .
	.venv/bin/mypy sockudo_py
