// The offer flow, transport-free: member turn -> exact history -> features -> (ATS && RESP) ->
// offer -> write path. Every way into the flow (the HTTP handler today) calls run().
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "offerd/domain/features.hpp"
#include "offerd/obs/metrics.hpp"
#include "offerd/orchestrator/clients.hpp"
#include "offerd/orchestrator/config.hpp"
#include "offerd/orchestrator/member_turns.hpp"
#include "offerd/orchestrator/persist/write_path.hpp"

namespace offerd {

struct offer_input {
    transaction txn;
    std::string_view idempotency_key;  // the client's (1-255 chars), or empty
    std::uint64_t body_hash = 0;       // of the request body, to tell a repeat from a conflict
    // More of this member's requests already waiting for their turn: member_busy (429) at once.
    std::size_t max_member_waiting = SIZE_MAX;
};

struct offer_outcome {
    std::optional<failure> error;     // set when no offer could be made
    bool replayed = false;            // answered from the Idempotency-Key record: nothing ran
    unsigned replay_status = 0;
    std::string replay_body;
    member_features features;
    double ats = std::nan("");
    double resp = std::nan("");
    std::string offer;
    bool fetched = false;             // the history was read from member-data (else the member was warm)
    bool decided_again = false;       // the member's previous write was refused meanwhile: decided again
    std::size_t history_len = 0;      // transactions the features counted before this one
    std::size_t history_skipped = 0;  // history entries member-data held that could not be parsed
    std::size_t pending_writes = 0;   // of those, accepted writes still waiting for member-data
    bool delivered = false;           // member-data took the write during this request
    bool deferred = false;            // it waits in the outbox and will be delivered in order
    step_latencies latency;
};

// Thread-safe; shared by all workers.
class offer_pipeline {
public:
    offer_pipeline(offer_clients& clients, write_path& writes, const orchestrator_config& cfg)
        : clients_(clients), writes_(writes), cfg_(cfg) {}

    // Never throws for upstream faults: they come back in outcome.error. Requests of one member
    // decide one at a time in arrival order, each over exactly the transactions accepted before
    // it; the next one decides while this one's write is in flight (unless it carries an
    // Idempotency-Key, whose answer must be recorded before a repeat may look). Bounded by
    // ctx.until.
    asio::awaitable<offer_outcome> run(const offer_input& in, const call_context& ctx);

private:
    // History (read or warm) -> features -> predictions -> offer, into out.
    asio::awaitable<void> decide(member_session& s, const transaction& t, const call_context& ctx, offer_outcome& out);
    micros now() const;

    offer_clients& clients_;
    write_path& writes_;
    const orchestrator_config& cfg_;
    member_turns deciding_;  // the member's deciding turn (the delivery turn lives in write_path)
};

}  // namespace offerd
