// Warm member records: sharded map with per-shard LRU and an idle period.
#include "offerd/orchestrator/persist/member_records.hpp"

namespace offerd {

member_records::member_records(std::chrono::milliseconds idle, std::size_t max_transactions,
                               std::function<bool(std::string_view member)> may_forget)
    : idle_(idle), max_transactions_(max_transactions), may_forget_(std::move(may_forget)) {}

void member_records::erase_locked(shard& s, std::unordered_map<std::string, slot, string_hash, std::equal_to<>>::iterator it) {
    transactions_.fetch_sub(it->second.record->items.size(), std::memory_order_relaxed);
    s.lru.erase(it->second.lru);
    s.map.erase(it);
}

std::shared_ptr<member_record> member_records::use(const std::string& member, clock::time_point now) {
    shard& s = shard_for(member);
    std::lock_guard lock(s.mutex);
    const auto it = s.map.find(member);
    if (it == s.map.end()) return nullptr;
    slot& sl = it->second;
    const bool expired = sl.users == 0 && now - sl.last_used >= idle_ && may_forget_(member);
    if (sl.record->stale.load(std::memory_order_relaxed) || expired) {
        erase_locked(s, it);
        return nullptr;
    }
    ++sl.users;
    s.lru.splice(s.lru.begin(), s.lru, sl.lru);
    return sl.record;
}

void member_records::put(const std::string& member, std::shared_ptr<member_record> record) {
    shard& s = shard_for(member);
    {
        std::lock_guard lock(s.mutex);
        if (const auto it = s.map.find(member); it != s.map.end()) erase_locked(s, it);
        transactions_.fetch_add(record->items.size(), std::memory_order_relaxed);
        s.lru.push_front(member);
        s.map.emplace(member, slot{std::move(record), 1, clock::now(), s.lru.begin()});
    }
    if (transactions_.load(std::memory_order_relaxed) > max_transactions_) evict_from(s);
}

void member_records::append(const std::string& member, member_record& record, const transaction& t) {
    shard& s = shard_for(member);
    std::lock_guard lock(s.mutex);
    record.items.push_back(t);
    // Counted only while the record is the member's (a forgotten one is no longer accounted).
    if (const auto it = s.map.find(member); it != s.map.end() && it->second.record.get() == &record)
        transactions_.fetch_add(1, std::memory_order_relaxed);
}

void member_records::done(const std::string& member, const std::shared_ptr<member_record>& record, clock::time_point now) {
    shard& s = shard_for(member);
    std::lock_guard lock(s.mutex);
    const auto it = s.map.find(member);
    if (it == s.map.end() || it->second.record != record) return;
    if (it->second.users > 0) --it->second.users;
    it->second.last_used = now;
}

void member_records::drop(const std::string& member, const std::shared_ptr<member_record>& record) {
    if (!record) return;
    record->stale.store(true, std::memory_order_relaxed);
    shard& s = shard_for(member);
    std::lock_guard lock(s.mutex);
    const auto it = s.map.find(member);
    if (it != s.map.end() && it->second.record == record) erase_locked(s, it);
}

void member_records::evict_from(shard& s) {
    // Only this shard, from its least recently used end: bounded work per insert, and the bound
    // holds across shards because every insert evicts in its own.
    std::lock_guard lock(s.mutex);
    for (auto pos = s.lru.end(); pos != s.lru.begin() && transactions_.load(std::memory_order_relaxed) > max_transactions_;) {
        --pos;
        const auto it = s.map.find(*pos);
        if (it->second.users > 0 || !may_forget_(*pos)) continue;
        const auto victim = pos;
        pos = std::next(victim);
        erase_locked(s, it);
    }
}

std::size_t member_records::members() const {
    std::size_t n = 0;
    for (const shard& s : shards_) {
        std::lock_guard lock(s.mutex);
        n += s.map.size();
    }
    return n;
}

}  // namespace offerd
