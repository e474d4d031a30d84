// Unit tests for compute_features, the two prediction formulas and the offer rule.
// Expected values are worked out by hand from the contract, never by calling the code under test.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string_view>
#include <vector>

#include "offerd/domain/features.hpp"

using namespace offerd;

namespace {

micros at(std::string_view text) {
    const auto r = parse_timestamp(text);
    REQUIRE(r.has_value());
    return *r;
}

transaction tx(std::string_view ts, txn_type type, double points, double revenue) {
    return transaction{"M1", at(ts), type, points, revenue};
}

transaction made(std::string_view ts, std::string_view type, double points, double revenue) {
    auto r = make_transaction("M1", ts, type, points, revenue);
    REQUIRE(r.has_value());
    return std::move(r).value();
}

void check_features(const member_features& actual, const member_features& expected) {
    CHECK(actual.avg_points_bought == expected.avg_points_bought);
    CHECK(actual.avg_revenue_usd == expected.avg_revenue_usd);
    CHECK(actual.last_3_avg_points_bought == expected.last_3_avg_points_bought);
    CHECK(actual.last_3_avg_revenue_usd == expected.last_3_avg_revenue_usd);
    CHECK(actual.pct_buy == expected.pct_buy);
    CHECK(actual.pct_gift == expected.pct_gift);
    CHECK(actual.pct_redeem == expected.pct_redeem);
    CHECK(actual.days_since_last_transaction == expected.days_since_last_transaction);
}

std::int64_t days_since(std::string_view latest_ts, std::string_view now) {
    const std::vector<transaction> none;
    return compute_features(none, tx(latest_ts, txn_type::buy, 1, 1), at(now)).days_since_last_transaction;
}

constexpr auto buy = txn_type::buy;
constexpr auto gift = txn_type::gift;
constexpr auto redeem = txn_type::redeem;

}  // namespace

// ---- compute_features ----------------------------------------------------------------------

TEST_CASE("A single transaction with no history is its own average and last-3 average", "[unit]") {
    const std::vector<transaction> history;
    const auto f = compute_features(history, tx("2024-03-01T12:00:00Z", buy, 100, 20), at("2024-03-04T08:00:00Z"));
    check_features(f, member_features{100, 20, 100, 20, 1, 0, 0, 3});
}

TEST_CASE("With exactly three transactions the last-3 averages equal the overall averages", "[unit]") {
    const std::vector<transaction> history{tx("2024-03-01T10:00:00Z", buy, 30, 3),
                                           tx("2024-03-02T10:00:00Z", gift, 60, 6)};
    const auto f = compute_features(history, tx("2024-03-03T10:00:00Z", redeem, -90, 0), at("2024-03-03T23:00:00Z"));
    // points 30 + 60 - 90 = 0; revenue 3 + 6 + 0 = 9; one of each type.
    check_features(f, member_features{0.0, 3.0, 0.0, 3.0, 1.0 / 3, 1.0 / 3, 1.0 / 3, 0});
}

TEST_CASE("With more than three transactions the last-3 averages use the three most recent", "[unit]") {
    const std::vector<transaction> history{
        tx("2024-03-01T10:00:00Z", buy, 10, 1),  tx("2024-03-02T10:00:00Z", buy, 20, 2),
        tx("2024-03-03T10:00:00Z", gift, 30, 3), tx("2024-03-04T10:00:00Z", gift, 40, 4),
        tx("2024-03-05T10:00:00Z", redeem, -50, 0),
    };
    const auto f = compute_features(history, tx("2024-03-06T10:00:00Z", buy, 60, 6), at("2024-03-08T09:00:00Z"));
    // all six: points 10+20+30+40-50+60 = 110, revenue 1+2+3+4+0+6 = 16
    // last three (Mar 6, 5, 4): points 60-50+40 = 50, revenue 6+0+4 = 10
    // types: 3 buy, 2 gift, 1 redeem out of 6; Mar 6 -> Mar 8 is 2 days
    check_features(f, member_features{110.0 / 6, 16.0 / 6, 50.0 / 3, 10.0 / 3, 3.0 / 6, 2.0 / 6, 1.0 / 6, 2});
}

