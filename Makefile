# curate — common tasks. `make demo` and `make test` work on a fresh Debian machine.
PY ?= python3
PIP ?= $(PY) -m pip
SHARED ?= ../shared
DEMO_INPUT ?= $(if $(wildcard $(SHARED)/media/videos),$(SHARED)/media/videos,demo-input)
DEMO_OUTPUT ?= demo-output
PIPELINE ?= pipelines/model-free.yaml
PYTEST_ARGS ?=
RAPIDOCR ?= 1.4.4

.PHONY: install system-deps demo demo-input test test-all test-lowest bench clean

system-deps:  ## ffmpeg (CLI and libraries used by the tests and benchmarks); chromium and postgresql for the review tests
	@command -v ffmpeg >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg; }
	@# the review app's browser test drives Debian's chromium (it plays H.264) through Playwright: no browser download
	@[ -x /usr/bin/chromium ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@# the decisions database tests start a throwaway PostgreSQL server with initdb/pg_ctl
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }
	@# the text-overlay tests and benchmark draw subtitles and slides with ffmpeg drawtext in DejaVu Sans
	@[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core; }

install: system-deps  ## torch from the local wheels, the text detector's wheel, then curate with its test extras
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	@# PP-OCRv4 text detection model and its post-processing; --no-deps: see pyproject.toml
	$(PIP) install -q --no-deps rapidocr-onnxruntime==$(RAPIDOCR)
	$(PIP) install -q -e ".[test,s3]"

demo-input:
	@[ -d "$(DEMO_INPUT)" ] || $(PY) -m curate.samples $(DEMO_INPUT)

demo: install demo-input  ## run the model-free pipeline on embedded Ray over the sample videos
	$(PY) -m curate run $(PIPELINE) --input $(DEMO_INPUT) --output $(DEMO_OUTPUT)
	$(PY) -m curate inspect $(DEMO_OUTPUT)
	$(PY) -m curate validate $(DEMO_OUTPUT)

test: install  ## the default suite (slow tests excluded)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-all: install  ## everything, slow tests included
	$(PY) -m pytest -q -m "slow or not slow" $(PYTEST_ARGS)

test-lowest: system-deps  ## the fast tests on the declared minimum versions (uv --resolution=lowest-direct; torch as installed)
	PY=$(PY) .ci/lowest-deps $(PYTEST_ARGS)

bench: install  ## speed/memory benchmarks (prints ratios)
	$(PY) bench/run.py

clean:
	rm -rf $(DEMO_OUTPUT) demo-input bench/out .pytest_cache
