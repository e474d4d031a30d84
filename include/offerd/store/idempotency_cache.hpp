// Answers remembered by Idempotency-Key, so a client's retry returns the original answer
// without recomputing or persisting again.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace offerd {

// Thread-safe: 16 shards, each a map plus an arrival-ordered queue behind one mutex (held for
// a lookup or an insert, never across I/O). Entries expire after `retention`; beyond
// `capacity` the oldest are dropped first.
class idempotency_cache {
public:
    using clock = std::chrono::steady_clock;
    struct entry {
        std::uint64_t body_hash = 0;
        unsigned status = 0;
        std::string body;
    };

    idempotency_cache(std::chrono::milliseconds retention, std::size_t capacity);
    std::optional<entry> find(std::string_view key, clock::time_point now = clock::now());
    void store(const std::string& key, entry e, clock::time_point now = clock::now());
    // Atomically: the existing entry if the key is known, else stores e and returns nullopt.
    std::optional<entry> insert_if_absent(const std::string& key, entry e, clock::time_point now = clock::now());
    void erase(const std::string& key);
    std::size_t size() const;

    static std::uint64_t hash(std::string_view body) noexcept;  // FNV-1a 64

private:
    struct shard {
        mutable std::mutex mutex;
        std::unordered_map<std::string, std::pair<entry, clock::time_point>> map;
        std::deque<std::pair<clock::time_point, std::string>> order;
    };
    static constexpr std::size_t shard_count = 16;
    shard& shard_for(std::string_view key) noexcept;
    void evict(shard& s, clock::time_point now);

    std::chrono::milliseconds retention_;
    std::size_t per_shard_capacity_;
    std::array<shard, shard_count> shards_;
};

}  // namespace offerd
