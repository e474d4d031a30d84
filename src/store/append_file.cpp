// POSIX append-only file.
#include "offerd/store/append_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace offerd {

result<append_file> append_file::open(std::string path) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return fail(errc::internal, "cannot open '" + path + "': " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        return fail(errc::internal, "cannot stat '" + path + "': " + std::strerror(e));
    }
    return append_file(std::move(path), fd, static_cast<std::uint64_t>(st.st_size));
}

append_file::append_file(append_file&& o) noexcept
    : path_(std::move(o.path_)), fd_(std::exchange(o.fd_, -1)), size_(o.size_), torn_(o.torn_) {}

append_file& append_file::operator=(append_file&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) ::close(fd_);
        path_ = std::move(o.path_);
        fd_ = std::exchange(o.fd_, -1);
        size_ = o.size_;
        torn_ = o.torn_;
    }
    return *this;
}

append_file::~append_file() {
    if (fd_ >= 0) ::close(fd_);
}

failure append_file::error(const char* what) const {
    return fail(errc::internal, std::string(what) + " '" + path_ + "' failed: " + std::strerror(errno));
}

result<std::monostate> append_file::append(std::string_view bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            failure f = error("write to");
            // Cut the partial record off so the next one does not start glued to it.
            if (done > 0 && ::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
                torn_ = true;
                f.detail += " (and the partial write could not be cut off)";
            }
            return f;
        }
        done += static_cast<std::size_t>(n);
    }
    size_ += bytes.size();
    return std::monostate{};
}

result<std::monostate> append_file::sync() {
    if (::fdatasync(fd_) != 0) return error("fdatasync of");
    return std::monostate{};
}

result<std::monostate> append_file::truncate(std::uint64_t size) {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return error("truncate of");
    size_ = size;
    return std::monostate{};
}

}  // namespace offerd
