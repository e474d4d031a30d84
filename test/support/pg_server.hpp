// A PostgreSQL server of a test's own: scripts/pg.sh in a temporary directory, on a free port
// below 32768, stopped by its PID.
#pragma once

#include <cstdint>
#include <string>

namespace offerd::test {

// A port nothing listens on (bind-tested on 127.0.0.1), picked from 20000..31999 at random.
std::uint16_t free_port_below_32768();

// Starts the server in the constructor. When PostgreSQL's server binaries are missing and
// cannot be installed, available() is false and why() says so: Catch2 2.13 has no SKIP, so a
// test then does `if (!srv.available()) { WARN(srv.why()); return; }`. Any other start-up failure
// throws std::runtime_error with the script's message. The destructor shuts the server down
// (immediate: SIGQUIT to its PID, waiting for it) and removes the directory.
class pg_server {
public:
    pg_server();
    ~pg_server();
    pg_server(const pg_server&) = delete;
    pg_server& operator=(const pg_server&) = delete;

    bool available() const noexcept { return available_; }
    const std::string& why() const noexcept { return why_; }
    // postgresql://offerd@127.0.0.1:PORT/offerd (trust authentication, database offerd).
    const std::string& url() const noexcept { return url_; }
    std::uint16_t port() const noexcept { return port_; }

    // pg.sh stop: a fast shutdown (SIGINT), returning when the server has exited.
    void stop();
    // pg.sh start again, same directory and port. Throws when it does not come up.
    void start();

private:
    bool launch();  // false: the port was taken (or the server did not come up): try another

    std::string dir_;
    std::uint16_t port_ = 0;
    std::string url_;
    bool available_ = false;
    bool running_ = false;
    std::string why_;
};

}  // namespace offerd::test
