// One upstream service as the orchestrator calls it: a circuit breaker judging its health, and
// per worker a keep-alive pool and a retry budget, with per-attempt metrics. One is built per
// upstream_config entry; the typed clients (upstreams.hpp) are small functions over call().
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/verb.hpp>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "offerd/domain/errors.hpp"
#include "offerd/net/http.hpp"
#include "offerd/net/http_client.hpp"
#include "offerd/net/url.hpp"
#include "offerd/net/worker.hpp"
#include "offerd/orchestrator/clients.hpp"
#include "offerd/orchestrator/resilience.hpp"

namespace offerd {

class logger;

struct upstream_config {
    std::string name;       // the `service` label of its metrics and the `upstream` of its log events
    url target;             // base URL; every path is below its base path
    client_limits limits;   // per-call timeout, pool bounds
    retry_config retry;     // attempts, backoff, budget
    breaker_config breaker; // when its circuit opens (resilience.hpp)
};

struct upstream_request {
    http::verb method = http::verb::get;
    std::string path;                  // below target's base path
    std::string body;
    bool idempotent = true;            // safe to repeat: retried on transient faults
    unsigned also_ok = 0;              // a non-200 status the caller handles itself (404: no history)
    std::string idempotency_key;       // sent as Idempotency-Key when not empty
};

// call() maps the answer to a response or a failure: timeouts and refused connections to
// upstream_timeout / upstream_unavailable (504), 5xx or an unexpected status to
// upstream_bad_status (502, with upstream_status), an unparseable answer to upstream_bad_response
// (502), an open circuit to circuit_open (503 with Retry-After seconds). Idempotent requests are
// retried on connect errors, timeouts and 429/502/503/504 with full-jitter backoff, within the
// request deadline and the worker's retry budget; 500 is not retried. Every failed attempt is an
// `upstream_error` log event (upstream, path, attempt, outcome, status, error).
//
// Thread-safe: the breaker is shared by all workers (see circuit_breaker); everything else is per
// worker, and a call for ctx.worker must run on that worker's io_context.
class upstream {
public:
    // workers[i].index must be i (make_workers): per-worker state is found by ctx.worker.
    upstream(upstream_config cfg, worker_set workers, logger& log);
    ~upstream();
    upstream(const upstream&) = delete;
    upstream& operator=(const upstream&) = delete;

    asio::awaitable<result<response>> call(upstream_request req, const call_context& ctx);

    // For a typed client whose 200 did not decode: logs it like a failed attempt (the decoder's
    // reason in the event) and returns the 502 the client answers, without the reason.
    failure bad_body(const call_context& ctx, std::string_view path, const failure& why) const;

    const std::string& name() const noexcept;
    circuit_breaker::state circuit() const noexcept;

    // offerd_upstream_call_seconds, offerd_upstream_connections, offerd_upstream_retries_total,
    // offerd_circuit_state (one series per state), offerd_circuit_transitions_total: each family
    // once, with one `service` series per upstream.
    static void write_metrics(std::string& out, std::span<const upstream* const> all);

    struct state;

private:
    std::unique_ptr<state> s_;
};

}  // namespace offerd
