// The orchestrator's configuration: plain structs with documented defaults, and the one
// validate() that both the CLI and code-built configs (tests, embedders) go through.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include "offerd/domain/errors.hpp"
#include "offerd/domain/timestamp.hpp"
#include "offerd/net/http_client.hpp"
#include "offerd/orchestrator/admission.hpp"
#include "offerd/orchestrator/resilience.hpp"

namespace offerd {

// Where transactions member-data could not take wait (the durable outbox) and how they drain.
struct outbox_config {
    std::string dir;    // empty: kept in memory only (lost if the process dies)
    bool fsync = true;  // fdatasync every record written to disk
    std::chrono::milliseconds retry_min{100};
    std::chrono::milliseconds retry_max{5'000};
    std::size_t max_items = 1'000'000;  // beyond: the write has nowhere to go and the request is answered 504
};

// The orchestrator's own record of each member's accepted transactions ("warm" members), the
// truth its features are computed over.
struct member_cache_config {
    // How long an idle member stays warm. 0: only while it has requests in progress or writes
    // undelivered, so an idle member's next request reads member-data again (use it when other
    // clients write to member-data directly). A member with undelivered writes never goes cold.
    std::chrono::milliseconds idle{60'000};
    std::size_t max_transactions = 2'000'000;  // bound of all warm histories; the least recently used idle members go cold first
};

struct orchestrator_config {
    std::string member_data_url;   // empty: this process's member-data listener, else http://HOST:8001
    std::string prediction_url;    // empty: this process's prediction listener, else http://HOST:8002
    std::string offer_engine_url;  // empty: this process's offer-engine listener, else http://HOST:8003
    client_limits upstream;        // per-call timeout 2 s, keep-alive pool per worker
    retry_config retry;            // 3 attempts, full-jitter backoff, 10% retry budget
    breaker_config breaker;        // opens at >= 50% failed of >= 20 calls in 10 s, for 2 s (resilience.hpp)
    std::chrono::milliseconds idempotency_retention{600'000};  // Idempotency-Key answers kept 10 min
    std::size_t idempotency_capacity = 100'000;                // ... at most this many
    outbox_config outbox;          // where undeliverable writes wait; memory only unless dir is set
    member_cache_config members;   // warm members
    std::chrono::milliseconds request_deadline{5'000};
    std::optional<micros> now;     // fixed "now" for DAYS_SINCE (replays); unset: the system clock
    admission_config admission;    // offer requests admitted: adaptive limit under a hard cap, beyond it 503 + Retry-After
    // Cluster mode: the PostgreSQL holding every member's accepted transactions (a libpq URL,
    // postgresql://user@host:port/db). Empty: everything stays in this process.
    std::string state_url;
};

// Every bound checked once, the flag's name and its valid range in the message (e.g.
// "--request-deadline-ms: must be 1..86400000, got 0").
result<std::monostate> validate(const orchestrator_config& cfg);

}  // namespace offerd
