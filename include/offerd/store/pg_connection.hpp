// PostgreSQL over Asio: one libpq connection in pipeline mode, non-blocking, driven by the
// io_context it was made on. Writes queued while a commit is in flight share the next commit
// (group commit), because one commit per append is what limits a PostgreSQL-backed writer.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "offerd/domain/deadline.hpp"
#include "offerd/domain/errors.hpp"

namespace offerd {

class logger;

namespace pg {

namespace asio = boost::asio;

// One prepared statement, prepared on every (re)connect under `name`.
struct statement {
    std::string name;
    std::string sql;
};

enum class kind : std::uint8_t {
    read,   // sent on its own (autocommit), never waits for a batch of writes to form
    write,  // joins the next group commit: the queued writes, then one sync (one implicit
            // transaction, so one commit; an explicit BEGIN would leave an aborted block behind
            // a refused write). A group of one is that write alone.
    alone,  // a write in its own transaction, sent at once: for statements that lock rows other
            // connections' groups write (in a group they would keep those locks until the
            // group's commit, and two such groups can deadlock; PostgreSQL breaks that only
            // after deadlock_timeout, 1 s)
};

// A statement's answer. A statement PostgreSQL refused (a constraint, a serialization error)
// is an answer too: ok() is false and sqlstate says why ("23505" unique violation, ...).
struct rows {
    std::string sqlstate;  // empty: the statement succeeded
    std::string message;   // PostgreSQL's primary message when it did not
    std::uint64_t affected = 0;  // PQcmdTuples: rows inserted/updated/deleted
    std::vector<std::vector<std::optional<std::string>>> data;  // text format; nullopt = NULL
    bool ok() const noexcept { return sqlstate.empty(); }
    std::size_t size() const noexcept { return data.size(); }
    const std::optional<std::string>& at(std::size_t row, std::size_t col) const { return data.at(row).at(col); }
};

struct connection_config {
    // A libpq connection string, URL (postgresql://user@127.0.0.1:5432/db) or key=value. Host
    // names are resolved with Asio before libpq sees them (libpq's own lookup blocks).
    std::string conninfo;
    std::chrono::milliseconds connect_timeout{5'000};
    std::chrono::milliseconds reconnect_min{100};  // backoff between attempts after a loss ...
    std::chrono::milliseconds reconnect_max{2'000};  // ... doubling up to this
    std::size_t max_batch = 128;  // writes per group commit at most
    // Server settings for every session, in libpq's `options` form ("-c name=value ..."). The
    // connection string's own options come after them, so a user's setting wins.
    std::string options{};
};

// Counters for metrics and the benchmark (statements per commit = writes / commits).
// Written on the connection's executor, read from any thread (metrics): relaxed atomics; a
// copy is a snapshot.
struct connection_stats {
    using counter = std::atomic<std::uint64_t>;
    counter commits{0};        // group commits that succeeded
    counter writes{0};         // write statements committed
    counter reads{0};          // read statements answered
    counter retried_alone{0};  // writes re-run on their own after their batch failed
    counter reconnects{0};
    connection_stats() = default;
    connection_stats(const connection_stats& o) { *this = o; }
    connection_stats& operator=(const connection_stats& o) {
        for (auto [dst, src] : {std::pair{&commits, &o.commits}, std::pair{&writes, &o.writes}, std::pair{&reads, &o.reads},
                                std::pair{&retried_alone, &o.retried_alone}, std::pair{&reconnects, &o.reconnects}})
            dst->store(src->load(std::memory_order_relaxed), std::memory_order_relaxed);
        return *this;
    }
};

// Not thread-safe: every member function is called on the connection's executor (one
// connection per worker io_context). All state is in `impl`, touched only on that executor (no
// locks); the background coroutines and handlers hold a shared_ptr to it, so the connection may
// be destroyed right after stop() (on its executor, or once that no longer runs). A statement
// whose preparation was refused on connect (say, its table does not exist yet) is prepared again
// when an exec first uses it. stop() is final: start() after it does nothing. Nothing blocks: connecting (PQconnectStart/Poll), sending
// (PQflush on writability) and receiving (PQconsumeInput on readability) wait on the socket
// duplicated into an asio::posix::stream_descriptor.
class connection {
public:
    connection(asio::any_io_executor ex, connection_config cfg, std::vector<statement> statements, logger* log = nullptr);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    // Connects in the background and keeps reconnecting with backoff after a loss (logging
    // each loss and recovery once). Idempotent.
    void start();
    // Closes the connection; pending statements fail with upstream_unavailable. Idempotent.
    void stop();

    // Runs the prepared statement `name` with text parameters (nullopt = SQL NULL). Answers come
    // in the order statements reach PostgreSQL: a read is sent at once, so it is not ordered
    // after writes still queued for the next group commit (await a write before reading it).
    // Fails (never throws) with errc::upstream_unavailable while not connected or when the
    // connection is lost before the answer (a write may then have committed or not), and
    // errc::deadline_exceeded when `until` passes first. In a group commit that PostgreSQL
    // aborts (one statement refused), every write of the batch is re-run on its own, so only
    // the refused one answers !ok().
    asio::awaitable<result<rows>> exec(std::string_view name, std::vector<std::optional<std::string>> params, kind k,
                                       deadline until);

    // Waits until connected (true) or `until` passes (false).
    asio::awaitable<bool> wait_connected(deadline until);
    bool connected() const noexcept;  // any thread
    const connection_stats& stats() const noexcept;

    struct impl;

private:
    std::shared_ptr<impl> impl_;
};

// Runs one statement (a schema migration) on a connection of its own, on the calling thread,
// before any worker runs: returns "" when it succeeded, else why (cannot connect within
// `timeout`, or PostgreSQL refused it). Returns as soon as it is done.
std::string run_once_blocking(const std::string& url, const std::string& sql, logger* log, std::chrono::milliseconds timeout);

}  // namespace pg
}  // namespace offerd
