// The in-memory history store: compact per-member histories in insertion order, and the
// Idempotency-Keys already stored.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "offerd/codec/wire.hpp"
#include "offerd/domain/transaction.hpp"
#include "offerd/store/history_store.hpp"
#include "offerd/store/idempotency_cache.hpp"

namespace offerd {

struct history_keys_config {
    std::chrono::milliseconds retention{600'000};  // a key is remembered this long after it was stored
    std::size_t capacity = 100'000;                // beyond: the oldest keys are forgotten first
};

// Thread-safe. Members are spread over 64 shards by hash; each shard has its own mutex, held
// only to append or to serialize one member's history, so threads rarely contend. The keys
// live in an idempotency_cache (sharded, its own mutexes); append() takes the key before it
// appends, so of two concurrent writes under one key exactly one is stored.
// Records are stored compactly: 24 bytes (the type rides in the timestamp's two low bits; the
// member id is stored once per member).
class memory_history_store final : public history_store {
public:
    explicit memory_history_store(const history_keys_config& keys = {});

    asio::awaitable<result<append_outcome>> append(transaction t, std::string key, transaction_text as_sent) override;
    asio::awaitable<result<bool>> history_json(std::string member, std::string& out) const override;
    std::vector<transaction> history(std::string_view member_id) const override;
    std::size_t members() const override;
    std::size_t transactions() const override;

    // The synchronous parts, for decorators (journal_history_store) and tests.
    // When key is "" or new: takes it for t (body: t's stored object) and returns nullopt;
    // otherwise the duplicate or conflict outcome, or in_progress while the write that took the
    // key is not stored yet (a duplicate must not be answered before the original is readable
    // and durable: a client would read a history without it). Never fails.
    std::optional<append_outcome> claim_key(const std::string& key, const transaction& t, std::string body);
    // The write that took the key is stored (readable, durable): duplicates may be answered.
    void settle_key(const std::string& key);
    // Forgets a key whose write did not happen.
    void release_key(const std::string& key);
    // Waits (polling every millisecond; only concurrent duplicates of one key ever wait) until
    // the key is settled or released, then claims it: claim_key's answer other than in_progress.
    asio::awaitable<std::optional<append_outcome>> claim_key_settled(const std::string& key, const transaction& t, const std::string& body);
    // Appends t without looking at keys. as_sent: the timestamp and type as the client wrote
    // them; kept (beside the compact record) only when they differ from the normalized forms,
    // so histories echo what was posted.
    void add(const transaction& t, const transaction_text* as_sent = nullptr);
    // history_json, synchronously.
    bool history_json_now(std::string_view member_id, std::string& out) const;

private:
    struct record {
        std::int64_t ts_and_type;  // (ts << 2) | type: |ts| < 2^58 for years 1-9999
        double points;
        double revenue;
        micros ts() const noexcept { return ts_and_type >> 2; }
        txn_type type() const noexcept { return static_cast<txn_type>(ts_and_type & 3); }
    };
    static_assert(sizeof(record) == 24);
    struct string_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    struct member_history {
        std::vector<record> records;
        // Record index -> text as sent, for the few records not posted in normalized form.
        std::unique_ptr<std::unordered_map<std::uint32_t, transaction_text>> as_sent;
    };
    struct shard {
        mutable std::mutex mutex;
        std::unordered_map<std::string, member_history, string_hash, std::equal_to<>> members;
        std::size_t transactions = 0;
    };
    static constexpr std::size_t shard_count = 64;
    shard& shard_for(std::string_view id) const noexcept;

    mutable std::array<shard, shard_count> shards_;
    idempotency_cache keys_;
    // Keys taken whose write is not stored yet. pending_mutex_ is held across every change of a
    // key's state (claim, settle, release), so the answer to a duplicate is never torn.
    std::mutex pending_mutex_;
    std::unordered_set<std::string> pending_;
};

}  // namespace offerd
