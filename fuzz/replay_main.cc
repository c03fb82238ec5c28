// Replays fuzz inputs without libFuzzer, so that every build (g++ included) can run the
// committed corpora as ordinary ctest tests.
//
// Usage: <target>_fuzz_replay PATH...
// Each PATH is a file or a directory; every regular file of a directory (not recursive)
// is passed once to LLVMFuzzerTestOneInput, in name order so that runs are reproducible.
// A missing path or an empty directory fails the run: a replay test that silently checks
// nothing could never fail. A crashing input aborts the process, and its name was printed
// just before, so the failure names the file.
// Thread-safety: single-threaded program.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

bool RunFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return false;
  }
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  std::fprintf(stderr, "running %s (%zu bytes)\n", path.c_str(), bytes.size());
  // A fresh heap copy of exactly `size` bytes, so ASan flags any read past the end just as
  // libFuzzer's own buffer would (an empty input still gets a distinct, zero-sized block).
  const auto copy = std::make_unique<uint8_t[]>(bytes.size());
  std::copy(bytes.begin(), bytes.end(), copy.get());
  LLVMFuzzerTestOneInput(copy.get(), bytes.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE_OR_DIRECTORY...\n", argv[0]);
    return 2;
  }
  size_t inputs = 0;
  for (int i = 1; i < argc; ++i) {
    const fs::path arg = argv[i];
    std::error_code ec;
    if (fs::is_regular_file(arg, ec)) {
      if (!RunFile(arg)) return 1;
      ++inputs;
      continue;
    }
    if (!fs::is_directory(arg, ec)) {
      std::fprintf(stderr, "no such file or directory: %s\n", arg.c_str());
      return 1;
    }
    std::vector<fs::path> files;
    for (const fs::directory_entry& entry : fs::directory_iterator(arg, ec)) {
      if (entry.is_regular_file(ec)) files.push_back(entry.path());
    }
    if (ec) {
      std::fprintf(stderr, "cannot list %s: %s\n", arg.c_str(), ec.message().c_str());
      return 1;
    }
    if (files.empty()) {
      std::fprintf(stderr, "no inputs in %s\n", arg.c_str());
      return 1;
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      if (!RunFile(file)) return 1;
      ++inputs;
    }
  }
  std::fprintf(stderr, "%zu inputs replayed without a crash\n", inputs);
  return 0;
}
