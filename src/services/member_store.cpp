// Sharded member store.
#include "offerd/services/member_store.hpp"

#include "offerd/codec/wire.hpp"

namespace offerd {

member_store::shard& member_store::shard_for(std::string_view id) const noexcept {
    return shards_[string_hash{}(id) % shard_count];
}

void member_store::append(const transaction& t) {
    shard& s = shard_for(t.member_id);
    std::lock_guard lock(s.mutex);
    auto it = s.members.find(std::string_view(t.member_id));
    if (it == s.members.end()) it = s.members.emplace(t.member_id, std::vector<record>{}).first;
    it->second.push_back(record{static_cast<std::int64_t>(static_cast<std::uint64_t>(t.ts) << 2) | static_cast<std::int64_t>(t.type),
                                t.points, t.revenue});
    ++s.transactions;
}

bool member_store::history_json(std::string_view member_id, std::string& out) const {
    const shard& s = shard_for(member_id);
    transaction t;
    t.member_id = member_id;
    std::lock_guard lock(s.mutex);
    const auto it = s.members.find(member_id);
    if (it == s.members.end() || it->second.empty()) return false;
    out.reserve(out.size() + it->second.size() * (150 + member_id.size()));
    out += '[';
    bool first = true;
    for (const record& r : it->second) {
        if (!first) out += ',';
        first = false;
        t.ts = r.ts();
        t.type = r.type();
        t.points = r.points;
        t.revenue = r.revenue;
        append_transaction(out, t);
    }
    out += ']';
    return true;
}

std::vector<transaction> member_store::history(std::string_view member_id) const {
    const shard& s = shard_for(member_id);
    std::vector<transaction> out;
    std::lock_guard lock(s.mutex);
    const auto it = s.members.find(member_id);
    if (it == s.members.end()) return out;
    for (const record& r : it->second)
        out.push_back(transaction{std::string(member_id), r.ts(), r.type(), r.points, r.revenue});
    return out;
}

std::size_t member_store::members() const {
    std::size_t n = 0;
    for (const shard& s : shards_) {
        std::lock_guard lock(s.mutex);
        n += s.members.size();
    }
    return n;
}

std::size_t member_store::transactions() const {
    std::size_t n = 0;
    for (const shard& s : shards_) {
        std::lock_guard lock(s.mutex);
        n += s.transactions;
    }
    return n;
}

}  // namespace offerd
