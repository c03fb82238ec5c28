#include "crypto/key_file.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include "core/base64.h"
#include "crypto/crypto.h"

namespace phigate::crypto {

namespace {

// Secret files are a few hundred bytes; the cap keeps a misconfigured path from making us
// read something huge into memory.
constexpr off_t kMaxSecretFileBytes = 1 << 20;

std::string Errno(const std::string& path, const char* action) {
  return path + ": cannot " + action + ": " + std::generic_category().message(errno);
}

Status CheckStat(const std::string& path, const struct stat& st) {
  if (!S_ISREG(st.st_mode)) return InvalidArgument(path + ": not a regular file");
  if ((st.st_mode & 077) != 0) {
    return {StatusCode::kPermissionDenied,
            path + ": permissions too open (must not be readable by group or others; chmod 600)"};
  }
  if (st.st_size > kMaxSecretFileBytes) return InvalidArgument(path + ": file too large");
  return Status::Ok();
}

// Closes on every path out of the function.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closing can report a deferred write error, so writers close explicitly and check.
  int Close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// A new file's directory entry is durable only once the directory itself is fsynced; losing
// a freshly created key-encryption key in a crash would make every stored row unreadable.
void SyncParentDirectory(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  Fd fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() >= 0) ::fsync(fd.get());
}

}  // namespace

Status CheckSecretFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return NotFound(path + ": no such file");
    return Internal(Errno(path, "stat"));
  }
  return CheckStat(path, st);
}

Result<std::string> ReadSecretFile(const std::string& path) {
  // The path check comes first so that opening never blocks on a FIFO; the descriptor is
  // checked again in case the file was swapped in between.
  RETURN_IF_ERROR(CheckSecretFile(path));
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) return Internal(Errno(path, "open"));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Internal(Errno(path, "stat"));
  RETURN_IF_ERROR(CheckStat(path, st));

  std::string out;
  // Reserved up front so that growing the buffer leaves no stray copies of the secret.
  out.reserve(static_cast<size_t>(st.st_size) + 1);
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Internal(Errno(path, "read"));
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > static_cast<size_t>(kMaxSecretFileBytes)) {
      return InvalidArgument(path + ": file too large");
    }
  }
  OPENSSL_cleanse(buf, sizeof buf);
  return out;
}

Status WriteSecretFile(const std::string& path, const std::string& contents) {
  // Written under a private temporary name and then linked into place: link(2) fails if
  // `path` exists (never overwrites), and another process (a concurrent first start, or
  // the CLI) sees either no file or the complete one, never a half-written secret.
  if (::access(path.c_str(), F_OK) == 0) return {StatusCode::kConflict, path + ": already exists"};
  const std::string temp = path + ".tmp-" + HexEncode(RandomBytes(8));
  Fd fd(::open(temp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
  if (fd.get() < 0) return Internal(Errno(path, "create"));
  std::string error;
  // The umask can only clear bits; setting the mode makes the owner's access certain too.
  if (::fchmod(fd.get(), 0600) != 0) {
    error = Errno(path, "chmod");
  } else if (!WriteAll(fd.get(), contents)) {
    error = Errno(path, "write");
  } else if (::fsync(fd.get()) != 0) {
    error = Errno(path, "fsync");
  }
  if (fd.Close() != 0 && error.empty()) error = Errno(path, "close");
  if (error.empty() && ::link(temp.c_str(), path.c_str()) != 0) {
    const int link_errno = errno;
    ::unlink(temp.c_str());
    if (link_errno == EEXIST) return {StatusCode::kConflict, path + ": already exists"};
    errno = link_errno;
    return Internal(Errno(path, "link"));
  }
  ::unlink(temp.c_str());
  if (!error.empty()) return Internal(error);
  SyncParentDirectory(path);
  return Status::Ok();
}

Result<std::string> LoadKek(const std::string& path) {
  ASSIGN_OR_RETURN(std::string kek, ReadSecretFile(path));
  if (kek.size() != kKeyBytes) {
    OPENSSL_cleanse(kek.data(), kek.size());
    return InvalidArgument(path + ": key-encryption key must be exactly 32 bytes");
  }
  return kek;
}

Status CreateKek(const std::string& path) {
  std::string kek = RandomBytes(kKeyBytes);
  Status status = WriteSecretFile(path, kek);
  OPENSSL_cleanse(kek.data(), kek.size());
  return status;
}

}  // namespace phigate::crypto
