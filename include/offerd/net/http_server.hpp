// A Beast HTTP/1.1 listener: accepts on one thread, serves each connection on one worker
// io_context (round-robin, or the worker of an in-process client: see loopback_affinity), every
// read/write bounded by the limits, handlers via a router.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "offerd/net/router.hpp"
#include "offerd/net/tls.hpp"
#include "offerd/net/worker.hpp"

namespace offerd {

class logger;

struct server_limits {
    std::size_t max_header_bytes = 8 * 1024;    // larger headers: 431
    std::size_t max_body_bytes = 64 * 1024;     // larger bodies: 413
    std::chrono::milliseconds idle_timeout{30'000};    // keep-alive wait for the next request
    std::chrono::milliseconds header_timeout{10'000};  // accept (or a later request's first byte) to end of headers
    std::chrono::milliseconds body_timeout{10'000};    // end of headers to end of body
    std::chrono::milliseconds write_timeout{10'000};
    std::chrono::milliseconds drain_timeout{1'000};    // reading leftovers after an error answer
    std::size_t max_connections = 10'000;       // beyond: answered 503 + Retry-After and closed
    // A handler's carry (request_context::carry) waits this long for the next request's first
    // bytes; then it is dropped (the offer route: a slot reserved for a connection it served).
    std::chrono::milliseconds carry_hold{10};
};

class http_server {
public:
    // Binds and listens at once, so port 0 works and port() is known before start().
    // Throws std::runtime_error "cannot listen on HOST:PORT: REASON" when it cannot.
    // With the workers' affinity table, a loopback connection from a port one of this process's
    // clients claimed is served on that client's worker instead of the next one in turn.
    // With tls (make_server_tls_context) every connection is HTTPS: the handshake counts against
    // the header timeout; a failed one is counted, logged and closed, plain HTTP answered 400.
    http_server(std::string name, worker_set workers, const std::string& host, std::uint16_t port,
                std::shared_ptr<const router> routes, const server_limits& limits, logger& log,
                std::shared_ptr<tls_context> tls = nullptr);
    ~http_server();
    http_server(const http_server&) = delete;
    http_server& operator=(const http_server&) = delete;

    std::uint16_t port() const noexcept;
    const std::string& name() const noexcept;
    void start();
    // Stops accepting and closes connections that are idle between requests; connections with a
    // request in progress finish it and then close. Thread-safe.
    void stop();
    std::size_t open_connections() const noexcept;
    std::size_t accepted_connections() const noexcept;
    bool tls() const noexcept;
    std::uint64_t tls_handshake_failures() const noexcept;  // since start, whatever the cause

    struct state;

private:
    std::shared_ptr<state> state_;
};

}  // namespace offerd
