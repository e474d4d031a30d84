// Unit tests for timestamp parsing, RFC 3339 formatting and calendar-day arithmetic.
#include <catch2/catch.hpp>

#include <initializer_list>
#include <string>
#include <string_view>

#include "offerd/domain/timestamp.hpp"

using namespace offerd;

namespace {

constexpr micros sec = micros_per_second;
// 2024-03-01T12:00:00Z, worked out by hand: 2024-01-01 is 1704067200 s, plus 31 + 29 days, plus 12 h.
constexpr micros noon_2024_03_01 = (1704067200LL + 60LL * 86400 + 12LL * 3600) * sec;

micros parsed(std::string_view text) {
    INFO("timestamp: " << text);
    const auto r = parse_timestamp(text);
    REQUIRE(r.has_value());
    return *r;
}

void require_rejected(std::string_view text) {
    INFO("timestamp: '" << text << "'");
    const auto r = parse_timestamp(text);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == errc::invalid_field);
    CHECK_FALSE(r.error().detail.empty());
}

}  // namespace

TEST_CASE("An RFC 3339 timestamp with Z parses to microseconds since the epoch", "[unit]") {
    CHECK(parsed("2024-03-01T12:00:00Z") == noon_2024_03_01);
    CHECK(parsed("1970-01-01T00:00:00Z") == 0);
    CHECK(parsed("1970-01-01T00:00:01Z") == sec);
}

TEST_CASE("Lower-case z and t and a space separator mean the same instant", "[unit]") {
    CHECK(parsed("2024-03-01t12:00:00z") == noon_2024_03_01);
    CHECK(parsed("2024-03-01T12:00:00z") == noon_2024_03_01);
    CHECK(parsed("2024-03-01 12:00:00Z") == noon_2024_03_01);
}

TEST_CASE("A positive UTC offset is subtracted to get UTC", "[unit]") {
    CHECK(parsed("2024-03-01T14:00:00+02:00") == noon_2024_03_01);
    CHECK(parsed("2024-03-01T17:45:00+05:45") == noon_2024_03_01);
}

TEST_CASE("A negative UTC offset is added to get UTC", "[unit]") {
    CHECK(parsed("2024-03-01T07:30:00-04:30") == noon_2024_03_01);
    CHECK(parsed("2024-03-01T12:00:00-00:00") == noon_2024_03_01);
}

TEST_CASE("An offset can move the instant to the next UTC day", "[unit]") {
    // 23:30 at -02:00 is 01:30 UTC on the following day.
    CHECK(parsed("2024-03-01T23:30:00-02:00") == parsed("2024-03-02T01:30:00Z"));
    CHECK(parsed("2024-12-31T23:00:00-01:00") == parsed("2025-01-01T00:00:00Z"));
}

TEST_CASE("Offsets up to 23:59 are accepted", "[unit]") {
    CHECK(parsed("2024-03-02T11:59:00+23:59") == noon_2024_03_01);
    CHECK(parsed("2024-02-29T12:01:00-23:59") == noon_2024_03_01);
}

TEST_CASE("Offsets out of range or not in +HH:MM form are rejected", "[unit]") {
    require_rejected("2024-03-01T12:00:00+24:00");
    require_rejected("2024-03-01T12:00:00+00:60");
    require_rejected("2024-03-01T12:00:00+0200");
    require_rejected("2024-03-01T12:00:00+02");
    require_rejected("2024-03-01T12:00:00+2:00");
    require_rejected("2024-03-01T12:00:00 +02:00");
}

TEST_CASE("A space-separated timestamp without a zone is taken as UTC", "[unit]") {
    CHECK(parsed("2024-03-01 12:00:00") == noon_2024_03_01);
    CHECK(parsed("2024-03-01 12:00:00.250000") == noon_2024_03_01 + 250000);
}

TEST_CASE("A T-separated timestamp without a zone is taken as UTC", "[unit]") {
    CHECK(parsed("2024-03-01T12:00:00") == noon_2024_03_01);
}

TEST_CASE("Fractional seconds of 1 to 6 digits are exact microseconds", "[unit]") {
    CHECK(parsed("2024-03-01T12:00:00.5Z") == noon_2024_03_01 + 500000);
    CHECK(parsed("2024-03-01T12:00:00.05Z") == noon_2024_03_01 + 50000);
    CHECK(parsed("2024-03-01T12:00:00.123456Z") == noon_2024_03_01 + 123456);
    CHECK(parsed("2024-03-01T12:00:00.000001Z") == noon_2024_03_01 + 1);
    CHECK(parsed("2024-03-01T12:00:00.5+02:00") == noon_2024_03_01 - 2 * 3600 * sec + 500000);
}

TEST_CASE("Fractional seconds of 7 to 9 digits are truncated, not rounded, to microseconds", "[unit]") {
    CHECK(parsed("2024-03-01T12:00:00.1234567Z") == noon_2024_03_01 + 123456);
    CHECK(parsed("2024-03-01T12:00:00.99999999Z") == noon_2024_03_01 + 999999);
    CHECK(parsed("2024-03-01T12:00:00.000000999Z") == noon_2024_03_01);
}

TEST_CASE("A fraction with no digits or more than 9 digits is rejected", "[unit]") {
    require_rejected("2024-03-01T12:00:00.Z");
    require_rejected("2024-03-01T12:00:00.1234567890Z");
    require_rejected("2024-03-01 12:00:00.");
}

