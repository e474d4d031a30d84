// Typed calls to the three upstream services over per-worker keep-alive clients.
#pragma once

#include <boost/asio/io_context.hpp>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "offerd/codec/wire.hpp"
#include "offerd/domain/deadline.hpp"
#include "offerd/net/http_client.hpp"
#include "offerd/orchestrator/resilience.hpp"

namespace offerd {

class logger;
struct orchestrator_config;

struct call_context {
    std::string_view request_id;
    deadline until;
    logger& log;
    std::string_view persist_key;  // Idempotency-Key for the persist, which makes it safe to retry
    const trace_context* trace = nullptr;  // propagated to every upstream call
    std::string_view trace_id() const noexcept { return trace ? std::string_view(trace->trace_id) : std::string_view{}; }
};

enum class model : std::uint8_t { ats, resp };

using done = std::monostate;

// True when the upstream answered a 4xx other than 429: it refuses this request for good, so
// retrying or queueing it cannot help.
inline bool refused_for_good(const failure& f) noexcept {
    return f.upstream_status >= 400 && f.upstream_status < 500 && f.upstream_status != 429;
}

class loopback_affinity;

// Each call maps the upstream's answer to a value or a failure: timeouts and refused
// connections to upstream_timeout / upstream_unavailable (504), 5xx or an unexpected status to
// upstream_bad_status (502), an unparseable answer to upstream_bad_response (502), an open
// circuit to circuit_open (503). Calls that are safe to repeat (fetch, predictions, offer; the
// persist only with a key member-data de-duplicates) are retried on connect errors, timeouts and
// 429/502/503/504 with full-jitter backoff, within the request deadline and the retry budget;
// 500 is not retried. Every failed attempt is logged as an `upstream_error` event with service,
// path, status or error, attempt. Calls for worker i must run on worker i's io_context.
class upstreams {
public:
    // affinity: see loopback_affinity (null: connections go to whichever worker the peer picks).
    upstreams(std::span<asio::io_context* const> workers, const url& member_data, const url& prediction,
              const url& offer_engine, const orchestrator_config& cfg, logger& log, loopback_affinity* affinity = nullptr);
    ~upstreams();

    // 404 means no history: an empty list.
    asio::awaitable<result<decoded_history>> fetch_history(std::size_t worker, const std::string& member_id,
                                                           const call_context& ctx);
    asio::awaitable<result<double>> predict(std::size_t worker, model m, std::string features_json,
                                            const call_context& ctx);
    asio::awaitable<result<std::string>> assign_offer(std::size_t worker, offer_request r, const call_context& ctx);
    asio::awaitable<result<done>> persist(std::size_t worker, const transaction& t, const call_context& ctx);

    // offerd_upstream_call_seconds, offerd_upstream_connections, offerd_circuit_state.
    void write_metrics(std::string& out) const;

    struct service;  // one upstream: its breaker and per-worker clients and budgets

private:
    std::unique_ptr<service> member_data_, prediction_, offer_engine_;
};

}  // namespace offerd
