// Unit tests for transaction types, member id validation and make_transaction.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <string_view>

#include "offerd/domain/transaction.hpp"

using namespace offerd;

namespace {

constexpr micros noon_2024_03_01 = (1704067200LL + 60LL * 86400 + 12LL * 3600) * micros_per_second;

bool starts_with(const std::string& s, std::string_view prefix) { return std::string_view(s).starts_with(prefix); }

}  // namespace

TEST_CASE("parse_txn_type accepts the three types in any letter case", "[unit]") {
    CHECK(parse_txn_type("BUY") == txn_type::buy);
    CHECK(parse_txn_type("buy") == txn_type::buy);
    CHECK(parse_txn_type("Buy") == txn_type::buy);
    CHECK(parse_txn_type("GIFT") == txn_type::gift);
    CHECK(parse_txn_type("gIfT") == txn_type::gift);
    CHECK(parse_txn_type("REDEEM") == txn_type::redeem);
    CHECK(parse_txn_type("redeem") == txn_type::redeem);
    CHECK(parse_txn_type("Redeem") == txn_type::redeem);
}

TEST_CASE("parse_txn_type rejects anything that is not exactly a type name", "[unit]") {
    for (const char* text : {"", "BU", "BUYS", " BUY", "BUY ", "refund", "REDEM", "GIFT\n", "b u y"}) {
        INFO("'" << text << "'");
        CHECK_FALSE(parse_txn_type(text).has_value());
    }
}

TEST_CASE("to_string names the types in upper case", "[unit]") {
    CHECK(std::string_view(to_string(txn_type::buy)) == "BUY");
    CHECK(std::string_view(to_string(txn_type::gift)) == "GIFT");
    CHECK(std::string_view(to_string(txn_type::redeem)) == "REDEEM");
}

TEST_CASE("validate_member_id accepts 1 to 64 letters, digits, underscores and hyphens", "[unit]") {
    CHECK(validate_member_id("a").value() == "a");
    CHECK(validate_member_id("M100001").value() == "M100001");
    const std::string all = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
    REQUIRE(all.size() == 64);
    CHECK(validate_member_id(all).value() == all);
}

TEST_CASE("validate_member_id rejects an empty id naming the memberId field", "[unit]") {
    const auto r = validate_member_id("");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == errc::invalid_field);
    CHECK(starts_with(r.error().detail, "memberId"));
}

TEST_CASE("validate_member_id rejects an id longer than 64 characters", "[unit]") {
    CHECK(validate_member_id(std::string(64, 'x')).has_value());
    const auto r = validate_member_id(std::string(65, 'x'));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == errc::invalid_field);
    CHECK(starts_with(r.error().detail, "memberId"));
}

TEST_CASE("validate_member_id rejects characters outside [A-Za-z0-9_-]", "[unit]") {
    for (const char* text : {"M 1", "M.1", "M/1", "M1\n", "M\xC3\xA9", "M+1", "M@1", "\"M1\"", "M1%00"}) {
        INFO("'" << text << "'");
        const auto r = validate_member_id(text);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == errc::invalid_field);
        CHECK(starts_with(r.error().detail, "memberId"));
    }
}

TEST_CASE("make_transaction builds a transaction from valid raw values", "[unit]") {
    const auto r = make_transaction("M1", "2024-03-01T12:00:00Z", "BUY", 120, 12.5);
    REQUIRE(r.has_value());
    CHECK(r->member_id == "M1");
    CHECK(r->ts == noon_2024_03_01);
    CHECK(r->type == txn_type::buy);
    CHECK(r->points == 120);
    CHECK(r->revenue == 12.5);
}

TEST_CASE("make_transaction normalizes a mixed-case type and an offset timestamp", "[unit]") {
    const auto r = make_transaction("M1", "2024-03-01 14:00:00+02:00", "gIfT", 50, 0);
    REQUIRE(r.has_value());
    CHECK(r->type == txn_type::gift);
    CHECK(r->ts == noon_2024_03_01);
}

TEST_CASE("make_transaction accepts negative points for redeems and zero revenue", "[unit]") {
    const auto r = make_transaction("M1", "2024-03-01T12:00:00Z", "redeem", -500, 0);
    REQUIRE(r.has_value());
    CHECK(r->points == -500);
    CHECK(r->revenue == 0);
    CHECK(r->type == txn_type::redeem);
}

TEST_CASE("make_transaction names the memberId field for an invalid member id", "[unit]") {
    const auto r = make_transaction("bad id", "2024-03-01T12:00:00Z", "BUY", 1, 1);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == errc::invalid_field);
    CHECK(starts_with(r.error().detail, "memberId: "));
}

TEST_CASE("make_transaction names the timestamp field for an invalid timestamp", "[unit]") {
    const auto r = make_transaction("M1", "2023-02-29T12:00:00Z", "BUY", 1, 1);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == errc::invalid_field);
    CHECK(starts_with(r.error().detail, "lastTransactionUtcTs: "));
}

TEST_CASE("make_transaction names the type field for an unknown type", "[unit]") {
    const auto r = make_transaction("M1", "2024-03-01T12:00:00Z", "refund", 1, 1);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == errc::invalid_field);
    CHECK(starts_with(r.error().detail, "lastTransactionType: "));
}

TEST_CASE("make_transaction rejects negative revenue naming the revenue field", "[unit]") {
    const auto r = make_transaction("M1", "2024-03-01T12:00:00Z", "BUY", 10, -0.01);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == errc::invalid_field);
    CHECK(starts_with(r.error().detail, "lastTransactionRevenueUsd: "));
}

TEST_CASE("make_transaction rejects non-finite points naming the points field", "[unit]") {
    for (const double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity()}) {
        INFO(bad);
        const auto r = make_transaction("M1", "2024-03-01T12:00:00Z", "BUY", bad, 1);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == errc::invalid_field);
        CHECK(starts_with(r.error().detail, "lastTransactionPointsBought: "));
    }
}

TEST_CASE("make_transaction rejects non-finite revenue naming the revenue field", "[unit]") {
    for (const double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
        INFO(bad);
        const auto r = make_transaction("M1", "2024-03-01T12:00:00Z", "BUY", 1, bad);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == errc::invalid_field);
        CHECK(starts_with(r.error().detail, "lastTransactionRevenueUsd: "));
    }
}

TEST_CASE("make_transaction reports the first offending field in wire order", "[unit]") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    CHECK(starts_with(make_transaction("", "x", "x", nan, -1).error().detail, "memberId: "));
    CHECK(starts_with(make_transaction("M1", "x", "x", nan, -1).error().detail, "lastTransactionUtcTs: "));
    CHECK(starts_with(make_transaction("M1", "2024-03-01T12:00:00Z", "x", nan, -1).error().detail,
                      "lastTransactionType: "));
    CHECK(starts_with(make_transaction("M1", "2024-03-01T12:00:00Z", "BUY", nan, -1).error().detail,
                      "lastTransactionPointsBought: "));
}