TEST_CASE("February 29 is valid in leap years only", "[unit]") {
    CHECK(parsed("2024-02-29T00:00:00Z") == parsed("2024-03-01T00:00:00Z") - 86400 * sec);
    CHECK(parsed("2000-02-29T00:00:00Z") == parsed("2000-03-01T00:00:00Z") - 86400 * sec);
    require_rejected("2023-02-29T00:00:00Z");
    require_rejected("1900-02-29T00:00:00Z");
    require_rejected("2024-02-30T00:00:00Z");
}

TEST_CASE("Dates and times out of range are rejected", "[unit]") {
    require_rejected("2024-00-10T12:00:00Z");
    require_rejected("2024-13-10T12:00:00Z");
    require_rejected("2024-03-00T12:00:00Z");
    require_rejected("2024-03-32T12:00:00Z");
    require_rejected("2024-04-31T12:00:00Z");
    require_rejected("2024-03-01T24:00:00Z");
    require_rejected("2024-03-01T12:60:00Z");
    require_rejected("2024-03-01T12:00:60Z");
    require_rejected("0000-01-01T00:00:00Z");
}

TEST_CASE("The last day of each month is accepted", "[unit]") {
    for (const char* text : {"2024-01-31T00:00:00Z", "2024-04-30T00:00:00Z", "2024-06-30T00:00:00Z",
                             "2024-09-30T00:00:00Z", "2024-11-30T00:00:00Z", "2024-12-31T23:59:59Z",
                             "2023-02-28T00:00:00Z"}) {
        INFO(text);
        CHECK(parse_timestamp(text).has_value());
    }
}

TEST_CASE("The extreme years 0001 and 9999 parse", "[unit]") {
    CHECK(parsed("0001-01-01T00:00:00Z") == -719162LL * 86400 * sec);
    CHECK(parsed("9999-12-31T23:59:59.999999Z") == (2932896LL * 86400 + 86399) * sec + 999999);
}

TEST_CASE("Malformed timestamp text is rejected with a reason", "[unit]") {
    require_rejected("");
    require_rejected("not-a-date");
    require_rejected("2024-03-01");
    require_rejected("2024-3-01T12:00:00Z");
    require_rejected("2024-03-1T12:00:00Z");
    require_rejected("2024-03-01T12:00Z");
    require_rejected("2024-03-01T1:00:00Z");
    require_rejected("2024/03/01T12:00:00Z");
    require_rejected("2024-03-01X12:00:00Z");
    require_rejected("2024-03-01T12:00:00ZZ");
    require_rejected("2024-03-01T12:00:00Z ");
    require_rejected(" 2024-03-01T12:00:00Z");
    require_rejected("2024-03-01T12:00:00UTC");
    require_rejected("1709294400");
}

TEST_CASE("format_rfc3339 omits the fraction for whole seconds", "[unit]") {
    CHECK(format_rfc3339(noon_2024_03_01) == "2024-03-01T12:00:00Z");
    CHECK(format_rfc3339(0) == "1970-01-01T00:00:00Z");
}

TEST_CASE("format_rfc3339 prints six fraction digits when there are microseconds", "[unit]") {
    CHECK(format_rfc3339(noon_2024_03_01 + 1) == "2024-03-01T12:00:00.000001Z");
    CHECK(format_rfc3339(noon_2024_03_01 + 500000) == "2024-03-01T12:00:00.500000Z");
}

TEST_CASE("format_rfc3339 prints the fraction for whole seconds when always_fraction is set", "[unit]") {
    CHECK(format_rfc3339(noon_2024_03_01, true) == "2024-03-01T12:00:00.000000Z");
}

TEST_CASE("format_rfc3339 handles instants before the epoch", "[unit]") {
    CHECK(format_rfc3339(-1) == "1969-12-31T23:59:59.999999Z");
    CHECK(format_rfc3339(-86400 * sec) == "1969-12-31T00:00:00Z");
}

TEST_CASE("Formatting then parsing gives back the same instant", "[unit]") {
    const std::initializer_list<micros> samples{0, 1, -1, noon_2024_03_01, noon_2024_03_01 + 123456,
                                                -719162LL * 86400 * sec, (2932896LL * 86400 + 86399) * sec + 999999};
    for (const micros t : samples) {
        INFO(t);
        CHECK(parsed(format_rfc3339(t)) == t);
        CHECK(parsed(format_rfc3339(t, true)) == t);
    }
}

TEST_CASE("utc_day floors toward negative infinity", "[unit]") {
    CHECK(utc_day(0) == 0);
    CHECK(utc_day(micros_per_day - 1) == 0);
    CHECK(utc_day(micros_per_day) == 1);
    CHECK(utc_day(-1) == -1);
    CHECK(utc_day(-micros_per_day) == -1);
    CHECK(utc_day(-micros_per_day - 1) == -2);
    CHECK(utc_day(noon_2024_03_01) == 19783);
}

TEST_CASE("days_from_civil counts days from 1970-01-01", "[unit]") {
    CHECK(days_from_civil(1970, 1, 1) == 0);
    CHECK(days_from_civil(1970, 1, 2) == 1);
    CHECK(days_from_civil(1969, 12, 31) == -1);
    CHECK(days_from_civil(2000, 1, 1) == 10957);
    CHECK(days_from_civil(2000, 3, 1) == 11017);
    CHECK(days_from_civil(2024, 1, 1) == 19723);
    CHECK(days_from_civil(2024, 3, 1) == 19783);
    CHECK(days_from_civil(1, 1, 1) == -719162);
    CHECK(days_from_civil(9999, 12, 31) == 2932896);
}
