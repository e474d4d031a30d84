// The write path in cluster mode: the member log (PostgreSQL) is the system of record. A
// decision is accepted only by the log's compare-and-set on the member's seq, so replicas that
// disagree about who serves a member (a rebalance, two balancers, a zombie) never count a
// transaction twice or decide over a stale history; member-data receives the log's rows in seq
// order under keys "l:<member>:<seq>", which it de-duplicates, so any replica may deliver them.
#include <boost/asio/steady_timer.hpp>
#include <cstdlib>
#include <unordered_set>

#include "offerd/codec/wire.hpp"
#include "offerd/net/http.hpp"
#include "offerd/obs/log.hpp"
#include "offerd/orchestrator/persist/write_path.hpp"

namespace offerd {

namespace {
constexpr std::size_t drain_batch = 100;                      // members per scan of the log
constexpr std::chrono::milliseconds claim_after{1'000};      // a row undelivered this long is anyone's to deliver
constexpr std::chrono::milliseconds prune_every{60'000};
constexpr std::chrono::milliseconds mark_every{200};
// The claim scan finds rows nobody delivered for claim_after, so scanning every mark_every
// only re-found the same few: it was 5 % of PostgreSQL's statement time at 64 connections
// (5.3 ms a scan over the partial index the appends keep churning). Once per claim_after while
// the last scan found nothing; at once again while one finds work.
constexpr std::chrono::milliseconds sweep_every = claim_after;

void log_transaction(log_event& e, const transaction& t) {
    if (e.active()) e.writer().key("transaction").raw(encode_transaction(t));
}
}  // namespace

std::string write_path::log_key(const std::string& member, std::uint64_t seq) const {
    return "l:" + member + ":" + std::to_string(seq);
}

asio::awaitable<result<std::uint64_t>> write_path::deliver_logged(member_session& s, std::uint64_t delivered,
                                                                  const std::vector<logged_transaction>& rows,
                                                                  const call_context& ctx) {
    for (const logged_transaction& row : rows) {
        if (row.seq <= delivered) continue;
        auto stored = co_await clients_.store(row.txn, log_key(s.member, row.seq), ctx);
        if (!stored && !refused_for_good(stored.error())) co_return std::move(stored).error();
        if (!stored) {
            // member-data will never take it: dead-lettered in full, out of the log (the
            // history that counted it is wrong: the member's next request reads again).
            auto gone = co_await state_->refused(s.member, row.seq, ctx);
            if (!gone) co_return std::move(gone).error();
            writes_[4].fetch_add(1, std::memory_order_relaxed);
            log_event e(log_, log_level::error, "outbox_dead_letter", ctx.request_id, ctx.trace);
            e.with("memberId", std::string_view(s.member))
                .with("seq", row.seq)
                .with("status", static_cast<std::int64_t>(stored.error().upstream_status));
            log_transaction(e, row.txn);
            if (auto rec = records_.use(s.member)) records_.drop(s.member, rec);
        } else {
            writes_[3].fetch_add(1, std::memory_order_relaxed);
        }
        delivered = row.seq;
    }
    co_return delivered;
}

asio::awaitable<result<std::monostate>> write_path::read_cold_clustered(member_session& s, const call_context& ctx) {
    auto head = co_await state_->head(s.member, ctx);
    if (!head) co_return std::move(head).error();
    // member-data must hold every logged transaction before its history is read.
    if (!head->undelivered.empty()) {
        auto upto = co_await deliver_logged(s, head->delivered_seq, head->undelivered, ctx);
        if (!upto)
            co_return fail(errc::writes_pending,
                           "earlier transactions of this member are waiting for member-data (" + upto.error().detail +
                               "); retry later",
                           1);
        if (*upto > head->delivered_seq) {
            auto moved = co_await state_->delivered(s.member, *upto, ctx);
            if (!moved) co_return std::move(moved).error();
        }
    }
    auto h = co_await clients_.fetch_history(s.member, ctx);
    if (!h) co_return std::move(h).error();
    adopt_history(s, std::move(*h), head->last_seq);
    co_return std::monostate{};
}

asio::awaitable<result<accept_outcome>> write_path::accept_clustered(member_session& s, const transaction& t,
                                                                     const accept_info& a, const call_context& ctx) {
    append_request req;
    req.expected_seq = s.record->seq.load();
    req.idempotency_key = a.idempotency_key;
    req.body_hash = a.body_hash;
    req.txn = &t;
    req.answer = a.answer;
    auto r = co_await state_->append(s.member, req, ctx);
    if (!r) co_return std::move(r).error();
    switch (r->what) {
    case append_result::kind::appended:
        if (crash_after_commit_ == s.member) std::_Exit(137);  // the test hook (see the header)
        records_.append(s.member, *s.record, t);
        s.record->seq = r->seq;
        s.seq = r->seq;
        co_return accept_outcome{};
    case append_result::kind::stale:
        // Another replica accepted a transaction of this member since this history was read.
        log_event(ctx.log, log_level::info, "state_conflict", ctx.request_id, ctx.trace)
            .with("memberId", std::string_view(s.member))
            .with("expected_seq", req.expected_seq);
        records_.drop(s.member, s.record);
        co_return accept_outcome{accept_outcome::kind::decide_again, {}};
    case append_result::kind::key_taken: break;
    }
    auto seen = co_await state_->find_key(s.member, a.idempotency_key, ctx);
    if (!seen) co_return std::move(seen).error();
    // Gone again (member-data refused it, or pruned): this request is new after all.
    if (!*seen) co_return accept_outcome{accept_outcome::kind::decide_again, {}};
    co_return accept_outcome{accept_outcome::kind::replay, std::move(**seen)};
}

asio::awaitable<write_outcome> write_path::deliver_clustered(member_session& s, const transaction& t, const call_context& ctx) {
    write_outcome out;
    member_record& rec = *s.record;
    std::uint64_t delivered = rec.delivered_seq.load();
    std::optional<failure> why;
    // Earlier transactions member-data may not hold yet go first, so it gets them in seq order.
    if (delivered + 1 < s.seq) {
        // (No co_await inside a conditional expression: g++ 12 destroys its temporaries twice.)
        auto rows = co_await state_->rows(s.member, delivered, s.seq - 1, ctx);
        if (!rows) {
            why = std::move(rows).error();
        } else {
            auto upto = co_await deliver_logged(s, delivered, *rows, ctx);
            if (upto) delivered = *upto;
            else why = std::move(upto).error();
        }
    }
    if (!why) {
        auto stored = co_await clients_.store(t, log_key(s.member, s.seq), ctx);
        if (stored) {
            delivered = s.seq;
            out.delivered = true;
            writes_[0].fetch_add(1, std::memory_order_relaxed);
        } else if (refused_for_good(stored.error())) {
            // t is committed in the log but member-data will never take it: take it out of the
            // log again (its key is free) and fail the request, as in the embedded mode.
            auto gone = co_await state_->refused(s.member, s.seq, ctx);
            writes_[2].fetch_add(1, std::memory_order_relaxed);
            records_.drop(s.member, s.record);
            log_event e(ctx.log, log_level::error, "persist_failed", ctx.request_id, ctx.trace);
            e.with("memberId", std::string_view(t.member_id)).with("reason", stored.error().detail).with("seq", s.seq);
            if (!gone) e.with("error", gone.error().detail);
            log_transaction(e, t);
            out.error = fail(errc::upstream_bad_status, "member-data refused the transaction (" + stored.error().detail + ")");
            co_return out;
        } else {
            why = std::move(stored).error();
        }
    }
    if (delivered > rec.delivered_seq.load()) {
        rec.delivered_seq = delivered;
        mark_delivered(s.member, delivered);
    }
    if (why) {
        // Committed in the member log: it waits there and is delivered in order later.
        out.deferred = true;
        writes_[1].fetch_add(1, std::memory_order_relaxed);
        log_event e(ctx.log, log_level::warn, "persist_deferred", ctx.request_id, ctx.trace);
        e.with("memberId", std::string_view(t.member_id)).with("reason", why->detail).with("seq", s.seq);
        log_transaction(e, t);
    }
    co_return out;
}

void write_path::mark_delivered(const std::string& member, std::uint64_t seq) {
    std::lock_guard lock(marks_mutex_);
    auto& v = marks_[member];
    v = std::max(v, seq);
}

asio::awaitable<void> write_path::flush_marks(const call_context& ctx) {
    std::vector<std::pair<std::string, std::uint64_t>> batch;
    {
        std::lock_guard lock(marks_mutex_);
        batch.assign(marks_.begin(), marks_.end());
        marks_.clear();
    }
    constexpr std::size_t per_statement = 1'000;
    for (std::size_t i = 0; i < batch.size(); i += per_statement) {
        std::vector<std::pair<std::string, std::uint64_t>> part(batch.begin() + static_cast<std::ptrdiff_t>(i),
                                                                batch.begin() + static_cast<std::ptrdiff_t>(std::min(batch.size(), i + per_statement)));
        auto r = co_await state_->delivered_many(part, ctx);
        if (!r) {
            // Kept for the next flush (a mark only moves forward).
            for (const auto& [m, seq] : part) mark_delivered(m, seq);
            continue;
        }
        if (r->empty()) continue;
        // Members an append was writing at that moment: marked on the next flush.
        const std::unordered_set<std::string> skipped(r->begin(), r->end());
        for (const auto& [m, seq] : part)
            if (skipped.contains(m)) mark_delivered(m, seq);
    }
}

asio::awaitable<void> write_path::drain_loop_clustered(write_path* self, std::shared_ptr<drain_state> st) {
    const auto& cfg = self->cfg_.outbox;
    auto backoff = cfg.retry_min;
    auto last_prune = std::chrono::steady_clock::now();
    std::optional<std::chrono::steady_clock::time_point> last_sweep;  // none yet: scan at once
    bool sweep_found = false;
    while (!st->stopped) {
        bool all_delivered = true;
        const std::string rid = "outbox-drain";
        const call_context ctx{0, rid, deadline::after(self->cfg_.request_deadline), self->log_, nullptr};
        co_await self->flush_marks(ctx);
        const auto now = std::chrono::steady_clock::now();
        if (!sweep_found && last_sweep && now - *last_sweep < sweep_every) {
            if (st->stopped) break;  // stopped during the flush: its timer cancel came before this wait
            backoff = std::max(cfg.retry_min, mark_every);
            st->timer.expires_after(backoff);
            co_await st->timer.async_wait(nothrow);
            continue;
        }
        last_sweep = now;
        auto members = co_await self->state_->undelivered_members(drain_batch, claim_after, ctx);
        if (!members) all_delivered = false;
        sweep_found = !members || !members->empty();
        for (const std::string& member : members ? *members : std::vector<std::string>{}) {
            if (st->stopped) break;
            member_session s(member);
            auto turn = co_await self->delivery_turns_.acquire(member, ctx.until);
            if (!turn) {
                all_delivered = false;
                continue;
            }
            s.delivery = std::move(*turn);
            auto head = co_await self->state_->head(member, ctx);
            result<std::uint64_t> upto = fail(errc::state_unavailable, "");
            if (head) upto = co_await self->deliver_logged(s, head->delivered_seq, head->undelivered, ctx);
            if (upto && *upto > head->delivered_seq) {
                (void)co_await self->state_->delivered(member, *upto, ctx);
                log_event(self->log_, log_level::info, "outbox_delivered", rid)
                    .with("memberId", std::string_view(member))
                    .with("seq", *upto);
            }
            s.delivery.release();
            if (!upto) {
                all_delivered = false;
                break;  // member-data (or the log) is not taking them: back off
            }
        }
        if (std::chrono::steady_clock::now() - last_prune > prune_every && !st->stopped) {
            last_prune = std::chrono::steady_clock::now();
            auto pruned = co_await self->state_->prune(self->cfg_.idempotency_retention, ctx);
            if (pruned && *pruned > 0) log_event(self->log_, log_level::info, "state_pruned", rid).with("rows", *pruned);
        }
        // Idle, it ticks often enough that the marks reach the log well before other replicas
        // would take those rows for undelivered (claim_after).
        backoff = all_delivered ? std::max(cfg.retry_min, mark_every) : std::min(cfg.retry_max, backoff * 2);
        if (st->stopped) break;
        st->timer.expires_after(backoff);
        co_await st->timer.async_wait(nothrow);
    }
}

}  // namespace offerd
