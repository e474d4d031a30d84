// Idempotency-Key answer cache.
#include "offerd/store/idempotency_cache.hpp"

#include <algorithm>

namespace offerd {

idempotency_cache::idempotency_cache(std::chrono::milliseconds retention, std::size_t capacity)
    : retention_(retention), per_shard_capacity_(std::max<std::size_t>(1, capacity / shard_count)) {}

std::uint64_t idempotency_cache::hash(std::string_view body) noexcept {
    std::uint64_t h = 1469598103934665603ULL;
    for (unsigned char c : body) h = (h ^ c) * 1099511628211ULL;
    return h;
}

idempotency_cache::shard& idempotency_cache::shard_for(std::string_view key) noexcept {
    return shards_[std::hash<std::string_view>{}(key) % shard_count];
}

void idempotency_cache::evict(shard& s, clock::time_point now) {
    while (!s.order.empty() && (s.order.size() > per_shard_capacity_ || s.order.front().first + retention_ <= now)) {
        auto it = s.map.find(s.order.front().second);
        // Only erase if the map entry is this queue element's (a key can be stored again later).
        if (it != s.map.end() && it->second.second == s.order.front().first) s.map.erase(it);
        s.order.pop_front();
    }
}

std::optional<idempotency_cache::entry> idempotency_cache::find(std::string_view key, clock::time_point now) {
    shard& s = shard_for(key);
    std::lock_guard lock(s.mutex);
    evict(s, now);
    auto it = s.map.find(std::string(key));
    if (it == s.map.end()) return std::nullopt;
    return it->second.first;
}

void idempotency_cache::store(const std::string& key, entry e, clock::time_point now) {
    shard& s = shard_for(key);
    std::lock_guard lock(s.mutex);
    s.map[key] = {std::move(e), now};
    s.order.emplace_back(now, key);
    evict(s, now);
}

std::optional<idempotency_cache::entry> idempotency_cache::insert_if_absent(const std::string& key, entry e,
                                                                           clock::time_point now) {
    shard& s = shard_for(key);
    std::lock_guard lock(s.mutex);
    evict(s, now);
    auto [it, inserted] = s.map.try_emplace(key, std::move(e), now);
    if (!inserted) return it->second.first;
    s.order.emplace_back(now, key);
    evict(s, now);
    return std::nullopt;
}

void idempotency_cache::erase(const std::string& key) {
    shard& s = shard_for(key);
    std::lock_guard lock(s.mutex);
    s.map.erase(key);  // its queue element is skipped by evict() as it no longer matches
}

std::size_t idempotency_cache::size() const {
    std::size_t n = 0;
    for (const shard& s : shards_) {
        std::lock_guard lock(s.mutex);
        n += s.map.size();
    }
    return n;
}

}  // namespace offerd