TEST_CASE("Among equal timestamps the later arrivals are the most recent", "[unit]") {
    const std::vector<transaction> history{
        tx("2024-03-05T10:00:00Z", buy, 10, 1), tx("2024-03-05T10:00:00Z", buy, 20, 2),
        tx("2024-03-05T10:00:00Z", buy, 30, 3), tx("2024-03-05T10:00:00Z", buy, 40, 4),
    };
    // The current one is older, so the last three are the 4th, 3rd and 2nd arrivals.
    const auto f = compute_features(history, tx("2024-03-04T10:00:00Z", buy, 1000, 100), at("2024-03-05T12:00:00Z"));
    // all five: points 1100, revenue 110; last three: points 40+30+20 = 90, revenue 4+3+2 = 9
    check_features(f, member_features{1100.0 / 5, 110.0 / 5, 90.0 / 3, 9.0 / 3, 1, 0, 0, 0});
}

TEST_CASE("A current transaction tying with history counts as the most recent", "[unit]") {
    const std::vector<transaction> history{
        tx("2024-03-05T10:00:00Z", gift, 10, 1),
        tx("2024-03-05T10:00:00Z", gift, 20, 2),
        tx("2024-03-05T10:00:00Z", gift, 30, 3),
    };
    const auto f = compute_features(history, tx("2024-03-05T10:00:00Z", buy, 100, 10), at("2024-03-05T10:00:00Z"));
    // last three: the current (100, 10), then the 3rd (30, 3) and 2nd (20, 2) arrivals
    check_features(f, member_features{160.0 / 4, 16.0 / 4, 150.0 / 3, 15.0 / 3, 1.0 / 4, 3.0 / 4, 0, 0});
}

TEST_CASE("Unsorted history (late arrivals) is ranked by timestamp for the last-3 averages", "[unit]") {
    const std::vector<transaction> history{
        tx("2024-03-05T10:00:00Z", buy, 50, 5),
        tx("2024-03-01T10:00:00Z", buy, 10, 1),
        tx("2024-03-04T10:00:00Z", buy, 40, 4),
        tx("2024-03-02T10:00:00Z", buy, 20, 2),
    };
    const auto f = compute_features(history, tx("2024-03-03T10:00:00Z", gift, 30, 3), at("2024-03-07T01:00:00Z"));
    // last three by timestamp: Mar 5 (50, 5), Mar 4 (40, 4), Mar 3 (30, 3) -> 120 / 3, 12 / 3
    // the latest is the first arrival (Mar 5), not the current one: Mar 5 -> Mar 7 is 2 days
    check_features(f, member_features{150.0 / 5, 15.0 / 5, 120.0 / 3, 12.0 / 3, 4.0 / 5, 1.0 / 5, 0, 2});
}

TEST_CASE("Mixed-case types from make_transaction are counted by type", "[unit]") {
    const std::vector<transaction> history{
        made("2024-03-01T10:00:00Z", "buy", 100, 10),
        made("2024-03-02T10:00:00Z", "Gift", 50, 0),
        made("2024-03-03T10:00:00Z", "REDEEM", -200, 0),
    };
    const auto f = compute_features(history, made("2024-03-04T10:00:00Z", "rEdEeM", -100, 0), at("2024-03-04T10:00:00Z"));
    CHECK(f.pct_buy == 0.25);
    CHECK(f.pct_gift == 0.25);
    CHECK(f.pct_redeem == 0.5);
}

TEST_CASE("The type shares always add up to one", "[unit]") {
    const std::vector<transaction> history{
        tx("2024-03-01T10:00:00Z", buy, 1, 1),    tx("2024-03-02T10:00:00Z", gift, 1, 1),
        tx("2024-03-03T10:00:00Z", redeem, -1, 0), tx("2024-03-04T10:00:00Z", buy, 1, 1),
        tx("2024-03-05T10:00:00Z", buy, 1, 1),    tx("2024-03-06T10:00:00Z", gift, 1, 1),
    };
    const auto f = compute_features(history, tx("2024-03-07T10:00:00Z", buy, 1, 1), at("2024-03-07T10:00:00Z"));
    CHECK(f.pct_buy == 4.0 / 7);
    CHECK(f.pct_gift == 2.0 / 7);
    CHECK(f.pct_redeem == 1.0 / 7);
    CHECK(f.pct_buy + f.pct_gift + f.pct_redeem == Approx(1.0));
}

TEST_CASE("A redeem-only member has an ATS of zero", "[unit]") {
    const std::vector<transaction> history{tx("2024-03-01T10:00:00Z", redeem, -100, 0)};
    const auto f = compute_features(history, tx("2024-03-02T10:00:00Z", redeem, -200, 0), at("2024-03-02T11:00:00Z"));
    check_features(f, member_features{-150, 0, -150, 0, 0, 0, 1, 0});
    // abs((-150*0.7 + -150*0.3) * max(0, 0 + 0 - 1)) = 0
    const double ats = predict_ats(f);
    CHECK(ats == 0.0);
    CHECK_FALSE(std::signbit(ats));
}

