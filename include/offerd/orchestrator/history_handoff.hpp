// What a request leaves for the next queued request of the same member, so that a busy member's
// requests overlap: the next one starts while this one's persist is still in flight, and does
// not fetch (and decode) the member's growing history again.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include "offerd/codec/wire.hpp"

namespace offerd {

// How the persist of the request that handed over ended. Written before that request gives up
// the member's write turn, read after the next one takes it (the turn's mutex orders the two).
enum class write_state : std::uint8_t {
    in_flight,
    stored,  // member-data took it, or the outbox did (and features count outbox entries)
    lost,    // neither: the history handed over holds a transaction that is nowhere
};

// Member-data's history of one member as it stands once the previous holder's persist is done:
// the history that holder used (fetched or handed to it), plus its own transaction.
//
// Only built when that is certain: nothing of the member waited in the outbox, and the holder's
// persist cannot be a de-duplicated repeat that appends nothing (its Idempotency-Key was
// generated for that request). `previous_write` tells the receiver whether the holder's persist
// landed; unless it says `stored`, the receiver starts over from a fresh GET. Only passed from one holder of the
// member's turn straight to the next (the sequencer drops it when nobody is queued), and only
// used by a request that arrived before the GET it derives from was sent, so a write that
// completed before the request arrived is always in it: what a fresh GET guarantees.
struct history_handoff {
    decoded_history history;
    std::chrono::steady_clock::time_point fetched_at;  // when the GET it derives from was sent
    std::shared_ptr<std::atomic<write_state>> previous_write;
};

}  // namespace offerd
