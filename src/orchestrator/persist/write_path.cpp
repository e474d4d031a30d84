// The write path: exact histories, keyed writes in acceptance order, the outbox and its drainer.
#include "offerd/orchestrator/persist/write_path.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdlib>
#include <random>

#include "offerd/codec/wire.hpp"
#include "offerd/net/http.hpp"
#include "offerd/obs/log.hpp"
#include "offerd/obs/prometheus.hpp"
#include "offerd/store/record_log.hpp"

namespace offerd {

namespace {
enum write_counter : std::size_t { delivered_c, deferred_c, refused_c, redelivered_c, dead_letter_c };

std::string random_epoch() {
    std::random_device rd;
    const std::uint64_t v = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    static constexpr char hex[] = "0123456789abcdef";
    std::string out(16, '0');
    for (std::size_t i = 0; i < 16; ++i) out[i] = hex[(v >> (60 - 4 * i)) & 0xf];
    return out;
}

void log_transaction(log_event& e, const transaction& t) {
    if (e.active()) e.writer().key("transaction").raw(encode_transaction(t));
}
}  // namespace

write_path::write_path(const orchestrator_config& cfg, offer_clients& clients, logger& log, member_log* state)
    : cfg_(cfg),
      clients_(clients),
      log_(log),
      state_(state),
      outbox_(cfg.outbox),
      // A member with writes waiting keeps its record: only it knows the member's history
      // exactly. (In cluster mode the member log knows them: any record may go cold.)
      records_(cfg.members.idle, cfg.members.max_transactions,
               [this](std::string_view m) { return state_ != nullptr || !outbox_.has_pending(m); }),
      answers_(cfg.idempotency_retention, cfg.idempotency_capacity),
      epoch_(random_epoch()) {
    if (const char* m = std::getenv("OFFERD_TEST_CRASH_AFTER_COMMIT"); m && state_) crash_after_commit_ = m;
    // A torn or corrupt outbox tail was cut off on open: say so (warn event and one stderr line).
    if (const open_report* r = outbox_.file_report()) report_damage(*r, log_);
}

write_path::~write_path() = default;

std::string write_path::write_key(const std::string& member, std::string_view client_key) {
    if (!client_key.empty()) return "c:" + member + ":" + std::string(client_key);
    return "s:" + epoch_ + ":" + std::to_string(next_write_.fetch_add(1, std::memory_order_relaxed));
}

std::optional<idempotency_cache::entry> write_path::replay(const std::string& member, std::string_view key) {
    return answers_.find(member + " " + std::string(key));
}

void write_path::remember(const std::string& member, std::string_view key, idempotency_cache::entry e) {
    answers_.store(member + " " + std::string(key), std::move(e));
}

asio::awaitable<result<std::monostate>> write_path::read(member_session& s, const call_context& ctx) {
    if (s.record) records_.done(s.member, s.record);
    s.record = records_.use(s.member);
    s.skip_reasons.clear();
    if (s.record) {
        s.fetched = false;
        s.pending = state_ ? static_cast<std::size_t>(s.record->seq.load() - s.record->delivered_seq.load())
                           : outbox_.pending_count(s.member);
        co_return std::monostate{};
    }
    // Cold: member-data must hold every accepted write of the member before it is read.
    if (!s.delivery.held()) {
        auto turn = co_await delivery_turns_.acquire(s.member, ctx.until);
        if (!turn) co_return std::move(turn).error();
        s.delivery = std::move(*turn);
    }
    if (state_) co_return co_await read_cold_clustered(s, ctx);
    if (outbox_.has_pending(s.member) && !co_await deliver_pending(s, ctx))
        co_return fail(errc::writes_pending, "earlier transactions of this member are waiting for member-data; retry later", 1);
    auto h = co_await clients_.fetch_history(s.member, ctx);
    if (!h) co_return std::move(h).error();
    adopt_history(s, std::move(*h), 0);
    co_return std::monostate{};
}

void write_path::adopt_history(member_session& s, decoded_history&& h, std::uint64_t seq) {
    auto record = std::make_shared<member_record>();
    record->items = std::move(h.items);
    record->skipped = h.skipped;
    record->seq = seq;
    record->delivered_seq = seq;  // member-data held every logged transaction before it was read
    s.skip_reasons = std::move(h.skip_reasons);
    records_.put(s.member, record);
    s.record = std::move(record);
    s.fetched = true;
    s.pending = 0;
}

asio::awaitable<result<accept_outcome>> write_path::accept(member_session& s, const transaction& t, const accept_info& a,
                                                          const call_context& ctx) {
    if (!s.delivery.held()) {
        auto turn = co_await delivery_turns_.acquire(s.member, ctx.until);
        if (!turn) co_return std::move(turn).error();
        s.delivery = std::move(*turn);
    }
    // The member's previous write ended while this request decided: if it was refused, the
    // record this decision counted it in is stale.
    if (s.record->stale.load(std::memory_order_relaxed)) co_return accept_outcome{accept_outcome::kind::decide_again, {}};
    if (state_) co_return co_await accept_clustered(s, t, a, ctx);
    records_.append(s.member, *s.record, t);
    co_return accept_outcome{};
}

asio::awaitable<write_outcome> write_path::deliver(member_session& s, const transaction& t, const std::string& key,
                                                   const call_context& ctx) {
    if (state_) {
        write_outcome w = co_await deliver_clustered(s, t, ctx);
        s.delivery.release();
        co_return w;
    }
    write_outcome out;
    std::string why_deferred = "earlier writes of this member are waiting in the outbox";
    bool refused = false;
    // Earlier writes waiting: this one queues behind them, so member-data gets them in order.
    if (!outbox_.has_pending(s.member)) {
        auto stored = co_await clients_.store(t, key, ctx);
        if (stored) {
            out.delivered = true;
            writes_[delivered_c].fetch_add(1, std::memory_order_relaxed);
            // member-data already held a write under the client's key (sent by an earlier
            // process, before a crash lost its answer): the read this record started from
            // already counted it. Forget the record so the member's next request reads again.
            if (stored->replayed && key.starts_with("c:")) records_.drop(s.member, s.record);
        } else {
            why_deferred = stored.error().detail;
            // Queueing a refused transaction would block the member's outbox forever.
            refused = refused_for_good(stored.error());
        }
    }
    if (!out.delivered) {
        auto queued = refused ? result<std::uint64_t>(fail(errc::upstream_bad_status, why_deferred)) : outbox_.add(key, t);
        out.deferred = queued.has_value();
        writes_[out.deferred ? deferred_c : refused_c].fetch_add(1, std::memory_order_relaxed);
        log_event e(ctx.log, queued ? log_level::warn : log_level::error, queued ? "persist_deferred" : "persist_failed",
                    ctx.request_id, ctx.trace);
        e.with("memberId", std::string_view(t.member_id)).with("reason", why_deferred);
        if (!queued) e.with("error", queued.error().detail);
        log_transaction(e, t);
        if (!queued) {
            // t is nowhere (or, after a lost answer, maybe in member-data): the record that
            // counts it is wrong either way. The member's next request reads member-data.
            records_.drop(s.member, s.record);
            out.error = refused ? fail(errc::upstream_bad_status, "member-data refused the transaction (" + why_deferred + ")")
                                : fail(errc::upstream_unavailable, "member-data is unavailable and the write could not be queued");
        }
    }
    s.delivery.release();
    co_return out;
}

void write_path::finish(member_session& s) {
    s.delivery.release();
    if (s.record) records_.done(s.member, s.record);
    s.record.reset();
}

asio::awaitable<bool> write_path::deliver_pending(member_session& s, const call_context& ctx) {
    for (const outbox::item& it : outbox_.pending_items(s.member)) {
        auto stored = co_await clients_.store(it.txn, it.key, ctx);
        const bool refused = !stored && refused_for_good(stored.error());
        if (!stored && !refused) co_return false;
        // Acknowledged before the member's next request may look at the outbox (it waits for
        // the delivery turn this holds).
        outbox_.acknowledge(it.seq);
        if (refused) {
            // Permanent: member-data will never take it. Dead-letter it in full; the record
            // counted it, so the member's next request reads member-data again.
            writes_[dead_letter_c].fetch_add(1, std::memory_order_relaxed);
            log_event e(log_, log_level::error, "outbox_dead_letter", ctx.request_id, ctx.trace);
            e.with("memberId", std::string_view(it.txn.member_id))
                .with("status", static_cast<std::int64_t>(stored.error().upstream_status));
            log_transaction(e, it.txn);
            if (auto rec = records_.use(s.member)) {
                records_.drop(s.member, rec);
            }
        } else {
            writes_[redelivered_c].fetch_add(1, std::memory_order_relaxed);
            log_event(log_, log_level::info, "outbox_delivered", ctx.request_id, ctx.trace)
                .with("memberId", std::string_view(it.txn.member_id))
                .with("remaining", static_cast<std::uint64_t>(outbox_.size()));
        }
    }
    co_return true;
}


asio::awaitable<void> write_path::drain_loop(write_path* self, std::shared_ptr<drain_state> st) {
    const auto& cfg = self->cfg_.outbox;
    auto backoff = cfg.retry_min;
    while (!st->stopped) {
        bool all_delivered = true;
        for (const std::string& member : self->outbox_.pending_members()) {
            if (st->stopped) break;
            const std::string rid = "outbox-drain";
            const call_context ctx{0, rid, deadline::after(self->cfg_.request_deadline), self->log_, nullptr};
            member_session s(member);
            auto turn = co_await self->delivery_turns_.acquire(member, ctx.until);
            if (!turn) {
                all_delivered = false;
                continue;
            }
            s.delivery = std::move(*turn);
            if (!co_await self->deliver_pending(s, ctx)) all_delivered = false;
            s.delivery.release();
            if (!all_delivered) break;  // member-data is not taking writes: back off
        }
        backoff = all_delivered ? cfg.retry_min : std::min(cfg.retry_max, backoff * 2);
        if (st->stopped) break;
        st->timer.expires_after(backoff);
        co_await st->timer.async_wait(nothrow);
    }
}

void write_path::start_drainer(asio::io_context& ctx) {
    drain_ = std::make_shared<drain_state>(ctx);
    asio::co_spawn(ctx, state_ ? drain_loop_clustered(this, drain_) : drain_loop(this, drain_), asio::detached);
}

void write_path::stop_drainer() {
    if (drain_)
        asio::post(drain_->timer.get_executor(), [st = drain_] {
            st->stopped = true;
            st->timer.cancel();
        });
    if (outbox_.size() == 0 || state_) return;  // cluster mode: what is undelivered waits in the member log
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
        log_transaction(e, it.txn);
    }
}

