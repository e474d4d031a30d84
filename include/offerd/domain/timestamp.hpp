// UTC timestamps as microseconds since the Unix epoch: parsing, RFC 3339 formatting, calendar days.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "offerd/domain/errors.hpp"

namespace offerd {

using micros = std::int64_t;  // microseconds since 1970-01-01T00:00:00Z

inline constexpr micros micros_per_second = 1'000'000;
inline constexpr micros micros_per_day = 86'400 * micros_per_second;

// Accepts RFC 3339 (`2024-03-01T12:00:00Z`, `…T12:00:00.5+02:00`, `t`/space separator, `z`),
// and `YYYY-MM-DD HH:MM:SS[.ffffff]` or `YYYY-MM-DDTHH:MM:SS` without a zone, taken as UTC.
// Years 0001-9999; fractions of up to 9 digits are truncated to microseconds.
// Fails with a human-readable reason (no field name: the caller knows the field).
result<micros> parse_timestamp(std::string_view text);

// `YYYY-MM-DDTHH:MM:SSZ`, with `.ffffff` when the microseconds are not zero or always_fraction.
std::string format_rfc3339(micros t, bool always_fraction = false);
// The same into buf (at least rfc3339_max_length bytes), without allocating; returns the length.
inline constexpr std::size_t rfc3339_max_length = 32;
std::size_t format_rfc3339_to(micros t, char* buf, bool always_fraction = false) noexcept;

// Days since the epoch of the UTC calendar date containing t (floor division, so negative t works).
std::int64_t utc_day(micros t) noexcept;

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t days_from_civil(int year, unsigned month, unsigned day) noexcept;

}  // namespace offerd
