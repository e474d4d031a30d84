// Every rule about writing a member's transactions, in one place: which history a decision is
// exact over, the key each write carries, delivery to member-data in acceptance order, the
// durable outbox for what member-data could not take, what a refusal undoes, replay by
// Idempotency-Key, and the drainer.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "offerd/orchestrator/clients.hpp"
#include "offerd/orchestrator/config.hpp"
#include "offerd/store/idempotency_cache.hpp"
#include "offerd/orchestrator/member_turns.hpp"
#include "offerd/orchestrator/outbox.hpp"
#include "offerd/orchestrator/persist/member_log.hpp"
#include "offerd/orchestrator/persist/member_records.hpp"

namespace offerd {

class logger;

// One request's hold on a member's write side, from its first read to the end of its write.
// Used by one coroutine at a time (the request that owns it).
struct member_session {
    explicit member_session(std::string m) : member(std::move(m)) {}
    std::string member;
    member_turns::lease delivery;            // the member's delivery turn, once taken
    std::shared_ptr<member_record> record;   // what the decision is made over
    bool fetched = false;                    // read from member-data by this request (else warm)
    std::size_t pending = 0;                 // undelivered writes of the member counted in the record
    std::uint64_t seq = 0;                   // cluster mode: this request's transaction in the member log
    std::vector<std::string> skip_reasons;   // of the read, when fetched
    std::span<const transaction> history() const noexcept { return record->items; }
};

// What accept() needs to log a transaction in cluster mode (the answer a repeat replays).
struct accept_info {
    std::string_view idempotency_key;
    std::uint64_t body_hash = 0;
    std::string_view answer;
};

struct accept_outcome {
    enum class kind {
        accepted,      // counted in the member's record (and, in cluster mode, committed)
        decide_again,  // the history decided over is stale: read() and decide again
        replay,        // cluster mode: the Idempotency-Key is logged already; answer with `answer`
    };
    kind what = kind::accepted;
    logged_answer answer;
};

// How a request's write ended.
struct write_outcome {
    bool delivered = false;        // member-data took it during this request
    bool deferred = false;         // it waits in the outbox, delivered in order later
    std::optional<failure> error;  // it is nowhere: the request must fail
};

// Thread-safe: shared by all workers. The member's two turns order everything: a request holds
// the deciding turn (offer_pipeline) while it reads the record; the delivery turn (here) orders
// member-data writes of a member and every change of its record, so a record changes only
// under both turns or (when a write is refused) under the delivery turn by marking it stale.
class write_path {
public:
    // Cluster mode when `state` is set: the member log (PostgreSQL) is the system of record and
    // the outbox; otherwise everything is in this process (and the outbox's file).
    write_path(const orchestrator_config& cfg, offer_clients& clients, logger& log, member_log* state = nullptr);
    ~write_path();

    // Under the deciding turn. The member's exact history: its warm record, else (cold) after
    // delivering the member's undelivered writes (member-data de-duplicates them by key), a
    // fresh read. Fails with the read's failure, or with 503 when undelivered writes of a cold
    // member cannot be delivered now (its history cannot be known exactly).
    asio::awaitable<result<std::monostate>> read(member_session& s, const call_context& ctx);

    // Under the deciding turn, after deciding. Takes the delivery turn (waiting for the
    // member's earlier write to end), then accepts t into the record unless the record went
    // stale meanwhile (decide_again: call read() again; the delivery turn stays). In cluster
    // mode accepting is the member log's compare-and-set on the member's seq (the fence): a
    // replica that decided over a history another replica has grown since decides again.
    asio::awaitable<result<accept_outcome>> accept(member_session& s, const transaction& t, const accept_info& a,
                                                   const call_context& ctx);

    // After accept (the caller may give up its deciding turn first): writes t to member-data
    // under `key`, else to the durable outbox; a refusal (4xx) or an outbox that cannot take it
    // takes t out of the member's record again (it is nowhere) and fails the request. Releases
    // the delivery turn.
    asio::awaitable<write_outcome> deliver(member_session& s, const transaction& t, const std::string& key,
                                           const call_context& ctx);

