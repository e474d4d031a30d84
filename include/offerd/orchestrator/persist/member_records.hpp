// Warm members: the orchestrator's own record of each member's accepted transactions, so that
// a busy member's next request decides without reading member-data again.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "offerd/domain/transaction.hpp"

namespace offerd {

// One member's exact history as the orchestrator knows it: member-data's at the last read,
// plus every transaction accepted since, each once, in acceptance order. `items` grows only
// under both of the member's turns (see write_path); readers hold the deciding turn, so a
// reader never sees it change. `stale` is set (under the member's delivery turn) when it counts a
// transaction that is nowhere; a stale record is never decided over again.
struct member_record {
    std::vector<transaction> items;
    std::size_t skipped = 0;  // entries member-data held that could not be parsed, at the read
    std::atomic<bool> stale{false};
    // Cluster mode: the member log's seq of the last transaction `items` counts (changed with
    // items), and how far member-data is known to hold them (under the delivery turn).
    std::atomic<std::uint64_t> seq{0};
    std::atomic<std::uint64_t> delivered_seq{0};
};

// Thread-safe: 64 shards, each a map and an LRU list behind one mutex held for a lookup or an
// update, never across I/O. Bounded by the number of transactions held: beyond it, the least
// recently used members that are idle and that `may_forget` allows go cold.
class member_records {
public:
    using clock = std::chrono::steady_clock;
    member_records(std::chrono::milliseconds idle, std::size_t max_transactions,
                   std::function<bool(std::string_view member)> may_forget);

    // The member's record, or null when it is cold: never read, forgotten, stale, or idle longer
    // than `idle` (and `may_forget` allows). Counts a user until done() with the same record.
    std::shared_ptr<member_record> use(const std::string& member, clock::time_point now = clock::now());
    // Makes `record` the member's (after a read), counted as used.
    void put(const std::string& member, std::shared_ptr<member_record> record);
    // Appends an accepted transaction to a record in use.
    void append(const std::string& member, member_record& record, const transaction& t);
    // The user is done with the record; it stays warm for `idle`.
    void done(const std::string& member, const std::shared_ptr<member_record>& record, clock::time_point now = clock::now());
    // Marks the record stale and forgets it: the member's next request reads member-data.
    void drop(const std::string& member, const std::shared_ptr<member_record>& record);

    std::size_t members() const;
    std::size_t transactions() const noexcept { return transactions_.load(std::memory_order_relaxed); }

private:
    struct slot {
        std::shared_ptr<member_record> record;
        int users = 0;
        clock::time_point last_used;
        std::list<std::string>::iterator lru;  // position in the shard's LRU list (front: most recent)
    };
    struct string_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    struct shard {
        mutable std::mutex mutex;
        std::unordered_map<std::string, slot, string_hash, std::equal_to<>> map;
        std::list<std::string> lru;
    };
    static constexpr std::size_t shard_count = 64;
    shard& shard_for(std::string_view member) noexcept { return shards_[string_hash{}(member) % shard_count]; }
    void erase_locked(shard& s, std::unordered_map<std::string, slot, string_hash, std::equal_to<>>::iterator it);
    void evict_from(shard& s);

    std::chrono::milliseconds idle_;
    std::size_t max_transactions_;
    std::function<bool(std::string_view)> may_forget_;
    std::atomic<std::size_t> transactions_{0};
    std::array<shard, shard_count> shards_;
};

}  // namespace offerd
