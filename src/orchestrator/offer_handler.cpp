// POST /member/offer: the thin edge between HTTP and the offer flow.
#include "offerd/orchestrator/offer_handler.hpp"

#include <algorithm>
#include <charconv>
#include <deque>
#include <mutex>

#include <boost/asio/post.hpp>
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

// The parked connections (FIFO) and the hand-over of freed slots to them.
struct offer_handler::parking {
    struct waiter {
        explicit waiter(const asio::any_io_executor& ex) : timer(ex, std::chrono::seconds(1)) {}
        asio::steady_timer timer;
        bool handed = false;  // under mu: a freed slot passed to this connection
    };
    explicit parking(adaptive_limit& l) : limit(&l) {}

    // A slot is free: the longest-parked connection gets it (in flight unchanged), else the
    // limit (also when the limit shrank below what is in flight: the slot is not ours to pass).
    void release() {
        std::shared_ptr<waiter> w;
        {
            const std::lock_guard lock(mu);
            if (!limit) return;
            if (queue.empty() || limit->in_flight() > limit->limit()) {
                limit->release();
                return;
            }
            w = std::move(queue.front());
            queue.pop_front();
            w->handed = true;
            handed_over.fetch_add(1, std::memory_order_relaxed);
        }
        // The timer belongs to its connection's worker: cancel it there.
        asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
    }

    std::size_t parked() {  // for /metrics: a scrape may take the lock
        const std::lock_guard lock(mu);
        return queue.size();
    }

    std::mutex mu;
    adaptive_limit* limit;  // null once the handler is gone
    std::deque<std::shared_ptr<waiter>> queue;
    std::atomic<std::uint64_t> handed_over{0};
};

// A slot handed to a parked connection, held in its carry until its next offer request takes it
// over; the connection ending or sending something else passes it on.
struct offer_handler::handed_slot {
    explicit handed_slot(std::shared_ptr<parking> owner) : p(std::move(owner)) {}
    handed_slot(const handed_slot&) = delete;
    handed_slot& operator=(const handed_slot&) = delete;
    ~handed_slot() {
        if (armed) p->release();
    }
    std::shared_ptr<parking> p;
    bool armed = true;
};

offer_handler::offer_handler(offer_pipeline& pipeline, adaptive_limit& admission, const orchestrator_config& cfg, logger& log, std::size_t workers)
    : pipeline_(pipeline), admission_(admission), cfg_(cfg), log_(log), metrics_(workers), parking_(std::make_shared<parking>(admission)) {}

offer_handler::~offer_handler() {
    // Parked connections wake within their second and find no queue; slots still handed out are
    // released into nothing (the limit may be gone too).
    const std::lock_guard lock(parking_->mu);
    parking_->limit = nullptr;
    parking_->queue.clear();
}

asio::awaitable<response> offer_handler::operator()(request_context& ctx) {
    const auto started = std::chrono::steady_clock::now();
    // A slot freed while this connection was parked was handed to it: this request is admitted
    // without racing the newcomers that took every freed slot before the hand-over existed.
    const bool handed = ctx.carry && *ctx.carry;
    if (handed) std::static_pointer_cast<handed_slot>(std::exchange(*ctx.carry, nullptr))->armed = false;
    // Shedding must cost far less than serving: no parsing, and at most one log event a second
    // (saying how many were shed since the last one), never one per refused request.
    if (!handed && !admission_.try_acquire()) {
        note_shed(started);
        // The 503 goes out at once; the connection's next request is read when a slot frees (and
        // is then handed that slot) or after the Retry-After second. A client that ignores
        // Retry-After and sends again at once would otherwise turn the excess into a flood of
        // 503s that starves the admitted requests (measured: at 1024 connections 39k 503/s and
        // 300 offers/s); parked, it waits its turn.
        ctx.after_response = [p = parking_, carry = ctx.carry] { return park(p, carry); };
        co_return failure_response(fail(errc::overloaded, {}));
    }
    struct slot_guard {
        parking& p;
        ~slot_guard() { p.release(); }
    } guard{*parking_};

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
    const call_context call{ctx.worker, ctx.request_id, deadline(started + budget), log_, &ctx.trace};

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
    metrics_.record(ctx.worker, outcome.latency, !outcome.error);
    for (std::size_t i = 0; i < step_count; ++i)
        if (outcome.latency.us[i] >= 0) step_seconds_[i].observe_us(outcome.latency.us[i]);
    if (!outcome.error) offers_[outcome.offer == offer_discount ? 0 : outcome.offer == offer_bonus ? 1 : 2].fetch_add(1, std::memory_order_relaxed);
    if (outcome.fetched) history_skipped_.fetch_add(outcome.history_skipped, std::memory_order_relaxed);
    co_return res;
}

asio::awaitable<void> offer_handler::park(std::shared_ptr<parking> p, std::shared_ptr<void>* carry) {
    auto w = std::make_shared<parking::waiter>(co_await asio::this_coro::executor);
    {
        const std::lock_guard lock(p->mu);
        if (!p->limit) co_return;  // the handler is gone
        p->queue.push_back(w);
    }
    auto [ec] = co_await w->timer.async_wait(nothrow);
    (void)ec;  // woken or a second passed: the flag says which, decided under the lock
    bool handed = false;
    {
        const std::lock_guard lock(p->mu);
        handed = w->handed;
        if (!handed)
            if (const auto it = std::find(p->queue.begin(), p->queue.end(), w); it != p->queue.end()) p->queue.erase(it);
    }
    if (!handed) co_return;
    if (carry)
        *carry = std::make_shared<handed_slot>(p);
    else
        p->release();
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
    write_metric_header(out, "offerd_admission_handed_over_total", "counter", "Freed slots handed to a connection that had been answered 503 and was waiting (its next request is admitted).");
    write_sample(out, "offerd_admission_handed_over_total", {}, static_cast<double>(parking_->handed_over.load(std::memory_order_relaxed)));
    write_metric_header(out, "offerd_admission_parked", "gauge", "Connections answered 503 whose next request waits for a freed slot or the Retry-After second.");
    write_sample(out, "offerd_admission_parked", {}, static_cast<double>(parking_->parked()));
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
