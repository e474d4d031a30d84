// The offer pipeline: fetch history -> features -> (ATS && RESP) -> offer -> persist.
#pragma once

#include <chrono>
#include <cmath>
#include <optional>
#include <string>

#include "offerd/app/config.hpp"
#include "offerd/domain/features.hpp"
#include "offerd/obs/metrics.hpp"
#include "offerd/orchestrator/history_handoff.hpp"
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
    bool history_handed_over = false; // the previous request of the member handed its history over (no GET)
    decoded_history history;          // what the features were computed over (set by decide when it succeeds)
    std::chrono::steady_clock::time_point fetched_at;  // when the GET behind `history` was sent
    step_latencies latency;
};

class offer_pipeline {
public:
    offer_pipeline(upstreams& up, outbox& pending, const orchestrator_config& cfg) : up_(up), outbox_(pending), cfg_(cfg) {}

    // Never throw for upstream faults: they come back in outcome.error.
    //
    // Steps 1-4: history, features, predictions, offer. Features see the member's history plus
    // its writes still waiting in the outbox. `known`: the history handed over by the previous
    // holder of the member's turn (see history_handoff for when that is exact); the GET is
    // skipped and its history moved from. Runs under the member's turn; unless given `known`, also under its write turn,
    // so that member-data holds every earlier write of the member.
    asio::awaitable<offer_outcome> decide(std::size_t worker, const transaction& t, const call_context& ctx,
                                          history_handoff* known = nullptr) const;

    // Step 5, under the member's write turn. A persist member-data cannot take (or any persist
    // while earlier ones of the member wait) goes to the outbox and the offer stands; only when
    // even the outbox cannot take it does the outcome get an error, logged with the full
    // transaction.
    asio::awaitable<void> persist(std::size_t worker, const transaction& t, const call_context& ctx, offer_outcome& out) const;

private:
    micros now() const;
    upstreams& up_;
    outbox& outbox_;
    const orchestrator_config& cfg_;
};

}  // namespace offerd
