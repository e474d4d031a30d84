// The orchestrator: POST /member/offer over the pipeline, with admission control, per-member
// sequencing, Idempotency-Key replay, request deadline, one `offer` log event and metrics per
// request.
#pragma once

#include <atomic>
#include <memory>
#include <span>

#include "offerd/app/config.hpp"
#include "offerd/obs/metrics.hpp"
#include "offerd/orchestrator/idempotency_cache.hpp"
#include "offerd/orchestrator/member_sequencer.hpp"
#include "offerd/orchestrator/offer_pipeline.hpp"
#include "offerd/net/router.hpp"

namespace offerd {

class logger;

struct orchestrator_urls {
    url member_data, prediction, offer_engine;
};

class orchestrator_service {
public:
    orchestrator_service(std::span<asio::io_context* const> workers, const orchestrator_config& cfg,
                         const orchestrator_urls& urls, logger& log);

    // GET /health, POST /member/offer. The service must outlive the router's listener.
    std::shared_ptr<router> make_router();

    pipeline_metrics& metrics() noexcept { return metrics_; }
    std::size_t in_flight() const noexcept { return in_flight_.load(); }

private:
    asio::awaitable<response> handle_offer(request_context& ctx);

    orchestrator_config cfg_;
    logger& log_;
    upstreams upstreams_;
    offer_pipeline pipeline_;
    member_sequencer sequencer_;
    idempotency_cache answers_;
    pipeline_metrics metrics_;
    std::atomic<std::size_t> in_flight_{0};
};

}  // namespace offerd
