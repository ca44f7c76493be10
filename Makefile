# lazypull.snapshotters — every entry point does its own set-up on a fresh
# Debian/Ubuntu machine (run as root): `make bench` and `make test`.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c

PYTHON ?= python3
VENV ?= .venv
COLLECTIONS := $(CURDIR)/.build/collections
export LAZYPULL_CACHE ?= /var/cache/lazypull
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
SCENARIOS ?= containerd snapshotters rollout

.PHONY: help prereqs venv lab lab-up lab-down lab-status bench test lint sanity units integration molecule clean

help:
	@echo "make bench   lab up (400 Mbit/s link), roles, image variants, cold-start benchmark, report"
	@echo "             WORKLOADS='sparse llm' REPETITIONS=3 BENCH_RATE=400mbit"
	@echo "make test    lint + sanity + unit tests + Molecule on the lab"
	@echo "make lab-up / lab-down / lab-status   manage the lab by hand"

prereqs:
	bash tests/lab/host-prereqs.sh

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed
	bash tests/lab/install-collections.sh $(COLLECTIONS) $(VENV)/bin/pip

lab-up lab: prereqs venv
	$(PYTHON) tests/lab/lab.py up

lab-down:
	$(PYTHON) tests/lab/lab.py down

lab-status:
	$(PYTHON) tests/lab/lab.py status

# The lab's registry link is shaped to 400 Mbit/s (about the seed's ECR
# throughput); WORKLOADS=llm adds the 4 GB LLM image (built once, cached).
WORKLOADS ?= sparse server
BENCH_RATE ?= 400mbit
REPETITIONS ?= 5
bench_workloads_json = [$(shell printf '"%s",' $(WORKLOADS) | sed 's/,$$//')]

bench: prereqs venv
	$(PYTHON) tests/lab/lab.py up --rate $(BENCH_RATE) --hosts $${LAB_HOSTS:-1} --workloads $(WORKLOADS)
	ansible-playbook -i inventories/lab playbooks/lab.yml
	ansible-playbook -i inventories/lab playbooks/convert.yml -e '{"bench_lab_workloads": $(bench_workloads_json)}'
	ansible-playbook -i inventories/lab playbooks/bench.yml \
	  -e '{"bench_lab_workloads": $(bench_workloads_json), "bench_repetitions": $(REPETITIONS)}'

lint: venv
	bash tests/ci/lint.sh

sanity: venv
	bash tests/ci/sanity.sh

units: venv
	$(VENV)/bin/python -m pytest -q tests/unit

integration: prereqs venv
	bash tests/ci/integration.sh

molecule: lab-up
	bash tests/ci/molecule.sh $(SCENARIOS)

test: prereqs venv
	bash tests/ci/test.sh

clean:
	rm -rf .build tests/output
