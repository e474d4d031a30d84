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
#include "offerd/orchestrator/clients.hpp"
#include "offerd/orchestrator/resilience.hpp"

namespace offerd {

class logger;
struct orchestrator_config;

class loopback_affinity;

// Each call maps the upstream's answer to a value or a failure: timeouts and refused
// connections to upstream_timeout / upstream_unavailable (504), 5xx or an unexpected status to
// upstream_bad_status (502), an unparseable answer to upstream_bad_response (502), an open
// circuit to circuit_open (503). Calls that are safe to repeat (fetch, predictions, offer; the
// persist only with a key member-data de-duplicates) are retried on connect errors, timeouts and
// 429/502/503/504 with full-jitter backoff, within the request deadline and the retry budget;
// 500 is not retried. Every failed attempt is logged as an `upstream_error` event with service,
// path, status or error, attempt. Calls for worker ctx.worker must run on that worker's
// io_context. member-data's reads and writes have separate health (breakers): a failing write
// path does not fail reads.
class upstreams {
public:
    // affinity: see loopback_affinity (null: connections go to whichever worker the peer picks).
    upstreams(std::span<asio::io_context* const> workers, const url& member_data, const url& prediction,
              const url& offer_engine, const orchestrator_config& cfg, logger& log, loopback_affinity* affinity = nullptr);
    ~upstreams();

    // 404 means no history: an empty list.
    asio::awaitable<result<decoded_history>> fetch_history(const std::string& member_id, const call_context& ctx);
    asio::awaitable<result<double>> predict(model m, std::string features_json, const call_context& ctx);
    asio::awaitable<result<std::string>> assign_offer(offer_request r, const call_context& ctx);
    // Retried under `key`, which member-data de-duplicates; replayed when it says it had the key.
    asio::awaitable<result<store_ack>> store(const transaction& t, const std::string& key, const call_context& ctx);

    // The four calls as the offer flow takes them.
    offer_clients clients();

    // offerd_upstream_call_seconds, offerd_upstream_connections, offerd_upstream_retries_total,
    // offerd_circuit_state (one series per state), offerd_circuit_transitions_total.
    void write_metrics(std::string& out) const;

    struct service;  // one upstream: its breaker and per-worker clients and budgets

private:
    std::unique_ptr<service> member_data_, member_data_writes_, prediction_, offer_engine_;
};

}  // namespace offerd
