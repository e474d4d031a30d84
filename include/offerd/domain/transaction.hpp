// A member transaction, its type, and the validation that turns raw wire values into one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "offerd/domain/errors.hpp"
#include "offerd/domain/timestamp.hpp"

namespace offerd {

enum class txn_type : std::uint8_t { buy, gift, redeem };

// "BUY", "GIFT" or "REDEEM".
const char* to_string(txn_type t) noexcept;
// Case-insensitive; nullopt for anything else.
std::optional<txn_type> parse_txn_type(std::string_view s) noexcept;

struct transaction {
    std::string member_id;
    micros ts = 0;
    txn_type type = txn_type::buy;
    double points = 0;
    double revenue = 0;

    friend bool operator==(const transaction&, const transaction&) = default;
};

// The wire field names, shared by the JSON codec and the CSV reader.
namespace field {
inline constexpr std::string_view member_id = "memberId";
inline constexpr std::string_view ts = "lastTransactionUtcTs";
inline constexpr std::string_view type = "lastTransactionType";
inline constexpr std::string_view points = "lastTransactionPointsBought";
inline constexpr std::string_view revenue = "lastTransactionRevenueUsd";
}  // namespace field

inline constexpr std::size_t max_member_id_length = 64;

// memberId: 1-64 chars of [A-Za-z0-9_-]. On failure the detail names the field.
result<std::string> validate_member_id(std::string_view id);

// Validates every field and normalizes (errc::invalid_field): every offending field is in
// failure::errors, in wire order, and the first is named in the detail. Points may be negative (redeems); revenue must be >= 0; both finite.
result<transaction> make_transaction(std::string_view member_id, std::string_view ts, std::string_view type,
                                     double points, double revenue);

}  // namespace offerd
