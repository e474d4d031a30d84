// POST /member/offer: admit -> parse -> offer_pipeline::run -> one status map -> response, one
// `offer` log event and the offer metrics.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "offerd/net/router.hpp"
#include "offerd/obs/metrics.hpp"
#include "offerd/obs/prometheus.hpp"
#include "offerd/orchestrator/admission.hpp"
#include "offerd/orchestrator/config.hpp"
#include "offerd/orchestrator/offer_pipeline.hpp"

namespace offerd {

class logger;

// Thread-safe: counters are relaxed atomics, pipeline_metrics has a slot per worker.
class offer_handler {
public:
    offer_handler(offer_pipeline& pipeline, adaptive_limit& admission, const orchestrator_config& cfg, logger& log, std::size_t workers);
    ~offer_handler();
    offer_handler(const offer_handler&) = delete;
    offer_handler& operator=(const offer_handler&) = delete;

    asio::awaitable<response> operator()(request_context& ctx);

    pipeline_metrics& metrics() noexcept { return metrics_; }
    std::size_t in_flight() const noexcept { return admission_.in_flight(); }
    // offerd_pipeline_step_seconds, offerd_in_flight_requests, offerd_admission_* (the shed
    // lane's waiting and released connections among them),
    // offerd_offers_total, offerd_offer_replays_total, offerd_history_skipped_total.
    void write_metrics(std::string& out) const;

private:
    struct shed_lanes;
    struct carried;
    void note_shed(std::chrono::steady_clock::time_point now);
    // After a 503: the connection's next read waits its turn in its worker's lane.
    static asio::awaitable<void> wait_turn(std::shared_ptr<shed_lanes> lanes, std::size_t worker);

    offer_pipeline& pipeline_;
    adaptive_limit& admission_;
    const orchestrator_config& cfg_;
    logger& log_;
    pipeline_metrics metrics_;
    // Connections answered 503 waiting to send their next request; shared with them, since a
    // connection can wait past this handler.
    std::shared_ptr<shed_lanes> lanes_;
    std::shared_ptr<carried> shed_note_;  // the carry of a connection answered 503 (shared: no slot in it)
    std::atomic<std::uint64_t> reserved_{0};
    std::atomic<std::int64_t> last_shed_log_{0};  // steady ticks of the last `overloaded` event
    std::atomic<std::uint64_t> shed_logged_{0};   // shed count at that event
    std::array<prom_histogram, step_count> step_seconds_;
    std::array<std::atomic<std::uint64_t>, 3> offers_{};  // discount, bonus, other
    std::atomic<std::uint64_t> replays_{0};
    std::atomic<std::uint64_t> history_skipped_{0};
};

}  // namespace offerd
