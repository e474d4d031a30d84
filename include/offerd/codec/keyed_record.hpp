// The payload of one durable transaction record, `{"key":…,"txn":{…}}`: what member-data's
// journal and the orchestrator's outbox keep (store/record_log frames it with seq and CRC).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "offerd/domain/transaction.hpp"

namespace offerd {

struct keyed_record {
    std::string key;  // Idempotency-Key; may be empty
    transaction txn;
};

// One line of JSON (no newline inside).
std::string encode_keyed_record(std::string_view key, const transaction& txn);
// nullopt for anything that is not such an object with a valid transaction.
std::optional<keyed_record> decode_keyed_record(std::string_view payload);

}  // namespace offerd
