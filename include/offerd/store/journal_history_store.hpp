// The journaled history store: a memory_history_store made durable by a record_log of every
// stored write, replayed on open (histories and keys).
#pragma once

#include <memory>
#include <string>

#include "offerd/store/history_store.hpp"
#include "offerd/store/memory_history_store.hpp"
#include "offerd/store/record_log.hpp"

namespace offerd {

// Thread-safe as its parts are: the key is claimed in the memory store, the record goes to the
// log (whose mutex orders the writes), and the log's commit hook adds it to the memory store,
// in journal order, once it is durable per policy. So a read never sees a write that could be
// lost, and a replay rebuilds exactly the histories that were served. The journal keeps the
// normalized form (payload: codec/keyed_record); the text as sent is echoed until a restart.
class journal_history_store final : public history_store {
public:
    // Replays path into memory (every record verified; damage cut off and described in
    // report()), then journals every write to it. Fails when the file cannot be used.
    static result<std::shared_ptr<journal_history_store>> open(const std::string& path, fsync_policy policy,
                                                               std::shared_ptr<memory_history_store> memory);

    asio::awaitable<result<append_outcome>> append(transaction t, std::string key, transaction_text as_sent) override;
    asio::awaitable<result<bool>> history_json(std::string member, std::string& out) const override;
    std::vector<transaction> history(std::string_view member) const override;
    std::size_t members() const override;
    std::size_t transactions() const override;

    const open_report& report() const noexcept { return log_->report(); }
    const record_log& log() const noexcept { return *log_; }

private:
    journal_history_store(std::shared_ptr<memory_history_store> memory, std::unique_ptr<record_log> log);

    std::shared_ptr<memory_history_store> memory_;
    std::unique_ptr<record_log> log_;
};

}  // namespace offerd
