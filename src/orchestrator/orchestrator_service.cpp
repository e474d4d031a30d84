// POST /member/offer: parse, admit, sequence, run the pipeline, map, log.
#include "offerd/orchestrator/orchestrator_service.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "offerd/codec/json_writer.hpp"
#include "offerd/codec/wire.hpp"
#include "offerd/obs/log.hpp"
#include "offerd/obs/prometheus.hpp"
#include "offerd/services/services.hpp"

namespace offerd {

orchestrator_service::orchestrator_service(std::span<asio::io_context* const> workers, const orchestrator_config& cfg,
                                           const orchestrator_urls& urls, logger& log, loopback_affinity* affinity)
    : cfg_(cfg),
      urls_(urls),
      log_(log),
      upstreams_(workers, urls.member_data, urls.prediction, urls.offer_engine, cfg_, log, affinity),
      outbox_(cfg.outbox),
      pipeline_(upstreams_, outbox_, cfg_),
      answers_(cfg.idempotency_retention, cfg.idempotency_capacity),
      metrics_(workers.size()) {}

std::shared_ptr<router> orchestrator_service::make_router() {
    auto r = std::make_shared<router>();
    add_health_route(*r);
    r->add(http::verb::post, "/member/offer", [this](request_context& ctx) { return handle_offer(ctx); });
    r->add(http::verb::get, "/ready", [this](request_context&) -> asio::awaitable<response> { co_return handle_ready(); });
    r->on_error = [this](const request_context& ctx, std::string_view what) {
        log_event(log_, log_level::error, "handler_exception", ctx.request_id, ctx.trace.trace_id).with("error", what);
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

struct orchestrator_service::drain_state {
    explicit drain_state(asio::io_context& ctx) : timer(ctx) {}
    asio::steady_timer timer;
    bool stopped = false;  // touched only on the drainer's io_context
};

asio::awaitable<void> orchestrator_service::drain_loop(orchestrator_service* self, std::shared_ptr<drain_state> st) {
    const auto& cfg = self->cfg_.outbox;
    auto backoff = cfg.retry_min;
    while (!st->stopped) {
        auto next = self->outbox_.size() ? self->outbox_.front() : std::nullopt;
        if (next) {
            const deadline until = deadline::after(self->cfg_.request_deadline);
            auto turn = co_await self->sequencer_.acquire(next->txn.member_id, until);
            std::optional<member_sequencer::lease> write_turn;
            if (turn) {
                auto w = co_await self->writes_.acquire(next->txn.member_id, until);
                if (w) write_turn = std::move(*w);
            }
            if (turn && write_turn) {
                const std::string rid = "outbox-" + std::to_string(next->seq);
                const call_context ctx{rid, until, self->log_, next->key, nullptr};
                auto delivered = co_await self->upstreams_.persist(0, next->txn, ctx);
                const bool refused = !delivered && refused_for_good(delivered.error());
                const unsigned status = refused ? delivered.error().upstream_status : 0;
                if (delivered || refused) {
                    // Acknowledge before the member's next request may look at the outbox.
                    self->outbox_.acknowledge(next->seq);
                    write_turn->release();
                    turn->release();
                    if (refused) {
                        // Permanent: member-data will never take it. Dead-letter it in full.
                        log_event e(self->log_, log_level::error, "outbox_dead_letter", rid);
                        e.with("memberId", std::string_view(next->txn.member_id)).with("status", static_cast<std::int64_t>(status));
                        if (e.active()) e.writer().key("transaction").raw(encode_transaction(next->txn));
                    } else {
                        log_event(self->log_, log_level::info, "outbox_delivered", rid)
                            .with("memberId", std::string_view(next->txn.member_id))
                            .with("remaining", static_cast<std::uint64_t>(self->outbox_.size()));
                    }
                    backoff = cfg.retry_min;
                    continue;
                }
                write_turn->release();
                turn->release();
            }
            backoff = std::min(cfg.retry_max, backoff * 2);
        }
        st->timer.expires_after(next ? backoff : cfg.retry_min);
        co_await st->timer.async_wait(nothrow);
    }
}

void orchestrator_service::start_outbox_drainer(asio::io_context& ctx) {
    drain_ = std::make_shared<drain_state>(ctx);
    asio::co_spawn(ctx, drain_loop(this, drain_), asio::detached);
}

void orchestrator_service::stop_outbox_drainer() {
    if (drain_)
        asio::post(drain_->timer.get_executor(), [st = drain_] {
            st->stopped = true;
            st->timer.cancel();
        });
    if (outbox_.size() == 0) return;
    if (!cfg_.outbox.dir.empty()) {
        log_event(log_, log_level::warn, "outbox_pending_on_disk")
            .with("count", static_cast<std::uint64_t>(outbox_.size()))
            .with("dir", cfg_.outbox.dir);
        return;
    }
    // Memory only: say exactly what was not delivered, so it can be replayed.
    for (const auto& it : outbox_.snapshot()) {
        log_event e(log_, log_level::error, "outbox_undelivered");
        e.with("memberId", std::string_view(it.txn.member_id)).with("idempotency_key", it.key);
        if (e.active()) e.writer().key("transaction").raw(encode_transaction(it.txn));
    }
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
        ready = ready && up;
        w.member(upstream_names[i], up ? "up" : "down");
    }
    w.end_object();
    w.member("status", ready ? "ready" : "not ready");
    w.end_object();
    return json_response(ready ? http::status::ok : http::status::service_unavailable, std::move(out));
}

namespace {

void write_offer_event(log_event& e, const transaction& t, const offer_outcome& o, unsigned status) {
    if (!e.active()) return;
    json_writer& w = e.writer();
    w.member("memberId", std::string_view(t.member_id)).member("status", static_cast<std::int64_t>(status));
    w.key("transaction").raw(encode_transaction(t));
    w.member("history_len", static_cast<std::uint64_t>(o.history_len))
        .member("history_skipped", static_cast<std::uint64_t>(o.history_skipped));
    if (o.latency[step::features] >= 0) w.key("features").raw(encode_features(o.features));
    w.member("ats", o.ats).member("resp", o.resp);
    if (o.offer.empty()) w.key("offer").null();
    else w.member("offer", std::string_view(o.offer));
    w.member("history_handed_over", o.history_handed_over);
    w.member("persisted", o.persisted).member("deferred", o.deferred).member("pending_writes", static_cast<std::uint64_t>(o.pending_writes));
    if (o.error) w.member("error", errc_name(o.error->code)).member("error_detail", std::string_view(o.error->detail));
    w.key("latency_us").begin_object();
    for (std::size_t i = 0; i < step_count; ++i) {
        w.key(to_string(static_cast<step>(i)));
        if (o.latency.us[i] >= 0) w.value(o.latency.us[i]);
        else w.null();
    }
    w.end_object();
}

}  // namespace

asio::awaitable<offer_outcome> orchestrator_service::offer_under_turn(std::size_t worker, const transaction& t,
                                                                       const call_context& call, member_sequencer::lease& turn,
                                                                       std::unique_ptr<history_handoff> known,
                                                                       bool may_hand_over) {
    std::optional<member_sequencer::lease> write_turn;
    auto take_write_turn = [&]() -> asio::awaitable<std::optional<failure>> {
        auto w = co_await writes_.acquire(t.member_id, call.until);
        if (!w) co_return std::move(w).error();
        write_turn = std::move(*w);
        co_return std::nullopt;
    };
    offer_outcome out;
    if (!known) {
        // Reading member-data: every earlier write of the member must have landed.
        if (auto err = co_await take_write_turn()) {
            out.error = std::move(*err);
            co_return out;
        }
    }
    out = co_await pipeline_.decide(worker, t, call, known.get());
    if (out.error) co_return out;
    if (!write_turn) {
        if (auto err = co_await take_write_turn()) {
            out.error = std::move(*err);
            co_return out;
        }
        if (known->previous_write->load(std::memory_order_acquire) != write_state::stored) {
            // The history handed over holds a transaction member-data may never have got (its
            // request failed, or ended without saying how): decide again from what it holds.
            log_event(call.log, log_level::warn, "handoff_discarded", call.request_id, call.trace_id())
                .with("memberId", std::string_view(t.member_id));
            out = co_await pipeline_.decide(worker, t, call);
            if (out.error) co_return out;
        }
    }
    std::shared_ptr<std::atomic<write_state>> mine;
    if (may_hand_over && out.pending_writes == 0 && !outbox_.has_pending(t.member_id)) {
        // The member's next request may decide now, over this history plus t, while t is
        // persisted: it learns how the persist ended when it takes the write turn after us.
        mine = std::make_shared<std::atomic<write_state>>(write_state::in_flight);
        out.history.items.push_back(t);
        turn.release(std::make_unique<history_handoff>(history_handoff{std::move(out.history), out.fetched_at, mine}));
    }
    co_await pipeline_.persist(worker, t, call, out);
    if (mine) mine->store(out.error ? write_state::lost : write_state::stored, std::memory_order_release);
    co_return out;
}

asio::awaitable<response> orchestrator_service::handle_offer(request_context& ctx) {
    const auto started = std::chrono::steady_clock::now();
    struct in_flight_guard {
        std::atomic<std::size_t>& n;
        ~in_flight_guard() { n.fetch_sub(1, std::memory_order_relaxed); }
    } guard{in_flight_};
    if (in_flight_.fetch_add(1, std::memory_order_relaxed) >= cfg_.max_in_flight) {
        log_event(log_, log_level::warn, "overloaded", ctx.request_id, ctx.trace.trace_id).with("in_flight", static_cast<std::uint64_t>(in_flight_.load()));
        co_return failure_response(fail(errc::overloaded, {}));
    }

    auto parsed = decode_transaction(ctx.req.body());
    if (!parsed) {
        log_event(log_, log_level::info, "rejected", ctx.request_id, ctx.trace.trace_id)
            .with("status", static_cast<std::int64_t>(static_cast<unsigned>(status_for(parsed.error().code))))
            .with("detail", parsed.error().detail);
        co_return failure_response(parsed.error());
    }
    const transaction& t = *parsed;
    std::string_view key;
    if (auto it = ctx.req.find("Idempotency-Key"); it != ctx.req.end()) {
        key = it->value();
        if (key.empty() || key.size() > 255)
            co_return failure_response(fail(errc::invalid_field, "Idempotency-Key: must be 1 to 255 characters"));
    }
    // Member-data de-duplicates persists by this key, which is what makes retrying them safe. Keys
    // are scoped by member: two members' requests never share one.
    const std::string persist_key = key.empty() ? "auto-" + new_request_id() + new_request_id()
                                                : "key-" + t.member_id + "-" + std::string(key);
    const std::string answer_key = t.member_id + " " + std::string(key);
    const call_context call{ctx.request_id, deadline(started + cfg_.request_deadline), log_, persist_key, &ctx.trace};

    offer_outcome outcome;
    auto turn = co_await sequencer_.acquire(t.member_id, call.until);
    if (!turn) {
        outcome.error = std::move(turn).error();
    } else {
        // Exact only for a request that arrived before the GET it derives from was sent.
        auto known = turn->take_handoff();
        if (known && known->fetched_at < started) known.reset();
        // Looked up under the member's turn, so a concurrent repeat waits for the original.
        const std::uint64_t body_hash = idempotency_cache::hash(ctx.req.body());
        if (!key.empty()) {
            if (auto seen = answers_.find(answer_key)) {
                turn->release(std::move(known));  // a replay touches nothing
                if (seen->body_hash != body_hash)
                    co_return failure_response(fail(errc::idempotency_conflict, "Idempotency-Key: already used with a different body"));
                log_event(log_, log_level::info, "offer_replayed", ctx.request_id, ctx.trace.trace_id)
                    .with("memberId", std::string_view(t.member_id))
                    .with("idempotency_key", key);
                response replay = json_response(static_cast<http::status>(seen->status), seen->body);
                replay.set("Idempotent-Replayed", "true");
                co_return replay;
            }
        }
        outcome = co_await offer_under_turn(ctx.worker, t, call, *turn, std::move(known), key.empty());
        if (!key.empty() && !outcome.error)
            answers_.store(answer_key, {body_hash, 200, encode_member_offer(t.member_id, outcome.offer)});
        turn->release();
    }
    outcome.latency[step::total] =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();

    response res = outcome.error ? failure_response(*outcome.error)
                                 : json_response(http::status::ok, encode_member_offer(t.member_id, outcome.offer));
    {
        log_event e(log_, outcome.error ? log_level::warn : log_level::info, "offer", ctx.request_id, ctx.trace.trace_id);
        write_offer_event(e, t, outcome, res.result_int());
    }
    metrics_.record(ctx.worker, outcome.latency, !outcome.error);
    for (std::size_t i = 0; i < step_count; ++i)
        if (outcome.latency.us[i] >= 0) step_seconds_[i].observe_us(outcome.latency.us[i]);
    if (!outcome.error) offers_[outcome.offer == offer_discount ? 0 : outcome.offer == offer_bonus ? 1 : 2].fetch_add(1, std::memory_order_relaxed);
    history_skipped_.fetch_add(outcome.history_skipped, std::memory_order_relaxed);
    co_return res;
}

void orchestrator_service::write_metrics(std::string& out) const {
    write_metric_header(out, "offerd_pipeline_step_seconds", "histogram", "Offer pipeline latency per step.");
    for (std::size_t i = 0; i < step_count; ++i)
        step_seconds_[i].write(out, "offerd_pipeline_step_seconds", "step=\"" + std::string(to_string(static_cast<step>(i))) + "\"");
    write_metric_header(out, "offerd_in_flight_requests", "gauge", "Offer requests in progress.");
    write_sample(out, "offerd_in_flight_requests", {}, static_cast<double>(in_flight_.load()));
    write_metric_header(out, "offerd_offers_total", "counter", "Offers answered, by offer.");
    write_sample(out, "offerd_offers_total", "offer=\"50% Discount\"", static_cast<double>(offers_[0].load()));
    write_sample(out, "offerd_offers_total", "offer=\"35% Bonus\"", static_cast<double>(offers_[1].load()));
    write_sample(out, "offerd_offers_total", "offer=\"other\"", static_cast<double>(offers_[2].load()));
    write_metric_header(out, "offerd_outbox_pending", "gauge", "Transactions waiting in the outbox for member-data.");
    write_sample(out, "offerd_outbox_pending", {}, static_cast<double>(outbox_.size()));
    write_metric_header(out, "offerd_history_skipped_total", "counter", "History entries from member-data that could not be parsed.");
    write_sample(out, "offerd_history_skipped_total", {}, static_cast<double>(history_skipped_.load()));
    upstreams_.write_metrics(out);
}

}  // namespace offerd
