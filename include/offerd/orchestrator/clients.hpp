// What the offer flow needs from the outside world, as plain functions: the HTTP clients over
// the upstreams are one implementation, the unit tests build others from lambdas.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "offerd/codec/wire.hpp"
#include "offerd/domain/deadline.hpp"
#include "offerd/domain/errors.hpp"

namespace offerd {

namespace asio = boost::asio;
class logger;
struct trace_context;

// One request's identity and budget, passed down to every call it makes.
struct call_context {
    std::size_t worker = 0;          // the worker thread the request runs on (per-worker pools)
    std::string_view request_id;
    deadline until;
    logger& log;
    const trace_context* trace = nullptr;  // propagated to every upstream call and written on its log events
};

enum class model : std::uint8_t { ats, resp };

// member-data's answer to a write.
struct store_ack {
    bool replayed = false;  // it already held a write under this key and stored nothing new
};

// True when the upstream answered a 4xx other than 429: it refuses this request for good, so
// retrying or queueing it cannot help.
inline bool refused_for_good(const failure& f) noexcept {
    return f.upstream_status >= 400 && f.upstream_status < 500 && f.upstream_status != 429;
}

// Each function fails with the errc vocabulary (upstream_timeout, upstream_unavailable,
// upstream_bad_status with upstream_status, upstream_bad_response, circuit_open,
// deadline_exceeded) and never throws for upstream faults. Arguments passed by reference must
// outlive the awaited call only.
struct offer_clients {
    // 404 is no history: an empty list.
    std::function<asio::awaitable<result<decoded_history>>(const std::string& member, const call_context&)> fetch_history;
    std::function<asio::awaitable<result<double>>(model, std::string features_json, const call_context&)> predict;
    std::function<asio::awaitable<result<std::string>>(offer_request, const call_context&)> assign_offer;
    // POST /member_data with this Idempotency-Key, which makes repeating it safe.
    std::function<asio::awaitable<result<store_ack>>(const transaction&, const std::string& key, const call_context&)> store;
};

}  // namespace offerd
