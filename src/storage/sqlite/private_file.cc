#include "storage/sqlite/private_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "core/log.h"

namespace phigate::storage::sqlite {
namespace {

constexpr mode_t kOwnerReadWrite = S_IRUSR | S_IWUSR;
constexpr mode_t kGroupOtherBits = S_IRWXG | S_IRWXO;

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

Status FileError(std::string_view event, int error) {
  Log(LogLevel::kError, event, {{"errno", error}});
  return Unavailable("storage unavailable");
}

Status Refuse(std::string_view event) {
  Log(LogLevel::kError, event);
  return Internal("storage configuration failed");
}

// A newly created directory entry is only durable once the directory itself is fsync'd.
Status SyncParentDirectory(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) parent = ".";
  FileDescriptor dir(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) return FileError("storage.db_dir_open_failed", errno);
  if (::fsync(dir.get()) != 0) return FileError("storage.db_dir_fsync_failed", errno);
  return Status::Ok();
}

// By path, without opening the file (see the header). lstat refuses a symlink; the window
// between lstat and chmod could at worst let a swapped-in symlink make its target 0600
// (only ever tightening), and SQLite then opens the path with SQLITE_OPEN_NOFOLLOW.
Status RestrictExisting(const std::string& path, bool must_exist) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT && !must_exist) return Status::Ok();
    return FileError("storage.db_stat_failed", errno);
  }
  if (S_ISLNK(st.st_mode)) return Refuse("storage.db_is_symlink");
  if (!S_ISREG(st.st_mode)) return Refuse("storage.db_not_regular_file");
  if ((st.st_mode & kGroupOtherBits) != 0 && ::chmod(path.c_str(), kOwnerReadWrite) != 0) {
    return FileError("storage.db_chmod_failed", errno);
  }
  return Status::Ok();
}

}  // namespace

Status EnsurePrivateFile(const std::string& path) {
  // O_EXCL: only a file this call creates is ever opened here, and no SQLite handle in this
  // process can hold locks on a file that did not exist, so closing it drops nothing. (With
  // O_EXCL a symlink at `path` fails with EEXIST and is refused below.) The mode is filtered
  // by umask, which only removes bits, so the file is at most 0600; changing the
  // process-wide umask instead would race with other threads creating files.
  int fd =
      ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, kOwnerReadWrite);
  if (fd < 0) {
    if (errno != EEXIST) return FileError("storage.db_create_failed", errno);
    return RestrictExisting(path, /*must_exist=*/true);
  }
  FileDescriptor file(fd);
  if (::fsync(file.get()) != 0) return FileError("storage.db_fsync_failed", errno);
  return SyncParentDirectory(path);
}

Status RestrictIfExists(const std::string& path) {
  return RestrictExisting(path, /*must_exist=*/false);
}

}  // namespace phigate::storage::sqlite
