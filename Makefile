# The two commands of README.md, and the benchmarks. A thin layer over CMake:
# each target first installs the Debian packages it needs that are missing
# (scripts/deps.sh), then configures build/ (or build-asan/) and builds.
#
#   make demo    install, build, run the tour of every scenario (weft-tour)
#   make test    install, build, run every test (ctest)
#   make asan    the test suite again under AddressSanitizer + UBSan
#   make bench   the side-by-side benchmarks (tests/bench/run)
#   make format  reformat the tree with clang-format
#   make package the .deb and .rpm packages, in build-pkg/ (docs/packaging.md)

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
CMAKE_FLAGS ?=
CTEST_FLAGS ?=

.PHONY: all deps build demo test asan bench format package clean

all: build

deps:
	scripts/deps.sh test

# Configuring every time is cheap (about a second) and keeps the options of
# the target that asked right: demo needs no CUnit, test builds the suites.
build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

demo:
	scripts/deps.sh build
	$(MAKE) --no-print-directory build CMAKE_FLAGS="$(CMAKE_FLAGS) -DWEFT_BUILD_TESTS=OFF -DWEFT_BUILD_BENCH=OFF"
	$(BUILD)/apps/weft-tour

test:
	scripts/deps.sh test
	$(MAKE) --no-print-directory build CMAKE_FLAGS="$(CMAKE_FLAGS) -DWEFT_BUILD_TESTS=ON"
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_FLAGS)

asan:
	scripts/deps.sh test
	$(MAKE) --no-print-directory test BUILD=build-asan CMAKE_FLAGS="-DWEFT_ASAN=ON -DWEFT_BUILD_BENCH=OFF"

bench:
	scripts/deps.sh bench
	$(MAKE) --no-print-directory build CMAKE_FLAGS="$(CMAKE_FLAGS) -DWEFT_BUILD_BENCH=ON -DWEFT_BUILD_TESTS=OFF"
	tests/bench/run $(BUILD)

# Each format from its own build with prefix /usr: the .debs with the
# multiarch libdir Debian uses (lib/x86_64-linux-gnu), the .rpms with lib64,
# as Fedora and SUSE use. cpack leaves the packages in build-pkg/.
PKG_FLAGS = -DCMAKE_INSTALL_PREFIX=/usr -DWEFT_BUILD_TESTS=OFF -DWEFT_BUILD_BENCH=OFF
package:
	scripts/deps.sh test
	$(MAKE) --no-print-directory build BUILD=build-pkg/deb CMAKE_FLAGS="$(CMAKE_FLAGS) $(PKG_FLAGS)"
	$(MAKE) --no-print-directory build BUILD=build-pkg/rpm CMAKE_FLAGS="$(CMAKE_FLAGS) $(PKG_FLAGS) -DCMAKE_INSTALL_LIBDIR=lib64"
	cd build-pkg/deb && cpack -G DEB -B $(CURDIR)/build-pkg
	cd build-pkg/rpm && cpack -G RPM -B $(CURDIR)/build-pkg
	@ls -1 build-pkg/*.deb build-pkg/*.rpm

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan
