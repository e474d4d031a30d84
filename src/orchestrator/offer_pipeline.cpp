// The offer flow, top to bottom, with a latency measurement around every step.
#include "offerd/orchestrator/offer_pipeline.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>

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
asio::awaitable<result<double>> timed_predict(offer_clients& c, model m, std::string features, const call_context& ctx,
                                              std::int64_t& latency) {
    const auto start = steady::now();
    auto r = co_await c.predict(m, std::move(features), ctx);
    latency = us_since(start);
    co_return r;
}
}  // namespace

micros offer_pipeline::now() const {
    if (cfg_.now) return *cfg_.now;
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

asio::awaitable<void> offer_pipeline::decide(member_session& s, const transaction& t, const call_context& ctx, offer_outcome& out) {
    auto& lat = out.latency;
    auto t0 = steady::now();
    auto read = co_await writes_.read(s, ctx);
    if (s.fetched || !read) lat[step::fetch] = us_since(t0);
    if (!read) {
        out.error = std::move(read).error();
        co_return;
    }
    out.fetched = s.fetched;
    out.history_len = s.history().size();
    out.history_skipped = s.record->skipped;
    out.pending_writes = s.pending;
    if (s.fetched && s.record->skipped > 0) {
        log_event e(ctx.log, log_level::warn, "history_skipped", ctx.request_id, ctx.trace);
        e.with("memberId", std::string_view(t.member_id)).with("skipped", static_cast<std::uint64_t>(s.record->skipped));
        if (e.active()) {
            e.writer().key("reasons").begin_array();
            for (const auto& r : s.skip_reasons) e.writer().value(std::string_view(r));
            e.writer().end_array();
        }
    }

    t0 = steady::now();
    out.features = compute_features(s.history(), t, now());
    std::string features_json = encode_features(out.features);
    lat[step::features] = us_since(t0);

    t0 = steady::now();
    auto [ats, resp] = co_await (timed_predict(clients_, model::ats, features_json, ctx, lat[step::predict_ats]) &&
                                 timed_predict(clients_, model::resp, std::move(features_json), ctx, lat[step::predict_resp]));
    lat[step::predict] = us_since(t0);
    if (ats) out.ats = *ats;
    if (resp) out.resp = *resp;
    if (!ats || !resp) {
        // Both calls go to one upstream: when one's failures opened the circuit that then refused
        // the other, the request is answered with the failure it saw (504/502), not 503
        // "circuit open", which is for requests that arrive while it is open.
        const bool ats_only_refused = !ats && !resp && ats.error().code == errc::circuit_open;
        out.error = !ats && !ats_only_refused ? std::move(ats).error() : std::move(resp).error();
        co_return;
    }

    t0 = steady::now();
    auto offer = co_await clients_.assign_offer(offer_request{*ats, *resp}, ctx);
    lat[step::offer] = us_since(t0);
    if (!offer) {
        out.error = std::move(offer).error();
        co_return;
    }
    out.offer = std::move(offer).value();
}

asio::awaitable<offer_outcome> offer_pipeline::run(const offer_input& in, const call_context& ctx) {
    const transaction& t = in.txn;
    offer_outcome out;
    auto turn = co_await deciding_.acquire(t.member_id, ctx.until, in.max_member_waiting);
    if (!turn) {
        out.error = std::move(turn).error();
        co_return out;
    }
    if (!in.idempotency_key.empty()) {
        if (auto seen = writes_.replay(t.member_id, in.idempotency_key)) {
            if (seen->body_hash != in.body_hash) {
                out.error = fail(errc::idempotency_conflict, "Idempotency-Key: already used with a different body");
            } else {
                out.replayed = true;
                out.replay_status = seen->status;
                out.replay_body = std::move(seen->body);
            }
            co_return out;
        }
    }
    member_session s(t.member_id);
    struct finish_guard {
        write_path& w;
        member_session& s;
        ~finish_guard() { w.finish(s); }
    } finish{writes_, s};

    // Cluster mode: the fence refuses a decision over a history another replica has grown;
    // after this many in a row the member is too contended to decide now.
    constexpr int max_conflicts = 3;
    int conflicts = 0;
    std::string answer;
    for (;;) {
        co_await decide(s, t, ctx, out);
        if (out.error) co_return out;
        answer = encode_member_offer(t.member_id, out.offer);
        auto accepted = co_await writes_.accept(s, t, accept_info{in.idempotency_key, in.body_hash, answer}, ctx);
        if (!accepted) {
            out.error = std::move(accepted).error();
            co_return out;
        }
        if (accepted->what == accept_outcome::kind::accepted) break;
        if (accepted->what == accept_outcome::kind::replay) {
            // Another replica answered this key first (or this one, before a restart).
            if (accepted->answer.body_hash != in.body_hash) {
                out.error = fail(errc::idempotency_conflict, "Idempotency-Key: already used with a different body");
            } else {
                out.replayed = true;
                out.replay_status = 200;
                out.replay_body = std::move(accepted->answer.body);
            }
            co_return out;
        }
        // The member's previous write was refused while this request decided over a history
        // counting it, or (cluster mode) another replica accepted one: decide again over what
        // member-data and the member log hold.
        out.decided_again = true;
        log_event(ctx.log, log_level::warn, "decided_again", ctx.request_id, ctx.trace)
            .with("memberId", std::string_view(t.member_id));
        out.latency = step_latencies{};
        if (writes_.clustered() && ++conflicts >= max_conflicts) {
            out.error = fail(errc::state_unavailable, "this member's history changed on another replica while deciding; retry", 1);
            co_return out;
        }
    }
    // The member's next request may decide now, over the record that counts t; a keyed request
    // keeps its turn until its answer is recorded, so a concurrent repeat replays it (in cluster
    // mode the member log recorded it with the commit).
    if (in.idempotency_key.empty() || writes_.clustered()) turn->release();

    const auto t0 = steady::now();
    const std::string key = writes_.write_key(t.member_id, in.idempotency_key);
    const write_outcome w = co_await writes_.deliver(s, t, key, ctx);
    out.latency[step::persist] = us_since(t0);
    out.delivered = w.delivered;
    out.deferred = w.deferred;
    if (w.error) {
        out.error = *w.error;
        co_return out;
    }
    if (!in.idempotency_key.empty()) writes_.remember(t.member_id, in.idempotency_key, {in.body_hash, 200, std::move(answer)});
    co_return out;
}

}  // namespace offerd
