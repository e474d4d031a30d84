// Route table: method + path pattern -> handler, with 404 vs 405 and a catch-all 500.
#pragma once

#include <array>
#include <atomic>
#include <boost/beast/http/verb.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "offerd/net/http.hpp"
#include "offerd/net/worker.hpp"
#include "offerd/obs/prometheus.hpp"

namespace offerd {

struct request_context {
    const request& req;
    std::string_view param;  // the {name} segment when the route has one
    std::string request_id;  // echoed from X-Request-ID or generated
    trace_context trace;     // from traceparent, or a new trace
    worker_context worker{};  // the worker (thread) serving this connection
    std::string client{};    // the authenticated caller's name, set by the router's guard; empty: none
    // Set by a handler: the listener awaits it after the answer was written, before it reads the
    // connection's next request (the offer route makes a connection it shed wait its turn; see
    // offer_handler).
    std::function<asio::awaitable<void>()> after_response{};
    // State a handler keeps on the connection for its next request (the offer route: that the
    // connection was answered 503, or a slot reserved for it). Owned by the listener's connection
    // loop, which drops it when the next request's first bytes do not arrive within
    // server_limits::carry_hold. Null outside a listener.
    std::shared_ptr<void>* carry = nullptr;
};

using handler = std::function<asio::awaitable<response>(request_context&)>;

class router {
public:
    // pattern: "/a/b", or "/a/{name}" with one trailing parameter segment (non-empty, no '/').
    void add(http::verb method, std::string pattern, handler h);

    // Never throws: an exception escaping a handler becomes a bare 500 (and is reported via on_error).
    asio::awaitable<response> dispatch(request_context& ctx) const;

    std::function<void(const request_context&, std::string_view what)> on_error;

    // Runs before a matched route's handler (set before the listener starts): a response from it
    // (401, 429) is answered instead of calling the handler. See security/guard.hpp.
    std::function<std::optional<response>(request_context&)> guard;

    struct route_info {
        http::verb method;
        std::string_view pattern;  // as given to add(), e.g. "/member_data/{memberId}"
    };
    // The route table in the order routes were added (HEAD is served by every GET route besides).
    std::vector<route_info> routes() const;

    // Appends offerd_http_requests_total samples (per route, method and status) for this
    // router under the given listener label. Counting is a relaxed atomic increment.
    void write_request_counts(std::string& out, std::string_view listener) const;
    // Appends offerd_http_server_request_duration_seconds series (listener, method, route
    // template, status_class) that have observations: dispatch to response ready, the write not
    // included. Requests no route matched are route="other", method="any", so the series stay
    // bounded by the route table whatever paths clients send.
    void write_request_durations(std::string& out, std::string_view listener) const;

private:
    static constexpr std::size_t status_classes = 5;  // 1xx..5xx
    struct route_stats {
        std::array<std::atomic<std::uint64_t>, 500> counts{};  // index: status - 100
        std::array<prom_histogram, status_classes> durations;  // index: status / 100 - 1
    };
    struct route {
        http::verb method;
        std::string pattern;
        std::string prefix;  // the literal part; for parameter routes ends with '/'
        bool has_param;
        handler h;
        std::unique_ptr<route_stats> stats = std::make_unique<route_stats>();
    };
    static void count(route_stats& s, unsigned status, std::chrono::steady_clock::time_point started) noexcept;
    // emit(stats, labels) for every route and for the unmatched requests, with the labels
    // listener, method and route (template, or "other") already formatted.
    template <class Emit>
    void for_each_route(std::string_view listener, Emit&& emit) const;
    std::vector<route> routes_;
    std::unique_ptr<route_stats> unmatched_ = std::make_unique<route_stats>();
};

}  // namespace offerd
