// Sharded in-memory history store.
#include "offerd/store/memory_history_store.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>

#include "offerd/codec/wire.hpp"

namespace offerd {

memory_history_store::memory_history_store(const history_keys_config& keys) : keys_(keys.retention, keys.capacity) {}

memory_history_store::shard& memory_history_store::shard_for(std::string_view id) const noexcept {
    return shards_[string_hash{}(id) % shard_count];
}

void memory_history_store::add(const transaction& t, const transaction_text* as_sent) {
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

bool memory_history_store::history_json_now(std::string_view member_id, std::string& out) const {
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

std::vector<transaction> memory_history_store::history(std::string_view member_id) const {
    const shard& s = shard_for(member_id);
    std::vector<transaction> out;
    std::lock_guard lock(s.mutex);
    const auto it = s.members.find(member_id);
    if (it == s.members.end()) return out;
    for (const record& r : it->second.records)
        out.push_back(transaction{std::string(member_id), r.ts(), r.type(), r.points, r.revenue});
    return out;
}

std::size_t memory_history_store::members() const {
    std::size_t n = 0;
    for (const shard& s : shards_) {
        std::lock_guard lock(s.mutex);
        n += s.members.size();
    }
    return n;
}

std::size_t memory_history_store::transactions() const {
    std::size_t n = 0;
    for (const shard& s : shards_) {
        std::lock_guard lock(s.mutex);
        n += s.transactions;
    }
    return n;
}

std::optional<append_outcome> memory_history_store::claim_key(const std::string& key, const transaction& t, std::string body) {
    if (key.empty()) return std::nullopt;
    const std::uint64_t h = idempotency_cache::hash(encode_transaction(t));
    std::lock_guard lock(pending_mutex_);
    auto prior = keys_.insert_if_absent(key, {h, 200, std::move(body)});
    if (!prior) {
        pending_.insert(key);
        return std::nullopt;
    }
    if (pending_.count(key)) return append_outcome{append_outcome::kind::in_progress, {}};
    if (prior->body_hash != h) return append_outcome{append_outcome::kind::conflict, {}};
    return append_outcome{append_outcome::kind::duplicate, std::move(prior->body)};
}

void memory_history_store::settle_key(const std::string& key) {
    if (key.empty()) return;
    std::lock_guard lock(pending_mutex_);
    pending_.erase(key);
}

void memory_history_store::release_key(const std::string& key) {
    if (key.empty()) return;
    std::lock_guard lock(pending_mutex_);
    keys_.erase(key);
    pending_.erase(key);
}

// body by reference: a by-value argument is a temporary beside the caller's co_await, which g++ 12
// destroys twice.
asio::awaitable<std::optional<append_outcome>> memory_history_store::claim_key_settled(const std::string& key, const transaction& t,
                                                                                      const std::string& body) {
    for (;;) {
        auto prior = claim_key(key, t, body);
        if (!prior || prior->what != append_outcome::kind::in_progress) co_return prior;
        auto ex = co_await asio::this_coro::executor;
        asio::steady_timer timer(ex, std::chrono::milliseconds(1));
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

asio::awaitable<result<append_outcome>> memory_history_store::append(transaction t, std::string key, transaction_text as_sent) {
    std::string body;
    append_transaction(body, t, &as_sent);
    auto prior = co_await claim_key_settled(key, t, body);
    if (prior) co_return std::move(*prior);
    add(t, &as_sent);
    settle_key(key);
    co_return append_outcome{append_outcome::kind::stored, std::move(body)};
}

asio::awaitable<result<bool>> memory_history_store::history_json(std::string member, std::string& out) const {
    co_return history_json_now(member, out);
}

}  // namespace offerd
