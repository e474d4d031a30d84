// The orchestrator: POST /member/offer over the pipeline, with admission control, per-member
// sequencing, Idempotency-Key replay, request deadline, one `offer` log event and metrics per
// request.
#pragma once

#include <atomic>
#include <memory>
#include <span>

#include "offerd/app/config.hpp"
#include "offerd/obs/metrics.hpp"
#include "offerd/obs/prometheus.hpp"
#include "offerd/store/idempotency_cache.hpp"
#include "offerd/orchestrator/member_sequencer.hpp"
#include "offerd/orchestrator/offer_pipeline.hpp"
#include "offerd/net/router.hpp"

namespace offerd {

class logger;
class loopback_affinity;

struct orchestrator_urls {
    url member_data, prediction, offer_engine;
};

class orchestrator_service {
public:
    orchestrator_service(std::span<asio::io_context* const> workers, const orchestrator_config& cfg,
                         const orchestrator_urls& urls, logger& log, loopback_affinity* affinity = nullptr);

    // GET /health, GET /ready, POST /member/offer. The service must outlive the router's listener.
    std::shared_ptr<router> make_router();

    // Probes each upstream's GET /health every `interval` on ctx; GET /ready answers 200 only
    // while every upstream answered within the last three intervals, else 503 naming them.
    void start_readiness_probe(asio::io_context& ctx, std::chrono::milliseconds interval);
    void stop_readiness_probe();

    // Delivers outbox entries in order on ctx (worker 0), each under its member's lease, with
    // exponential backoff while member-data refuses. stop_outbox_drainer() logs what is left.
    void start_outbox_drainer(asio::io_context& ctx);
    void stop_outbox_drainer();
    const outbox& pending_writes() const noexcept { return outbox_; }

    struct probe_state;
    struct drain_state;

    pipeline_metrics& metrics() noexcept { return metrics_; }
    // Prometheus samples: pipeline steps, in-flight, offers, skipped history, upstream calls.
    void write_metrics(std::string& out) const;
    std::size_t in_flight() const noexcept { return in_flight_.load(); }

private:
    asio::awaitable<response> handle_offer(request_context& ctx);
    // The pipeline under the member's turn; gives the turn up early when it can hand over.
    asio::awaitable<offer_outcome> offer_under_turn(std::size_t worker, const transaction& t, const call_context& call,
                                                    member_sequencer::lease& turn, std::unique_ptr<history_handoff> known,
                                                    bool may_hand_over);
    response handle_ready() const;

    orchestrator_config cfg_;
    orchestrator_urls urls_;
    logger& log_;
    std::shared_ptr<probe_state> probe_;
    std::shared_ptr<drain_state> drain_;
    static asio::awaitable<void> drain_loop(orchestrator_service* self, std::shared_ptr<drain_state> st);
    upstreams upstreams_;
    outbox outbox_;
    offer_pipeline pipeline_;
    // Two turns per member, always taken in this order. `sequencer_`: deciding (read history,
    // features, predictions, offer), one request at a time in arrival order. `writes_`: touching
    // member-data (a GET without a handed-over history, a persist, an outbox delivery). A
    // request that can hand its history over gives up the first turn before its persist, so the
    // member's next request decides while that persist is in flight; it takes the write turn
    // before giving up the first, so writes stay in arrival order.
    member_sequencer sequencer_;
    member_sequencer writes_;
    idempotency_cache answers_;
    pipeline_metrics metrics_;
    std::atomic<std::size_t> in_flight_{0};
    std::array<prom_histogram, step_count> step_seconds_;
    std::array<std::atomic<std::uint64_t>, 3> offers_{};  // discount, bonus, other
    std::atomic<std::uint64_t> history_skipped_{0};
};

}  // namespace offerd
