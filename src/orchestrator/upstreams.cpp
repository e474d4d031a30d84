// Typed upstream calls: retries, circuit breaking and the status/body mapping.
#include "offerd/orchestrator/upstreams.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <optional>
#include <random>
#include <utility>

#include "offerd/orchestrator/config.hpp"
#include "offerd/obs/log.hpp"
#include "offerd/obs/prometheus.hpp"

namespace offerd {

namespace {
// Outcome labels of offerd_upstream_call_seconds.
constexpr std::array<std::string_view, 7> outcome_names{"ok", "upstream_timeout", "upstream_unavailable", "upstream_bad_status",
                                                        "upstream_bad_response", "circuit_open", "other"};
std::size_t outcome_index(errc e) {
    switch (e) {
    case errc::ok: return 0;
    case errc::upstream_timeout: return 1;
    case errc::upstream_unavailable: return 2;
    case errc::upstream_bad_status: return 3;
    case errc::upstream_bad_response: return 4;
    case errc::circuit_open: return 5;
    default: return 6;
    }
}
}  // namespace

struct upstreams::service {
    struct per_worker {
        per_worker(asio::io_context& ctx, const url& u, const orchestrator_config& cfg, pool_gauges* gauges,
                   loopback_affinity* affinity, std::size_t worker)
            : client(ctx.get_executor(), u, cfg.upstream, gauges, affinity, worker), budget(cfg.retry.budget_ratio) {}
        http_client client;
        retry_budget budget;
        std::minstd_rand jitter{std::random_device{}()};
    };
    service(std::string_view n, std::span<asio::io_context* const> workers, const url& u, const orchestrator_config& cfg,
            logger& log, loopback_affinity* affinity)
        : name(n), base_path(u.base_path), call_timeout(cfg.upstream.timeout), retry(cfg.retry), breaker(std::string(n), cfg.breaker, log) {
        for (std::size_t i = 0; i < workers.size(); ++i)
            slots.push_back(std::make_unique<per_worker>(*workers[i], u, cfg, &pool, affinity, i));
    }
    std::string_view name;
    std::string base_path;  // of its URL: what the logs show is the path really requested
    std::chrono::milliseconds call_timeout;
    retry_config retry;
    circuit_breaker breaker;
    pool_gauges pool;
    std::array<prom_histogram, outcome_names.size()> calls;  // per attempt, by outcome
    std::atomic<std::uint64_t> retries{0};  // attempts after the first
    std::vector<std::unique_ptr<per_worker>> slots;
};

upstreams::upstreams(std::span<asio::io_context* const> workers, const url& member_data, const url& prediction,
                     const url& offer_engine, const orchestrator_config& cfg, logger& log, loopback_affinity* affinity)
    : member_data_(std::make_unique<service>("member-data", workers, member_data, cfg, log, affinity)),
      member_data_writes_(std::make_unique<service>("member-data-writes", workers, member_data, cfg, log, affinity)),
      prediction_(std::make_unique<service>("prediction", workers, prediction, cfg, log, affinity)),
      offer_engine_(std::make_unique<service>("offer-engine", workers, offer_engine, cfg, log, affinity)) {}

upstreams::~upstreams() = default;

namespace {

void log_failure(const call_context& ctx, const upstreams::service& svc, std::string_view path, const failure& f, int attempt,
                 unsigned status = 0) {
    log_event e(ctx.log, log_level::warn, "upstream_error", ctx.request_id, ctx.trace);
    e.with("upstream", svc.name).with("path", svc.base_path + std::string(path)).with("attempt", attempt).with("outcome", errc_name(f.code));
    if (status != 0) e.with("status", static_cast<std::int64_t>(status));
    e.with("error", f.detail);
}

bool retryable_status(unsigned s) { return s == 429 || s == 502 || s == 503 || s == 504; }

// What an answered status says about the upstream's health (see call_outcome).
call_outcome health_of(unsigned status) {
    if (retryable_status(status)) return call_outcome::unhealthy;
    if (status >= 500) return call_outcome::request_rejected;  // e.g. a 500 for this input
    return call_outcome::success;  // it answered; a 4xx means the request was the problem
}

// One logical call: admission by the breaker, attempts with backoff, mapping of statuses.
// `also_ok` is a non-200 status the caller handles itself (404 for a history).
// Breaker protocol (port it as is): every admitted attempt records exactly one outcome; a refusal
// is answered 503 circuit_open only when no earlier attempt of this call failed, else with that
// attempt's own failure (504/502): a call never trips the breaker with its retries and then
// reports the open circuit instead of what it saw.
asio::awaitable<result<response>> call(upstreams::service& svc, const call_context& ctx,
                                       http::verb method, std::string path, std::string body, bool idempotent,
                                       unsigned also_ok = 0, std::string_view idempotency_key = {}) {
    auto& slot = *svc.slots[ctx.worker];
    slot.budget.on_request();
    std::optional<failure> seen;  // this call's last failed attempt
    for (int attempt = 1;; ++attempt) {
        const auto ticket = svc.breaker.admit();
        if (!ticket) {
            if (seen) co_return std::move(*seen);
            const int secs = static_cast<int>((ticket.retry_after.count() + 999) / 1000);
            failure f = fail(errc::circuit_open, std::string(svc.name) + " is failing; circuit open", secs);
            log_failure(ctx, svc, path, f, attempt);
            svc.calls[outcome_index(errc::circuit_open)].observe_us(0);
            co_return f;
        }
        const std::string traceparent = ctx.trace ? child_traceparent(*ctx.trace) : std::string();
        const auto started = std::chrono::steady_clock::now();
        // Whether this attempt had its full per-call timeout: a timeout caused by the request's
        // own deadline running out says nothing about the upstream's health.
        const bool full_budget = ctx.until.remaining() >= svc.call_timeout;
        auto res = co_await slot.client.send(method, path, body, call_options{ctx.request_id, ctx.until, idempotency_key, traceparent});
        const auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
        const bool answered_ok = res && (res->result_int() == 200 || res->result_int() == also_ok);
        svc.calls[outcome_index(answered_ok ? errc::ok : !res ? res.error().code : errc::upstream_bad_status)].observe_us(took);
        failure f;
        unsigned status = 0;
        bool retry = false;
        if (!res) {
            f = std::move(res).error();
            if (f.code == errc::deadline_exceeded) {  // nothing was sent: not the upstream's fault
                svc.breaker.record(ticket, call_outcome::abandoned);
                f.detail = "request deadline exceeded before calling " + std::string(svc.name);
                co_return f;
            }
            svc.breaker.record(ticket, f.code == errc::upstream_bad_response                     ? call_outcome::request_rejected
                                       : full_budget || f.code != errc::upstream_timeout ? call_outcome::unhealthy
                                                                                         : call_outcome::abandoned);
            retry = f.code == errc::upstream_timeout || f.code == errc::upstream_unavailable;
        } else {
            status = res->result_int();
            if (status == 200 || status == also_ok) {
                svc.breaker.record(ticket, call_outcome::success);
                co_return res;
            }
            svc.breaker.record(ticket, health_of(status));
            f = fail(errc::upstream_bad_status, "answered HTTP " + std::to_string(status));
            f.upstream_status = status;
            retry = retryable_status(status);
        }
        log_failure(ctx, svc, path, f, attempt, status);
        // What the client may see: the service and the kind of fault, never addresses or OS errors.
        f.detail = std::string(svc.name) + (f.code == errc::upstream_timeout       ? " timed out"
                                            : f.code == errc::upstream_unavailable ? " is unavailable"
                                            : f.code == errc::upstream_bad_status  ? " answered HTTP " + std::to_string(status)
                                                                                   : " failed");
        if (!retry || !idempotent || attempt >= svc.retry.max_attempts || !slot.budget.try_spend()) co_return f;
        // Full jitter, and never sleep past the deadline.
        const auto cap = std::min(svc.retry.max_backoff, svc.retry.base_backoff * (1 << std::min(attempt - 1, 16)));
        const auto pause = std::chrono::microseconds(std::uniform_int_distribution<std::int64_t>(
            0, std::chrono::duration_cast<std::chrono::microseconds>(cap).count())(slot.jitter));
        if (pause >= ctx.until.remaining()) co_return f;
        seen = f;
        asio::steady_timer timer(co_await asio::this_coro::executor, pause);
        co_await timer.async_wait(nothrow);
        svc.retries.fetch_add(1, std::memory_order_relaxed);
    }
}

void write_service_metrics(std::string& out, const upstreams::service& svc, int part) {
    const std::string service = "service=\"" + std::string(svc.name) + "\"";
    if (part == 0) {
        for (std::size_t i = 0; i < outcome_names.size(); ++i)
            if (svc.calls[i].count() > 0)
                svc.calls[i].write(out, "offerd_upstream_call_seconds", service + ",outcome=\"" + std::string(outcome_names[i]) + "\"");
    } else if (part == 1) {
        write_sample(out, "offerd_upstream_connections", service + ",state=\"idle\"", static_cast<double>(svc.pool.idle.load()));
        write_sample(out, "offerd_upstream_connections", service + ",state=\"busy\"", static_cast<double>(svc.pool.busy.load()));
    } else if (part == 2) {
        using cb = circuit_breaker;
        const cb::state now = svc.breaker.current();
        for (cb::state st : {cb::closed, cb::open, cb::half_open})
            write_sample(out, "offerd_circuit_state", service + ",state=\"" + cb::name(st) + "\"", st == now ? 1 : 0);
    } else if (part == 4) {
        write_sample(out, "offerd_upstream_retries_total", service, static_cast<double>(svc.retries.load(std::memory_order_relaxed)));
    } else {
        using cb = circuit_breaker;
        for (auto [from, to] : {std::pair{cb::closed, cb::open}, std::pair{cb::open, cb::half_open},
                                std::pair{cb::half_open, cb::open}, std::pair{cb::half_open, cb::closed}})
            write_sample(out, "offerd_circuit_transitions_total",
                         service + ",from=\"" + cb::name(from) + "\",to=\"" + cb::name(to) + "\"",
                         static_cast<double>(svc.breaker.transitions(from, to)));
    }
}

template <class T>
result<T> bad_body(const call_context& ctx, const upstreams::service& svc, std::string_view path, const failure& why) {
    log_failure(ctx, svc, path, fail(errc::upstream_bad_response, why.detail), 1, 200);
    return fail(errc::upstream_bad_response, std::string(svc.name) + " answered an invalid body");
}

}  // namespace

asio::awaitable<result<decoded_history>> upstreams::fetch_history(const std::string& member_id, const call_context& ctx) {
    std::string path = "/member_data/" + member_id;
    auto res = co_await call(*member_data_, ctx, http::verb::get, path, {}, true, 404);
    if (!res) co_return std::move(res).error();
    if (res->result() == http::status::not_found) co_return decoded_history{};
    auto h = decode_history(res->body());
    if (!h) co_return bad_body<decoded_history>(ctx, *member_data_, path, h.error());
    co_return h;
}

asio::awaitable<result<double>> upstreams::predict(model m, std::string features_json, const call_context& ctx) {
    const char* path = m == model::ats ? "/ml/ats/predict" : "/ml/resp/predict";
    auto res = co_await call(*prediction_, ctx, http::verb::post, path, std::move(features_json), true);
    if (!res) co_return std::move(res).error();
    auto p = decode_prediction(res->body());
    if (!p) co_return bad_body<double>(ctx, *prediction_, path, p.error());
    co_return p;
}

asio::awaitable<result<std::string>> upstreams::assign_offer(offer_request r, const call_context& ctx) {
    constexpr const char* path = "/offer/assign";
    auto res = co_await call(*offer_engine_, ctx, http::verb::post, path, encode_offer_request(r), true);
    if (!res) co_return std::move(res).error();
    auto o = decode_offer(res->body());
    if (!o) co_return bad_body<std::string>(ctx, *offer_engine_, path, o.error());
    co_return o;
}

void upstreams::write_metrics(std::string& out) const {
    write_metric_header(out, "offerd_upstream_call_seconds", "histogram", "Upstream call attempts by service and outcome.");
    for (const auto* svc : {member_data_.get(), member_data_writes_.get(), prediction_.get(), offer_engine_.get()}) write_service_metrics(out, *svc, 0);
    write_metric_header(out, "offerd_upstream_connections", "gauge", "Upstream keep-alive connections, idle or busy.");
    for (const auto* svc : {member_data_.get(), member_data_writes_.get(), prediction_.get(), offer_engine_.get()}) write_service_metrics(out, *svc, 1);
    write_metric_header(out, "offerd_upstream_retries_total", "counter", "Upstream call attempts after a call's first (retries), by service.");
    for (const auto* svc : {member_data_.get(), member_data_writes_.get(), prediction_.get(), offer_engine_.get()}) write_service_metrics(out, *svc, 4);
    write_metric_header(out, "offerd_circuit_state", "gauge", "Circuit breaker per upstream: 1 for its current state, 0 for the others.");
    for (const auto* svc : {member_data_.get(), member_data_writes_.get(), prediction_.get(), offer_engine_.get()}) write_service_metrics(out, *svc, 2);
    write_metric_header(out, "offerd_circuit_transitions_total", "counter", "Circuit breaker transitions per upstream.");
    for (const auto* svc : {member_data_.get(), member_data_writes_.get(), prediction_.get(), offer_engine_.get()}) write_service_metrics(out, *svc, 3);
}

asio::awaitable<result<store_ack>> upstreams::store(const transaction& t, const std::string& key, const call_context& ctx) {
    auto res = co_await call(*member_data_writes_, ctx, http::verb::post, "/member_data", encode_transaction(t), !key.empty(), 0, key);
    if (!res) co_return std::move(res).error();
    const auto replayed = res->find("Idempotent-Replayed");
    co_return store_ack{replayed != res->end() && replayed->value() == "true"};
}

offer_clients upstreams::clients() {
    offer_clients c;
    c.fetch_history = [this](const std::string& m, const call_context& ctx) { return fetch_history(m, ctx); };
    c.predict = [this](model m, std::string f, const call_context& ctx) { return predict(m, std::move(f), ctx); };
    c.assign_offer = [this](offer_request r, const call_context& ctx) { return assign_offer(r, ctx); };
    c.store = [this](const transaction& t, const std::string& key, const call_context& ctx) { return store(t, key, ctx); };
    return c;
}

}  // namespace offerd
