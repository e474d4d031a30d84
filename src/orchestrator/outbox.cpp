// Outbox storage: an in-memory FIFO mirrored to an append-only, checksummed file.
#include "offerd/orchestrator/outbox.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "offerd/codec/record_line.hpp"

namespace offerd {

outbox::outbox(const outbox_config& cfg) : cfg_(cfg) {
    if (cfg_.dir.empty()) return;
    if (::mkdir(cfg_.dir.c_str(), 0755) != 0 && errno != EEXIST)
        throw std::runtime_error("cannot create data directory '" + cfg_.dir + "': " + std::strerror(errno));
    const std::string path = cfg_.dir + "/outbox.log";
    {
        std::ifstream in(path);
        std::deque<item> replayed;
        for (std::string line; std::getline(in, line);) {
            if (line.starts_with("A ")) {
                const std::uint64_t seq = std::strtoull(line.c_str() + 2, nullptr, 10);
                std::erase_if(replayed, [&](const item& i) { return i.seq == seq; });
                continue;
            }
            auto r = decode_record_line(line);
            if (!r) continue;  // torn or corrupt record (crash mid-write): its checksum fails; skip it
            next_seq_ = std::max(next_seq_, r->seq + 1);
            replayed.push_back(item{r->seq, std::move(r->key), std::move(r->txn)});
        }
        items_ = std::move(replayed);
        for (const item& i : items_) by_member_[i.txn.member_id].push_back(i.txn);
    }
    // Rewrite the file with just what is still pending (compaction), then append from there.
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        for (const item& i : items_) out << encode_record_line({i.seq, i.key, i.txn});
        if (!out.flush()) throw std::runtime_error("cannot write '" + tmp + "'");
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0)
        throw std::runtime_error("cannot replace '" + path + "': " + std::strerror(errno));
    file_ = std::make_unique<append_file>(path, cfg_.fsync);
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
    return {it->second.begin(), it->second.end()};
}

result<std::uint64_t> outbox::add(std::string key, const transaction& t) {
    std::lock_guard lock(mutex_);
    if (items_.size() >= cfg_.max_items) return fail(errc::internal, "outbox is full (" + std::to_string(cfg_.max_items) + " items)");
    const std::uint64_t seq = next_seq_++;
    try {
        if (file_) file_->append(encode_record_line({seq, key, t}));
    } catch (const std::exception& e) {
        return fail(errc::internal, e.what());
    }
    items_.push_back(item{seq, std::move(key), t});
    by_member_[t.member_id].push_back(t);
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
    // Items are acknowledged oldest first, so the item is its member's oldest too.
    auto member = by_member_.find(it->txn.member_id);
    if (member != by_member_.end()) {
        member->second.pop_front();
        if (member->second.empty()) by_member_.erase(member);
    }
    items_.erase(it);
    count_.store(items_.size(), std::memory_order_release);
    if (!file_) return;
    try {
        if (items_.empty()) file_->truncate();
        else file_->append("A " + std::to_string(seq) + '\n');
    } catch (const std::exception&) {
        // The item was delivered; a stale record only means a de-duplicated redelivery after a restart.
    }
}

std::size_t outbox::size() const { return count_.load(); }

std::vector<outbox::item> outbox::snapshot() const {
    std::lock_guard lock(mutex_);
    return {items_.begin(), items_.end()};
}

}  // namespace offerd
