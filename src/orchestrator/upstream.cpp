// The generic upstream: admission by the breaker, attempts with backoff, the status mapping.
#include "offerd/orchestrator/upstream.hpp"

#include <array>
#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <optional>
#include <random>
#include <stdexcept>
#include <utility>
#include <vector>

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

struct upstream::state {
    // Touched only on its worker.
    struct per_worker {
        per_worker(const worker_context& w, const upstream_config& cfg, pool_gauges* gauges)
            : client(w, cfg.target, cfg.limits, gauges), budget(cfg.retry.budget_ratio) {}
        http_client client;
        retry_budget budget;
        std::minstd_rand jitter{std::random_device{}()};
    };
    state(upstream_config c, worker_set workers, logger& log) : cfg(std::move(c)), breaker(cfg.name, cfg.breaker, log) {
        for (const worker_context& w : workers) {
            if (w.index != slots.size()) throw std::invalid_argument("upstream " + cfg.name + ": workers out of index order");
            slots.push_back(std::make_unique<per_worker>(w, cfg, &pool));
        }
    }
    upstream_config cfg;
    circuit_breaker breaker;                                  // shared by all workers (its own protection)
    pool_gauges pool;                                         // atomics
    std::array<prom_histogram, outcome_names.size()> calls;   // per attempt, by outcome (thread-safe)
    std::atomic<std::uint64_t> retries{0};                    // attempts after the first
    std::vector<std::unique_ptr<per_worker>> slots;           // by worker index
};

upstream::upstream(upstream_config cfg, worker_set workers, logger& log) : s_(std::make_unique<state>(std::move(cfg), workers, log)) {}
upstream::~upstream() = default;

const std::string& upstream::name() const noexcept { return s_->cfg.name; }
circuit_breaker::state upstream::circuit() const noexcept { return s_->breaker.current(); }

