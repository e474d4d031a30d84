// POST /member/offer: the thin edge between HTTP and the offer flow.
#include "offerd/orchestrator/offer_handler.hpp"

#include <algorithm>
#include <charconv>
#include <deque>
#include <vector>

#include <boost/asio/steady_timer.hpp>

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

// What the offer route keeps on a connection for its next request (request_context::carry):
// that its last answer was a 503, or, while shedding, the slot of the request just served.
struct offer_handler::carried {
    carried(std::shared_ptr<shed_lanes> l, bool s, std::size_t w = 0) : lanes(std::move(l)), slot(s), worker(w) {}
    carried(const carried&) = delete;
    carried& operator=(const carried&) = delete;
    ~carried();
    std::shared_ptr<shed_lanes> lanes;
    bool slot;  // a slot is held: released here unless the next request took it over
    std::size_t worker;
};

// The connections answered 503, each waiting until its next request may be read: a lane per
// worker, touched only on that worker's thread, so it needs no lock. Why wait at all: a client
// that ignores Retry-After sends again at once, and read at once those requests turn the excess
// into a flood of 503s that starves the admitted work (measured: at 1024 connections 39k 503/s
// and 300 offers/s). So a shed connection's next request is read when its Retry-After second is
// over (what it was told), or earlier, oldest first, when a slot goes back to the limit on its
// worker (the load fell: a burst ended, a served client left). While shedding, the slot of a
// request just served is kept for its connection's next request instead (see carried), so
// under sustained overload the connections being served stay served at full speed and the
// others get one 503 a second each; that is not fair between connections, but every 200 is
// fast, and a 200 after a wait in the lane would carry that wait to its client.
struct offer_handler::shed_lanes {
    struct waiter {
        explicit waiter(const asio::any_io_executor& ex) : timer(ex, std::chrono::seconds(1)) {}
        asio::steady_timer timer;
        bool done = false;  // let go, or its second is over (then let_one_go skips it)
    };
    struct lane {
        std::deque<std::shared_ptr<waiter>> queue;
    };
    shed_lanes(std::size_t workers, adaptive_limit& l) : lanes(std::max<std::size_t>(workers, 1)), limit(&l) {}

    std::vector<lane> lanes;
    // Null once the handler is gone (set after the workers stopped; a carried slot released
    // later, as the connections' frames are destroyed, is released into nothing).
    std::atomic<adaptive_limit*> limit;
    std::atomic<std::size_t> waiting{0};  // over all lanes, for /metrics

    // A slot went back to the limit on this worker (called on its thread): its oldest waiting
    // connection reads on.
    void let_one_go(std::size_t worker) {
        lane& l = lanes[worker % lanes.size()];
        while (!l.queue.empty()) {
            std::shared_ptr<waiter> w = std::move(l.queue.front());
            l.queue.pop_front();
            if (w->done) continue;  // its second ran out first
            w->done = true;
            w->timer.cancel();
            released.fetch_add(1, std::memory_order_relaxed);
            return;
        }
    }
    std::atomic<std::uint64_t> released{0};
};

offer_handler::carried::~carried() {
    if (!slot) return;
    if (adaptive_limit* l = lanes->limit.load(std::memory_order_acquire)) {
        l->release();
        lanes->let_one_go(worker);
    }
}

offer_handler::offer_handler(offer_pipeline& pipeline, adaptive_limit& admission, const orchestrator_config& cfg, logger& log, std::size_t workers)
    : pipeline_(pipeline), admission_(admission), cfg_(cfg), log_(log), metrics_(workers), lanes_(std::make_shared<shed_lanes>(workers, admission)),
      shed_note_(std::make_shared<carried>(lanes_, false)) {}

// Waiting connections hold the lanes; they wake within their second.
offer_handler::~offer_handler() { lanes_->limit.store(nullptr, std::memory_order_release); }

