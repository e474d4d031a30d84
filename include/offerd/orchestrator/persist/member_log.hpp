// Cluster mode's system of record: per member, the sequence number of its last accepted
// transaction and the log of accepted transactions (at once the durable outbox, the
// Idempotency-Key record and the stored answer). Accepting is a compare-and-set on the
// sequence number, so a replica that decided over a stale history cannot accept (the fence).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "offerd/domain/errors.hpp"
#include "offerd/domain/transaction.hpp"
#include "offerd/orchestrator/clients.hpp"

namespace offerd {

// An accepted transaction as the log holds it.
struct logged_transaction {
    std::uint64_t seq = 0;
    transaction txn;
};

// A member's state: seq of the last accepted transaction (0: none), how far member-data is
// known to hold them, and the accepted transactions after that, in seq order.
struct member_head {
    std::uint64_t last_seq = 0;
    std::uint64_t delivered_seq = 0;
    std::vector<logged_transaction> undelivered;
};

// What a client's Idempotency-Key was first answered with.
struct logged_answer {
    std::uint64_t body_hash = 0;
    std::string body;  // the 200 answer's body
};

struct append_request {
    std::uint64_t expected_seq = 0;  // the member's last_seq the decision was made over
    std::string_view idempotency_key;  // the client's, or empty
    std::uint64_t body_hash = 0;
    const transaction* txn = nullptr;
    std::string_view answer;  // the 200 body a repeat of the key replays
};

struct append_result {
    enum class kind {
        appended,  // committed as `seq`
        stale,     // the member's last_seq is not expected_seq: nothing written (decide again)
        key_taken, // the member's Idempotency-Key is already in the log: nothing written (replay it)
    };
    kind what = kind::appended;
    std::uint64_t seq = 0;
};

// Thread-safe: every member may be called from any worker (ctx.worker picks the worker's own
// connection). Fails with upstream_unavailable / deadline_exceeded when the store cannot answer.
class member_log {
public:
    virtual ~member_log() = default;

    virtual asio::awaitable<result<member_head>> head(const std::string& member, const call_context& ctx) = 0;
    virtual asio::awaitable<result<append_result>> append(const std::string& member, const append_request& r,
                                                          const call_context& ctx) = 0;
    virtual asio::awaitable<result<std::optional<logged_answer>>> find_key(const std::string& member, std::string_view key,
                                                                           const call_context& ctx) = 0;
    // Accepted transactions with after < seq <= up_to, in seq order.
    virtual asio::awaitable<result<std::vector<logged_transaction>>> rows(const std::string& member, std::uint64_t after,
                                                                         std::uint64_t up_to, const call_context& ctx) = 0;
    // member-data holds every transaction of the member up to seq (never moves back).
    virtual asio::awaitable<result<std::monostate>> delivered(const std::string& member, std::uint64_t seq,
                                                              const call_context& ctx) = 0;
    // The same for many members in one statement (the write path's marks, batched). It never
    // waits for a member another statement is writing: those are skipped and returned, to be
    // marked on the next flush.
    virtual asio::awaitable<result<std::vector<std::string>>> delivered_many(const std::vector<std::pair<std::string, std::uint64_t>>& marks,
                                                                   const call_context& ctx) = 0;
    // member-data refused seq for good: it leaves the log (its key may be used again) and counts as delivered.
    virtual asio::awaitable<result<std::monostate>> refused(const std::string& member, std::uint64_t seq,
                                                            const call_context& ctx) = 0;
    // Up to `limit` members with accepted transactions member-data may not hold yet, the oldest
    // of them accepted longer ago than `older_than` (younger ones their replica is delivering).
    virtual asio::awaitable<result<std::vector<std::string>>> undelivered_members(std::size_t limit, std::chrono::milliseconds older_than,
                                                                                 const call_context& ctx) = 0;
    // Removes delivered log rows older than the retention (keys older than that are forgotten).
    virtual asio::awaitable<result<std::uint64_t>> prune(std::chrono::milliseconds retention, const call_context& ctx) = 0;

    virtual bool connected() const = 0;
    // Shutdown: closes the connections on their own executors (posted, so any thread may call
    // it); statements still pending fail. The workers can then run out of work and return.
    virtual void stop() = 0;
    // offerd_state_* samples (commits, appends per commit, conflicts).
    virtual void write_metrics(std::string& out) const = 0;
};

}  // namespace offerd
