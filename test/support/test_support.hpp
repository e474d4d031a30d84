// Test support: bounded async runs, a blocking HTTP helper, fake upstreams built from a function,
// raw misbehaving TCP peers, and an in-process app on ephemeral ports.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/object.hpp>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "offerd/app/runtime.hpp"
#include "offerd/domain/transaction.hpp"
#include "offerd/net/http.hpp"
#include "offerd/net/http_server.hpp"
#include "offerd/obs/log.hpp"

namespace offerd::test {

using namespace std::chrono_literals;

// Runs an awaitable on its own io_context and returns its value; throws if it does not finish
// within `limit` (so a hung test fails instead of hanging CI).
template <class T>
T run_bounded(asio::awaitable<T> op, std::chrono::milliseconds limit = 10s) {
    asio::io_context ctx;
    auto fut = asio::co_spawn(ctx, std::move(op), asio::use_future);
    ctx.run_for(limit);
    if (fut.wait_for(0s) != std::future_status::ready) throw std::runtime_error("async operation did not finish in time");
    return fut.get();
}

struct http_result {
    unsigned status = 0;         // 0 when the call failed at the transport level
    std::string body;
    std::map<std::string, std::string> headers;
    failure error;               // set when status == 0
    std::chrono::milliseconds elapsed{0};
};

// One HTTP call on a fresh connection, bounded by `timeout`.
http_result http_call(std::uint16_t port, http::verb method, const std::string& target, const std::string& body = {},
                      const std::map<std::string, std::string>& headers = {}, std::chrono::milliseconds timeout = 10s);
inline http_result post(std::uint16_t port, const std::string& target, const std::string& body,
                        const std::map<std::string, std::string>& headers = {}) {
    return http_call(port, http::verb::post, target, body, headers);
}
inline http_result get(std::uint16_t port, const std::string& target) { return http_call(port, http::verb::get, target); }

// Writes raw bytes and reads until the peer closes or `timeout`; returns everything read.
std::string raw_exchange(std::uint16_t port, const std::string& bytes, std::chrono::milliseconds timeout = 5s);

// A fake upstream: an http_server on port 0 whose every request to the services' routes (also
// under /api, for base-path URLs) goes to `fn`, on its own thread.
// Records the requests it saw and the number of connections accepted. `port` 0: an ephemeral one
// (another: e.g. closed_port(), to bring a refusing upstream back).
class fake_upstream {
public:
    using function = std::function<response(const request&)>;
    using async_function = std::function<asio::awaitable<response>(const request&)>;
    // With tls (net/tls.hpp) it serves HTTPS.
    explicit fake_upstream(function fn, const server_limits& limits = {}, std::uint16_t port = 0, std::shared_ptr<tls_context> tls = nullptr);
    explicit fake_upstream(async_function fn, const server_limits& limits = {}, std::uint16_t port = 0,
                           std::shared_ptr<tls_context> tls = nullptr);
    ~fake_upstream();
    std::uint16_t port() const { return server_->port(); }
    std::string url() const { return (server_->tls() ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port()); }
    std::vector<request> requests() const;
    std::size_t request_count() const;
    std::size_t connections() const { return server_->accepted_connections(); }
    asio::io_context& context() { return ctx_; }

private:
    // Declared so that fn_ (which may own I/O objects of ctx_) dies before ctx_.
    logger log_;
    asio::io_context ctx_{1};
    async_function fn_;
    std::unique_ptr<http_server> server_;
    std::thread thread_;
    mutable std::mutex mutex_;
    std::vector<request> seen_;
};

// A TCP peer that misbehaves below HTTP: accepts and never answers (hang), answers bytes that
// are not HTTP (garbage), resets before answering (reset), starts an answer then resets
// (reset_mid_response), or sends a valid answer one byte every 50 ms (trickle).
class raw_peer {
public:
    enum class mode { hang, garbage, reset, reset_mid_response, trickle };
    explicit raw_peer(mode m);
    ~raw_peer();
    std::uint16_t port() const { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

private:
    asio::io_context ctx_{1};
    asio::ip::tcp::acceptor acceptor_;
    std::vector<std::shared_ptr<asio::ip::tcp::socket>> held_;
    std::thread thread_;
    std::uint16_t port_ = 0;
};

// For a fake upstream standing in front of a real listener: sends `req` (its method, body and
// Idempotency-Key) to `target` on `port` and answers what that listener answered.
response relay(std::uint16_t port, const request& req, const std::string& target);

// A port nobody listens on (bound then released).
std::uint16_t closed_port();

// The value of the sample `series` (a metric name with its labels, if any, exactly as exposed) in
// a Prometheus text scrape; -1 when absent.
double metric_sample(const std::string& scrape, const std::string& series);

// The whole app in-process on ephemeral ports, logging to a temp file.
class test_app {
public:
    explicit test_app(std::uint8_t roles = 15, const std::function<void(app_config&)>& tweak = {});
    ~test_app();
    runtime& rt() { return *rt_; }
    std::uint16_t port(role r) const { return rt_->port(r); }
    // Flushes and returns the JSON log lines so far.
    std::vector<std::string> log_lines();
    // The events named `name` among them, parsed, in log order.
    std::vector<boost::json::object> events(std::string_view name);
    const app_config& config() const { return cfg_; }

private:
    std::string log_path_;
    app_config cfg_;
    std::unique_ptr<logger> log_;
    std::unique_ptr<runtime> rt_;
};

// The valid rows of a CSV file in file order, read with the project's reader and validation;
// counts the rows that do not validate in *malformed.
std::vector<transaction> read_valid_rows(const std::string& path, std::size_t* malformed = nullptr);

// A valid transaction body.
std::string txn_body(const std::string& member, const std::string& ts = "2024-06-01T10:00:00Z",
                     const std::string& type = "BUY", double points = 100, double revenue = 20);

}  // namespace offerd::test
