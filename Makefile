# The two commands of the README, plus the checks CI runs.
.PHONY: setup demo test check pytest bench

setup:
	bash scripts/setup.sh

demo: setup
	rollerblade demo

check:
	ruff check shared tests bench analyses scripts functions terraform
	mypy
	lint-imports

pytest:
	python3 -m pytest -p no:cacheprovider

test: setup check pytest

bench: setup
	python3 -m pip install -q -e ".[bench]"
	python3 bench/index_bench.py --subjects 500
