// One durable record per line: `P <seq> <crc32> {"key":…,"txn":{…}}`. Shared by the
// orchestrator's outbox and member-data's journal.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "offerd/domain/transaction.hpp"

namespace offerd {

struct keyed_record {
    std::uint64_t seq = 0;
    std::string key;  // Idempotency-Key; may be empty
    transaction txn;
};

// The line including its trailing newline.
std::string encode_record_line(const keyed_record& r);
// nullopt for anything that is not a complete, checksum-valid `P` line (a torn write).
std::optional<keyed_record> decode_record_line(std::string_view line);

}  // namespace offerd