TEST_CASE("DAYS_SINCE counts UTC calendar dates, not 24-hour periods", "[unit]") {
    CHECK(days_since("2024-03-01T23:59:59Z", "2024-03-02T00:00:01Z") == 1);
    CHECK(days_since("2024-03-01T00:00:00Z", "2024-03-01T23:59:59.999999Z") == 0);
    CHECK(days_since("2024-01-01T12:00:00Z", "2024-03-01T11:00:00Z") == 60);
}

TEST_CASE("DAYS_SINCE uses the UTC date of a timestamp given with an offset", "[unit]") {
    // 23:30 at -02:00 is 01:30 UTC on March 2.
    CHECK(days_since("2024-03-01T23:30:00-02:00", "2024-03-02T12:00:00Z") == 0);
    // 01:00 at +02:00 on March 2 is 23:00 UTC on March 1.
    CHECK(days_since("2024-03-02T01:00:00+02:00", "2024-03-02T00:30:00Z") == 1);
}

TEST_CASE("DAYS_SINCE floors dates before the epoch", "[unit]") {
    CHECK(days_since("1969-12-31T23:00:00Z", "1970-01-01T01:00:00Z") == 1);
    CHECK(days_since("1969-12-30T23:00:00Z", "1969-12-31T01:00:00Z") == 1);
}

TEST_CASE("DAYS_SINCE is zero when now is earlier than the latest transaction", "[unit]") {
    CHECK(days_since("2024-03-05T10:00:00Z", "2024-03-01T10:00:00Z") == 0);
    CHECK(days_since("2024-03-01T10:00:01Z", "2024-03-01T10:00:00Z") == 0);
}

TEST_CASE("DAYS_SINCE is measured from the latest transaction in the history", "[unit]") {
    const std::vector<transaction> history{tx("2024-03-09T10:00:00Z", buy, 1, 1)};
    const auto f = compute_features(history, tx("2024-03-01T10:00:00Z", buy, 1, 1), at("2024-03-10T10:00:00Z"));
    CHECK(f.days_since_last_transaction == 1);
}

// ---- predict_ats ----------------------------------------------------------------------------

TEST_CASE("ATS weights the last-3 points by 0.7 and the average by 0.3, scaled by the type mix", "[unit]") {
    member_features f{};
    f.avg_points_bought = 100;
    f.last_3_avg_points_bought = 200;
    f.pct_buy = 0.5;
    f.pct_gift = 0.25;
    f.pct_redeem = 0.25;
    // (200*0.7 + 100*0.3) * max(0, 0.5 + 0.25 - 0.25) = 170 * 0.5 = 85
    CHECK(predict_ats(f) == std::abs((200 * 0.7 + 100 * 0.3) * std::max(0.0, 0.5 + 0.25 - 0.25)));
    CHECK(predict_ats(f) == Approx(85));
}

TEST_CASE("ATS is the absolute value when the points averages are negative", "[unit]") {
    member_features f{};
    f.avg_points_bought = -200;
    f.last_3_avg_points_bought = -100;
    f.pct_buy = 0.75;
    f.pct_redeem = 0.25;
    // |(-100*0.7 + -200*0.3) * 0.5| = |-130 * 0.5| = 65
    CHECK(predict_ats(f) == std::abs((-100 * 0.7 + -200 * 0.3) * (0.75 + 0.0 - 0.25)));
    CHECK(predict_ats(f) == Approx(65));
}

TEST_CASE("ATS is zero when redeems outweigh buys and gifts", "[unit]") {
    member_features f{};
    f.avg_points_bought = 500;
    f.last_3_avg_points_bought = 500;
    f.pct_buy = 0.25;
    f.pct_gift = 0.125;
    f.pct_redeem = 0.625;
    CHECK(predict_ats(f) == 0.0);
}

// ---- predict_resp ---------------------------------------------------------------------------

TEST_CASE("RESP follows the contract formula below the cap", "[unit]") {
    member_features f{};
    f.avg_revenue_usd = 0.01;
    f.last_3_avg_revenue_usd = 0.02;
    f.pct_buy = 0.5;
    f.pct_gift = 0.25;
    f.pct_redeem = 0.25;
    f.days_since_last_transaction = 1;
    // 1000 * 0.35 * ((0.003 + 0.014) / 100) * (1/2) = 0.02975
    const double expected = std::min(0.9, 1000 * (0.5 * 0.4 + 0.25 * 0.3 + 0.25 * 0.3) *
                                              ((0.01 * 0.3 + 0.02 * 0.7) / 100) * (1 / (1.0 + 1)));
    CHECK(predict_resp(f) == expected);
    CHECK(predict_resp(f) == Approx(0.02975));
}