asio::awaitable<response> offer_handler::operator()(request_context& ctx) {
    const auto started = std::chrono::steady_clock::now();
    // Shedding must cost far less than serving: no parsing, and at most one log event a second
    // (saying how many were shed since the last one), never one per refused request.
    const std::shared_ptr<carried> note = ctx.carry ? std::static_pointer_cast<carried>(std::exchange(*ctx.carry, nullptr)) : nullptr;
    const bool reserved = note && note->slot;
    if (reserved) note->slot = false;  // this request takes the slot over
    if (!reserved && !admission_.try_acquire(note != nullptr)) {
        note_shed(started);
        // The 503 goes out at once; the connection's next request waits in its worker's lane.
        ctx.after_response = [l = lanes_, w = ctx.worker.index] { return wait_turn(l, w); };
        if (ctx.carry) *ctx.carry = shed_note_;
        co_return failure_response(fail(errc::overloaded, {}));
    }
    // The slot goes back when the request is done; while shedding it is kept for the
    // connection's next request (see carried), which the listener waits for only briefly.
    struct slot_guard {
        offer_handler& h;
        std::shared_ptr<void>* carry;
        std::size_t worker;
        ~slot_guard() {
            // Kept only within the limit: after the limit shrank, the excess slots go back.
            if (carry && h.admission_.shedding() && h.admission_.in_flight() <= h.admission_.limit()) {
                *carry = std::make_shared<carried>(h.lanes_, true, worker);
                h.reserved_.fetch_add(1, std::memory_order_relaxed);
            } else {
                h.admission_.release();
                h.lanes_->let_one_go(worker);
            }
        }
    } guard{*this, ctx.carry, ctx.worker.index};

    // A request refused for what it carries: logged (with who sent it) and answered with why.
    const auto reject = [&](failure why) {
        log_event e(log_, log_level::info, "rejected", ctx.request_id, &ctx.trace);
        e.with("status", static_cast<std::int64_t>(static_cast<unsigned>(status_for(why.code)))).with("detail", why.detail);
        if (!ctx.client.empty()) e.with("client", ctx.client);
        return failure_response(why);
    };
    auto parsed = decode_transaction(ctx.req.body());
    if (!parsed) co_return reject(std::move(parsed).error());
    offer_input in{std::move(parsed).value(), {}, 0};
    if (admission_.congested(started)) in.max_member_waiting = cfg_.admission.member_waiting_when_congested;
    if (auto it = ctx.req.find("Idempotency-Key"); it != ctx.req.end()) {
        in.idempotency_key = it->value();
        if (in.idempotency_key.empty() || in.idempotency_key.size() > 255)
            co_return reject(fail(errc::invalid_field, "Idempotency-Key: must be 1 to 255 characters"));
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
    const call_context call{ctx.worker.index, ctx.request_id, deadline(started + budget), log_, &ctx.trace};

    offer_outcome outcome = co_await pipeline_.run(in, call);
    const transaction& t = in.txn;
    if (outcome.replayed) {
        replays_.fetch_add(1, std::memory_order_relaxed);
        log_event e(log_, log_level::info, "offer_replayed", ctx.request_id, &ctx.trace);
        e.with("memberId", std::string_view(t.member_id)).with("idempotency_key", in.idempotency_key);
        if (!ctx.client.empty()) e.with("client", ctx.client);
        response replay = json_response(static_cast<http::status>(outcome.replay_status), std::move(outcome.replay_body));
        replay.set("Idempotent-Replayed", "true");
        co_return replay;
    }
    outcome.latency[step::total] =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();

    response res = outcome.error ? failure_response(*outcome.error)
                                 : json_response(http::status::ok, encode_member_offer(t.member_id, outcome.offer));
    {
        log_event e(log_, outcome.error ? log_level::warn : log_level::info, "offer", ctx.request_id, &ctx.trace);
        write_offer_event(e, t, outcome, res.result_int(), ctx.client);
    }
    metrics_.record(ctx.worker.index, outcome.latency, !outcome.error);
    for (std::size_t i = 0; i < step_count; ++i)
        if (outcome.latency.us[i] >= 0) step_seconds_[i].observe_us(outcome.latency.us[i]);
    if (!outcome.error) offers_[outcome.offer == offer_discount ? 0 : outcome.offer == offer_bonus ? 1 : 2].fetch_add(1, std::memory_order_relaxed);
    if (outcome.fetched) history_skipped_.fetch_add(outcome.history_skipped, std::memory_order_relaxed);
    co_return res;
}

asio::awaitable<void> offer_handler::wait_turn(std::shared_ptr<shed_lanes> lanes, std::size_t worker) {
    shed_lanes::lane& l = lanes->lanes[worker % lanes->lanes.size()];
    auto w = std::make_shared<shed_lanes::waiter>(co_await asio::this_coro::executor);
    l.queue.push_back(w);
    lanes->waiting.fetch_add(1, std::memory_order_relaxed);
    auto [ec] = co_await w->timer.async_wait(nothrow);
    (void)ec;  // let go (cancelled) or its second is over: either way, read on
    w->done = true;
    // Every wait is one second from its push, so the expired ones are at the front: the lane
    // holds only connections still waiting, however long the overload lasts.
    while (!l.queue.empty() && l.queue.front()->done) l.queue.pop_front();
    lanes->waiting.fetch_sub(1, std::memory_order_relaxed);
}

void offer_handler::note_shed(std::chrono::steady_clock::time_point now) {
    const std::int64_t t = now.time_since_epoch().count();
    std::int64_t last = last_shed_log_.load(std::memory_order_relaxed);
    if (t - last < std::chrono::steady_clock::duration(std::chrono::seconds(1)).count()) return;
    if (!last_shed_log_.compare_exchange_strong(last, t, std::memory_order_relaxed)) return;
    const std::uint64_t shed = admission_.shed();
    const std::uint64_t before = shed_logged_.exchange(shed, std::memory_order_relaxed);
    log_event(log_, log_level::warn, "overloaded")
        .with("shed", shed - before)
        .with("in_flight", static_cast<std::uint64_t>(admission_.in_flight()))
        .with("limit", static_cast<std::uint64_t>(admission_.limit()))
        .with("max_in_flight", static_cast<std::uint64_t>(cfg_.admission.max_in_flight))
        .with("queue_delay_us", admission_.last_delay_us());
}

void offer_handler::write_metrics(std::string& out) const {
    write_metric_header(out, "offerd_pipeline_step_seconds", "histogram", "Offer pipeline latency per step.");
    for (std::size_t i = 0; i < step_count; ++i)
        step_seconds_[i].write(out, "offerd_pipeline_step_seconds", "step=\"" + std::string(to_string(static_cast<step>(i))) + "\"");
    write_metric_header(out, "offerd_in_flight_requests", "gauge", "Offer requests in progress.");
    write_sample(out, "offerd_in_flight_requests", {}, static_cast<double>(admission_.in_flight()));
    write_metric_header(out, "offerd_admission_limit", "gauge", "Offer requests admitted at once now (the adaptive limit, at most --max-in-flight).");
    write_sample(out, "offerd_admission_limit", {}, static_cast<double>(admission_.limit()));
    write_metric_header(out, "offerd_admission_shed_total", "counter", "Offer requests answered 503 because the limit was reached.");
    write_sample(out, "offerd_admission_shed_total", {}, static_cast<double>(admission_.shed()));
    write_metric_header(out, "offerd_admission_released_total", "counter", "Connections answered 503 let go from the shed lane to send their next request.");
    write_sample(out, "offerd_admission_released_total", {}, static_cast<double>(lanes_->released.load(std::memory_order_relaxed)));
    write_metric_header(out, "offerd_admission_reserved_total", "counter", "Slots kept, while shedding, for the next request of the connection just served.");
    write_sample(out, "offerd_admission_reserved_total", {}, static_cast<double>(reserved_.load(std::memory_order_relaxed)));
    write_metric_header(out, "offerd_admission_waiting", "gauge", "Connections answered 503 whose next request waits in the shed lane (at most the Retry-After second).");
    write_sample(out, "offerd_admission_waiting", {}, static_cast<double>(lanes_->waiting.load(std::memory_order_relaxed)));
    write_metric_header(out, "offerd_admission_limit_changes_total", "counter", "Changes of the adaptive limit, by direction.");
    write_sample(out, "offerd_admission_limit_changes_total", "direction=\"down\"", static_cast<double>(admission_.decreases()));
    write_sample(out, "offerd_admission_limit_changes_total", "direction=\"up\"", static_cast<double>(admission_.increases()));
    write_metric_header(out, "offerd_admission_queue_delay_seconds", "gauge", "The busiest worker's minimum event-loop queueing delay over the last interval.");
    write_sample(out, "offerd_admission_queue_delay_seconds", {}, static_cast<double>(admission_.last_delay_us()) / 1e6);
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
