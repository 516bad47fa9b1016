# cdp-spark: README's two commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CUSTOMERS ?= 2000
SEED ?= 42
DATA ?= data
CONF ?= conf
ENV ?= local
AS_OF ?= 2026-06-30
# Spark runs on the newest installed JDK that it supports, unless JAVA_HOME names one (docs/design.md §9,
# "Java version": Java 25 ran the demo pipeline 15 % faster than Java 17 here)
JAVA_HOME := $(shell scripts/java_home.sh)
export JAVA_HOME

.PHONY: help venv install install-test system-deps check-java jars demo-data run test lint typecheck clean test-spark40 bench bench-ingest bench-er bench-scores bench-pipeline bench-jvm-start dist

help:
	@echo "make run     install, generate demo data, run the whole pipeline locally, print a summary"
	@echo "make test    install test needs (PostgreSQL + JDBC driver from Debian, Maven artefacts), ruff + mypy, pytest"
	@echo "make lint    ruff + mypy"
	@echo "make bench   benchmarks (figures in benchmarks/results/)"
	@echo "make dist    wheel, relocatable environment archive, conf.zip and jobs/ for spark-submit (in dist/)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

venv: $(BIN)/python

# A stamp per dependency set so re-runs skip the install when pyproject.toml did not change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local,test]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-dist

$(VENV)/.installed-dist: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local,dist]'
	touch $@

install: $(VENV)/.installed check-java
install-test: $(VENV)/.installed-test check-java system-deps jars

# JVM artefacts (jvm/pom.xml) from Maven Central into build/jars/spark-<minor>/{delta,s3a}/, Maven's own
# cache under build/m2; re-runs do nothing until the pom changes. spark.jars globs name them (docs/deployment.md,
# "JVM artefacts"); the test session carries the delta group. Maven runs on Java 21 or 17 when one is installed:
# Debian's Maven 3.8 prints four warnings about sun.misc.Unsafe on Java 25.
SPARK_MINOR ?= 4.2
JARS_DIR := build/jars/spark-$(SPARK_MINOR)
MVN := JAVA_HOME="$$(scripts/java_home.sh 21)" mvn -B -q -f jvm/pom.xml -Pspark-$(SPARK_MINOR) -Dmaven.repo.local=$(CURDIR)/build/m2
jars: $(JARS_DIR)/.fetched

$(JARS_DIR)/.fetched: jvm/pom.xml
	rm -rf $(JARS_DIR)
	$(MVN) dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(JARS_DIR)/delta \
		-DincludeGroupIds=io.delta,io.unitycatalog,com.fasterxml.jackson.datatype,org.roaringbitmap
	$(MVN) dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(JARS_DIR)/s3a \
		-DincludeGroupIds=org.apache.hadoop,software.amazon.awssdk,software.amazon.s3.analyticsaccelerator
	touch $@

check-java:
	@scripts/check_java.sh

# PostgreSQL server and its JDBC driver, from Debian's packages, only when missing.
system-deps:
	@scripts/install_system_deps.sh

demo-data: install
	$(BIN)/python -m cdp_spark.demo.generator --customers $(CUSTOMERS) --seed $(SEED) --out $(DATA)/landing

# The demo's hashing key: CDP_HASH_KEY when set, else a random key kept with the demo data (so hashes
# stay stable across demo runs). Production keys come from a secret store, never from files.
run: demo-data
	@test -n "$$CDP_HASH_KEY" || test -s $(DATA)/.demo_hash_key || \
		$(BIN)/python -c "import secrets; print(secrets.token_hex(32))" > $(DATA)/.demo_hash_key
	CDP_HASH_KEY="$${CDP_HASH_KEY:-$$(cat $(DATA)/.demo_hash_key)}" \
		$(BIN)/cdp --env $(ENV) --data-dir $(DATA) --as-of $(AS_OF) run

# lint first (ruff, mypy): a type or lint error fails before the suite's minutes
test: install-test lint
	scripts/run_tests.sh

# The table-store contract (both engines), the session tests and the end-to-end pipeline (both engines) under
# pyspark 4.0 with the Spark 4.0 jars (on Java 21 or 17, the ones Spark 4.0 supports), in
# build/venv40 (docs/deployment.md, "Delta engines"); not part of `make test`.
VENV40 := build/venv40
test-spark40: check-java
	test -x $(VENV40)/bin/python || ($(PYTHON) -m venv $(VENV40) \
		&& $(VENV40)/bin/pip install --quiet 'pyspark>=4.0,<4.1' \
		&& $(VENV40)/bin/pip install --quiet -e '.[test]' \
		&& $(VENV40)/bin/pip install --quiet --no-deps 'delta-spark>=4.4,<4.5')
	$(MAKE) jars SPARK_MINOR=4.0
	JAVA_HOME="$$(scripts/java_home.sh 21)" $(VENV40)/bin/python -m pytest -q tests/contracts tests/unit/test_session.py \
		'tests/integration/test_pipeline_e2e.py::test_demo_pipeline_end_to_end'

lint: install-test
	$(BIN)/ruff check cdp_spark jobs tests scripts
	$(BIN)/mypy

# Benchmarks print their figures and write them to benchmarks/results/*.json.
BENCH_ORDERS ?= 5000000
BENCH_CONTACTS ?= 1000000
bench-ingest: install
	SPARK_LOCAL_IP=127.0.0.1 $(BIN)/python scripts/bench_ingest.py --orders $(BENCH_ORDERS) --contacts $(BENCH_CONTACTS)

ER_RECORDS ?= 10000,100000,1000000
bench-er: install-test
	SPARK_LOCAL_IP=127.0.0.1 $(BIN)/python scripts/bench_er.py --records $(ER_RECORDS)

SCORE_PERSONS ?= 1000000
SCORE_ORDERS ?= 5000000
bench-scores: install-test
	SPARK_LOCAL_IP=127.0.0.1 $(BIN)/python scripts/bench_scores.py --persons $(SCORE_PERSONS) --orders $(SCORE_ORDERS)

PIPELINE_PERSONS ?= 2000,10000,100000,1000000
PIPELINE_ARGS ?=  # e.g. --keep /data/bench (keep and reuse the generated data) --out <file>
bench-pipeline: install
	SPARK_LOCAL_IP=127.0.0.1 $(BIN)/python scripts/bench_pipeline.py --persons $(PIPELINE_PERSONS) $(PIPELINE_ARGS)

# a new process's fixed cost with and without the JVM's class-data-sharing archive (docs/design.md §9)
bench-jvm-start: install
	SPARK_LOCAL_IP=127.0.0.1 $(BIN)/python scripts/bench_jvm_start.py

bench: bench-ingest bench-er bench-scores bench-pipeline bench-jvm-start

# Cluster artefacts (see docs/deployment.md, "Run on a cluster"); DIST_PYTHON_PREFIX=/usr for EMR's Python.
DIST ?= dist
dist: $(VENV)/.installed-dist
	DIST=$(DIST) PYTHON=$(PYTHON) scripts/build_dist.sh

clean:
	rm -rf $(DATA) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache spark-warehouse
