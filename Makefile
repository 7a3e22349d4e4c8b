# Ko-kNN-LM — one Makefile for the library (libknnlm.a), the command (knnlm), the tests and the benchmarks.
#
#   make                 release build: build/release/knnlm (and knnlm-mpi where Open MPI is installed)
#   make test            every test, built with AddressSanitizer + UndefinedBehaviorSanitizer (build/asan),
#                        then each fuzzer for 3 seconds (fuzz/README.md)
#   make fuzz            the libFuzzer harnesses, built with clang (build/fuzz/fuzz_*)
#   make bench           benchmark programs (build/release/bench/*)
#   make MODE=debug      -O0 -g build in build/debug
#   make install         knnlm, libknnlm.a + knnlm.h, knnlm.pc and the man page under PREFIX (default /usr/local;
#                        DESTDIR is prepended, for packaging)
#
# OpenBLAS: we link the OpenMP build explicitly (rpath to its folder), whatever the system's default
# alternative is, so that BLAS, Faiss and our own loops share one OpenMP thread pool and never
# oversubscribe the cores.

MODE ?= release
BUILD := build/$(MODE)

# CC, CXX, CPPFLAGS, CFLAGS, CXXFLAGS, LDFLAGS and LDLIBS from the command line or the environment are added to
# ours. ARCH is the instruction set the whole program may use: x86-64-v3 (AVX2 + FMA, any x86-64 CPU since
# 2015); the matrix products also have AVX-512 kernels, chosen at run time (src/model/gemm.c; KNNLM_ISA=avx2
# forces the AVX2 ones). ARCH=-march=native ties the binary to this CPU for nothing measurable.
CC ?= gcc
CXX ?= g++
ARCH ?= -march=x86-64-v3
PKG_CONFIG ?= pkg-config
# The OpenMP build of OpenBLAS, whatever the system's default BLAS alternative is (its own .pc file).
OPENBLAS_PC := /usr/lib/x86_64-linux-gnu/openblas-openmp/pkgconfig
OPENBLAS_DIR ?= $(shell PKG_CONFIG_PATH=$(OPENBLAS_PC) $(PKG_CONFIG) --variable=libdir openblas 2>/dev/null || echo /usr/lib/x86_64-linux-gnu/openblas-openmp)
OPENBLAS_INC ?= $(shell PKG_CONFIG_PATH=$(OPENBLAS_PC) $(PKG_CONFIG) --variable=includedir openblas 2>/dev/null || echo /usr/include/x86_64-linux-gnu/openblas-openmp)
# Libraries Debian ships a .pc file for; Faiss and LAPACK have none.
PC_LIBS := libcjson libutf8proc libxxhash zlib
PC_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PC_LIBS) 2>/dev/null)
PC_LDLIBS := $(shell $(PKG_CONFIG) --libs $(PC_LIBS) 2>/dev/null || echo -lcjson -lutf8proc -lxxhash -lz)
# libmicrohttpd: only the command links it (knnlm serve, src/serve/), not the library.
MHD_CFLAGS := $(shell $(PKG_CONFIG) --cflags libmicrohttpd 2>/dev/null)
MHD_LDLIBS := $(shell $(PKG_CONFIG) --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)

WARN := -Wall -Wextra -Wshadow -Wpointer-arith -Wno-unused-parameter -Wno-missing-field-initializers
KN_CPPFLAGS := -Isrc -I$(OPENBLAS_INC) $(PC_CFLAGS) $(MHD_CFLAGS) -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -MMD -MP $(CPPFLAGS)
ifeq ($(MODE),release)
  OPT := -O3 $(ARCH) -DNDEBUG
else ifeq ($(MODE),asan)
  OPT := -O1 -g $(ARCH) -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  FAULT := 1
else ifeq ($(MODE),debug)
  OPT := -O0 -g $(ARCH)
  FAULT := 1
else
  $(error MODE must be release, asan or debug)
