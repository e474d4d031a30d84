// The pipeline, top to bottom, with a latency measurement around every step.
#include "offerd/orchestrator/offer_pipeline.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <chrono>

#include "offerd/codec/wire.hpp"
#include "offerd/obs/log.hpp"

namespace offerd {

using namespace asio::experimental::awaitable_operators;
using steady = std::chrono::steady_clock;

namespace {
std::int64_t us_since(steady::time_point start) {
    return std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - start).count();
}

// One model call, timed on its own so the fan-out's branches are visible separately.
asio::awaitable<result<double>> timed_predict(upstreams& up, std::size_t worker, model m, std::string features,
                                              const call_context& ctx, std::int64_t& latency) {
    const auto start = steady::now();
    auto r = co_await up.predict(worker, m, std::move(features), ctx);
    latency = us_since(start);
    co_return r;
}
}  // namespace

micros offer_pipeline::now() const {
    if (cfg_.now) return *cfg_.now;
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

asio::awaitable<offer_outcome> offer_pipeline::decide(std::size_t worker, const transaction& t, const call_context& ctx,
                                                      history_handoff* known) const {
    offer_outcome out;
    auto& lat = out.latency;
    const auto t0 = steady::now();

    result<decoded_history> history = decoded_history{};
    out.fetched_at = t0;
    if (known) {
        // No GET: the step stays null in the log and metrics, history_handed_over says why. The
        // GET time travels with the history, however many hand-overs it passes through.
        history = std::move(known->history);
        out.fetched_at = known->fetched_at;
        out.history_handed_over = true;
    } else {
        history = co_await up_.fetch_history(worker, t.member_id, ctx);
        lat[step::fetch] = us_since(t0);
        if (!history) {
            out.error = std::move(history).error();
            lat[step::total] = us_since(t0);
            co_return out;
        }
    }
    out.history_len = history->items.size();
    out.history_skipped = history->skipped;
    // A handed-over history was built with nothing of the member in the outbox, and only the
    // persist of the request that handed it over can have put something there since: its own
    // transaction, which the history already holds.
    if (auto pending = known ? std::vector<transaction>{} : outbox_.pending_for(t.member_id); !pending.empty()) {
        out.pending_writes = pending.size();
        history->items.insert(history->items.end(), pending.begin(), pending.end());
    }
    if (history->skipped > 0) {
        log_event e(ctx.log, log_level::warn, "history_skipped", ctx.request_id, ctx.trace_id());
        e.with("memberId", std::string_view(t.member_id)).with("skipped", static_cast<std::uint64_t>(history->skipped));
        if (e.active()) {
            e.writer().key("reasons").begin_array();
            for (const auto& r : history->skip_reasons) e.writer().value(std::string_view(r));
            e.writer().end_array();
        }
    }

    auto t1 = steady::now();
    out.features = compute_features(history->items, t, now());
    std::string features_json = encode_features(out.features);
    lat[step::features] = us_since(t1);

    t1 = steady::now();
    auto [ats, resp] = co_await (timed_predict(up_, worker, model::ats, features_json, ctx, lat[step::predict_ats]) &&
                                 timed_predict(up_, worker, model::resp, std::move(features_json), ctx, lat[step::predict_resp]));
    lat[step::predict] = us_since(t1);
    if (ats) out.ats = *ats;
    if (resp) out.resp = *resp;
    if (!ats || !resp) {
        out.error = !ats ? std::move(ats).error() : std::move(resp).error();
        lat[step::total] = us_since(t0);
        co_return out;
    }

    t1 = steady::now();
    auto offer = co_await up_.assign_offer(worker, offer_request{*ats, *resp}, ctx);
    lat[step::offer] = us_since(t1);
    if (!offer) {
        out.error = std::move(offer).error();
        lat[step::total] = us_since(t0);
        co_return out;
    }
    out.offer = std::move(offer).value();
    out.history = std::move(*history);
    co_return out;
}

asio::awaitable<void> offer_pipeline::persist(std::size_t worker, const transaction& t, const call_context& ctx,
                                              offer_outcome& out) const {
    auto& lat = out.latency;
    const auto t1 = steady::now();
    std::string why_deferred = "earlier writes of this member are waiting in the outbox";
    bool rejected = false;
    if (!outbox_.has_pending(t.member_id)) {
        auto persisted = co_await up_.persist(worker, t, ctx);
        out.persisted = persisted.has_value();
        if (!persisted) {
            why_deferred = persisted.error().detail;
            // Queueing a refused transaction would block the member's outbox forever: fail the
            // request instead.
            rejected = refused_for_good(persisted.error());
        }
    }
    if (!out.persisted) {
        auto queued = rejected ? result<std::uint64_t>(fail(errc::upstream_bad_status, why_deferred))
                               : outbox_.add(std::string(ctx.persist_key), t);
        out.deferred = queued.has_value();
        log_event e(ctx.log, queued ? log_level::warn : log_level::error, queued ? "persist_deferred" : "persist_failed",
                    ctx.request_id, ctx.trace_id());
        e.with("memberId", std::string_view(t.member_id)).with("reason", why_deferred);
        if (!queued) e.with("error", queued.error().detail);
        if (e.active()) e.writer().key("transaction").raw(encode_transaction(t));
        if (!queued) {
            // Neither member-data nor the outbox took it: the client must know and retry.
            out.error = rejected ? fail(errc::upstream_bad_status, "member-data refused the transaction (" + why_deferred + ")")
                                 : fail(errc::upstream_unavailable, "member-data is unavailable and the write could not be queued");
        }
    }
    lat[step::persist] = us_since(t1);
}

}  // namespace offerd
