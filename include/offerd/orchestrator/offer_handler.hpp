// POST /member/offer: admit -> parse -> offer_pipeline::run -> one status map -> response, one
// `offer` log event and the offer metrics.
#pragma once

#include <array>
#include <atomic>
#include <string>

#include "offerd/net/router.hpp"
#include "offerd/obs/metrics.hpp"
#include "offerd/obs/prometheus.hpp"
#include "offerd/orchestrator/config.hpp"
#include "offerd/orchestrator/offer_pipeline.hpp"

namespace offerd {

class logger;

// Thread-safe: counters are relaxed atomics, pipeline_metrics has a slot per worker.
class offer_handler {
public:
    offer_handler(offer_pipeline& pipeline, const orchestrator_config& cfg, logger& log, std::size_t workers)
        : pipeline_(pipeline), cfg_(cfg), log_(log), metrics_(workers) {}

    asio::awaitable<response> operator()(request_context& ctx);

    pipeline_metrics& metrics() noexcept { return metrics_; }
    std::size_t in_flight() const noexcept { return in_flight_.load(std::memory_order_relaxed); }
    // offerd_pipeline_step_seconds, offerd_in_flight_requests, offerd_admission_shed_total,
    // offerd_offers_total, offerd_offer_replays_total, offerd_history_skipped_total.
    void write_metrics(std::string& out) const;

private:
    offer_pipeline& pipeline_;
    const orchestrator_config& cfg_;
    logger& log_;
    pipeline_metrics metrics_;
    std::atomic<std::size_t> in_flight_{0};
    std::atomic<std::uint64_t> shed_{0};  // answered 503: --max-in-flight reached
    std::array<prom_histogram, step_count> step_seconds_;
    std::array<std::atomic<std::uint64_t>, 3> offers_{};  // discount, bonus, other
    std::atomic<std::uint64_t> replays_{0};
    std::atomic<std::uint64_t> history_skipped_{0};
};

}  // namespace offerd
