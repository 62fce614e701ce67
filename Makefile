# ebcache — build, test, run. `make run` and `make test` install what they need.
#
#   make            bin/ebcache and build/libebcache.a
#   make test       the Criterion suite, optimized and under ASan+UBSan
#   make run        the main job on the shipped default model
#   make bench      benchmarks (bench/), ratios measured in one run
#   make goldens    regenerate tests/golden/ with the PyTorch reference
#   make fuzz       libFuzzer targets for the safetensors and HDF5 readers (not in CI)

CC      ?= cc
OPENBLAS_DIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
HDF5_CFLAGS  := -I/usr/include/hdf5/serial
HDF5_LIBS    := -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5
CPPFLAGS += -I/usr/include/x86_64-linux-gnu/openblas-openmp -Iruntime -Iruntime/cpu -Itrain -Ianalyze -Isearch $(HDF5_CFLAGS) -D_GNU_SOURCE
WARN     := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes
CFLAGS_OPT  := -std=c11 -O2 -march=native -fopenmp $(WARN)
CFLAGS_SAN  := -std=c11 -O1 -g -fopenmp -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined $(WARN)
LDLIBS   := -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) -lopenblas $(HDF5_LIBS) -lgsl -lz -lm

LIB_SRC  := $(wildcard runtime/*.c runtime/cpu/*.c train/*.c analyze/*.c search/*.c)
CLI_SRC  := $(wildcard cli/*.c)
TEST_SRC := $(wildcard tests/*.c)

# Debian packages the build, the tests and the reference need.
DEB_PKGS := build-essential libopenblas-openmp-dev libhdf5-dev libgsl-dev libcriterion-dev zlib1g-dev \
            gnuplot-nox dataset-fashion-mnist hdf5-tools pkg-config
DEB_STAMP := build/.deps

.PHONY: all deps test test-opt test-san run bench goldens fuzz clean train-default
all: bin/ebcache build/libebcache.a

# Installs missing Debian packages (needs root or sudo); a no-op when all are present.
deps: $(DEB_STAMP)
$(DEB_STAMP):
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@mkdir -p build && touch $@

define variant # $(1) name, $(2) cflags
build/$(1)/%.o: %.c $$(wildcard runtime/*.h runtime/cpu/*.h train/*.h analyze/*.h search/*.h tests/*.h cli/*.h) | $(DEB_STAMP)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CPPFLAGS) $(2) -c $$< -o $$@
build/$(1)/libebcache.a: $$(LIB_SRC:%.c=build/$(1)/%.o)
	@rm -f $$@; ar rcs $$@ $$^
build/$(1)/ebcache: $$(CLI_SRC:%.c=build/$(1)/%.o) build/$(1)/libebcache.a
	$$(CC) $(2) $$^ -o $$@ $$(LDLIBS)
build/$(1)/test_suite: $$(TEST_SRC:%.c=build/$(1)/%.o) build/$(1)/libebcache.a
	$$(CC) $(2) $$^ -o $$@ $$(LDLIBS) -lcriterion
endef
$(eval $(call variant,opt,$(CFLAGS_OPT)))
$(eval $(call variant,san,$(CFLAGS_SAN)))

bin/ebcache: build/opt/ebcache
	@mkdir -p bin && cp -f $< $@
build/libebcache.a: build/opt/libebcache.a
	cp $< $@

# The suite runs twice: optimized, then under AddressSanitizer + UBSan.
# Tests find the CLI through EBCACHE_BIN (the variant's own binary).
test: test-opt test-san
test-opt: deps build/opt/test_suite build/opt/ebcache
	EBCACHE_BIN=build/opt/ebcache OMP_NUM_THREADS=2 build/opt/test_suite --jobs 1
test-san: deps build/san/test_suite build/san/ebcache
	EBCACHE_BIN=build/san/ebcache ASAN_OPTIONS=detect_leaks=1 OMP_NUM_THREADS=2 build/san/test_suite --jobs 1

run: deps bin/ebcache
	./tools/main_job.sh

bench: deps bin/ebcache build/opt/bench_forward build/opt/bench_cache
	./bench/run.sh

goldens:
	/usr/bin/python3 reference/make_goldens.py tests/golden
	/usr/bin/python3 reference/make_cache_goldens.py tests/golden
	/usr/bin/python3 reference/metrics_ref.py tests/golden
	/usr/bin/python3 reference/record_ref.py tests/golden

fuzz: deps
	$(MAKE) -C fuzz

clean:
	rm -rf build bin

build/opt/bench_%: bench/bench_%.c build/opt/libebcache.a
	$(CC) $(CPPFLAGS) $(CFLAGS_OPT) $^ -o $@ $(LDLIBS)

# Trains or resumes the default model (data/default-run/, then data/dit_fmnist.safetensors).
train-default: deps bin/ebcache
	./tools/train_default.sh

# Trains (or resumes) the classifier `ebcache eval` measures with (docs/metrics.md): about 15 CPU-minutes.
.PHONY: classifier
classifier: deps bin/ebcache
	nice -n 5 bin/ebcache train-classifier --output data/classifier.safetensors --checkpoint build/classifier.ckpt.safetensors
