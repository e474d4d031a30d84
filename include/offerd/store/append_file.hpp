// An append-only POSIX file: the byte-level floor under store/record_log.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "offerd/domain/errors.hpp"

namespace offerd {

// Not thread-safe: the owner serializes every call. Failures are errc::internal values whose
// detail names the path and the system error; nothing throws.
class append_file {
public:
    // Opens (creating) path for appending; the current end is size().
    static result<append_file> open(std::string path);
    append_file(append_file&& o) noexcept;
    append_file& operator=(append_file&& o) noexcept;
    ~append_file();

    // The whole of bytes, retried on EINTR and short writes. On failure the partial write is cut
    // off again, so the file keeps ending where it ended before the call.
    result<std::monostate> append(std::string_view bytes);
    // fdatasync: what was appended survives a power loss once this succeeds.
    result<std::monostate> sync();
    // Cuts the file to `size` bytes (<= size()).
    result<std::monostate> truncate(std::uint64_t size = 0);
    std::uint64_t size() const noexcept { return size_; }
    // True once a failed append could not be cut off: the file may end in a partial record.
    bool torn() const noexcept { return torn_; }
    const std::string& path() const noexcept { return path_; }

private:
    append_file(std::string path, int fd, std::uint64_t size) : path_(std::move(path)), fd_(fd), size_(size) {}
    failure error(const char* what) const;

    std::string path_;
    int fd_ = -1;
    std::uint64_t size_ = 0;
    bool torn_ = false;
};

}  // namespace offerd
