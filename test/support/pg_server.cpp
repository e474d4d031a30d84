// scripts/pg.sh driven from tests: start on a free port, stop by PID, remove the directory.
#include "pg_server.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <thread>

#include "process.hpp"

#ifndef OFFERD_SOURCE_DIR
#error "OFFERD_SOURCE_DIR must name the source tree (for scripts/pg.sh)"
#endif

namespace offerd::test {

namespace {

const std::string script = std::string(OFFERD_SOURCE_DIR) + "/scripts/pg.sh";
// One initdb for every test server (a copy is a fraction of initdb's seconds).
const std::string template_dir = "/tmp/offerd-pg-template/cluster";

bool port_free(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

// True while pid is a live process (a zombie that no one reaps counts as gone).
bool alive(pid_t pid) {
    if (::kill(pid, 0) != 0) return false;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    const auto paren = line.rfind(')');
    return paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] != 'Z';
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

}  // namespace

std::uint16_t free_port_below_32768() {
    std::random_device rd;
    const auto start = static_cast<std::uint16_t>(20000 + rd() % 12000);
    for (std::uint16_t i = 0; i < 12000; ++i) {
        const auto p = static_cast<std::uint16_t>(20000 + (start - 20000 + i) % 12000);
        if (port_free(p)) return p;
    }
    throw std::runtime_error("no free port in 20000..31999");
}

pg_server::pg_server() {
    char pattern[] = "/tmp/offerd-pg-XXXXXX";
    if (!::mkdtemp(pattern)) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    for (int attempt = 0; attempt < 3; ++attempt) {
        port_ = free_port_below_32768();
        if (launch() || !why_.empty()) return;
    }
    throw std::runtime_error("PostgreSQL did not start on three ports in " + dir_);
}

bool pg_server::launch() {
    const auto r = run_process({"/usr/bin/env", "OFFERD_PG_TEMPLATE=" + template_dir, "bash", script, "start", dir_,
                                std::to_string(port_)},
                               std::chrono::seconds(110));
    if (r.exit_code == 0) {
        url_ = trim(r.out);
        available_ = running_ = true;
        return true;
    }
    if (r.exit_code == 3) {
        why_ = "SKIPPED: PostgreSQL is not available: " + trim(r.err);
        return false;
    }
    if (r.exit_code == 4) return false;  // most likely the port was taken meanwhile
    throw std::runtime_error("scripts/pg.sh start failed (" + std::to_string(r.exit_code) + "): " + r.err);
}

void pg_server::stop() {
    if (!running_) return;
    const auto r = run_process({"/bin/bash", script, "stop", dir_}, std::chrono::seconds(60));
    running_ = false;
    if (r.exit_code != 0) throw std::runtime_error("scripts/pg.sh stop failed: " + r.err);
}

void pg_server::start() {
    if (running_) return;
    if (!launch()) throw std::runtime_error("PostgreSQL did not start again on port " + std::to_string(port_));
}

pg_server::~pg_server() {
    if (running_) {
        std::ifstream in(dir_ + "/offerd-pg.pid");
        pid_t pid = 0;
        if (in >> pid && pid > 0) {
            // Immediate shutdown: the directory is thrown away, so no shutdown checkpoint.
            ::kill(pid, SIGQUIT);
            const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
            while (alive(pid) && std::chrono::steady_clock::now() < until)
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            if (alive(pid)) ::kill(pid, SIGKILL);
        }
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

}  // namespace offerd::test