endif
# The test builds can make the Nth allocation, write, fsync or rename fail (src/util/fault.c): our calls to
# them are routed through its wrappers.
ifdef FAULT
  KN_CPPFLAGS += -DKN_FAULT_INJECTION
  FAULT_WRAP := malloc calloc realloc strdup strndup write pwrite fwrite fflush fclose fallocate ftruncate fsync fdatasync rename
  FAULT_LDFLAGS := $(foreach f,$(FAULT_WRAP),-Wl,--wrap=$(f))
endif
KN_CFLAGS := -std=c11 $(WARN) $(OPT) -fopenmp $(CFLAGS)
KN_CXXFLAGS := -std=c++17 $(WARN) $(OPT) -fopenmp $(CXXFLAGS)
KN_LDFLAGS := $(OPT) -fopenmp -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) $(FAULT_LDFLAGS) $(LDFLAGS)
KN_LDLIBS := -lfaiss -llapack -lopenblas $(PC_LDLIBS) -lm -lpthread $(LDLIBS)

LIB_CSRC := $(filter-out src/cli/% src/serve/%,$(wildcard src/*/*.c))
LIB_CXXSRC := $(wildcard src/*/*.cpp)
# the command: src/cli/ and the HTTP server of `knnlm serve` (src/serve/, with the viewer page web/index.html)
CLI_SRC := $(wildcard src/cli/*.c) $(wildcard src/serve/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
BENCH_SRC := $(wildcard bench/*.c)

LIB_OBJ := $(LIB_CSRC:%.c=$(BUILD)/%.o) $(LIB_CXXSRC:%.cpp=$(BUILD)/%.o)
# knnlm's main() is in knnlm.c, knnlm-mpi's in mpi_run.c; the rest of the command line is shared.
CLI_OBJ := $(filter-out $(BUILD)/src/cli/mpi_run.o $(BUILD)/src/cli/knnlm.o,$(CLI_SRC:%.c=$(BUILD)/%.o))
# libknnlm.a, for other programs: every library object linked into one (ld -r) whose only global symbols are
# the kn_ functions of src/api/knnlm.h (objcopy --keep-global-symbols), so that nothing of ours clashes with a
# program's own names. The command, the tests and the benchmarks link libknnlm-internal.a, which keeps them all.
LIB := $(BUILD)/libknnlm-internal.a
PUBLIC_LIB := $(BUILD)/libknnlm.a
PUBLIC_OBJ := $(filter-out $(BUILD)/src/util/fault.o,$(LIB_OBJ))
BIN := $(BUILD)/knnlm
# knnlm-mpi, the commands on the ranks of an MPI run (src/cli/mpi_run.c): a binary of its own, built wherever
# Open MPI's development files are (pkg-config ompi-c), so that knnlm itself never needs libmpi to start.
MPI_PC ?= ompi-c
MPI_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(MPI_PC) 2>/dev/null)
MPI_LDLIBS := $(shell $(PKG_CONFIG) --libs $(MPI_PC) 2>/dev/null)
MPI_BIN := $(if $(MPI_LDLIBS),$(BUILD)/knnlm-mpi)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all test tests bench clean install
all: $(BIN) $(MPI_BIN) $(PUBLIC_LIB)

# Objects are rebuilt when the flags change (another ARCH, CFLAGS...), not only when a source does.
FLAGS_STAMP := $(BUILD)/flags.txt
FLAGS_NOW := $(CC) $(CXX) $(KN_CPPFLAGS) $(KN_CFLAGS) $(KN_CXXFLAGS)
$(shell mkdir -p $(BUILD) && echo '$(FLAGS_NOW)' | cmp -s - $(FLAGS_STAMP) || echo '$(FLAGS_NOW)' > $(FLAGS_STAMP))

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(KN_CPPFLAGS) $(KN_CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cpp $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(KN_CPPFLAGS) $(KN_CXXFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(PUBLIC_LIB): $(PUBLIC_OBJ) src/api/knnlm.h Makefile
	sed -n 's/^[a-z].*[ *]\(kn_[a-z_]*\)(.*/\1/p' src/api/knnlm.h >$(BUILD)/knnlm.syms
	ld -r -o $(BUILD)/knnlm-public.o $(PUBLIC_OBJ)
	@# weak symbols stay as they are: C++ inline functions and DW.ref personality data that Faiss shares, which
	@# the linker merges and which cannot clash
	nm $(BUILD)/knnlm-public.o | awk '$$2 ~ /^[VWu]$$/ {print $$3}' >>$(BUILD)/knnlm.syms
	objcopy --keep-global-symbols=$(BUILD)/knnlm.syms $(BUILD)/knnlm-public.o
	rm -f $@
	ar rcs $@ $(BUILD)/knnlm-public.o

# a program of its own: the public archive and header only (and no fault-injection wrappers)
$(BUILD)/tests/test_public_api: $(BUILD)/tests/test_public_api.o $(PUBLIC_LIB)
	$(CXX) $(OPT) -fopenmp -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) $(LDFLAGS) $< $(PUBLIC_LIB) $(KN_LDLIBS) -o $@

$(BIN): $(CLI_OBJ) $(BUILD)/src/cli/knnlm.o $(LIB)
	$(CXX) $(KN_LDFLAGS) $(CLI_OBJ) $(BUILD)/src/cli/knnlm.o $(LIB) $(KN_LDLIBS) $(MHD_LDLIBS) -o $@

# the page is included by the assembler (.incbin), which -MMD does not see
$(BUILD)/src/serve/viewer_page.o: web/index.html

$(BUILD)/src/cli/mpi_run.o: src/cli/mpi_run.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(KN_CPPFLAGS) $(MPI_CFLAGS) $(KN_CFLAGS) -c $< -o $@

$(BUILD)/knnlm-mpi: $(CLI_OBJ) $(BUILD)/src/cli/mpi_run.o $(LIB)
	$(CXX) $(KN_LDFLAGS) $(CLI_OBJ) $(BUILD)/src/cli/mpi_run.o $(LIB) $(MPI_LDLIBS) $(KN_LDLIBS) $(MHD_LDLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIB)
	$(CXX) $(KN_LDFLAGS) $< $(LIB) $(KN_LDLIBS) -o $@

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB)
	$(CXX) $(KN_LDFLAGS) $< $(LIB) $(KN_LDLIBS) -o $@

