// POSIX append-only file.
#include "offerd/app/append_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace offerd {

append_file::append_file(std::string path, bool fsync_each) : path_(std::move(path)), fsync_(fsync_each) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::runtime_error("cannot open '" + path_ + "': " + std::strerror(errno));
}

append_file::~append_file() {
    if (fd_ >= 0) ::close(fd_);
}

void append_file::append(std::string_view bytes) {
    const off_t before = ::lseek(fd_, 0, SEEK_END);
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const std::string why = std::strerror(errno);
            // Cut the partial record off so the next one does not start glued to it.
            if (done > 0 && before >= 0 && ::ftruncate(fd_, before) != 0) {
            }
            throw std::runtime_error("write to '" + path_ + "' failed: " + why);
        }
        done += static_cast<std::size_t>(n);
    }
    if (fsync_ && ::fdatasync(fd_) != 0) throw std::runtime_error("fdatasync of '" + path_ + "' failed: " + std::strerror(errno));
}

void append_file::truncate() {
    if (::ftruncate(fd_, 0) != 0) throw std::runtime_error("truncate of '" + path_ + "' failed: " + std::strerror(errno));
}

}  // namespace offerd
