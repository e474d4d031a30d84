// member-data's histories in PostgreSQL (--member-data-store postgresql://...): several
// member-data processes can share one database, and de-duplication by key survives restarts.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "offerd/store/history_store.hpp"
#include "offerd/store/pg_connection.hpp"

namespace offerd {

class logger;

// One table, member_data_history(member_id, seq, idem_key, txn, body): seq orders a member's
// history, a unique index on idem_key makes a key's first write the only one, txn (normalized)
// tells a repeat from a conflict, body is the object as sent, echoed by history_json.
//
// Thread-safe: one pg::connection per worker io_context, each used only on its worker (a call
// runs on the connection of the io_context it is awaited on). Appends share group commits.
// members()/transactions() are counts refreshed every 10 s in the background (a remote store
// has no cheap exact count); history() is not served from here (it returns nothing): tests and
// tools read histories through history_json.
class pg_history_store final : public history_store {
public:
    // Creates or migrates the schema before returning (throws std::runtime_error with why when
    // PostgreSQL cannot be reached within `timeout` or refuses the schema), then connects one
    // connection per worker in the background.
    pg_history_store(std::span<asio::io_context* const> workers, const std::string& url, logger& log,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10));
    ~pg_history_store() override;
    pg_history_store(const pg_history_store&) = delete;
    pg_history_store& operator=(const pg_history_store&) = delete;

    asio::awaitable<result<append_outcome>> append(transaction t, std::string key, transaction_text as_sent) override;
    asio::awaitable<result<bool>> history_json(std::string member, std::string& out) const override;
    std::vector<transaction> history(std::string_view member) const override;
    std::size_t members() const override;
    std::size_t transactions() const override;

    // Stops the connections and the count refresh, on their workers (before the workers stop).
    void stop() override;

private:
    struct counts_state;
    pg::connection* connection_here(const asio::any_io_executor& ex) const;

    std::vector<asio::any_io_executor> executors_;
    std::vector<std::unique_ptr<pg::connection>> conns_;
    std::shared_ptr<counts_state> counts_;  // shared with the refresh loop
};

}  // namespace offerd
