// Runtime wiring and graceful shutdown.
#include "offerd/app/runtime.hpp"

#include <bit>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <stdexcept>

#include "offerd/app/openapi.hpp"
#include "offerd/app/scheduling.hpp"
#include "offerd/net/http_server.hpp"
#include "offerd/net/loopback_affinity.hpp"
#include "offerd/net/tls.hpp"
#include "offerd/net/url.hpp"
#include "offerd/obs/build_info.hpp"
#include "offerd/obs/log.hpp"
#include "offerd/obs/process_metrics.hpp"
#include "offerd/obs/prometheus.hpp"
#include "offerd/orchestrator/orchestrator_service.hpp"
#include "offerd/security/guard.hpp"
#include "offerd/services/services.hpp"
#include "offerd/store/journal_history_store.hpp"
#include "offerd/store/pg_history_store.hpp"

namespace offerd {

namespace {
std::size_t slot(role r) { return static_cast<std::size_t>(std::countr_zero(static_cast<unsigned>(r))); }

template <class T>
T checked(result<T> r) {
    if (!r) throw std::runtime_error(r.error().detail);
    return std::move(r).value();
}

// The TLS contexts of one process: what its listeners serve, and what its upstream calls trust.
// All null without TLS. upstream is made only when an upstream URL is https.
struct tls_contexts {
    std::shared_ptr<tls_context> server;  // --tls-cert/--tls-key
    std::shared_ptr<tls_context> own;     // trusts exactly that certificate: calls to this process's listeners
    std::shared_ptr<tls_context> upstream;  // --upstream-ca, else the system store
};

// A configured upstream URL, or (unset) this process's listener of that role, else HOST:800x;
// the latter over TLS trusting exactly our own certificate when our listeners serve TLS.
url upstream_url(const std::string& configured, const char* flag, const std::string& host, std::uint16_t local_port,
                 tls_contexts& tls, const security_config& sec) {
    if (configured.empty()) {
        url u{host == "0.0.0.0" ? "127.0.0.1" : host, local_port, ""};
        if (tls.own) {
            u.tls = true;
            u.tls_context = tls.own;
        }
        return u;
    }
    auto u = parse_url(configured);
    if (!u) throw std::runtime_error(std::string("invalid ") + flag + ": " + u.error().detail);
    if (u->tls) {
        if (!tls.upstream) tls.upstream = checked(make_client_tls_context(sec.upstream_ca_file));
        u->tls_context = tls.upstream;
    }
    return *u;
}

// In memory, made durable by the journal when one is configured; damage found in it is reported.
std::shared_ptr<history_store> open_member_data_store(const member_data_options& opt, std::span<asio::io_context* const> workers,
                                                      logger& log, metrics_registry& metrics) {
    if (!opt.store_url.empty()) return std::make_shared<pg_history_store>(workers, opt.store_url, log);
    auto memory = std::make_shared<memory_history_store>();
    if (opt.journal.empty()) return memory;
    auto journal = journal_history_store::open(opt.journal, opt.journal_fsync, std::move(memory));
    if (!journal) throw std::runtime_error("member-data journal: " + journal.error().detail);
    report_damage((*journal)->report(), log);
    metrics.add([j = *journal](std::string& out) {
        write_metric_header(out, "offerd_member_data_journal_records_total", "counter", "Records member-data wrote to its journal.");
        write_sample(out, "offerd_member_data_journal_records_total", {}, static_cast<double>(j->log().appended()));
        write_metric_header(out, "offerd_member_data_journal_syncs_total", "counter", "fdatasync calls covering them (group commit).");
        write_sample(out, "offerd_member_data_journal_syncs_total", {}, static_cast<double>(j->log().syncs()));
    });
    return std::move(journal).value();
}
}  // namespace

struct runtime::reporter {
    explicit reporter(asio::io_context& ctx) : timer(ctx) {}
    asio::steady_timer timer;
    bool stopped = false;  // touched only on the timer's worker
};

runtime::runtime(const app_config& cfg, logger& log) : cfg_(cfg), log_(log) {
    std::size_t n = cfg_.threads ? cfg_.threads : allowed_cpus();  // the CPUs we may use (taskset, cpusets), not all online
    for (std::size_t i = 0; i < n; ++i) {
        workers_.push_back(std::make_unique<asio::io_context>(1));
        worker_ptrs_.push_back(workers_.back().get());
    }
    affinity_ = std::make_unique<loopback_affinity>();
    worker_set_ = make_workers(worker_ptrs_, affinity_.get());
    security_ = std::make_shared<security_gate>(cfg_.security, cfg_.host, cfg_.has(role::orchestrator),
                                                (cfg_.roles & ~static_cast<std::uint8_t>(role::orchestrator)) != 0);
    tls_contexts tls;
    if (!cfg_.security.tls_cert_file.empty()) {
        tls.server = checked(make_server_tls_context(cfg_.security.tls_cert_file, cfg_.security.tls_key_file));
        if (cfg_.has(role::orchestrator)) tls.own = checked(make_pinned_tls_context(cfg_.security.tls_cert_file));
    }
    metrics_ = std::make_shared<metrics_registry>();
    metrics_->add([](std::string& out) {
        write_metric_header(out, "offerd_build_info", "gauge", "Build information.");
        write_sample(out, "offerd_build_info", build_info_labels(), 1);
    });
    metrics_->add([](std::string& out) { write_process_metrics(out, read_process_stats()); });
    // The logger outlives the runtime (the caller owns both).
    metrics_->add([&log = log_](std::string& out) {
        write_metric_header(out, "offerd_log_dropped_lines_total", "counter",
                            "Log lines dropped rather than blocking requests (see the log_dropped event).");
        write_sample(out, "offerd_log_dropped_lines_total", {}, static_cast<double>(log.dropped_lines()));
    });
    std::vector<std::pair<std::string, std::shared_ptr<const router>>> routers;
    const auto listen = [&](role r, std::uint16_t port, std::shared_ptr<router> routes) {
        // Every listener serves the whole process's metrics.
        // weak: the registry's writers hold the routers, so a strong pointer here would be a cycle.
        routes->add(http::verb::get, "/metrics", [weak = std::weak_ptr<metrics_registry>(metrics_)](request_context&) -> asio::awaitable<response> {
            const auto m = weak.lock();
            if (!m) co_return detail_response(http::status::service_unavailable, "shutting down");
            response res = json_response(http::status::ok, m->render());
            res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
            co_return res;
        });
        api_auth auth;  // what the guard below requires, for the API document
        if (security_->enabled()) {
            const guard_policy policy = listener_policy(cfg_.security, cfg_.host, r == role::orchestrator);
            auth = api_auth{policy.require_auth, policy.protect_metrics};
        }
        add_api_doc_routes(*routes, r, auth);
        security_->protect(*routes, to_string(r), r == role::orchestrator);
        routers.emplace_back(to_string(r), routes);
        routers_[slot(r)] = routes;
        servers_[slot(r)] = std::make_unique<http_server>(to_string(r), worker_set_, cfg_.host, port, std::move(routes),
                                                          cfg_.limits, log_, tls.server);
    };
    if (cfg_.has(role::member_data)) {
        store_ = open_member_data_store(cfg_.member_data, worker_ptrs_, log_, *metrics_);
        listen(role::member_data, cfg_.member_data_port, make_member_data_router(store_));
    }
    if (cfg_.has(role::prediction)) listen(role::prediction, cfg_.prediction_port, make_prediction_router(cfg_.prediction_fault_share));
    if (cfg_.has(role::offer_engine)) listen(role::offer_engine, cfg_.offer_engine_port, make_offer_engine_router());
    if (cfg_.has(role::orchestrator)) {
        const auto local = [&](role r, std::uint16_t fallback) { return port(r) ? port(r) : fallback; };
        orchestrator_urls urls{
            upstream_url(cfg_.orchestrator.member_data_url, "--member-data-url", cfg_.host, local(role::member_data, 8001), tls, cfg_.security),
            upstream_url(cfg_.orchestrator.prediction_url, "--prediction-url", cfg_.host, local(role::prediction, 8002), tls, cfg_.security),
            upstream_url(cfg_.orchestrator.offer_engine_url, "--offer-engine-url", cfg_.host, local(role::offer_engine, 8003), tls, cfg_.security),
        };
        const security_config& sec = cfg_.security;
        for (auto [r, configured, key_file, flag, u] :
             {std::tuple{role::member_data, &cfg_.orchestrator.member_data_url, &sec.member_data_key_file, "--member-data-key-file", &urls.member_data},
              std::tuple{role::prediction, &cfg_.orchestrator.prediction_url, &sec.prediction_key_file, "--prediction-key-file", &urls.prediction},
              std::tuple{role::offer_engine, &cfg_.orchestrator.offer_engine_url, &sec.offer_engine_key_file, "--offer-engine-key-file", &urls.offer_engine}}) {
            u->authorization = upstream_authorization(*key_file, flag);
            // A service listener of this process with --service-auth, no key file for it: the
            // key this process made for itself (else every offer would meet a 401).
            if (u->authorization.empty() && sec.service_auth && cfg_.has(r) && configured->empty())
                u->authorization = "Bearer " + security_->own_service_key();
        }
        orchestrator_ = std::make_unique<orchestrator_service>(worker_set_, cfg_.orchestrator, urls, log_);
        listen(role::orchestrator, cfg_.orchestrator_port, orchestrator_->make_router());
    }
    // Each family's samples follow its header, all listeners together (the text format wants them grouped).
    metrics_->add([routers](std::string& out) {
        write_metric_header(out, "offerd_http_requests_total", "counter",
                            "HTTP requests by listener, route template (other: no route matched), method and status.");
        for (const auto& [name, r] : routers) r->write_request_counts(out, name);
        write_metric_header(out, "offerd_http_server_request_duration_seconds", "histogram",
                            "Server time per request from dispatch to response ready, by listener, method, route "
                            "template (other: no route matched) and status class.");
        for (const auto& [name, r] : routers) r->write_request_durations(out, name);
    });
    if (orchestrator_) metrics_->add([o = orchestrator_.get()](std::string& out) { o->write_metrics(out); });
    if (security_->enabled()) metrics_->add([s = security_](std::string& out) { s->write_metrics(out); });
    if (tls.server) {
        std::vector<const http_server*> listeners;
        for (const auto& s : servers_)
            if (s) listeners.push_back(s.get());
        // The servers outlive the registry (declared before it), and render() runs before shutdown joins.
        metrics_->add([listeners](std::string& out) {
            write_metric_header(out, "offerd_tls_handshake_failures_total", "counter",
                                "TLS handshakes that failed (plain HTTP, unknown CA at the client, timeouts), by listener.");
            for (const http_server* s : listeners)
                write_sample(out, "offerd_tls_handshake_failures_total", "listener=\"" + s->name() + "\"",
                             static_cast<double>(s->tls_handshake_failures()));
        });
    }
    if (store_)
        metrics_->add([s = store_](std::string& out) {
            write_metric_header(out, "offerd_member_data_transactions", "gauge", "Transactions held by member-data.");
            write_sample(out, "offerd_member_data_transactions", {}, static_cast<double>(s->transactions()));
            write_metric_header(out, "offerd_member_data_members", "gauge", "Members with a history in member-data.");
            write_sample(out, "offerd_member_data_members", {}, static_cast<double>(s->members()));
        });
}

runtime::~runtime() { shutdown(); }

result<std::size_t> runtime::reload_keys() { return security_->reload_keys(); }

std::shared_ptr<const router> runtime::routes(role r) const { return routers_[slot(r)]; }

std::uint16_t runtime::port(role r) const {
    const auto& s = servers_[slot(r)];
    return s ? s->port() : 0;
}

std::string runtime::base_url(role r) const {
    const std::string host = cfg_.host == "0.0.0.0" ? "127.0.0.1" : cfg_.host;
    return (cfg_.security.tls_cert_file.empty() ? "http://" : "https://") + host_port(host, port(r));
}

void runtime::start() {
    if (started_) return;
    started_ = true;
    for (auto& w : workers_) guards_.push_back(std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(w->get_executor()));
    for (auto& s : servers_)
        if (s) s->start();
    if (orchestrator_ && cfg_.throughput_interval.count() > 0) start_throughput_reporter();
    if (orchestrator_) orchestrator_->start_outbox_drainer(*workers_.front());
    if (orchestrator_) orchestrator_->start_admission_probes();
    if (orchestrator_ && cfg_.ready_interval.count() > 0) orchestrator_->start_readiness_probe(*workers_.front(), cfg_.ready_interval);
    // Real-time workers of one priority do not share a core by time slices: with more workers
    // than CPUs, one would wait for another's whole busy period. Then they stay fair-scheduled.
    std::string realtime_veto;
    if (const std::size_t cpus = allowed_cpus(); cfg_.realtime_priority > 0 && workers_.size() > cpus)
        realtime_veto = "more workers (" + std::to_string(workers_.size()) + ") than CPUs this process may use (" +
                        std::to_string(cpus) + ")";
    for (std::size_t i = 0; i < workers_.size(); ++i) {
        threads_.emplace_back([this, i, realtime_veto, ctx = workers_[i].get()] {
            const realtime_outcome rt = realtime_veto.empty() ? request_realtime(cfg_.realtime_priority) : realtime_outcome{false, realtime_veto};
            const bool slice = !rt.applied && request_sched_slice(cfg_.sched_slice);
            {
                log_event e(log_, log_level::info, "scheduling");
                const std::string policy = current_sched_policy();  // what the kernel now runs this worker with
                e.with("worker", static_cast<std::int64_t>(i)).with("policy", policy);
                e.with("realtime_priority_requested", static_cast<std::int64_t>(cfg_.realtime_priority)).with("realtime", policy == "fifo" || policy == "rr");
                if (!rt.applied && cfg_.realtime_priority > 0) e.with("realtime_unavailable", rt.reason);
                e.with("slice_us_requested", static_cast<std::int64_t>(cfg_.sched_slice.count())).with("slice_applied", slice);
            }
            ctx->run();
        });
    }
    for (role r : {role::orchestrator, role::member_data, role::prediction, role::offer_engine})
        if (port(r)) log_event(log_, log_level::info, "listening").with("role", to_string(r)).with("url", base_url(r));
}

void runtime::start_throughput_reporter() {
    reporter_ = std::make_shared<reporter>(*workers_.front());
    auto loop = [](std::shared_ptr<reporter> rep, orchestrator_service* orch, logger* log,
                   std::chrono::milliseconds interval) -> asio::awaitable<void> {
        auto last = std::chrono::steady_clock::now();
        while (!rep->stopped) {
            rep->timer.expires_after(interval);
            co_await rep->timer.async_wait(nothrow);
            const auto now = std::chrono::steady_clock::now();
            const double secs = std::chrono::duration<double>(now - last).count();
            last = now;
            const pipeline_window w = orch->metrics().take();
            log_event e(*log, log_level::info, "throughput");
            if (!e.active()) continue;
            e.with("window_s", secs).with("count", w.count).with("ok", w.ok).with("errors", w.errors);
            e.with("req_per_s", secs > 0 ? static_cast<double>(w.count) / secs : 0.0);
            e.with("in_flight", static_cast<std::uint64_t>(orch->in_flight()));
            json_writer& j = e.writer();
            j.key("step_latency_us").begin_object();
            for (std::size_t i = 0; i < step_count; ++i) {
                const latency_histogram& h = w.steps[i];
                j.key(to_string(static_cast<step>(i))).begin_object();
                j.member("count", h.count()).member("p50", h.percentile(0.5)).member("p99", h.percentile(0.99)).member("max", h.max());
                j.end_object();
            }
            j.end_object();
        }
    };
    asio::co_spawn(*workers_.front(), loop(reporter_, orchestrator_.get(), &log_, cfg_.throughput_interval), asio::detached);
}

void runtime::shutdown() {
    if (stopped_) return;
    stopped_ = true;
    if (started_) {
        const auto give_up = std::chrono::steady_clock::now() + cfg_.shutdown_timeout;
        const auto drain = [&](http_server& s) {
            s.stop();
            while (s.open_connections() > 0 && std::chrono::steady_clock::now() < give_up)
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
        };
        // The orchestrator first: its in-flight requests still need the services.
        if (auto& o = servers_[slot(role::orchestrator)]) drain(*o);
        for (auto& s : servers_)
            if (s) drain(*s);
        if (orchestrator_) {
            orchestrator_->stop_readiness_probe();
            orchestrator_->stop_admission_probes();
            orchestrator_->stop_outbox_drainer();
            orchestrator_->stop_state();
        }
        // member-data's PostgreSQL connections, once its listener is drained.
        if (store_) store_->stop();
        if (reporter_)
            asio::post(*workers_.front(), [rep = reporter_] {
                rep->stopped = true;
                rep->timer.cancel();
            });
        // Without work guards each worker returns once its remaining operations complete; every
        // one of them is bounded by a timeout, so this terminates.
        guards_.clear();
        for (auto& t : threads_) t.join();
        threads_.clear();
    }
    log_.flush();
}

}  // namespace offerd
