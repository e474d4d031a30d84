// The member-data service's in-memory store: per-member histories in insertion order.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "offerd/codec/wire.hpp"
#include "offerd/domain/transaction.hpp"

namespace offerd {

// Thread-safe. Members are spread over 64 shards by hash; each shard has its own mutex, held
// only to append or to serialize one member's history, so threads rarely contend.
// Records are stored compactly: 24 bytes (the type rides in the timestamp's two low bits; the
// member id is stored once per member).
class member_store {
public:
    // as_sent: the timestamp and type as the client wrote them; kept (beside the compact record)
    // only when they differ from the normalized forms, so histories echo what was posted.
    void append(const transaction& t, const transaction_text* as_sent = nullptr);
    // Appends the member's history as a JSON array to out; false (out untouched) when the
    // member has none.
    bool history_json(std::string_view member_id, std::string& out) const;
    std::vector<transaction> history(std::string_view member_id) const;
    std::size_t members() const;
    std::size_t transactions() const;

private:
    struct record {
        std::int64_t ts_and_type;  // (ts << 2) | type: |ts| < 2^58 for years 1-9999
        double points;
        double revenue;
        micros ts() const noexcept { return ts_and_type >> 2; }
        txn_type type() const noexcept { return static_cast<txn_type>(ts_and_type & 3); }
    };
    static_assert(sizeof(record) == 24);
    struct string_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    struct member_history {
        std::vector<record> records;
        // Record index -> text as sent, for the few records not posted in normalized form.
        std::unique_ptr<std::unordered_map<std::uint32_t, transaction_text>> as_sent;
    };
    struct shard {
        mutable std::mutex mutex;
        std::unordered_map<std::string, member_history, string_hash, std::equal_to<>> members;
        std::size_t transactions = 0;
    };
    static constexpr std::size_t shard_count = 64;
    shard& shard_for(std::string_view id) const noexcept;

    mutable std::array<shard, shard_count> shards_;
};

}  // namespace offerd
