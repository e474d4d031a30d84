// Journaled history store: claim the key, journal, then add on commit.
#include "offerd/store/journal_history_store.hpp"

#include "offerd/codec/keyed_record.hpp"
#include "offerd/codec/wire.hpp"

namespace offerd {

result<std::shared_ptr<journal_history_store>> journal_history_store::open(const std::string& path, fsync_policy policy,
                                                                           std::shared_ptr<memory_history_store> memory) {
    auto log = record_log::open(path, policy, [&](const log_record& r) {
        auto rec = decode_keyed_record(r.payload);
        if (!rec) return;  // checksum-valid but not a transaction record: not ours to interpret
        memory->claim_key(rec->key, rec->txn, encode_transaction(rec->txn));
        memory->add(rec->txn);
        memory->settle_key(rec->key);
    });
    if (!log) return std::move(log).error();
    return std::shared_ptr<journal_history_store>(new journal_history_store(std::move(memory), std::move(log).value()));
}

journal_history_store::journal_history_store(std::shared_ptr<memory_history_store> memory, std::unique_ptr<record_log> log)
    : memory_(std::move(memory)), log_(std::move(log)) {}

asio::awaitable<result<append_outcome>> journal_history_store::append(transaction t, std::string key, transaction_text as_sent) {
    std::string body;
    append_transaction(body, t, &as_sent);
    // A duplicate of a write still being journaled waits for it: answered "stored" before it is
    // readable, a client (the orchestrator's cold read) would read a history without it.
    auto prior = co_await memory_->claim_key_settled(key, t, body);
    if (prior) co_return std::move(*prior);
    // Named locals: g++ 12 mishandles temporaries beside co_await.
    std::string payload = encode_keyed_record(key, t);
    record_log::commit_hook add = [this, &t, &as_sent, &key] {
        memory_->add(t, &as_sent);
        memory_->settle_key(key);
    };
    auto written = co_await log_->append(std::move(payload), std::move(add));
    if (!written) {
        // Not stored: the key must not claim otherwise, so the client's retry can store it.
        memory_->release_key(key);
        co_return std::move(written).error();
    }
    co_return append_outcome{append_outcome::kind::stored, std::move(body)};
}

asio::awaitable<result<bool>> journal_history_store::history_json(std::string member, std::string& out) const {
    co_return memory_->history_json_now(member, out);
}

std::vector<transaction> journal_history_store::history(std::string_view member) const { return memory_->history(member); }
std::size_t journal_history_store::members() const { return memory_->members(); }
std::size_t journal_history_store::transactions() const { return memory_->transactions(); }

}  // namespace offerd
