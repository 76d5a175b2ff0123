# Two commands on a fresh machine: `make demo` (set up + run the pipeline offline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
# The torch build to install first (this workplace's pip takes a local copy of these versions).
TORCH ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin
DEMO_OUT ?= runs/demo

.PHONY: setup demo test lint format fashion-mnist test-modelopt test-mlflow test-openvino clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

# The bundled offline default: fashion-mini, tiny models, CPU, ONNX Runtime target.
demo: setup
	$(BIN)/lfcc-pipeline run --teacher convnext_atto --student test_efficientnet --data fashion-mini \
		--img-size 32 --teacher-epochs 10 --epochs 5 --no-pretrained \
		--target torch --target ort-fp32 --target ort-int8 --out $(DEMO_OUT)

test: setup lint
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Full Fashion-MNIST (IDX files under /usr/share/datasets/fashion-mnist) for benchmarks/.
fashion-mnist:
	test -d /usr/share/datasets/fashion-mnist || (apt-get update && apt-get install -y dataset-fashion-mnist)

# Optional: the calibration tests with NVIDIA ModelOpt, in a second venv (ModelOpt pins onnxruntime-gpu
# ~1.24 and onnx ~1.21, so it does not go into the CI venv). Not part of `make test`.
test-modelopt:
	test -x .venv-modelopt/bin/python || $(PYTHON) -m venv .venv-modelopt
	.venv-modelopt/bin/pip install --quiet $(TORCH)
	.venv-modelopt/bin/pip install --quiet -e ".[dev,modelopt]"
	.venv-modelopt/bin/pytest -q tests/unit/test_calib_graphs.py tests/e2e/test_calibrate.py

# Optional: MLflow tracking (--mlflow), in a third venv (MLflow brings a web server, SQLAlchemy, pandas and
# more, none of which the pipeline needs otherwise). The e2e test reads a run back through MLflow's client.
test-mlflow:
	test -x .venv-mlflow/bin/python || $(PYTHON) -m venv .venv-mlflow
	.venv-mlflow/bin/pip install --quiet $(TORCH)
	.venv-mlflow/bin/pip install --quiet -e ".[dev,mlflow]"
	.venv-mlflow/bin/pytest -q tests/unit/test_mlflow.py tests/e2e/test_mlflow.py

# Optional: the OpenVINO targets (ov-fp32, ov-int8, ov-fp16) in a fourth venv; without the extra their tests
# skip with a reason. Not part of `make test`.
test-openvino:
	test -x .venv-openvino/bin/python || $(PYTHON) -m venv .venv-openvino
	.venv-openvino/bin/pip install --quiet $(TORCH)
	.venv-openvino/bin/pip install --quiet -e ".[dev,openvino]"
	.venv-openvino/bin/pytest -q tests/unit/test_openvino.py tests/e2e/test_openvino.py

clean:
	rm -rf $(VENV) .venv-modelopt .venv-mlflow .venv-openvino runs .pytest_cache .ruff_cache
