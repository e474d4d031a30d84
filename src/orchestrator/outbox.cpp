// Outbox storage: an in-memory FIFO mirrored to a verified record_log.
#include "offerd/orchestrator/outbox.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "offerd/codec/keyed_record.hpp"

namespace offerd {

outbox::outbox(const outbox_config& cfg) : cfg_(cfg) {
    if (cfg_.dir.empty()) return;
    if (::mkdir(cfg_.dir.c_str(), 0755) != 0 && errno != EEXIST)
        throw std::runtime_error("cannot create data directory '" + cfg_.dir + "': " + std::strerror(errno));
    const std::string path = cfg_.dir + "/outbox.log";
    auto opened = record_log::open(path, cfg_.fsync ? fsync_policy::always : fsync_policy::never, [&](const log_record& r) {
        if (r.payload.starts_with("ack ")) {
            const std::uint64_t seq = std::strtoull(r.payload.c_str() + 4, nullptr, 10);
            std::erase_if(items_, [&](const item& i) { return i.seq == seq; });
        } else if (auto rec = decode_keyed_record(r.payload)) {
            items_.push_back(item{r.seq, std::move(rec->key), std::move(rec->txn)});
        }
    });
    if (!opened) throw std::runtime_error(opened.error().detail);
    file_ = std::move(opened).value();
    for (const item& i : items_) by_member_[i.txn.member_id].push_back(i);
    // Rewrite the file with just what is still pending (compaction), then append from there.
    std::vector<log_record> pending;
    for (const item& i : items_) pending.push_back({i.seq, encode_keyed_record(i.key, i.txn)});
    if (auto r = file_->rewrite(pending); !r) throw std::runtime_error(r.error().detail);
    count_.store(items_.size());
}

outbox::~outbox() = default;

bool outbox::has_pending(std::string_view member) const {
    if (count_.load(std::memory_order_acquire) == 0) return false;
    std::lock_guard lock(mutex_);
    return by_member_.count(std::string(member)) != 0;
}

std::vector<transaction> outbox::pending_for(std::string_view member) const {
    if (count_.load(std::memory_order_acquire) == 0) return {};
    std::lock_guard lock(mutex_);
    const auto it = by_member_.find(std::string(member));
    if (it == by_member_.end()) return {};
    std::vector<transaction> out;
    for (const item& i : it->second) out.push_back(i.txn);
    return out;
}

std::size_t outbox::pending_count(std::string_view member) const {
    if (count_.load(std::memory_order_acquire) == 0) return 0;
    std::lock_guard lock(mutex_);
    const auto it = by_member_.find(std::string(member));
    return it == by_member_.end() ? 0 : it->second.size();
}

std::vector<outbox::item> outbox::pending_items(std::string_view member) const {
    if (count_.load(std::memory_order_acquire) == 0) return {};
    std::lock_guard lock(mutex_);
    const auto it = by_member_.find(std::string(member));
    if (it == by_member_.end()) return {};
    return {it->second.begin(), it->second.end()};
}

std::vector<std::string> outbox::pending_members() const {
    std::vector<std::string> out;
    if (count_.load(std::memory_order_acquire) == 0) return out;
    std::lock_guard lock(mutex_);
    std::unordered_map<std::string_view, bool> seen;
    for (const item& i : items_)
        if (seen.emplace(i.txn.member_id, true).second) out.push_back(i.txn.member_id);
    return out;
}

result<std::uint64_t> outbox::add(std::string key, const transaction& t) {
    std::lock_guard lock(mutex_);
    if (items_.size() >= cfg_.max_items) return fail(errc::internal, "outbox is full (" + std::to_string(cfg_.max_items) + " items)");
    const auto written = file_ ? file_->append_sync(encode_keyed_record(key, t)) : result<std::uint64_t>(next_seq_++);
    if (!written) return written.error();
    const std::uint64_t seq = *written;
    items_.push_back(item{seq, std::move(key), t});
    by_member_[t.member_id].push_back(items_.back());
    count_.store(items_.size(), std::memory_order_release);
    return seq;
}

std::optional<outbox::item> outbox::front() const {
    std::lock_guard lock(mutex_);
    if (items_.empty()) return std::nullopt;
    return items_.front();
}

void outbox::acknowledge(std::uint64_t seq) {
    std::lock_guard lock(mutex_);
    const auto it = std::find_if(items_.begin(), items_.end(), [&](const item& i) { return i.seq == seq; });
    if (it == items_.end()) return;
    auto member = by_member_.find(it->txn.member_id);
    if (member != by_member_.end()) {
        auto& q = member->second;
        q.erase(std::remove_if(q.begin(), q.end(), [&](const item& i) { return i.seq == seq; }), q.end());
        if (q.empty()) by_member_.erase(member);
    }
    items_.erase(it);
    count_.store(items_.size(), std::memory_order_release);
    if (!file_) return;
    // On failure: the item was delivered; a stale record only means a de-duplicated redelivery after a restart.
    if (items_.empty()) (void)file_->truncate();
    else (void)file_->append_sync("ack " + std::to_string(seq));
}

std::size_t outbox::size() const { return count_.load(); }

std::vector<outbox::item> outbox::snapshot() const {
    std::lock_guard lock(mutex_);
    return {items_.begin(), items_.end()};
}

}  // namespace offerd
