// The outbox: transactions member-data could not take, kept (optionally on disk) and delivered
// later in order, so no accepted transaction is lost.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "offerd/domain/transaction.hpp"
#include "offerd/store/record_log.hpp"
#include "offerd/orchestrator/config.hpp"

namespace offerd {

// Thread-safe behind one mutex. has_pending() is lock-free while the outbox is empty, which is
// the normal case, so the hot path pays one atomic load. Disk writes happen only when a persist
// failed, under the mutex, to a record_log: a keyed_record payload adds an item, `ack <seq>`
// acknowledges it. Replay keeps items without an acknowledgement; the log verifies every record
// and cuts damage off (file_report() says what it found). The file is truncated whenever the
// outbox empties.
class outbox {
public:
    struct item {
        std::uint64_t seq = 0;
        std::string key;  // Idempotency-Key the delivery uses
        transaction txn;
    };

    // Replays DIR/outbox.log when a directory is configured. Throws std::runtime_error when the
    // directory or file cannot be used.
    explicit outbox(const outbox_config& cfg);
    ~outbox();
    outbox(const outbox&) = delete;
    outbox& operator=(const outbox&) = delete;

    bool has_pending(std::string_view member) const;
    // The member's pending transactions, oldest first.
    std::vector<transaction> pending_for(std::string_view member) const;
    // How many of the member's items are pending (no copy).
    std::size_t pending_count(std::string_view member) const;
    // The member's pending items, oldest first.
    std::vector<item> pending_items(std::string_view member) const;
    // Members with pending items, the one with the oldest item first.
    std::vector<std::string> pending_members() const;
    // Fails only when the record cannot be written to disk (the detail says why).
    result<std::uint64_t> add(std::string key, const transaction& t);
    // The oldest pending item, if any.
    std::optional<item> front() const;
    // Removes a delivered (or dead-lettered) item; items are acknowledged oldest first.
    void acknowledge(std::uint64_t seq);
    std::size_t size() const;
    std::vector<item> snapshot() const;
    const outbox_config& config() const noexcept { return cfg_; }
    // What opening the file found (report_damage() logs it); nullptr when memory-only.
    const open_report* file_report() const noexcept { return file_ ? &file_->report() : nullptr; }

private:

    outbox_config cfg_;
    mutable std::mutex mutex_;
    std::deque<item> items_;  // in seq order
    std::unordered_map<std::string, std::deque<item>> by_member_;  // the same items, per member
    std::uint64_t next_seq_ = 1;
    std::atomic<std::size_t> count_{0};
    std::unique_ptr<record_log> file_;  // null when memory-only
};

}  // namespace offerd
