#include "audit/fault_directory.h"

#include <chrono>
#include <fstream>
#include <thread>

namespace phigate::audit {

namespace {

std::string Command(const std::string& control_file) {
  std::ifstream in(control_file);
  std::string word;
  if (in) in >> word;
  return word;
}

class FaultSegment final : public SegmentFile {
 public:
  FaultSegment(std::unique_ptr<SegmentFile> real, const std::string& control)
      : real_(std::move(real)), control_(control) {}

  Status Append(std::string_view bytes) override {
    RETURN_IF_ERROR(Gate("write"));
    return real_->Append(bytes);
  }
  Status Sync() override {
    RETURN_IF_ERROR(Gate("fsync"));
    return real_->Sync();
  }
  Status Truncate(int64_t size) override { return real_->Truncate(size); }
  int64_t Size() const override { return real_->Size(); }

 private:
  // Fails when the control file names `op`; waits while it says "stall".
  Status Gate(std::string_view op) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
      const std::string command = Command(control_);
      if (command == op) return Unavailable("injected " + std::string(op) + " failure");
      if (command != "stall" || std::chrono::steady_clock::now() > give_up) return Status::Ok();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::unique_ptr<SegmentFile> real_;
  const std::string control_;
};

class Faulty final : public Directory {
 public:
  Faulty(std::unique_ptr<Directory> real, std::string control)
      : real_(std::move(real)), control_(std::move(control)) {}

  Result<std::unique_ptr<SegmentFile>> OpenForAppend(const std::string& name) override {
    ASSIGN_OR_RETURN(std::unique_ptr<SegmentFile> file, real_->OpenForAppend(name));
    return std::unique_ptr<SegmentFile>(std::make_unique<FaultSegment>(std::move(file), control_));
  }
  Result<std::vector<std::string>> List() override { return real_->List(); }
  Result<std::string> ReadAll(const std::string& name) override { return real_->ReadAll(name); }
  Status SyncDirectory() override { return real_->SyncDirectory(); }
  Status Lock(int64_t timeout_ms) override { return real_->Lock(timeout_ms); }
  void Unlock() override { real_->Unlock(); }
  bool Exists(const std::string& name) override { return real_->Exists(name); }
  Status Remove(const std::string& name) override { return real_->Remove(name); }

 private:
  std::unique_ptr<Directory> real_;
  const std::string control_;
};

}  // namespace

std::unique_ptr<Directory> FaultDirectory(std::unique_ptr<Directory> real,
                                          std::string control_file) {
  return std::make_unique<Faulty>(std::move(real), std::move(control_file));
}

}  // namespace phigate::audit