tests: $(TEST_BIN) $(BIN) $(MPI_BIN) $(BUILD)/bench/scale
bench: $(BENCH_BIN) $(BIN)

# make install: the command, the public archive with its one header, a pkg-config file (so that a C program
# builds with `cc prog.c $(pkg-config --cflags --libs knnlm)`) and the man page, made of the commands' own --help
# texts (scripts/gen-man.sh). DESTDIR is prepended to every path but not written into knnlm.pc.
PREFIX ?= /usr/local
DESTDIR ?=
INSTALL_BIN := $(DESTDIR)$(PREFIX)/bin
INSTALL_LIB := $(DESTDIR)$(PREFIX)/lib
INSTALL_INC := $(DESTDIR)$(PREFIX)/include
INSTALL_MAN := $(DESTDIR)$(PREFIX)/share/man/man1
KNNLM_VERSION := $(shell sed -n 's/^\#define KNNLM_VERSION "\(.*\)"/\1/p' src/util/version.h)

$(BUILD)/knnlm.pc: Makefile src/util/version.h
	@mkdir -p $(dir $@)
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' 'includedir=$${prefix}/include' '' \
	    'Name: knnlm' 'Description: Ko-kNN-LM: a nearest-neighbour language model on Korean GPT-2 models' \
	    'Version: $(KNNLM_VERSION)' 'Cflags: -I$${includedir}' \
	    'Libs: -L$${libdir} -lknnlm -fopenmp -lfaiss -llapack -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) -lopenblas $(PC_LDLIBS) -lstdc++ -lm -lpthread' >$@