    // The request is over (whatever happened): the record stays warm for its idle period.
    void finish(member_session& s);

    // The key member-data de-duplicates a write by: the client's key scoped by member, else a
    // key unique to this process and transaction. (Cluster mode: "l:<member>:<seq>".)
    std::string write_key(const std::string& member, std::string_view client_key);

    // Idempotency-Key answers, scoped by member. Looked up under the deciding turn, so a
    // concurrent repeat waits for the original.
    std::optional<idempotency_cache::entry> replay(const std::string& member, std::string_view key);
    void remember(const std::string& member, std::string_view key, idempotency_cache::entry e);

    // Delivers outbox entries on ctx, member by member in order, with exponential backoff while
    // member-data does not take them. stop_drainer() logs what is left.
    void start_drainer(asio::io_context& ctx);
    void stop_drainer();

    bool clustered() const noexcept { return state_ != nullptr; }
    const outbox& pending_writes() const noexcept { return outbox_; }
    std::size_t warm_members() const { return records_.members(); }
    // offerd_outbox_pending, offerd_writes_total, offerd_warm_members.
    void write_metrics(std::string& out) const;

    struct drain_state {
        explicit drain_state(asio::io_context& ctx) : timer(ctx) {}
        asio::steady_timer timer;
        bool stopped = false;  // touched only on the drainer's io_context
    };

private:
    // Under the delivery turn: delivers the member's outbox items in order; true when none is left.
    asio::awaitable<bool> deliver_pending(member_session& s, const call_context& ctx);
    static asio::awaitable<void> drain_loop(write_path* self, std::shared_ptr<drain_state> st);
    // After a read of member-data: the member's record from now on (cluster mode: at log seq `seq`).
    void adopt_history(member_session& s, decoded_history&& h, std::uint64_t seq);
    // Cluster mode, under the delivery turn.
    asio::awaitable<result<std::monostate>> read_cold_clustered(member_session& s, const call_context& ctx);
    asio::awaitable<result<accept_outcome>> accept_clustered(member_session& s, const transaction& t, const accept_info& a,
                                                             const call_context& ctx);
    asio::awaitable<write_outcome> deliver_clustered(member_session& s, const transaction& t, const call_context& ctx);
    // Delivers logged transactions in seq order; the seq delivered up to, or the failure that
    // stopped it (a refusal is dead-lettered and skipped, not a stop).
    asio::awaitable<result<std::uint64_t>> deliver_logged(member_session& s, std::uint64_t delivered,
                                                          const std::vector<logged_transaction>& rows, const call_context& ctx);
    static asio::awaitable<void> drain_loop_clustered(write_path* self, std::shared_ptr<drain_state> st);
    std::string log_key(const std::string& member, std::uint64_t seq) const;
    // Delivery marks are written to the member log in batches by the drainer; one lost in a
    // crash only makes a few rows be delivered again (member-data de-duplicates them).
    void mark_delivered(const std::string& member, std::uint64_t seq);
    asio::awaitable<void> flush_marks(const call_context& ctx);
    // Test hook: OFFERD_TEST_CRASH_AFTER_COMMIT=<memberId> makes the process exit right after
    // committing a transaction of that member, before answering (the crash the member log's
    // replay is for). Read once, at construction.
    std::string crash_after_commit_;
    std::mutex marks_mutex_;
    std::unordered_map<std::string, std::uint64_t> marks_;  // guarded by marks_mutex_

    const orchestrator_config& cfg_;
    offer_clients& clients_;
    logger& log_;
    member_log* state_;  // cluster mode's system of record, else null
    outbox outbox_;
    member_records records_;
    member_turns delivery_turns_;
    idempotency_cache answers_;
    std::string epoch_;  // random per process: write keys never repeat across restarts
    std::atomic<std::uint64_t> next_write_{1};
    std::shared_ptr<drain_state> drain_;
    std::array<std::atomic<std::uint64_t>, 5> writes_{};  // delivered, deferred, refused, redelivered, dead_letter
};

}  // namespace offerd
