// Every rule about writing a member's transactions, in one place: which history a decision is
// exact over, the key each write carries, delivery to member-data in acceptance order, the
// durable outbox for what member-data could not take, what a refusal undoes, replay by
// Idempotency-Key, and the drainer.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "offerd/orchestrator/clients.hpp"
#include "offerd/orchestrator/config.hpp"
#include "offerd/store/idempotency_cache.hpp"
#include "offerd/orchestrator/member_turns.hpp"
#include "offerd/orchestrator/outbox.hpp"
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
    std::vector<std::string> skip_reasons;   // of the read, when fetched
    std::span<const transaction> history() const noexcept { return record->items; }
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
    write_path(const orchestrator_config& cfg, offer_clients& clients, logger& log);
    ~write_path();

    // Under the deciding turn. The member's exact history: its warm record, else (cold) after
    // delivering the member's undelivered writes (member-data de-duplicates them by key), a
    // fresh read. Fails with the read's failure, or with 503 when undelivered writes of a cold
    // member cannot be delivered now (its history cannot be known exactly).
    asio::awaitable<result<std::monostate>> read(member_session& s, const call_context& ctx);

    // Under the deciding turn, after deciding. Takes the delivery turn (waiting for the
    // member's earlier write to end), then accepts t into the record unless the record went
    // stale meanwhile: false means "decide again" (call read() again; the delivery turn stays).
    asio::awaitable<result<bool>> accept(member_session& s, const transaction& t, const call_context& ctx);

    // After accept (the caller may give up its deciding turn first): writes t to member-data
    // under `key`, else to the durable outbox; a refusal (4xx) or an outbox that cannot take it
    // takes t out of the member's record again (it is nowhere) and fails the request. Releases
    // the delivery turn.
    asio::awaitable<write_outcome> deliver(member_session& s, const transaction& t, const std::string& key,
                                           const call_context& ctx);

    // The request is over (whatever happened): the record stays warm for its idle period.
    void finish(member_session& s);

    // The key member-data de-duplicates a write by: the client's key scoped by member, else a
    // key unique to this process and transaction.
    std::string write_key(const std::string& member, std::string_view client_key);

    // Idempotency-Key answers, scoped by member. Looked up under the deciding turn, so a
    // concurrent repeat waits for the original.
    std::optional<idempotency_cache::entry> replay(const std::string& member, std::string_view key);
    void remember(const std::string& member, std::string_view key, idempotency_cache::entry e);

    // Delivers outbox entries on ctx, member by member in order, with exponential backoff while
    // member-data does not take them. stop_drainer() logs what is left.
    void start_drainer(asio::io_context& ctx);
    void stop_drainer();

    const outbox& pending_writes() const noexcept { return outbox_; }
    std::size_t warm_members() const { return records_.members(); }
    // offerd_outbox_pending, offerd_writes_total, offerd_warm_members.
    void write_metrics(std::string& out) const;

    struct drain_state;

private:
    // Under the delivery turn: delivers the member's outbox items in order; true when none is left.
    asio::awaitable<bool> deliver_pending(member_session& s, const call_context& ctx);
    static asio::awaitable<void> drain_loop(write_path* self, std::shared_ptr<drain_state> st);

    const orchestrator_config& cfg_;
    offer_clients& clients_;
    logger& log_;
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
