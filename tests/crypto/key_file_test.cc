#include "crypto/key_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "crypto/crypto.h"
#include "crypto/temp_dir.h"

namespace phigate::crypto {
namespace {

using ::testing::HasSubstr;

class KeyFileTest : public ::testing::Test {
 protected:
  // Writes `contents` with exactly `mode`, bypassing the code under test.
  std::string Plant(const std::string& name, const std::string& contents, mode_t mode) {
    std::string path = dir_.File(name);
    std::ofstream(path, std::ios::binary) << contents;
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }

  static mode_t Mode(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0);
    return st.st_mode & 07777;
  }

  phigate::testing::TempDir dir_;
};

TEST_F(KeyFileTest, GroupReadableFileIsRefusedNamingThePath) {
  std::string path = Plant("kek", std::string(32, 'k'), 0644);
  Status status = CheckSecretFile(path);
  EXPECT_EQ(status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(status.message(),
            path + ": permissions too open (must not be readable by group or others; chmod 600)");
  Result<std::string> kek = LoadKek(path);
  ASSERT_FALSE(kek.ok());
  EXPECT_EQ(kek.status().code(), StatusCode::kPermissionDenied);
}

TEST_F(KeyFileTest, AnyGroupOrOtherBitIsRefused) {
  for (mode_t mode : {0601, 0610, 0620, 0602, 0640}) {
    std::string path = Plant("kek" + std::to_string(mode), "x", mode);
    EXPECT_EQ(CheckSecretFile(path).code(), StatusCode::kPermissionDenied) << std::oct << mode;
  }
}

TEST_F(KeyFileTest, OwnerOnlyFileIsAccepted) {
  std::string kek(32, '\x5a');
  std::string path = Plant("kek", kek, 0600);
  EXPECT_TRUE(CheckSecretFile(path).ok());
  EXPECT_TRUE(CheckSecretFile(Plant("ro", "x", 0400)).ok());
  Result<std::string> loaded = LoadKek(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(*loaded, kek);
}

TEST_F(KeyFileTest, MissingFileIsNotFoundNamingThePath) {
  std::string path = dir_.File("absent");
  Status status = CheckSecretFile(path);
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_EQ(LoadKek(path).status().code(), StatusCode::kNotFound);
}

TEST_F(KeyFileTest, DirectoryIsRefused) {
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0700), 0);
  EXPECT_EQ(CheckSecretFile(dir_.path()).code(), StatusCode::kInvalidArgument);
}

TEST_F(KeyFileTest, KekOfWrongLengthIsRefusedNamingTheFile) {
  for (size_t size : {0, 16, 31, 33, 64}) {
    std::string path = Plant("kek" + std::to_string(size), std::string(size, 'k'), 0600);
    Result<std::string> kek = LoadKek(path);
    ASSERT_FALSE(kek.ok()) << size;
    EXPECT_EQ(kek.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(kek.status().message(), HasSubstr(path));
  }
}

TEST_F(KeyFileTest, CreateKekWritesThirtyTwoRandomBytesWithMode0600) {
  std::string a = dir_.File("a"), b = dir_.File("b");
  ASSERT_TRUE(CreateKek(a).ok());
  ASSERT_TRUE(CreateKek(b).ok());
  EXPECT_EQ(Mode(a), 0600u);
  Result<std::string> ka = LoadKek(a), kb = LoadKek(b);
  ASSERT_TRUE(ka.ok() && kb.ok());
  EXPECT_EQ(ka->size(), kKeyBytes);
  EXPECT_NE(*ka, *kb);
}

TEST_F(KeyFileTest, WriteSecretFileNeverOverwrites) {
  std::string path = dir_.File("secret");
  ASSERT_TRUE(WriteSecretFile(path, "first").ok());
  Status again = WriteSecretFile(path, "second");
  EXPECT_EQ(again.code(), StatusCode::kConflict);
  EXPECT_THAT(again.message(), HasSubstr(path));
  Result<std::string> read = ReadSecretFile(path);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, "first");
  EXPECT_EQ(CreateKek(path).code(), StatusCode::kConflict);
}

TEST_F(KeyFileTest, WriteSecretFileIgnoresPermissiveUmask) {
  mode_t old = ::umask(0);
  Status status = WriteSecretFile(dir_.File("secret"), "s");
  ::umask(old);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(Mode(dir_.File("secret")), 0600u);
}

}  // namespace
}  // namespace phigate::crypto
