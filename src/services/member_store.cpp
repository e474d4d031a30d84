// Sharded member store.
#include "offerd/services/member_store.hpp"

#include "offerd/codec/wire.hpp"

namespace offerd {

member_store::shard& member_store::shard_for(std::string_view id) const noexcept {
    return shards_[string_hash{}(id) % shard_count];
}

void member_store::append(const transaction& t, const transaction_text* as_sent) {
    const bool differs = as_sent && (as_sent->type != to_string(t.type) || as_sent->ts != format_rfc3339(t.ts));
    shard& s = shard_for(t.member_id);
    std::lock_guard lock(s.mutex);
    auto it = s.members.find(std::string_view(t.member_id));
    if (it == s.members.end()) it = s.members.emplace(t.member_id, member_history{}).first;
    member_history& h = it->second;
    if (differs) {
        if (!h.as_sent) h.as_sent = std::make_unique<std::unordered_map<std::uint32_t, transaction_text>>();
        (*h.as_sent)[static_cast<std::uint32_t>(h.records.size())] = *as_sent;
    }
    h.records.push_back(record{static_cast<std::int64_t>(static_cast<std::uint64_t>(t.ts) << 2) | static_cast<std::int64_t>(t.type),
                               t.points, t.revenue});
    ++s.transactions;
}

bool member_store::history_json(std::string_view member_id, std::string& out) const {
    const shard& s = shard_for(member_id);
    const std::string prefix = history_entry_prefix(member_id);
    transaction t;  // reused for entries echoed as posted
    t.member_id = member_id;
    std::lock_guard lock(s.mutex);
    const auto it = s.members.find(member_id);
    if (it == s.members.end() || it->second.records.empty()) return false;
    const member_history& h = it->second;
    out.reserve(out.size() + h.records.size() * (prefix.size() + 110));
    out += '[';
    for (std::size_t i = 0; i < h.records.size(); ++i) {
        if (i) out += ',';
        const record& r = h.records[i];
        const transaction_text* text = nullptr;
        if (h.as_sent)
            if (auto found = h.as_sent->find(static_cast<std::uint32_t>(i)); found != h.as_sent->end()) text = &found->second;
        if (!text) {
            append_history_entry(out, prefix, r.ts(), r.type(), r.points, r.revenue);
        } else {
            t.ts = r.ts();
            t.type = r.type();
            t.points = r.points;
            t.revenue = r.revenue;
            append_transaction(out, t, text);
        }
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
    for (const record& r : it->second.records)
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
