// The orchestrator's upstreams: one generic upstream per config entry (upstream.hpp) and the
// typed calls over them that the offer flow takes (offer_clients).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "offerd/codec/wire.hpp"
#include "offerd/net/url.hpp"
#include "offerd/net/worker.hpp"
#include "offerd/orchestrator/clients.hpp"
#include "offerd/orchestrator/upstream.hpp"

namespace offerd {

class logger;
struct orchestrator_config;

struct orchestrator_urls {
    url member_data, prediction, offer_engine;
};

// The config entries, one per upstream: member-data's reads ("member-data") and writes
// ("member-data-writes") are two entries on one URL, so that they have separate health and a
// failing write path does not fail reads; then "prediction" and "offer-engine". All share the
// timeouts, retry and breaker settings of cfg (the CLI has one set of flags for them); an entry
// built in code may differ.
std::vector<upstream_config> upstream_entries(const orchestrator_config& cfg, const orchestrator_urls& urls);

// The typed calls. Each fails with upstream's vocabulary (see upstream::call), plus
// upstream_bad_response (502) for a 200 whose body does not decode, and never throws for
// upstream faults.
//   fetch_history: GET /member_data/{id} on the reads entry; 404 means no history (an empty list).
//   predict:       POST /ml/ats/predict or /ml/resp/predict.
//   assign_offer:  POST /offer/assign.
//   store:         POST /member_data on the writes entry, retried under `key`, which member-data
//                  de-duplicates; replayed when it says it already had the key.
class upstreams {
public:
    // Entries by name as upstream_entries() makes them (in any order; more are allowed and get
    // metrics, for a typed call to be added). Throws std::invalid_argument naming a missing or a
    // repeated one.
    upstreams(worker_set workers, std::vector<upstream_config> entries, logger& log);

    asio::awaitable<result<decoded_history>> fetch_history(const std::string& member_id, const call_context& ctx);
    asio::awaitable<result<double>> predict(model m, std::string features_json, const call_context& ctx);
    asio::awaitable<result<std::string>> assign_offer(offer_request r, const call_context& ctx);
    asio::awaitable<result<store_ack>> store(const transaction& t, const std::string& key, const call_context& ctx);

    // The four calls as the offer flow takes them.
    offer_clients clients();

    // upstream::write_metrics over all of them.
    void write_metrics(std::string& out) const;

private:
    std::vector<std::unique_ptr<upstream>> all_;  // in entry order
    upstream& reads_;
    upstream& writes_;
    upstream& prediction_;
    upstream& offer_engine_;
};

}  // namespace offerd
