#!/usr/bin/env bash
# The GPU check of issue 24: on a machine with one NVIDIA GPU, installs what it
# needs from the project's own files (pyproject extras), then measures every
# backend against the PyTorch reference loop (benchmarks/gpu_check.py says what
# and how) and writes <out>/gpu_check.json and <out>/gpu_check.md.
#
#   benchmarks/gpu_check.sh                  # GPU: install, then measure
#   benchmarks/gpu_check.sh --no-install     # GPU, packages already installed here
#   benchmarks/gpu_check.sh --device cpu     # the same code on the CPU, small sizes
#   benchmarks/gpu_check.sh --out DIR [any other gpu_check.py option]
#
# On a GPU each framework gets its own virtual environment under .venv-gpu/,
# because their CUDA wheels pin different versions of the same NVIDIA
# libraries: jax (extra cuda-jax), tensorflow (extra cuda-tensorflow) and
# torch (the PyTorch wheel, which bundles CUDA, for the reference loop and
# Keras' PyTorch backend). --device cpu uses `make setup`'s .venv for all.
set -euo pipefail
cd "$(dirname "$0")/.."

device=gpu
install=1
passed=()
while (($#)); do
	case "$1" in
	--device)
		device="$2"
		passed+=("$1" "$2")
		shift 2
		;;
	--no-install)
		install=0
		shift
		;;
	*)
		passed+=("$1")
		shift
		;;
	esac
done
if [[ "$device" != gpu && "$device" != cpu ]]; then
	echo "gpu_check.sh: --device must be gpu or cpu, got '$device'" >&2
	exit 2
fi
PYTHON="${PYTHON:-python3}"
start=$(date +%s)

if [[ "$device" == cpu ]]; then
	make --no-print-directory setup
	python=.venv/bin/python
	interpreters=()
elif ((install == 0)); then
	python="$PYTHON"
	interpreters=()
else
	if ! command -v nvidia-smi > /dev/null || ! nvidia-smi > /dev/null; then
		echo "gpu_check.sh: no NVIDIA GPU here (nvidia-smi failed); try --device cpu" >&2
		exit 1
	fi
	nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
	declare -A extras=([jax]="cuda-jax" [tensorflow]="cuda-tensorflow" [torch]="torch,benchmark")
	interpreters=(--python)
	for framework in jax tensorflow torch; do
		venv=".venv-gpu/$framework"
		if [[ ! -f "$venv/.installed" ]]; then
			echo "=== installing $framework into $venv"
			"$PYTHON" -m venv "$venv"
			"$venv/bin/python" -m pip install --quiet --upgrade pip
			"$venv/bin/python" -m pip install --quiet -e ".[${extras[$framework]}]"
			if [[ "$framework" == torch ]]; then
				# Reference code only (their declared dependencies pin old
				# versions of what is installed): robustbench's WRN-34-10 class,
				# torchattacks' AutoAttack.
				"$venv/bin/python" -m pip install --quiet --no-deps \
					"robustbench==1.1.1" "torchattacks==3.5.1"
			fi
			touch "$venv/.installed"
		fi
		interpreters+=("$framework=$venv/bin/python")
	done
	python=.venv-gpu/torch/bin/python
	echo "=== installed in $(($(date +%s) - start)) s"
fi

measure_start=$(date +%s)
"$python" benchmarks/gpu_check.py "${passed[@]}" "${interpreters[@]}"
echo "gpu_check.sh: measured in $(($(date +%s) - measure_start)) s," \
	"$(($(date +%s) - start)) s in all"
