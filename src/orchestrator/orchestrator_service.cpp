// The orchestrator role's wiring, its readiness probe and /ready.
#include "offerd/orchestrator/orchestrator_service.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <stdexcept>

#include "offerd/codec/json_writer.hpp"
#include "offerd/codec/wire.hpp"
#include "offerd/obs/log.hpp"
#include "offerd/obs/prometheus.hpp"
#include "offerd/orchestrator/persist/pg_member_log.hpp"
#include "offerd/services/services.hpp"

namespace offerd {

namespace {
const orchestrator_config& checked(const orchestrator_config& cfg) {
    if (auto ok = validate(cfg); !ok) throw std::runtime_error(ok.error().detail);
    return cfg;
}
}  // namespace

orchestrator_service::orchestrator_service(worker_set workers, const orchestrator_config& cfg, const orchestrator_urls& urls,
                                           logger& log)
    : cfg_(checked(cfg)),
      urls_(urls),
      log_(log),
      workers_(workers.begin(), workers.end()),
      upstreams_(workers, upstream_entries(cfg_, urls), log),
      clients_(upstreams_.clients()),
      state_(cfg_.state_url.empty() ? nullptr : std::make_unique<pg_member_log>(workers, cfg_.state_url, log)),
      writes_(cfg_, clients_, log, state_.get()),
      pipeline_(clients_, writes_, cfg_),
      admission_(cfg_.admission, workers.size()),
      handler_(pipeline_, admission_, cfg_, log, workers.size()) {}

orchestrator_service::~orchestrator_service() = default;

std::shared_ptr<router> orchestrator_service::make_router() {
    auto r = std::make_shared<router>();
    add_health_route(*r);
    r->add(http::verb::post, "/member/offer", [this](request_context& ctx) { return handler_(ctx); });
    r->add(http::verb::get, "/ready", [this](request_context&) -> asio::awaitable<response> { co_return handle_ready(); });
    r->on_error = [this](const request_context& ctx, std::string_view what) {
        log_event(log_, log_level::error, "handler_exception", ctx.request_id, &ctx.trace).with("error", what);
    };
    return r;
}

// Last successful health check per upstream, as steady-clock ticks (0: never). The probe
// coroutine writes, /ready handlers read: atomics. stopped/timer are touched only on the
// probe's io_context.
struct orchestrator_service::probe_state {
    explicit probe_state(asio::io_context& ctx, std::chrono::milliseconds i) : timer(ctx), interval(i) {}
    std::array<std::atomic<std::int64_t>, 3> last_ok{};
    asio::steady_timer timer;
    std::chrono::milliseconds interval;
    bool stopped = false;
};

namespace {
constexpr std::array<const char*, 3> upstream_names{"member-data", "prediction", "offer-engine"};

asio::awaitable<void> probe_loop(std::shared_ptr<orchestrator_service::probe_state> st, std::array<url, 3> targets) {
    const auto ex = co_await asio::this_coro::executor;
    std::vector<std::unique_ptr<http_client>> clients;
    client_limits limits;
    limits.timeout = st->interval;
    limits.max_idle = 1;
    for (const url& u : targets) clients.push_back(std::make_unique<http_client>(ex, u, limits));
    while (!st->stopped) {
        for (std::size_t i = 0; i < clients.size(); ++i) {
            auto res = co_await clients[i]->send(http::verb::get, "/health", {}, call_options{{}, deadline::after(st->interval), {}, {}});
            if (res && res->result() == http::status::ok)
                st->last_ok[i].store(std::chrono::steady_clock::now().time_since_epoch().count(), std::memory_order_relaxed);
        }
        if (st->stopped) break;
        st->timer.expires_after(st->interval);
        co_await st->timer.async_wait(nothrow);
    }
}
}  // namespace

struct orchestrator_service::delay_probes {
    std::atomic<bool> stopped{false};
    std::vector<std::unique_ptr<asio::steady_timer>> timers;
};

namespace {
// How late a timer fires is how long this worker's event loop takes to reach a new completion:
// the queueing delay every hop of every request served here waits for.
asio::awaitable<void> delay_probe(std::shared_ptr<orchestrator_service::delay_probes> st, asio::steady_timer& timer,
                                  adaptive_limit& limit, std::size_t worker) {
    constexpr auto period = std::chrono::milliseconds(5);
    while (!st->stopped.load(std::memory_order_relaxed)) {
        const auto due = std::chrono::steady_clock::now() + period;
        timer.expires_at(due);
        auto [ec] = co_await timer.async_wait(nothrow);
        if (ec || st->stopped.load(std::memory_order_relaxed)) break;
        const auto now = std::chrono::steady_clock::now();
        limit.observe(worker, std::chrono::duration_cast<std::chrono::microseconds>(now - due), now);
    }
}
}  // namespace

void orchestrator_service::start_admission_probes() {
    if (!cfg_.admission.adaptive || delay_probes_) return;
    delay_probes_ = std::make_shared<delay_probes>();
    for (std::size_t i = 0; i < workers_.size(); ++i) {
        delay_probes_->timers.push_back(std::make_unique<asio::steady_timer>(workers_[i].executor));
        asio::co_spawn(workers_[i].executor, delay_probe(delay_probes_, *delay_probes_->timers.back(), admission_, i), asio::detached);
    }
}

void orchestrator_service::stop_admission_probes() {
    if (!delay_probes_) return;
    delay_probes_->stopped.store(true, std::memory_order_relaxed);
    for (auto& t : delay_probes_->timers) asio::post(t->get_executor(), [st = delay_probes_, tp = t.get()] { tp->cancel(); });
}

void orchestrator_service::start_readiness_probe(asio::io_context& ctx, std::chrono::milliseconds interval) {
    probe_ = std::make_shared<probe_state>(ctx, interval);
    asio::co_spawn(ctx, probe_loop(probe_, {urls_.member_data, urls_.prediction, urls_.offer_engine}), asio::detached);
}

void orchestrator_service::stop_readiness_probe() {
    if (!probe_) return;
    asio::post(probe_->timer.get_executor(), [st = probe_] {
        st->stopped = true;
        st->timer.cancel();
    });
}

response orchestrator_service::handle_ready() const {
    std::string out;
    json_writer w(out);
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    const auto stale = probe_ ? std::chrono::duration_cast<std::chrono::steady_clock::duration>(probe_->interval * 3).count() : 0;
    bool ready = probe_ != nullptr;
    w.begin_object();
    w.key("upstreams").begin_object();
    for (std::size_t i = 0; i < upstream_names.size(); ++i) {
        const std::int64_t last = probe_ ? probe_->last_ok[i].load(std::memory_order_relaxed) : 0;
        const bool up = last != 0 && now - last <= stale;
        // In cluster mode a replica serves without member-data (writes wait in PostgreSQL, warm
        // members need no read), and member-data is shared by every replica: counting it would
        // take them all out of the balancer at once and turn those 200s into its 503s.
        if (!(state_ && i == 0)) ready = ready && up;
        w.member(upstream_names[i], up ? "up" : "down");
    }
    w.end_object();
    if (state_) {
        const bool up = state_->connected();
        ready = ready && up;
        w.member("state", up ? "up" : "down");
    }
    w.member("status", ready ? "ready" : "not ready");
    w.end_object();
    return json_response(ready ? http::status::ok : http::status::service_unavailable, std::move(out));
}

void orchestrator_service::write_metrics(std::string& out) const {
    handler_.write_metrics(out);
    writes_.write_metrics(out);
    upstreams_.write_metrics(out);
}

}  // namespace offerd
