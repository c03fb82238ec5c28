# The two commands of the README. Everything else is CMake.
.PHONY: run test setup build build-test clean format

JOBS ?= $(shell nproc)

setup:
	./scripts/setup.sh

build: setup
	cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPHIGATE_BUILD_TESTS=OFF
	cmake --build build -j $(JOBS)

run: build
	./build/phigate serve

build-test: setup
	cmake -S . -B build-test -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPHIGATE_SANITIZE=ON -DPHIGATE_BUILD_TESTS=ON -DPHIGATE_TEST_HOOKS=ON
	cmake --build build-test -j $(JOBS)

test: build-test
	ctest --test-dir build-test --output-on-failure -j $(JOBS)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf build build-test
