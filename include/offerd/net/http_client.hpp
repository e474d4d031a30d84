// A keep-alive HTTP/1.1 client for one upstream. Each instance belongs to one worker io_context
// and must only be used from that thread: the pool needs no lock.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <atomic>
#include <boost/beast/http/verb.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "offerd/domain/deadline.hpp"
#include "offerd/net/http.hpp"
#include "offerd/net/url.hpp"
#include "offerd/net/worker.hpp"

namespace offerd {

struct client_limits {
    std::chrono::milliseconds timeout{2'000};  // per call: connect + write + read
    // Idle keep-alive connections kept. At or above a thread's usual concurrency to one upstream:
    // a connection returned to a full pool is closed, the next call connects afresh, and under
    // overload that churn (the kernel searching ephemeral ports among ~17k sockets in TIME-WAIT)
    // cost goodput at 1024 connections with 64 (measured 2026-12-04, glibc: 10.6-10.7k against
    // 12.1-12.4k offers/s with 256). The pool only holds what was in flight at once, so a quiet
    // service keeps few.
    std::size_t max_idle = 256;
    std::chrono::milliseconds max_idle_age{15'000};  // older idle connections are dropped (servers close idle ones)
    std::size_t max_response_bytes = 16u << 20;
    // A connection's read buffer grows to a response's Content-Length up to this, so a long
    // history arrives in a few reads; idle pooled connections keep at most this much.
    std::size_t read_reserve_bytes = 256u << 10;
};

// Connection counts of one upstream's pools, summed over workers (for /metrics).
struct pool_gauges {
    std::atomic<std::int64_t> idle{0};
    std::atomic<std::int64_t> busy{0};
};

struct call_options {
    std::string_view request_id;  // sent as X-Request-ID when not empty
    deadline until;               // the request's budget; also sent as X-Request-Deadline-Ms
    std::string_view idempotency_key;  // sent as Idempotency-Key when not empty
    std::string_view traceparent;      // W3C trace context, sent as traceparent when not empty
};

class http_client {
public:
    // A client of one worker: with the worker's affinity table, connections to a loopback address
    // are bound first and their local port is recorded as belonging to that worker (see
    // loopback_affinity). An https target without a tls_context verifies against the system store
    // (throws std::runtime_error if it cannot load).
    http_client(const worker_context& worker, url target, const client_limits& limits, pool_gauges* gauges = nullptr);
    // A client on any executor, outside the worker set (the streamer, probes, tests): no affinity.
    http_client(asio::any_io_executor ex, url target, const client_limits& limits, pool_gauges* gauges = nullptr);
    ~http_client();
    http_client(const http_client&) = delete;
    http_client& operator=(const http_client&) = delete;

    // Sends one request to target.base_path + path and returns the upstream's response,
    // whatever its status. Bounded by min(limits.timeout, opts.until). Fails with
    // upstream_timeout, upstream_unavailable (refused, reset, unresolvable), upstream_bad_response
    // (unparseable or over max_response_bytes; for https also a certificate the context rejects or
    // a peer that does not speak TLS, its reason in the detail) or deadline_exceeded (no budget
    // left to start).
    // Idle connections older than max_idle_age are not reused. A pooled connection the peer closed
    // while idle is detected and the call is retried once on a fresh connection, only when no
    // byte of a response was received.
    asio::awaitable<result<response>> send(http::verb method, std::string_view path, std::string body,
                                           const call_options& opts);

    const url& target() const noexcept { return target_; }
    std::size_t idle_connections() const noexcept { return idle_.size(); }

private:
    struct connection;
    asio::awaitable<result<std::unique_ptr<connection>>> connect(std::chrono::steady_clock::duration budget);

    asio::any_io_executor ex_;
    url target_;
    std::string host_header_;
    client_limits limits_;
    pool_gauges* gauges_;
    worker_context worker_;  // the worker it belongs to; index 0 and no affinity for a bare executor
    std::vector<asio::ip::tcp::endpoint> endpoints_;  // resolved once, on first use
    std::vector<std::unique_ptr<connection>> idle_;
    std::shared_ptr<boost::asio::ssl::context> tls_;  // https targets: target.tls_context, else the system store's
};

}  // namespace offerd