$(BUILD)/knnlm.1: $(BIN) scripts/gen-man.sh scripts/knnlm-commands.sh
	scripts/gen-man.sh $(BIN) >$@.tmp && mv $@.tmp $@

install: $(BIN) $(MPI_BIN) $(PUBLIC_LIB) $(BUILD)/knnlm.pc $(BUILD)/knnlm.1
	install -d $(INSTALL_BIN) $(INSTALL_LIB)/pkgconfig $(INSTALL_INC) $(INSTALL_MAN)
	install -m 755 $(BIN) $(INSTALL_BIN)/knnlm
	$(if $(MPI_BIN),install -m 755 $(MPI_BIN) $(INSTALL_BIN)/knnlm-mpi)
	install -m 644 $(PUBLIC_LIB) $(INSTALL_LIB)/libknnlm.a
	install -m 644 src/api/knnlm.h $(INSTALL_INC)/knnlm.h
	install -m 644 $(BUILD)/knnlm.pc $(INSTALL_LIB)/pkgconfig/knnlm.pc
	install -m 644 $(BUILD)/knnlm.1 $(INSTALL_MAN)/knnlm.1
	@echo "installed $(INSTALL_BIN)/knnlm (and libknnlm.a, knnlm.h, knnlm.pc, knnlm.1 under $(DESTDIR)$(PREFIX))"

# The whole suite, under ASan + UBSan. tests/run.sh runs each test binary and each CLI script and
# prints a summary; it fails if any of them fails. The one long end-to-end check (the reference slice:
# 600,000 token-forwards and 30,000 exact searches over 300,000 keys) runs the release build, as the
# sanitized build would take six minutes over code the other tests already run sanitized.
test:
	$(MAKE) MODE=asan tests
	$(MAKE) MODE=release all
	tests/run.sh build/asan
	$(MAKE) fuzz
	fuzz/run.sh 3

# Fuzzing: one libFuzzer harness per parser of outside data (fuzz/fuzz_*.c, fuzz/README.md), built with clang
# into build/fuzz/. Only the C sources the parsers need are compiled (instrumented, with ASan + UBSan); Faiss,
# BLAS and OpenMP stay out. fuzz/run.sh runs each harness for a bounded time from its seed corpus.
FUZZ_CC ?= clang
FUZZ_DIR := build/fuzz
FUZZ_FLAGS := -std=c11 $(WARN) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
              -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
FUZZ_LIB_SRC := src/util/error.c src/util/file.c src/util/half.c src/util/hash.c src/util/npy.c \
                src/model/config.c src/model/pickle.c src/model/safetensors.c src/model/tensorfile.c \
                src/model/torchckpt.c src/model/torchlegacy.c src/model/torchzip.c \
                src/tokenizer/bpe.c src/tokenizer/nfkc.c src/tokenizer/tokenizer.c src/tokenizer/utf8.c \
                src/dstore/corpus.c src/dstore/manifest.c src/index/index_meta.c
FUZZ_LIB_OBJ := $(FUZZ_LIB_SRC:%.c=$(FUZZ_DIR)/%.o)
FUZZ_BIN := $(patsubst fuzz/%.c,$(FUZZ_DIR)/%,$(wildcard fuzz/fuzz_*.c))

.PHONY: fuzz
.SECONDARY: $(FUZZ_LIB_OBJ)
fuzz: $(FUZZ_BIN)

$(FUZZ_DIR)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(KN_CPPFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(KN_CPPFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer $< $(FUZZ_LIB_OBJ) -lcjson -lutf8proc -lxxhash -lz -lm -o $@

-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_BIN:=.d)

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CLI_SRC:%.c=$(BUILD)/%.d) $(TEST_BIN:=.d) $(BENCH_BIN:=.d)
