// An append-only file for durable records (outbox, member-data journal).
#pragma once

#include <string>
#include <string_view>

namespace offerd {

// Not thread-safe: callers serialize. Throws std::runtime_error naming the path on failure.
class append_file {
public:
    append_file(std::string path, bool fsync_each);
    ~append_file();
    append_file(const append_file&) = delete;
    append_file& operator=(const append_file&) = delete;

    // Whole write, retried on EINTR, then fdatasync if asked. On failure a partial record is cut
    // off again, so the file holds only whole records.
    void append(std::string_view bytes);
    void truncate();
    const std::string& path() const noexcept { return path_; }

private:
    std::string path_;
    bool fsync_;
    int fd_ = -1;
};

}  // namespace offerd
