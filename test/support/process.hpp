// Running the real offerd binary from tests: one-shot runs and a long-running child.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace offerd::test {

struct run_output {
    int exit_code = -1;  // -1: killed after the time limit
    std::string out;
    std::string err;
};

// Runs argv to completion (killed after `limit`), capturing stdout and stderr.
run_output run_process(const std::vector<std::string>& argv, std::chrono::milliseconds limit);

// A background child with stdout on a pipe (stderr to a file, readable via err()).
class child_process {
public:
    explicit child_process(const std::vector<std::string>& argv);
    ~child_process();  // SIGKILL if still running
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    // Next stdout line, or nullopt on EOF or after `limit`.
    std::optional<std::string> read_line(std::chrono::milliseconds limit);
    // Sends sig and waits up to `limit`; the exit code, or -1 when it had to be killed.
    int stop(int sig, std::chrono::milliseconds limit);
    // Sends sig without waiting.
    void signal(int sig) const;
    std::string err() const;

private:
    pid_t pid_ = -1;
    int out_fd_ = -1;
    std::string buffer_;
    std::string err_path_;
};

std::string temp_path(const std::string& stem);

// A whole file's bytes; empty when it is missing or unreadable.
std::string read_file(const std::string& path);

// The `offerd: ROLE listening on URL` lines an offerd serve child prints at start, as role -> URL,
// once `count` were read; throws std::runtime_error when stdout ends or stalls for `limit` first.
std::map<std::string, std::string> listening_urls(child_process& child, std::size_t count,
                                                  std::chrono::milliseconds limit = std::chrono::seconds(10));

}  // namespace offerd::test
