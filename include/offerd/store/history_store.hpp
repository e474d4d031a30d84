// The pluggable member-history store behind member-data: memory (memory_history_store.hpp),
// journal (journal_history_store.hpp), later PostgreSQL, all behind this one seam.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "offerd/codec/wire.hpp"
#include "offerd/domain/errors.hpp"
#include "offerd/domain/transaction.hpp"

namespace offerd {

namespace asio = boost::asio;

struct append_outcome {
    enum class kind {
        stored,     // appended now
        duplicate,  // the key was already stored with this transaction: nothing appended
        conflict,   // the key was already stored with another transaction: nothing appended
        in_progress,  // internal to the stores (never returned by append): the key's first write is not stored yet
    };
    kind what = kind::stored;
    // The stored object as wire JSON: this write's as sent (stored), or the one first stored
    // under the key (duplicate). Empty for a conflict.
    std::string body;
};

// Thread-safe: every member may be called concurrently from any thread (each implementation
// says how). Reads see every append that completed before they started.
class history_store {
public:
    virtual ~history_store() = default;

    // Appends t to its member's history, unless `key` (an Idempotency-Key; "" = none) was
    // already stored: then the outcome says duplicate or conflict and nothing is appended.
    // A write's identity under a key is its normalized transaction. as_sent: the timestamp and
    // type as the client wrote them, echoed by history_json. Fails (errc::internal) when the
    // write could not be made durable; the key is then not taken, so a retry may store it.
    virtual asio::awaitable<result<append_outcome>> append(transaction t, std::string key, transaction_text as_sent) = 0;
    // Appends the member's history (a JSON array, insertion order) to out: true; false with out
    // untouched when the member has none.
    virtual asio::awaitable<result<bool>> history_json(std::string member, std::string& out) const = 0;

    // Inspection, for tests, tools and metrics (may be approximate or slow in a remote store).
    virtual std::vector<transaction> history(std::string_view member) const = 0;
    virtual std::size_t members() const = 0;
    virtual std::size_t transactions() const = 0;

    // Ends the store's background work and connections, posted to its workers; called once the
    // listener that uses it has drained, before the workers stop. Nothing to do for a local store.
    virtual void stop() {}
};

}  // namespace offerd