void write_path::write_metrics(std::string& out) const {
    write_metric_header(out, "offerd_outbox_pending", "gauge", "Transactions waiting in the outbox for member-data.");
    write_sample(out, "offerd_outbox_pending", {}, static_cast<double>(outbox_.size()));
    write_metric_header(out, "offerd_writes_total", "counter",
                        "Accepted transactions' writes to member-data: delivered at once, deferred to the outbox, refused "
                        "(the request failed), redelivered from the outbox, dead-lettered.");
    constexpr std::array<const char*, 5> names{"delivered", "deferred", "refused", "redelivered", "dead_letter"};
    for (std::size_t i = 0; i < names.size(); ++i)
        write_sample(out, "offerd_writes_total", std::string("outcome=\"") + names[i] + "\"",
                     static_cast<double>(writes_[i].load(std::memory_order_relaxed)));
    write_metric_header(out, "offerd_warm_members", "gauge", "Members whose history the orchestrator holds (no read needed).");
    write_sample(out, "offerd_warm_members", {}, static_cast<double>(records_.members()));
    write_metric_header(out, "offerd_warm_transactions", "gauge", "Transactions held in warm members' histories.");
    write_sample(out, "offerd_warm_transactions", {}, static_cast<double>(records_.transactions()));
    if (state_) state_->write_metrics(out);
}

}  // namespace offerd
