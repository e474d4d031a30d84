// POST /member/offer: the thin edge between HTTP and the offer flow.
#include "offerd/orchestrator/offer_handler.hpp"

#include <charconv>

#include "offerd/codec/json_writer.hpp"
#include "offerd/codec/wire.hpp"
#include "offerd/obs/log.hpp"

namespace offerd {

namespace {

void write_offer_event(log_event& e, const transaction& t, const offer_outcome& o, unsigned status, std::string_view client) {
    if (!e.active()) return;
    json_writer& w = e.writer();
    w.member("memberId", std::string_view(t.member_id)).member("status", static_cast<std::int64_t>(status));
    if (!client.empty()) w.member("client", client);
    w.key("transaction").raw(encode_transaction(t));
    w.member("history_len", static_cast<std::uint64_t>(o.history_len))
        .member("history_skipped", static_cast<std::uint64_t>(o.history_skipped));
    if (o.latency[step::features] >= 0) w.key("features").raw(encode_features(o.features));
    w.member("ats", o.ats).member("resp", o.resp);
    if (o.offer.empty()) w.key("offer").null();
    else w.member("offer", std::string_view(o.offer));
    w.member("history_source", o.latency[step::features] < 0 && !o.fetched ? "none" : o.fetched ? "fetched" : "warm");
    w.member("decided_again", o.decided_again);
    w.member("persisted", o.delivered).member("deferred", o.deferred).member("pending_writes", static_cast<std::uint64_t>(o.pending_writes));
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

asio::awaitable<response> offer_handler::operator()(request_context& ctx) {
    const auto started = std::chrono::steady_clock::now();
    struct in_flight_guard {
        std::atomic<std::size_t>& n;
        ~in_flight_guard() { n.fetch_sub(1, std::memory_order_relaxed); }
    } guard{in_flight_};
    if (in_flight_.fetch_add(1, std::memory_order_relaxed) >= cfg_.max_in_flight) {
        shed_.fetch_add(1, std::memory_order_relaxed);
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
    offer_input in{std::move(parsed).value(), {}, 0};
    if (auto it = ctx.req.find("Idempotency-Key"); it != ctx.req.end()) {
        in.idempotency_key = it->value();
        if (in.idempotency_key.empty() || in.idempotency_key.size() > 255)
            co_return failure_response(fail(errc::invalid_field, "Idempotency-Key: must be 1 to 255 characters"));
        in.body_hash = idempotency_cache::hash(ctx.req.body());
    }
    // A caller's own budget (X-Request-Deadline-Ms, which offerd's clients send) bounds ours.
    auto budget = cfg_.request_deadline;
    if (auto it = ctx.req.find("X-Request-Deadline-Ms"); it != ctx.req.end()) {
        std::int64_t ms = 0;
        const std::string_view v = it->value();
        const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
        if (ec == std::errc{} && end == v.data() + v.size() && ms >= 0) budget = std::min(budget, std::chrono::milliseconds(ms));
    }
    const call_context call{ctx.worker, ctx.request_id, deadline(started + budget), log_, &ctx.trace};

    offer_outcome outcome = co_await pipeline_.run(in, call);
    const transaction& t = in.txn;
    if (outcome.replayed) {
        replays_.fetch_add(1, std::memory_order_relaxed);
        log_event(log_, log_level::info, "offer_replayed", ctx.request_id, ctx.trace.trace_id)
            .with("memberId", std::string_view(t.member_id))
            .with("idempotency_key", in.idempotency_key);
        response replay = json_response(static_cast<http::status>(outcome.replay_status), std::move(outcome.replay_body));
        replay.set("Idempotent-Replayed", "true");
        co_return replay;
    }
    outcome.latency[step::total] =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();

    response res = outcome.error ? failure_response(*outcome.error)
                                 : json_response(http::status::ok, encode_member_offer(t.member_id, outcome.offer));
    {
        log_event e(log_, outcome.error ? log_level::warn : log_level::info, "offer", ctx.request_id, ctx.trace.trace_id);
        write_offer_event(e, t, outcome, res.result_int(), ctx.client);
    }
    metrics_.record(ctx.worker, outcome.latency, !outcome.error);
    for (std::size_t i = 0; i < step_count; ++i)
        if (outcome.latency.us[i] >= 0) step_seconds_[i].observe_us(outcome.latency.us[i]);
    if (!outcome.error) offers_[outcome.offer == offer_discount ? 0 : outcome.offer == offer_bonus ? 1 : 2].fetch_add(1, std::memory_order_relaxed);
    if (outcome.fetched) history_skipped_.fetch_add(outcome.history_skipped, std::memory_order_relaxed);
    co_return res;
}

void offer_handler::write_metrics(std::string& out) const {
    write_metric_header(out, "offerd_pipeline_step_seconds", "histogram", "Offer pipeline latency per step.");
    for (std::size_t i = 0; i < step_count; ++i)
        step_seconds_[i].write(out, "offerd_pipeline_step_seconds", "step=\"" + std::string(to_string(static_cast<step>(i))) + "\"");
    write_metric_header(out, "offerd_in_flight_requests", "gauge", "Offer requests in progress.");
    write_sample(out, "offerd_in_flight_requests", {}, static_cast<double>(in_flight_.load()));
    write_metric_header(out, "offerd_admission_shed_total", "counter", "Offer requests answered 503 because --max-in-flight were in progress.");
    write_sample(out, "offerd_admission_shed_total", {}, static_cast<double>(shed_.load(std::memory_order_relaxed)));
    write_metric_header(out, "offerd_offers_total", "counter", "Offers answered (replays not counted), by offer.");
    write_sample(out, "offerd_offers_total", "offer=\"50% Discount\"", static_cast<double>(offers_[0].load()));
    write_sample(out, "offerd_offers_total", "offer=\"35% Bonus\"", static_cast<double>(offers_[1].load()));
    write_sample(out, "offerd_offers_total", "offer=\"other\"", static_cast<double>(offers_[2].load()));
    write_metric_header(out, "offerd_offer_replays_total", "counter", "Offer answers replayed by Idempotency-Key.");
    write_sample(out, "offerd_offer_replays_total", {}, static_cast<double>(replays_.load()));
    write_metric_header(out, "offerd_history_skipped_total", "counter", "History entries from member-data that could not be parsed.");
    write_sample(out, "offerd_history_skipped_total", {}, static_cast<double>(history_skipped_.load()));
}

}  // namespace offerd
