# The two commands a newcomer needs: `make run` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test install clean messages bench screenshots chaos

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

# The suite in TEST_PROCESSES parallel processes (pytest-xdist; each has its own data folder, Redis
# databases and test database: tests/isolation.py); TEST_PROCESSES=0 runs it in this one process.
# Prints how long it took. Extra pytest arguments: PYTEST_ARGS="-k feeds". 2 measured fastest on the 2-core
# CI machine (SQLite leg: 2 → 4 min 44 s, 3 → 5 min 14 s, 4 → 5 min 54 s; docs/testing.md).
TEST_PROCESSES ?= 2
test: $(VENV)/.installed
	@start=$$(date +%s); status=0; \
	$(VENV)/bin/pytest -n $(TEST_PROCESSES) --dist loadgroup $(PYTEST_ARGS) || status=$$?; \
	took=$$(( $$(date +%s) - start )); \
	echo "make test: $$((took / 60)) min $$((took % 60)) s"; \
	exit $$status

# Benchmarks (issue 7): starts its own PostgreSQL database, Redis db numbers, sandbox, gunicorn, nginx and
# workers (installs nginx and wrk with apt-get if missing), seeds 10 M runs, prints a table; about 15
# minutes. `make bench BENCH_ARGS=--quick` for a smoke run; `--help` lists every knob.
bench: $(VENV)/.installed
	$(PY) bench/run.py $(BENCH_ARGS)

# The chaos run (issue 20, docs/chaos.md): its own PostgreSQL cluster and Redis on random ports, two
# locations' workers, two schedulers and two web processes; feb-2023 then a DM-only outage while a
# worker, PostgreSQL, Redis and the leading scheduler are broken; prints the truth table. About 15
# minutes; `make chaos CHAOS_ARGS="--scale 0.15"` is the CI size (about 2.5 minutes).
chaos: $(VENV)/.installed
	env -u DATABASE_URL -u CELERY_BROKER_URL -u VIGIE_CACHE_URL $(PY) bench/chaos.py $(CHAOS_ARGS)

# The pictures in docs/screenshots/ (linked from docs/screenshots.md), from a throwaway site with an
# outage under way, taken by headless Chromium at desktop and phone widths; about 10 seconds.
screenshots: $(VENV)/.installed
	env -u DATABASE_URL -u CELERY_BROKER_URL -u VIGIE_CACHE_URL $(PY) tools/screenshots.py

clean:
	rm -rf $(VENV) var

# After changing a page's words: extract them into locale/fr, translate the new entries, then run
# this again to compile (msgfmt, from Debian's gettext).
messages: $(VENV)/.installed
	$(PY) manage.py makemessages -l fr -i ".venv/*" -i "tests/*" -i "bench/*"
	msgfmt --check -o locale/fr/LC_MESSAGES/django.mo locale/fr/LC_MESSAGES/django.po
