# The two commands a newcomer needs: `make run` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test install clean messages bench

# requirements.txt is what Vigie needs to run (all a production image installs); requirements-test.txt
# adds the test tools. `make run` installs the first only, `make test` both.
$(VENV)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed: $(VENV)/.runtime requirements-test.txt
	$(VENV)/bin/pip install --quiet -r requirements-test.txt
	touch $@

install: $(VENV)/.installed

run: $(VENV)/.runtime
	$(PY) manage.py up

test: $(VENV)/.installed
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Benchmarks (issue 7): starts its own PostgreSQL database, Redis db numbers, sandbox, gunicorn, nginx and
# workers (installs nginx and wrk with apt-get if missing), seeds 10 M runs, prints a table; about 15
# minutes. `make bench BENCH_ARGS=--quick` for a smoke run; `--help` lists every knob.
bench: $(VENV)/.installed
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var

# After changing a page's words: extract them into locale/fr, translate the new entries, then run
# this again to compile (msgfmt, from Debian's gettext).
messages: $(VENV)/.installed
	$(PY) manage.py makemessages -l fr -i ".venv/*" -i "tests/*" -i "bench/*"
	msgfmt --check -o locale/fr/LC_MESSAGES/django.mo locale/fr/LC_MESSAGES/django.po
