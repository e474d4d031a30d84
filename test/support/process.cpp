// posix_spawn-based process helpers.
#include "process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace offerd::test {

namespace {
std::vector<char*> c_argv(const std::vector<std::string>& argv) {
    std::vector<char*> out;
    for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
    out.push_back(nullptr);
    return out;
}

// Waits for pid up to limit; SIGKILLs it after that. Returns the exit code or -1.
int wait_bounded(pid_t pid, std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
        int status = 0;
        const pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (r < 0) return -1;
        if (std::chrono::steady_clock::now() >= until) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}
}  // namespace

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string temp_path(const std::string& stem) {
    std::string pattern = "/tmp/offerd-" + stem + "-XXXXXX";
    const int fd = mkstemp(pattern.data());
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    close(fd);
    return pattern;
}

run_output run_process(const std::vector<std::string>& argv, std::chrono::milliseconds limit) {
    const std::string out_path = temp_path("out"), err_path = temp_path("err");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_TRUNC, 0600);
    pid_t pid = -1;
    auto args = c_argv(argv);
    const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot spawn " + argv[0]);
    run_output r;
    r.exit_code = wait_bounded(pid, limit);
    r.out = read_file(out_path);
    r.err = read_file(err_path);
    unlink(out_path.c_str());
    unlink(err_path.c_str());
    return r;
}

child_process::child_process(const std::vector<std::string>& argv) : err_path_(temp_path("child-err")) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addopen(&actions, 2, err_path_.c_str(), O_WRONLY | O_TRUNC, 0600);
    auto args = c_argv(argv);
    const int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    out_fd_ = fds[0];
    if (rc != 0) throw std::runtime_error("cannot spawn " + argv[0]);
}

child_process::~child_process() {
    if (pid_ > 0) stop(SIGKILL, std::chrono::milliseconds(2000));
    if (out_fd_ >= 0) close(out_fd_);
    unlink(err_path_.c_str());
}

std::optional<std::string> child_process::read_line(std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
        if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
            std::string line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            return line;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        if (left.count() <= 0) return std::nullopt;
        pollfd p{out_fd_, POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
        char buf[4096];
        const ssize_t n = read(out_fd_, buf, sizeof buf);
        if (n <= 0) return std::nullopt;
        buffer_.append(buf, static_cast<std::size_t>(n));
    }
}

int child_process::stop(int sig, std::chrono::milliseconds limit) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    const int code = wait_bounded(pid_, limit);
    pid_ = -1;
    return code;
}

void child_process::signal(int sig) const {
    if (pid_ > 0) kill(pid_, sig);
}

std::string child_process::err() const { return read_file(err_path_); }

std::map<std::string, std::string> listening_urls(child_process& child, std::size_t count, std::chrono::milliseconds limit) {
    std::map<std::string, std::string> urls;
    constexpr std::string_view prefix = "offerd: ", middle = " listening on ";
    while (urls.size() < count) {
        const auto line = child.read_line(limit);
        if (!line) throw std::runtime_error("offerd printed " + std::to_string(urls.size()) + " of " + std::to_string(count) + " listening lines");
        const std::size_t at = line->find(middle);
        if (!line->starts_with(prefix) || at == std::string::npos) continue;
        urls[line->substr(prefix.size(), at - prefix.size())] = line->substr(at + middle.size());
    }
    return urls;
}

}  // namespace offerd::test