namespace {

void log_failure(const call_context& ctx, const upstream::state& s, std::string_view path, const failure& f, int attempt,
                 unsigned status = 0) {
    log_event e(ctx.log, log_level::warn, "upstream_error", ctx.request_id, ctx.trace);
    // The path really requested, with the target's base path.
    e.with("upstream", s.cfg.name).with("path", s.cfg.target.base_path + std::string(path)).with("attempt", attempt).with("outcome", errc_name(f.code));
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

}  // namespace

failure upstream::bad_body(const call_context& ctx, std::string_view path, const failure& why) const {
    log_failure(ctx, *s_, path, fail(errc::upstream_bad_response, why.detail), 1, 200);
    return fail(errc::upstream_bad_response, s_->cfg.name + " answered an invalid body");
}

// Breaker protocol: every admitted attempt records exactly one outcome; a refusal is answered
// 503 circuit_open only when no earlier attempt of this call failed, else with that attempt's
// own failure (504/502): a call never trips the breaker with its retries and then reports the
// open circuit instead of what it saw.
asio::awaitable<result<response>> upstream::call(upstream_request req, const call_context& ctx) {
    state& svc = *s_;
    const std::string& name = svc.cfg.name;
    const retry_config& retry_cfg = svc.cfg.retry;
    auto& slot = *svc.slots[ctx.worker];
    slot.budget.on_request();
    std::optional<failure> seen;  // this call's last failed attempt
    for (int attempt = 1;; ++attempt) {
        const auto ticket = svc.breaker.admit();
        if (!ticket) {
            if (seen) co_return std::move(*seen);
            const int secs = static_cast<int>((ticket.retry_after.count() + 999) / 1000);
            failure f = fail(errc::circuit_open, name + " is failing; circuit open", secs);
            log_failure(ctx, svc, req.path, f, attempt);
            svc.calls[outcome_index(errc::circuit_open)].observe_us(0);
            co_return f;
        }
        const std::string traceparent = ctx.trace ? child_traceparent(*ctx.trace) : std::string();
        const auto started = std::chrono::steady_clock::now();
        // Whether this attempt had its full per-call timeout: a timeout caused by the request's
        // own deadline running out says nothing about the upstream's health.
        const bool full_budget = ctx.until.remaining() >= svc.cfg.limits.timeout;
        auto res = co_await slot.client.send(req.method, req.path, req.body,
                                             call_options{ctx.request_id, ctx.until, req.idempotency_key, traceparent});
        const auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
        const bool answered_ok = res && (res->result_int() == 200 || res->result_int() == req.also_ok);
        svc.calls[outcome_index(answered_ok ? errc::ok : !res ? res.error().code : errc::upstream_bad_status)].observe_us(took);
        failure f;
        unsigned status = 0;
        bool retry = false;
        if (!res) {
            f = std::move(res).error();
            if (f.code == errc::deadline_exceeded) {  // nothing was sent: not the upstream's fault
                svc.breaker.record(ticket, call_outcome::abandoned);
                f.detail = "request deadline exceeded before calling " + name;
                co_return f;
            }
            svc.breaker.record(ticket, f.code == errc::upstream_bad_response                     ? call_outcome::request_rejected
                                       : full_budget || f.code != errc::upstream_timeout ? call_outcome::unhealthy
                                                                                         : call_outcome::abandoned);
            retry = f.code == errc::upstream_timeout || f.code == errc::upstream_unavailable;
        } else {
            status = res->result_int();
            if (status == 200 || status == req.also_ok) {
                svc.breaker.record(ticket, call_outcome::success);
                co_return res;
            }
            svc.breaker.record(ticket, health_of(status));
            f = fail(errc::upstream_bad_status, "answered HTTP " + std::to_string(status));
            f.upstream_status = status;
            retry = retryable_status(status);
        }
        log_failure(ctx, svc, req.path, f, attempt, status);
        // What the client may see: the service and the kind of fault, never addresses or OS errors.
        f.detail = name + (f.code == errc::upstream_timeout       ? " timed out"
                           : f.code == errc::upstream_unavailable ? " is unavailable"
                           : f.code == errc::upstream_bad_status  ? " answered HTTP " + std::to_string(status)
                                                                  : " failed");
        if (!retry || !req.idempotent || attempt >= retry_cfg.max_attempts || !slot.budget.try_spend()) co_return f;
        // Full jitter, and never sleep past the deadline.
        const auto cap = std::min(retry_cfg.max_backoff, retry_cfg.base_backoff * (1 << std::min(attempt - 1, 16)));
        const auto pause = std::chrono::microseconds(std::uniform_int_distribution<std::int64_t>(
            0, std::chrono::duration_cast<std::chrono::microseconds>(cap).count())(slot.jitter));
        if (pause >= ctx.until.remaining()) co_return f;
        seen = f;
        asio::steady_timer timer(co_await asio::this_coro::executor, pause);
        co_await timer.async_wait(nothrow);
        svc.retries.fetch_add(1, std::memory_order_relaxed);
    }
}

void upstream::write_metrics(std::string& out, std::span<const upstream* const> all) {
    using cb = circuit_breaker;
    const auto label = [](const upstream* u) { return "service=\"" + label_value(u->name()) + "\""; };
    write_metric_header(out, "offerd_upstream_call_seconds", "histogram", "Upstream call attempts by service and outcome.");
    for (const upstream* u : all)
        for (std::size_t i = 0; i < outcome_names.size(); ++i)
            if (u->s_->calls[i].count() > 0)
                u->s_->calls[i].write(out, "offerd_upstream_call_seconds", label(u) + ",outcome=\"" + std::string(outcome_names[i]) + "\"");
    write_metric_header(out, "offerd_upstream_connections", "gauge", "Upstream keep-alive connections, idle or busy.");
    for (const upstream* u : all) {
        write_sample(out, "offerd_upstream_connections", label(u) + ",state=\"idle\"", static_cast<double>(u->s_->pool.idle.load()));
        write_sample(out, "offerd_upstream_connections", label(u) + ",state=\"busy\"", static_cast<double>(u->s_->pool.busy.load()));
    }
    write_metric_header(out, "offerd_upstream_retries_total", "counter", "Upstream call attempts after a call's first (retries), by service.");
    for (const upstream* u : all)
        write_sample(out, "offerd_upstream_retries_total", label(u), static_cast<double>(u->s_->retries.load(std::memory_order_relaxed)));
    write_metric_header(out, "offerd_circuit_state", "gauge", "Circuit breaker per upstream: 1 for its current state, 0 for the others.");
    for (const upstream* u : all) {
        const cb::state now = u->circuit();
        for (cb::state st : {cb::closed, cb::open, cb::half_open})
            write_sample(out, "offerd_circuit_state", label(u) + ",state=\"" + cb::name(st) + "\"", st == now ? 1 : 0);
    }
    write_metric_header(out, "offerd_circuit_transitions_total", "counter", "Circuit breaker transitions per upstream.");
    for (const upstream* u : all)
        for (auto [from, to] : {std::pair{cb::closed, cb::open}, std::pair{cb::open, cb::half_open},
                                std::pair{cb::half_open, cb::open}, std::pair{cb::half_open, cb::closed}})
            write_sample(out, "offerd_circuit_transitions_total", label(u) + ",from=\"" + cb::name(from) + "\",to=\"" + cb::name(to) + "\"",
                         static_cast<double>(u->s_->breaker.transitions(from, to)));
}

}  // namespace offerd