TEST_CASE("RESP falls with the days since the last transaction", "[unit]") {
    member_features f{};
    f.avg_revenue_usd = 0.01;
    f.last_3_avg_revenue_usd = 0.01;
    f.pct_buy = 1;
    // 1000 * 0.4 * (0.01 / 100) = 0.04, divided by (days + 1)
    f.days_since_last_transaction = 0;
    CHECK(predict_resp(f) == Approx(0.04));
    f.days_since_last_transaction = 3;
    CHECK(predict_resp(f) == Approx(0.01));
    f.days_since_last_transaction = 399;
    CHECK(predict_resp(f) == Approx(0.0001));
}

TEST_CASE("RESP is capped at 0.9", "[unit]") {
    member_features f{};
    f.avg_revenue_usd = 250;
    f.last_3_avg_revenue_usd = 300;
    f.pct_buy = 1;
    f.days_since_last_transaction = 2;
    CHECK(predict_resp(f) == 0.9);
}

TEST_CASE("RESP is zero with no revenue", "[unit]") {
    member_features f{};
    f.pct_redeem = 1;
    CHECK(predict_resp(f) == 0.0);
}

// ---- assign_offer ---------------------------------------------------------------------------

TEST_CASE("The discount is offered when ats * resp is exactly 200", "[unit]") {
    CHECK(assign_offer(400, 0.5) == "50% Discount");
    CHECK(assign_offer(250, 0.8) == "50% Discount");
}

TEST_CASE("The bonus is offered when ats * resp is just below 200", "[unit]") {
    CHECK(assign_offer(400, std::nextafter(0.5, 0.0)) == "35% Bonus");
    CHECK(assign_offer(399.99, 0.5) == "35% Bonus");
    CHECK(assign_offer(0, 0.9) == "35% Bonus");
}

TEST_CASE("The discount is offered well above the threshold", "[unit]") {
    CHECK(assign_offer(1000, 0.9) == "50% Discount");
    CHECK(assign_offer(1e9, 0.001) == "50% Discount");
}

TEST_CASE("The offer constants are the contract strings", "[unit]") {
    CHECK(offer_discount == "50% Discount");
    CHECK(offer_bonus == "35% Bonus");
    CHECK(offer_threshold == 200.0);
}

// ---- the chain ------------------------------------------------------------------------------

TEST_CASE("A recent big buyer gets the discount and a redeem-only member the bonus", "[unit]") {
    const std::vector<transaction> none;
    // ATS = (1000*0.7 + 1000*0.3) * 1 = 1000; RESP = min(0.9, 1000 * 0.4 * 1 * 1) = 0.9; 900 >= 200
    const auto big = compute_features(none, tx("2024-03-01T10:00:00Z", buy, 1000, 100), at("2024-03-01T11:00:00Z"));
    CHECK(predict_ats(big) == Approx(1000));
    CHECK(predict_resp(big) == 0.9);
    CHECK(assign_offer(predict_ats(big), predict_resp(big)) == offer_discount);

    const auto saver = compute_features(none, tx("2024-03-01T10:00:00Z", redeem, -1000, 0), at("2024-03-01T11:00:00Z"));
    CHECK(assign_offer(predict_ats(saver), predict_resp(saver)) == offer_bonus);
}

TEST_CASE("Averages of points near the largest double stay finite", "[unit]") {
    const std::vector<transaction> history{tx("2024-03-01T12:00:00Z", buy, 1e308, 1e308)};
    const auto f = compute_features(history, tx("2024-03-02T12:00:00Z", buy, 1e308, 1e308), at("2024-03-04T08:00:00Z"));
    CHECK(f.avg_points_bought == 1e308);
    CHECK(f.avg_revenue_usd == 1e308);
    CHECK(f.last_3_avg_points_bought == 1e308);
    CHECK(f.last_3_avg_revenue_usd == 1e308);
    CHECK(std::isfinite(predict_ats(f)));
}

TEST_CASE("Averages of huge values of both signs are their plain means", "[unit]") {
    const std::vector<transaction> history{tx("2024-03-01T12:00:00Z", buy, 1.5e308, 1), tx("2024-03-01T13:00:00Z", buy, 1.5e308, 1)};
    const auto f = compute_features(history, tx("2024-03-02T12:00:00Z", buy, -1.5e308, 1), at("2024-03-04T08:00:00Z"));
    CHECK(f.avg_points_bought == Approx(0.5e308));
    CHECK(f.avg_revenue_usd == 1);
}
