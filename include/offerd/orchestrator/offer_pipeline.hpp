// The offer pipeline: fetch history -> features -> (ATS && RESP) -> offer -> persist.
#pragma once

#include <cmath>
#include <optional>
#include <string>

#include "offerd/app/config.hpp"
#include "offerd/domain/features.hpp"
#include "offerd/obs/metrics.hpp"
#include "offerd/orchestrator/outbox.hpp"
#include "offerd/orchestrator/upstreams.hpp"

namespace offerd {

struct offer_outcome {
    std::optional<failure> error;  // set when no offer could be made
    member_features features;
    double ats = std::nan("");
    double resp = std::nan("");
    std::string offer;
    std::size_t history_len = 0;      // valid history entries used
    std::size_t history_skipped = 0;  // history entries that could not be parsed
    bool persisted = false;           // member-data took it during this request
    bool deferred = false;            // it waits in the outbox and will be delivered in order
    std::size_t pending_writes = 0;   // outbox entries of this member included in the features
    step_latencies latency;
};

class offer_pipeline {
public:
    offer_pipeline(upstreams& up, outbox& pending, const orchestrator_config& cfg) : up_(up), outbox_(pending), cfg_(cfg) {}

    // Never throws for upstream faults: they come back in outcome.error. Features see the
    // member's history plus its writes still waiting in the outbox. A persist member-data cannot
    // take (or any persist while earlier ones of the member wait) goes to the outbox and the
    // offer stands; only when even the outbox cannot take it is it logged at error level with
    // the full transaction. Must run under the member's sequencer lease.
    asio::awaitable<offer_outcome> run(std::size_t worker, const transaction& t, const call_context& ctx) const;

private:
    micros now() const;
    upstreams& up_;
    outbox& outbox_;
    const orchestrator_config& cfg_;
};

}  // namespace offerd
