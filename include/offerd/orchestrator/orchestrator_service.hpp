// The orchestrator role assembled: its upstreams, write path, offer flow and handler, the
// readiness probe, and their metrics.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <span>
#include <vector>

#include "offerd/net/router.hpp"
#include "offerd/net/url.hpp"
#include "offerd/orchestrator/config.hpp"
#include "offerd/orchestrator/offer_handler.hpp"
#include "offerd/orchestrator/offer_pipeline.hpp"
#include "offerd/orchestrator/persist/member_log.hpp"
#include "offerd/orchestrator/persist/write_path.hpp"
#include "offerd/orchestrator/upstreams.hpp"

namespace offerd {

class logger;

class orchestrator_service {
public:
    // Throws std::runtime_error when the config does not validate or the outbox cannot be opened.
    // Its upstreams are upstream_entries(cfg, urls).
    orchestrator_service(worker_set workers, const orchestrator_config& cfg, const orchestrator_urls& urls, logger& log);
    ~orchestrator_service();

    // GET /health, GET /ready, POST /member/offer. The service must outlive the router's listener.
    std::shared_ptr<router> make_router();

    // Probes each upstream's GET /health every `interval` on ctx; GET /ready answers 200 only
    // while every upstream answered within the last three intervals, else 503 naming them.
    void start_readiness_probe(asio::io_context& ctx, std::chrono::milliseconds interval);
    void stop_readiness_probe();

    // Admission: a timer per worker measures its event loop's queueing delay every 5 ms and feeds
    // the adaptive limit (admission.hpp). Without them the limit stays at --max-in-flight.
    void start_admission_probes();
    void stop_admission_probes();

    // The outbox drainer (see write_path).
    void start_outbox_drainer(asio::io_context& ctx) { writes_.start_drainer(ctx); }
    void stop_outbox_drainer() { writes_.stop_drainer(); }
    // Cluster mode: closes the state store's connections (after the drainer stopped).
    void stop_state() {
        if (state_) state_->stop();
    }
    const outbox& pending_writes() const noexcept { return writes_.pending_writes(); }

    struct probe_state;
    struct delay_probes;

    pipeline_metrics& metrics() noexcept { return handler_.metrics(); }
    std::size_t in_flight() const noexcept { return handler_.in_flight(); }
    // Prometheus samples: pipeline steps, in-flight, offers, writes, upstream calls.
    void write_metrics(std::string& out) const;

private:
    response handle_ready() const;

    orchestrator_config cfg_;
    orchestrator_urls urls_;
    logger& log_;
    std::shared_ptr<probe_state> probe_;
    std::vector<worker_context> workers_;
    std::shared_ptr<delay_probes> delay_probes_;
    upstreams upstreams_;
    offer_clients clients_;
    std::unique_ptr<member_log> state_;  // cluster mode (cfg.state_url), else null
    write_path writes_;
    offer_pipeline pipeline_;
    adaptive_limit admission_;
    offer_handler handler_;
};

}  // namespace offerd
