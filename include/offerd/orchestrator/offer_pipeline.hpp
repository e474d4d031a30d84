// The offer pipeline: fetch history -> features -> (ATS && RESP) -> offer -> persist.
#pragma once

#include <cmath>
#include <optional>
#include <string>

#include "offerd/app/config.hpp"
#include "offerd/domain/features.hpp"
#include "offerd/obs/metrics.hpp"
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
    bool persisted = false;
    step_latencies latency;
};

class offer_pipeline {
public:
    offer_pipeline(upstreams& up, const orchestrator_config& cfg) : up_(up), cfg_(cfg) {}

    // Never throws for upstream faults: they come back in outcome.error. A persist failure does
    // not fail the outcome (the offer stands); it is logged at error level with the full
    // transaction so it can be replayed.
    asio::awaitable<offer_outcome> run(std::size_t worker, const transaction& t, const call_context& ctx) const;

private:
    micros now() const;
    upstreams& up_;
    const orchestrator_config& cfg_;
};

}  // namespace offerd
